//! What kameo and ractor users check of stopped actors, asked of agents: an agent removed from the
//! hive (by hand or by supervision) is dropped, a dropped hive drops every agent, and a removed
//! agent is never asked again.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, Hive, ProposalId, ProposalOf, Snapshot, State, Supervision,
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

/// Counts live agents and the calls they get; fails every call when `failing`.
struct Counted {
    id: u64,
    failing: bool,
    live: Arc<AtomicUsize>,
    calls: Arc<AtomicUsize>,
}

impl Counted {
    fn new(id: u64, failing: bool, live: &Arc<AtomicUsize>, calls: &Arc<AtomicUsize>) -> Self {
        live.fetch_add(1, Ordering::SeqCst);
        Self {
            id,
            failing,
            live: live.clone(),
            calls: calls.clone(),
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Agent<Sum> for Counted {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Sum>,
    ) -> Result<Option<ProposalOf<Sum>>, AgentError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.failing {
            return Err(AgentError::msg("down"));
        }
        Ok(Some(
            hivekit_hive::Proposal::new(ProposalId(self.id), 1).writes([self.id]),
        ))
    }
}

async fn decide(hive: &Hive<Sum>) -> hivekit_hive::Decision<Sum> {
    tokio::time::timeout(Duration::from_secs(10), hive.decide())
        .await
        .expect("no hang")
        .expect("decides")
}

#[tokio::test(start_paused = true)]
async fn a_removed_agent_is_dropped_and_never_asked_again() {
    let (live, calls) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let hive = Hive::builder(Sum::default()).build().expect("valid");
    let ids: Vec<_> = (1..=3)
        .map(|id| hive.spawn(Counted::new(id, false, &live, &calls)))
        .collect();
    decide(&hive).await;
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert!(hive.remove(ids[1]));
    assert_eq!(
        live.load(Ordering::SeqCst),
        2,
        "the removed agent is dropped"
    );
    let decision = decide(&hive).await;
    assert_eq!(decision.agents, 2);
    assert_eq!(calls.load(Ordering::SeqCst), 5);
    assert_eq!(hive.memory().load().0, 5);
}

#[tokio::test(start_paused = true)]
async fn an_agent_removed_by_supervision_is_dropped() {
    let (live, calls) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let hive = Hive::builder(Sum::default())
        .supervision(Supervision::remove(2))
        .build()
        .expect("valid");
    hive.spawn(Counted::new(1, false, &live, &calls));
    let failing = hive.spawn(Counted::new(2, true, &live, &calls));
    decide(&hive).await;
    let second = decide(&hive).await;
    assert!(!hive.contains(failing), "{:?}", second.supervised);
    assert_eq!(
        live.load(Ordering::SeqCst),
        1,
        "the removed agent is dropped"
    );
    let before = calls.load(Ordering::SeqCst);
    decide(&hive).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        before + 1,
        "only the healthy agent is asked"
    );
}

#[tokio::test(start_paused = true)]
async fn dropping_the_hive_and_its_clones_drops_every_agent() {
    let (live, calls) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let hive = Hive::builder(Sum::default())
        .on_restart(|hive, _record| {
            let _ = hive.len();
        })
        .build()
        .expect("valid");
    for id in 1..=50 {
        hive.spawn(Counted::new(id, id % 10 == 0, &live, &calls));
    }
    let clone = hive.clone();
    decide(&clone).await;
    assert_eq!(live.load(Ordering::SeqCst), 50);
    drop(clone);
    assert_eq!(live.load(Ordering::SeqCst), 50, "a clone shares the agents");
    drop(hive);
    tokio::task::yield_now().await;
    assert_eq!(live.load(Ordering::SeqCst), 0, "no agent outlives its hive");
}
