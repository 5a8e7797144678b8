//! Ractor's `actor_failing_in_spawn_err_doesnt_poison_registries` and `test_panic_on_start_captured`,
//! ported to hive agents: the hive reads an agent's role, cost, interest and batch flag when it is
//! spawned (its "pre_start"). A panic there reaches the caller of `spawn`, and must leave nothing
//! half-registered: no member without a round to ask it, no id handed out twice, the next spawn and
//! the next round as if the failed spawn never happened. Also: `spawn_many` whose factory panics
//! half-way, and an agent whose `role` spawns a helper into the same hive (spawning children from
//! `pre_start`).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hivekit_hive::{
    Agent, AgentContext, AgentError, AgentId, Hive, Interest, ProposalOf, ResourceCost, Role,
    Snapshot, State,
};

#[derive(Clone, Default, Debug)]
struct Sum(u64);

impl State for Sum {
    type Key = u64;
    type Change = u64;
    fn apply(&mut self, change: &u64) {
        self.0 += change;
    }
}

/// Where an agent panics when the hive reads it at spawn time.
#[derive(Clone, Copy, Debug, PartialEq)]
enum PanicIn {
    Nothing,
    Role,
    Cost,
    Interest,
    BatchVotes,
}

/// Adds 1 on its own key; counts its drops and its propose calls.
struct Worker {
    key: u64,
    panic_in: PanicIn,
    dropped: Arc<AtomicUsize>,
    asked: Arc<AtomicUsize>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

impl Agent<Sum> for Worker {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Sum>,
    ) -> Result<Option<ProposalOf<Sum>>, AgentError> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        Ok(Some(ctx.proposal(1).writes([self.key])))
    }

    fn role(&self) -> Role {
        if self.panic_in == PanicIn::Role {
            panic!("role exploded");
        }
        Role::Custom("worker".into())
    }

    fn cost(&self) -> ResourceCost {
        if self.panic_in == PanicIn::Cost {
            panic!("cost exploded");
        }
        ResourceCost::Light
    }

    fn interest(&self) -> Interest<u64> {
        if self.panic_in == PanicIn::Interest {
            panic!("interest exploded");
        }
        Interest::All
    }

    fn batch_votes(&self) -> bool {
        if self.panic_in == PanicIn::BatchVotes {
            panic!("batch_votes exploded");
        }
        false
    }
}

struct Counters {
    dropped: Arc<AtomicUsize>,
    asked: Arc<AtomicUsize>,
}

impl Counters {
    fn new() -> Self {
        Counters {
            dropped: Arc::new(AtomicUsize::new(0)),
            asked: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn worker(&self, key: u64, panic_in: PanicIn) -> Worker {
        Worker {
            key,
            panic_in,
            dropped: Arc::clone(&self.dropped),
            asked: Arc::clone(&self.asked),
        }
    }
}

#[tokio::test]
async fn a_panic_while_the_hive_reads_a_new_agent_reaches_the_caller_and_registers_nothing() {
    for panic_in in [
        PanicIn::Role,
        PanicIn::Cost,
        PanicIn::Interest,
        PanicIn::BatchVotes,
    ] {
        let hive = Hive::new(Sum::default());
        let good = Counters::new();
        let bad = Counters::new();
        let first = hive.spawn(good.worker(1, PanicIn::Nothing));

        let spawned = catch_unwind(AssertUnwindSafe(|| hive.spawn(bad.worker(2, panic_in))));
        assert!(
            spawned.is_err(),
            "{panic_in:?}: the panic reaches the caller"
        );
        assert_eq!(
            bad.dropped.load(Ordering::SeqCst),
            1,
            "{panic_in:?}: the agent that failed to spawn is dropped, once"
        );
        assert_eq!(hive.len(), 1, "{panic_in:?}: nothing half-registered");
        assert_eq!(hive.agents(), vec![first], "{panic_in:?}");
        assert_eq!(
            hive.agents_with_role(&Role::Custom("worker".into())),
            vec![first],
            "{panic_in:?}"
        );

        // The hive goes on as if the failed spawn never happened.
        let second = hive.spawn(good.worker(3, PanicIn::Nothing));
        assert_ne!(
            second, first,
            "{panic_in:?}: ids are never handed out twice"
        );
        assert_eq!(hive.agents().len(), 2);
        let decision = hive.decide().await.expect("the round decides");
        assert_eq!(decision.agents, 2, "{panic_in:?}");
        assert_eq!(decision.accepted.len(), 2, "{panic_in:?}");
        assert!(decision.failures.is_empty(), "{panic_in:?}: {decision}");
        assert_eq!(bad.asked.load(Ordering::SeqCst), 0, "{panic_in:?}");
        assert_eq!(good.asked.load(Ordering::SeqCst), 2, "{panic_in:?}");
        assert_eq!(hive.memory().load().0, 2, "{panic_in:?}");

        drop(hive);
        assert_eq!(good.dropped.load(Ordering::SeqCst), 2, "{panic_in:?}");
    }
}

#[tokio::test]
async fn spawn_many_whose_factory_panics_half_way_keeps_the_agents_made_before_it() {
    let hive = Hive::new(Sum::default());
    let counters = Counters::new();
    let made = AtomicUsize::new(0);
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        hive.spawn_many(10, |index| {
            made.fetch_add(1, Ordering::SeqCst);
            if index == 4 {
                panic!("factory exploded at {index}");
            }
            counters.worker(index as u64, PanicIn::Nothing)
        })
    }));
    assert!(outcome.is_err());
    assert_eq!(
        made.load(Ordering::SeqCst),
        5,
        "the factory is not called past its panic"
    );
    assert_eq!(
        hive.len(),
        4,
        "the four agents made before the panic are members"
    );
    let members = hive.agents();
    assert_eq!(members.len(), 4);

    // The same for an agent that panics while the hive reads it, in the middle of spawn_many.
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        hive.spawn_many(3, |index| {
            let panic_in = if index == 1 {
                PanicIn::Role
            } else {
                PanicIn::Nothing
            };
            counters.worker(100 + index as u64, panic_in)
        })
    }));
    assert!(outcome.is_err());
    assert_eq!(hive.len(), 5, "one more made before the panicking agent");
    assert_eq!(
        counters.dropped.load(Ordering::SeqCst),
        1,
        "only the agent that failed to spawn was dropped"
    );

    let decision = hive.decide().await.expect("the round decides");
    assert_eq!(decision.agents, 5);
    assert_eq!(decision.accepted.len(), 5);
    assert!(decision.failures.is_empty(), "{decision}");
    let more = hive.spawn_many(2, |index| {
        counters.worker(200 + index as u64, PanicIn::Nothing)
    });
    let mut all = hive.agents();
    all.dedup();
    assert_eq!(all.len(), 7, "no id handed out twice: {all:?}");
    assert!(more.iter().all(|id| all.contains(id)));
}

/// Spawns a helper into its own hive when the hive reads its role (ractor: spawning children
/// from `pre_start`).
struct Parent {
    hive: Hive<Sum>,
    helper: Arc<parking_lot::Mutex<Option<AgentId>>>,
    counters: Arc<Counters>,
}

impl Agent<Sum> for Parent {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Sum>,
    ) -> Result<Option<ProposalOf<Sum>>, AgentError> {
        Ok(Some(ctx.proposal(10).writes([0])))
    }

    fn role(&self) -> Role {
        let helper = self.hive.spawn(self.counters.worker(1, PanicIn::Nothing));
        *self.helper.lock() = Some(helper);
        Role::Resolver
    }
}

#[tokio::test]
async fn an_agent_that_spawns_a_helper_while_being_spawned_gets_both_registered() {
    let hive = Hive::new(Sum::default());
    let counters = Arc::new(Counters::new());
    let helper = Arc::new(parking_lot::Mutex::new(None));
    let parent = hive.spawn(Parent {
        hive: hive.clone(),
        helper: Arc::clone(&helper),
        counters: Arc::clone(&counters),
    });
    let helper = helper.lock().expect("role was read at spawn");
    assert_ne!(parent, helper);
    assert_eq!(hive.len(), 2);
    assert_eq!(hive.role(parent), Some(Role::Resolver));
    assert_eq!(hive.role(helper), Some(Role::Custom("worker".into())));
    let decision = hive.decide().await.expect("the round decides");
    assert_eq!(decision.accepted.len(), 2, "{decision}");
    assert_eq!(hive.memory().load().0, 11);
    // The parent holds the hive: break the cycle so the agents are dropped.
    assert!(hive.remove(parent));
    drop(hive);
    assert_eq!(counters.dropped.load(Ordering::SeqCst), 1);
}
