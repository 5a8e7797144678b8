//! Removing agents from many threads at once (each removal succeeds exactly once, every agent is
//! dropped exactly once), and an agent that removes itself in the round where supervision would
//! remove it (no double report, no double count).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, AgentId, Hive, ProposalOf, Snapshot, State, Supervision,
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

struct Member {
    drops: Arc<AtomicUsize>,
    /// When set, removes itself from this hive in `propose`, then fails.
    leaves: Option<Arc<OnceLock<Hive<Sum>>>>,
}

impl Drop for Member {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

impl Agent<Sum> for Member {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Sum>,
    ) -> Result<Option<ProposalOf<Sum>>, AgentError> {
        if let Some(hive) = &self.leaves {
            let hive = hive.get().expect("set before the round");
            assert!(hive.remove(ctx.agent()), "it was a member");
            return Err(AgentError::msg("leaving"));
        }
        Ok(Some(ctx.proposal(1).writes([ctx.agent().0])))
    }
}

#[test]
fn concurrent_removals_succeed_exactly_once_each() {
    const AGENTS: usize = 2_000;
    const THREADS: usize = 8;
    let drops = Arc::new(AtomicUsize::new(0));
    let hive = Hive::new(Sum::default());
    let ids = hive.spawn_many(AGENTS, |_| Member {
        drops: Arc::clone(&drops),
        leaves: None,
    });
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), AGENTS, "ids are unique");
    assert_eq!(hive.agents(), sorted);

    let barrier = Barrier::new(THREADS);
    let removed: usize = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (hive, ids, barrier) = (&hive, &ids, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    // Each thread walks the ids from a different place.
                    (0..AGENTS)
                        .filter(|i| hive.remove(ids[(i + t * 97) % AGENTS]))
                        .count()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    assert_eq!(removed, AGENTS, "each agent removed exactly once");
    assert!(hive.is_empty());
    assert_eq!(
        drops.load(Ordering::SeqCst),
        AGENTS,
        "each agent dropped once"
    );
    // New ids are never old ones.
    let fresh = hive.spawn(Member {
        drops: Arc::clone(&drops),
        leaves: None,
    });
    assert!(!ids.contains(&fresh));
    assert!(fresh > *ids.iter().max().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_removes_itself_is_not_also_removed_by_supervision() {
    let drops = Arc::new(AtomicUsize::new(0));
    let cell = Arc::new(OnceLock::new());
    let hive = Hive::builder(Sum::default())
        .supervision(Supervision::remove(1))
        .build()
        .unwrap();
    cell.set(hive.clone()).ok().unwrap();
    let stays: AgentId = hive.spawn(Member {
        drops: Arc::clone(&drops),
        leaves: None,
    });
    let leaver = hive.spawn(Member {
        drops: Arc::clone(&drops),
        leaves: Some(Arc::clone(&cell)),
    });
    let decision = tokio::time::timeout(Duration::from_secs(10), hive.decide())
        .await
        .expect("the round must end")
        .expect("the round decides");
    assert_eq!(decision.failures.len(), 1);
    assert_eq!(decision.failures[0].agent, leaver);
    assert!(
        decision.supervised.is_empty(),
        "the agent had already left: supervision removed nobody, got {:?}",
        decision.supervised
    );
    assert_eq!(hive.stats().removals, 0);
    assert_eq!(hive.agents(), vec![stays]);
    // Break the cycle (the hive in the cell holds the agents) and count the drops.
    drop(cell);
    drop(hive);
    assert_eq!(drops.load(Ordering::SeqCst), 2, "both agents dropped once");
}
