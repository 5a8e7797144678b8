//! Ractor's registry tests (`test_basic_registation`, `test_actor_registry_unenrollment`,
//! `actor_failing_in_spawn_err_doesnt_poison_registries`) ported to the hive's roster, where a
//! role names an agent (`Role::Custom`) and `agents_with_role` is `where_is`: a named agent is
//! found until it is removed, by the user or by supervision, and then at once no longer; a
//! replacement spawned by the restart hook takes the name; and spawns, removals and lookups from
//! many threads at once leave every listing exact.
//!
//! Unlike ractor, a name is not unique: two agents may share a role (see the report).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, AgentId, Hive, HiveEvent, HiveEventSink, ProposalOf, Role,
    Snapshot, State, Supervision, SupervisionAction,
};
use parking_lot::Mutex;

#[derive(Clone, Default, Debug)]
struct Sum(u64);

impl State for Sum {
    type Key = u64;
    type Change = u64;
    fn apply(&mut self, change: &u64) {
        self.0 += change;
    }
}

fn named(name: &str) -> Role {
    Role::Custom(name.to_owned().into())
}

/// An agent registered under `name`; fails every call while `failing`.
struct Named {
    name: String,
    failing: bool,
    generation: usize,
    asked: Arc<Mutex<Vec<(usize, u64)>>>,
}

impl Agent<Sum> for Named {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Sum>,
    ) -> Result<Option<ProposalOf<Sum>>, AgentError> {
        self.asked.lock().push((self.generation, ctx.round()));
        if self.failing {
            return Err(AgentError::msg("the database is down"));
        }
        Ok(Some(ctx.proposal(1).writes([ctx.agent().0])))
    }

    fn role(&self) -> Role {
        named(&self.name)
    }
}

fn agent(name: &str, failing: bool) -> Named {
    Named {
        name: name.to_owned(),
        failing,
        generation: 0,
        asked: Arc::default(),
    }
}

#[tokio::test]
async fn a_named_agent_is_found_by_its_role_until_removed_and_its_name_can_be_taken_again() {
    let hive = Hive::new(Sum::default());
    assert!(hive.agents_with_role(&named("my_actor")).is_empty());
    let first = hive.spawn(agent("my_actor", false));
    let other = hive.spawn(agent("other", false));
    assert_eq!(hive.agents_with_role(&named("my_actor")), vec![first]);
    assert_eq!(hive.role(first), Some(named("my_actor")));

    assert!(hive.remove(first));
    assert!(
        hive.agents_with_role(&named("my_actor")).is_empty(),
        "unlisted at once, not after the next round"
    );
    assert_eq!(hive.role(first), None);
    assert!(!hive.remove(first), "a second removal finds nothing");

    let second = hive.spawn(agent("my_actor", false));
    assert_ne!(second, first, "the name is taken again, under a new id");
    assert_eq!(hive.agents_with_role(&named("my_actor")), vec![second]);
    assert_eq!(hive.agents_with_role(&named("other")), vec![other]);
    let decision = hive.decide().await.expect("the round decides");
    assert_eq!(decision.agents, 2);
    assert!(decision.proposers.iter().all(|(_, agent)| *agent != first));
}

/// What the restart hook saw: the agents listed under the name, the removed agent's role, and
/// the replacement it spawned.
type SeenInHook = Arc<Mutex<Vec<(Vec<AgentId>, Option<Role>, AgentId)>>>;

#[tokio::test]
async fn supervision_unlists_a_removed_agent_before_its_hook_and_a_replacement_takes_its_name() {
    let asked: Arc<Mutex<Vec<(usize, u64)>>> = Arc::default();
    let generations = Arc::new(AtomicUsize::new(0));
    let seen_in_hook: SeenInHook = Arc::default();
    let events = Arc::new(Mutex::new(Vec::new()));
    let hive = Hive::builder(Sum::default())
        .supervision(Supervision::remove(2))
        .events(HiveEventSink::callback({
            let events = Arc::clone(&events);
            move |event| events.lock().push(event)
        }))
        .on_restart({
            let asked = Arc::clone(&asked);
            let generations = Arc::clone(&generations);
            let seen_in_hook = Arc::clone(&seen_in_hook);
            move |hive, record| {
                let listed = hive.agents_with_role(&named("db"));
                let role = hive.role(record.agent);
                // Restart: a fresh agent under the same name, built from the same recipe.
                let generation = generations.fetch_add(1, Ordering::SeqCst) + 1;
                let fresh = hive.spawn(Named {
                    name: "db".into(),
                    failing: false,
                    generation,
                    asked: Arc::clone(&asked),
                });
                seen_in_hook.lock().push((listed, role, fresh));
            }
        })
        .build()
        .unwrap();
    let old = hive.spawn(Named {
        name: "db".into(),
        failing: true,
        generation: 0,
        asked: Arc::clone(&asked),
    });
    let cache = hive.spawn(agent("cache", false));

    let first = hive.decide().await.expect("round 1 decides");
    assert!(first.supervised.is_empty());
    assert_eq!(hive.agents_with_role(&named("db")), vec![old]);
    let second = hive.decide().await.expect("round 2 decides");
    assert_eq!(second.supervised.len(), 1, "{second}");
    assert_eq!(second.supervised[0].agent, old);
    assert_eq!(second.supervised[0].action, SupervisionAction::Remove);

    let seen = seen_in_hook.lock().clone();
    assert_eq!(seen.len(), 1);
    let (listed, role, fresh) = seen.into_iter().next().unwrap();
    assert!(
        listed.is_empty(),
        "the removed agent is already unlisted when the hook runs: {listed:?}"
    );
    assert_eq!(role, None);
    assert_ne!(fresh, old);
    assert_eq!(hive.agents_with_role(&named("db")), vec![fresh]);
    assert_eq!(hive.agents_with_role(&named("cache")), vec![cache]);

    let third = hive.decide().await.expect("round 3 decides");
    assert_eq!(third.agents, 2);
    assert!(third.failures.is_empty(), "{third}");
    assert_eq!(*asked.lock(), vec![(0, 1), (0, 2), (1, 3)]);
    assert_eq!(hive.stats().removals, 1);
    let supervised: Vec<_> = events
        .lock()
        .iter()
        .filter_map(|event| match event {
            HiveEvent::AgentSupervised { round, record } => Some((*round, record.agent)),
            _ => None,
        })
        .collect();
    assert_eq!(supervised, vec![(2, old)]);
}

const NAMES: [&str; 4] = ["alpha", "beta", "gamma", "delta"];

#[test]
fn spawns_removals_and_lookups_from_many_threads_leave_every_listing_exact() {
    const THREADS: usize = 6;
    const PER_THREAD: usize = 300;
    for run in 0..2 {
        let hive = Hive::new(Sum::default());
        let barrier = Barrier::new(THREADS + 1);
        let done = AtomicBool::new(false);
        let kept: Vec<Vec<(AgentId, &str)>> = std::thread::scope(|scope| {
            let lookups = scope.spawn(|| {
                barrier.wait();
                let mut checks = 0usize;
                while !done.load(Ordering::SeqCst) {
                    for name in NAMES {
                        let listed = hive.agents_with_role(&named(name));
                        assert!(listed.windows(2).all(|pair| pair[0] < pair[1]));
                        for id in listed {
                            // Listed under this name: its role is this name, or it is gone.
                            if let Some(role) = hive.role(id) {
                                assert_eq!(role, named(name), "run {run}: {id}");
                            }
                            checks += 1;
                        }
                    }
                }
                checks
            });
            let workers: Vec<_> = (0..THREADS)
                .map(|thread| {
                    let hive = &hive;
                    let barrier = &barrier;
                    scope.spawn(move || {
                        barrier.wait();
                        let mut kept = Vec::new();
                        for index in 0..PER_THREAD {
                            let name = NAMES[(thread + index) % NAMES.len()];
                            let id = hive.spawn(agent(name, false));
                            if index % 3 == 0 {
                                assert!(hive.remove(id), "run {run}: {id} removed once");
                                assert!(!hive.contains(id));
                            } else {
                                kept.push((id, name));
                            }
                        }
                        kept
                    })
                })
                .collect();
            let kept = workers
                .into_iter()
                .map(|worker| worker.join().expect("a worker panicked"))
                .collect();
            done.store(true, Ordering::SeqCst);
            lookups.join().expect("the lookups panicked");
            kept
        });
        let mut expected: HashMap<&str, BTreeSet<AgentId>> = HashMap::new();
        for (id, name) in kept.iter().flatten() {
            assert!(
                expected.entry(name).or_default().insert(*id),
                "run {run}: {id} handed out twice"
            );
        }
        let total: usize = expected.values().map(BTreeSet::len).sum();
        assert_eq!(total, THREADS * (PER_THREAD - PER_THREAD.div_ceil(3)));
        assert_eq!(hive.len(), total, "run {run}");
        for name in NAMES {
            let listed: Vec<AgentId> = hive.agents_with_role(&named(name));
            let want: Vec<AgentId> = expected[name].iter().copied().collect();
            assert_eq!(listed, want, "run {run}: {name}");
        }
        let decision = hivekit_runtime::execute(async {
            tokio::time::timeout(Duration::from_secs(10), hive.decide()).await
        })
        .expect("the round ends")
        .expect("the round decides");
        assert_eq!(decision.agents, total, "run {run}");
        assert_eq!(decision.accepted.len(), total, "run {run}");
    }
}
