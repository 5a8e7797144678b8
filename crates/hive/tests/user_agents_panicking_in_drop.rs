//! Agents whose `Drop` panics (an actor that asserts in its destructor): removed by hand outside
//! a round, removed while a round runs, removed by supervision, and dropped with the hive. The
//! hive must stay usable and a round that committed must return its decision.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, Hive, ProposalOf, Snapshot, State, Supervision,
};
use tokio::sync::Notify;

#[derive(Clone, Default, Debug)]
struct Sum(u64);

impl State for Sum {
    type Key = u64;
    type Change = u64;
    fn apply(&mut self, change: &u64) {
        self.0 += change;
    }
}

/// Proposes 1 on its own key; panics when dropped if `panics_on_drop`; counts its calls and drops.
struct Member {
    key: u64,
    panics_on_drop: bool,
    fails: bool,
    calls: Arc<AtomicUsize>,
    drops: Arc<AtomicUsize>,
    /// When set, `propose` tells `started` and waits for `release`.
    gate: Option<(Arc<Notify>, Arc<Notify>)>,
}

impl Drop for Member {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
        if self.panics_on_drop && !std::thread::panicking() {
            panic!("agent {} asserts in its destructor", self.key);
        }
    }
}

impl Agent<Sum> for Member {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Sum>,
    ) -> Result<Option<ProposalOf<Sum>>, AgentError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if let Some((started, release)) = &self.gate {
            started.notify_one();
            release.notified().await;
        }
        if self.fails {
            return Err(AgentError::msg("always fails"));
        }
        Ok(Some(ctx.proposal(1).writes([self.key])))
    }
}

struct Counters {
    calls: Arc<AtomicUsize>,
    drops: Arc<AtomicUsize>,
}

fn member(key: u64, panics_on_drop: bool, c: &Counters) -> Member {
    Member {
        key,
        panics_on_drop,
        fails: false,
        calls: Arc::clone(&c.calls),
        drops: Arc::clone(&c.drops),
        gate: None,
    }
}

fn counters() -> Counters {
    Counters {
        calls: Arc::new(AtomicUsize::new(0)),
        drops: Arc::new(AtomicUsize::new(0)),
    }
}

async fn decide(hive: &Hive<Sum>) -> hivekit_hive::Decision<Sum> {
    tokio::time::timeout(Duration::from_secs(10), hive.decide())
        .await
        .expect("a round must end")
        .expect("a round decides")
}

#[tokio::test]
async fn removing_an_agent_whose_drop_panics_leaves_the_hive_usable() {
    let (good, bad) = (counters(), counters());
    let hive = Hive::new(Sum::default());
    let healthy = hive.spawn(member(1, false, &good));
    let doomed = hive.spawn(member(2, true, &bad));
    decide(&hive).await;
    assert_eq!(hive.memory().load().0, 2);

    // The panic may or may not reach the caller of `remove`; either way the hive is consistent.
    let _ = catch_unwind(AssertUnwindSafe(|| hive.remove(doomed)));
    assert!(!hive.contains(doomed));
    assert!(hive.contains(healthy));
    assert_eq!(hive.agents(), vec![healthy]);
    assert!(!hive.remove(doomed), "a second removal finds nothing");

    let bad_calls = bad.calls.load(Ordering::SeqCst);
    let decision = decide(&hive).await;
    assert_eq!(decision.agents, 1);
    assert_eq!(decision.accepted.len(), 1);
    assert_eq!(hive.memory().load().0, 3);
    assert_eq!(
        bad.calls.load(Ordering::SeqCst),
        bad_calls,
        "the removed agent is not asked"
    );
    assert_eq!(bad.drops.load(Ordering::SeqCst), 1, "dropped once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_whose_removed_agent_panics_in_drop_still_returns_its_committed_decision() {
    let (good, bad) = (counters(), counters());
    let hive = Hive::new(Sum::default());
    hive.spawn(member(1, false, &good));
    let (started, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let mut gated = member(2, true, &bad);
    gated.gate = Some((Arc::clone(&started), Arc::clone(&release)));
    let doomed = hive.spawn(gated);

    let round = tokio::spawn({
        let hive = hive.clone();
        async move { hive.decide().await }
    });
    tokio::time::timeout(Duration::from_secs(10), started.notified())
        .await
        .expect("the gated agent is asked");
    // Removed while its round runs: the round still holds it, and drops it when it ends.
    let _ = catch_unwind(AssertUnwindSafe(|| hive.remove(doomed)));
    release.notify_one();
    let outcome = tokio::time::timeout(Duration::from_secs(10), round)
        .await
        .expect("the round must end");
    let committed = hive.memory().version();
    match outcome {
        Ok(Ok(decision)) => {
            assert_eq!(decision.accepted.len(), 2);
            assert_eq!(decision.version, committed);
        }
        Ok(Err(error)) => panic!("the round failed: {error}"),
        Err(join) => panic!(
            "decide unwound (version {committed} was committed, its decision is lost): {join}"
        ),
    }
    // And the hive goes on.
    let decision = decide(&hive).await;
    assert_eq!(decision.agents, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervision_removing_an_agent_whose_drop_panics_returns_the_decision() {
    let (good, bad) = (counters(), counters());
    let hive = Hive::builder(Sum::default())
        .supervision(Supervision::remove(1))
        .build()
        .unwrap();
    hive.spawn(member(1, false, &good));
    let mut failing = member(2, true, &bad);
    failing.fails = true;
    let doomed = hive.spawn(failing);

    let outcome = tokio::spawn({
        let hive = hive.clone();
        async move { hive.decide().await }
    });
    let outcome = tokio::time::timeout(Duration::from_secs(10), outcome)
        .await
        .expect("the round must end");
    match outcome {
        Ok(Ok(decision)) => {
            assert_eq!(decision.supervised.len(), 1);
            assert_eq!(decision.supervised[0].agent, doomed);
        }
        Ok(Err(error)) => panic!("the round failed: {error}"),
        Err(join) => panic!("decide unwound when supervision removed the agent: {join}"),
    }
    assert!(!hive.contains(doomed));
    assert_eq!(bad.drops.load(Ordering::SeqCst), 1);
    let decision = decide(&hive).await;
    assert_eq!(decision.agents, 1);
}

#[test]
fn dropping_a_hive_drops_every_agent_even_when_one_panics_in_drop() {
    let (good, bad) = (counters(), counters());
    let hive = Hive::new(Sum::default());
    for key in 0..64 {
        hive.spawn(member(key, false, &good));
    }
    hive.spawn(member(1_000, true, &bad));
    for key in 64..128 {
        hive.spawn(member(key, false, &good));
    }
    let _ = catch_unwind(AssertUnwindSafe(move || drop(hive)));
    assert_eq!(bad.drops.load(Ordering::SeqCst), 1);
    assert_eq!(
        good.drops.load(Ordering::SeqCst),
        128,
        "the other agents are dropped with the hive, not leaked"
    );
}
