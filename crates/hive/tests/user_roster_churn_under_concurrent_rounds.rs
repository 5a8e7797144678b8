//! Rounds running at once while other threads spawn, remove and reweight agents without pause:
//! the rounds reuse member arrays and contexts between rounds over the same roster, so churn is
//! where a stale one would show. Every agent must be told its own id, every accepted proposal must
//! be attributed to the agent that made it, and each round must commit exactly one version.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{Agent, AgentContext, AgentError, AgentId, Hive, ProposalOf, Snapshot, State};
use parking_lot::Mutex;

const BOUND: Duration = Duration::from_secs(20);

/// Every change applied: (the agent's tag, the id its context gave it).
#[derive(Clone, Default, Debug)]
struct Seen(Vec<(u64, u64)>);

impl State for Seen {
    type Key = u64;
    type Change = (u64, u64);
    fn apply(&mut self, change: &(u64, u64)) {
        self.0.push(*change);
    }
}

/// Proposes (its tag, the id its context names) on its own key.
struct Tagged {
    tag: u64,
}

impl Agent<Seen> for Tagged {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Seen>,
    ) -> Result<Option<ProposalOf<Seen>>, AgentError> {
        tokio::task::yield_now().await;
        Ok(Some(
            ctx.proposal((self.tag, ctx.agent().0)).writes([self.tag]),
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_beside_concurrent_rounds_keeps_ids_and_attributions_right() {
    const ROUNDS: usize = 60;
    let hive = Hive::builder(Seen::default()).build().unwrap();
    // tag -> the id the hive gave it.
    let ids: Arc<Mutex<BTreeMap<u64, AgentId>>> = Arc::new(Mutex::new(BTreeMap::new()));
    let spawn = |hive: &Hive<Seen>, tag: u64, ids: &Mutex<BTreeMap<u64, AgentId>>| {
        // Hold the map while spawning, so a round cannot see the agent before its tag is known.
        let mut ids = ids.lock();
        let id = hive.spawn(Tagged { tag });
        ids.insert(tag, id);
    };
    for tag in 0..8 {
        spawn(&hive, tag, &ids);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let (hive, ids, stop) = (hive.clone(), Arc::clone(&ids), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut tag = 8_u64;
            let mut step = 0_u64;
            while !stop.load(Ordering::Acquire) && step < 5_000 {
                step += 1;
                match step % 4 {
                    0 | 1 => {
                        spawn(&hive, tag, &ids);
                        tag += 1;
                    }
                    2 => {
                        // Remove one agent, never the first four (rounds always have members).
                        let victim = ids
                            .lock()
                            .keys()
                            .copied()
                            .find(|t| *t >= 4 && t % 3 == step % 3);
                        if let Some(victim) = victim {
                            let id = ids.lock()[&victim];
                            hive.remove(id);
                        }
                    }
                    _ => {
                        let target = ids.lock().values().copied().nth((step % 5) as usize);
                        if let Some(id) = target {
                            let _ = hive.set_weight(id, 1.0 + (step % 7) as f64);
                        }
                    }
                }
                std::thread::yield_now();
            }
        })
    };
    let decisions = tokio::time::timeout(
        BOUND,
        futures::future::join_all((0..ROUNDS).map(|_| {
            let hive = hive.clone();
            tokio::spawn(async move { hive.decide().await })
        })),
    )
    .await
    .expect("every round ends");
    stop.store(true, Ordering::Release);
    churn.join().unwrap();

    let ids = ids.lock().clone();
    let mut versions = BTreeSet::new();
    for decision in decisions {
        let decision = decision
            .expect("no round panicked")
            .expect("the round decides");
        assert!(decision.failures.is_empty(), "{:?}", decision.failures);
        assert!(
            versions.insert(decision.version),
            "version {} twice",
            decision.version
        );
        assert!(
            decision.rejected.is_empty(),
            "agents write their own keys only"
        );
    }
    assert_eq!(versions, (1..=ROUNDS as u64).collect());
    let state = hive.memory().load();
    assert!(!state.0.is_empty());
    for &(tag, told) in &state.0 {
        assert_eq!(
            Some(AgentId(told)),
            ids.get(&tag).copied(),
            "the agent tagged {tag} was told id {told}"
        );
    }
}
