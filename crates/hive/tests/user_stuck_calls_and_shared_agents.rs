//! What a kameo or ractor user checks about lifetimes: an agent call that never returns and
//! ignores its cancellation is timed out and its future dropped (light or heavy), a round future
//! dropped while a heavy call is in flight aborts that call, one agent value shared by two hives,
//! and a round over ten thousand agents. Every wait is bounded.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, FailureKind, Hive, Phase, ProposalOf, ResourceCost, Snapshot,
    State,
};
use tokio::sync::mpsc;

const BOUND: Duration = Duration::from_secs(10);

/// Counters by key.
#[derive(Clone, Default, Debug)]
struct Tally(BTreeMap<u64, u64>);

impl State for Tally {
    type Key = u64;
    type Change = (u64, u64);
    fn apply(&mut self, (key, delta): &(u64, u64)) {
        *self.0.entry(*key).or_default() += delta;
    }
}

/// Says on its channel when the call holding it is dropped.
struct DropSignal(mpsc::UnboundedSender<&'static str>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        let _ = self.0.send("call dropped");
    }
}

/// Never answers `propose` and never looks at its cancellation token.
struct Stuck {
    heavy: bool,
    dropped: mpsc::UnboundedSender<&'static str>,
    started: mpsc::UnboundedSender<&'static str>,
}

impl Agent<Tally> for Stuck {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Tally>,
    ) -> Result<Option<ProposalOf<Tally>>, AgentError> {
        let _signal = DropSignal(self.dropped.clone());
        let _ = self.started.send("call started");
        std::future::pending().await
    }

    fn cost(&self) -> ResourceCost {
        if self.heavy {
            ResourceCost::Heavy
        } else {
            ResourceCost::Light
        }
    }
}

/// Adds `delta` to `key`; counts its calls.
#[derive(Clone)]
struct Adder {
    key: u64,
    delta: u64,
    calls: Arc<AtomicUsize>,
}

impl Agent<Tally> for Adder {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Tally>,
    ) -> Result<Option<ProposalOf<Tally>>, AgentError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(Some(
            ctx.proposal((self.key, self.delta)).writes([self.key]),
        ))
    }
}

fn adder(key: u64, delta: u64) -> Adder {
    Adder {
        key,
        delta,
        calls: Arc::new(AtomicUsize::new(0)),
    }
}

fn stuck(
    heavy: bool,
) -> (
    Stuck,
    mpsc::UnboundedReceiver<&'static str>,
    mpsc::UnboundedReceiver<&'static str>,
) {
    let (dropped, dropped_rx) = mpsc::unbounded_channel();
    let (started, started_rx) = mpsc::unbounded_channel();
    (
        Stuck {
            heavy,
            dropped,
            started,
        },
        dropped_rx,
        started_rx,
    )
}

async fn timed_out_call_is_recorded_and_dropped(heavy: bool) {
    let hive = Hive::builder(Tally::default())
        .agent_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let (agent, mut dropped, _started) = stuck(heavy);
    let stuck_id = hive.spawn(agent);
    hive.spawn(adder(1, 5));
    let decision = tokio::time::timeout(BOUND, hive.decide())
        .await
        .expect("a stuck agent cannot hold the round past its timeout")
        .expect("the round goes on");
    assert_eq!(decision.failures.len(), 1, "{:?}", decision.failures);
    assert_eq!(decision.failures[0].agent, stuck_id);
    assert_eq!(decision.failures[0].phase, Phase::Propose);
    assert_eq!(decision.failures[0].kind, FailureKind::TimedOut);
    assert_eq!(decision.accepted.len(), 1);
    assert_eq!(hive.memory().load().0.get(&1), Some(&5));
    // The call's future is dropped (the resources it holds are released), though it never
    // looked at its token.
    let signal = tokio::time::timeout(BOUND, dropped.recv())
        .await
        .expect("the timed-out call's future must be dropped");
    assert_eq!(signal, Some("call dropped"));
}

#[tokio::test(start_paused = true)]
async fn a_light_call_that_never_returns_is_timed_out_and_dropped() {
    timed_out_call_is_recorded_and_dropped(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heavy_call_that_never_returns_is_timed_out_and_its_task_dropped() {
    timed_out_call_is_recorded_and_dropped(true).await;
}

#[tokio::test(start_paused = true)]
async fn a_light_call_timed_out_is_dropped_by_the_time_decide_returns() {
    let hive = Hive::builder(Tally::default())
        .agent_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let (agent, mut dropped, _started) = stuck(false);
    hive.spawn(agent);
    hive.spawn(adder(1, 1));
    tokio::time::timeout(BOUND, hive.decide())
        .await
        .unwrap()
        .unwrap();
    // The round polls light calls itself: once it returned, nothing of it runs any more.
    assert_eq!(dropped.try_recv(), Ok("call dropped"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_round_future_aborts_a_heavy_call_in_flight_and_commits_nothing() {
    let hive = Hive::builder(Tally::default())
        .agent_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let (agent, mut dropped, mut started) = stuck(true);
    hive.spawn(agent);
    hive.spawn(adder(1, 1));
    {
        let round = hive.decide();
        tokio::pin!(round);
        tokio::select! {
            _ = &mut round => panic!("the round cannot end while its heavy agent hangs"),
            call = started.recv() => assert_eq!(call, Some("call started")),
        }
        // `round` dropped here, half way.
    }
    let signal = tokio::time::timeout(BOUND, dropped.recv())
        .await
        .expect("the heavy call's task must be aborted when its round is dropped");
    assert_eq!(signal, Some("call dropped"));
    assert_eq!(hive.memory().version(), 0);
    assert!(hive.memory().load().0.is_empty());
}

/// A dropped hive's agents go with it even when a heavy call of theirs was still running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_hive_with_a_round_in_flight_drops_its_agents() {
    struct Counted {
        live: Arc<AtomicUsize>,
        inner: Stuck,
    }
    impl Drop for Counted {
        fn drop(&mut self) {
            self.live.fetch_sub(1, Ordering::SeqCst);
        }
    }
    impl Agent<Tally> for Counted {
        async fn propose(
            &self,
            ctx: &AgentContext,
            view: &Snapshot<Tally>,
        ) -> Result<Option<ProposalOf<Tally>>, AgentError> {
            self.inner.propose(ctx, view).await
        }
        fn cost(&self) -> ResourceCost {
            ResourceCost::Heavy
        }
    }

    let live = Arc::new(AtomicUsize::new(0));
    let hive = Hive::builder(Tally::default())
        .agent_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let mut started_all = Vec::new();
    let mut dropped_all = Vec::new();
    for _ in 0..3 {
        let (inner, dropped, started) = stuck(true);
        live.fetch_add(1, Ordering::SeqCst);
        hive.spawn(Counted {
            live: Arc::clone(&live),
            inner,
        });
        started_all.push(started);
        dropped_all.push(dropped);
    }
    let round = tokio::spawn(async move { hive.decide().await });
    for started in &mut started_all {
        let call = tokio::time::timeout(BOUND, started.recv()).await.unwrap();
        assert_eq!(call, Some("call started"));
    }
    round.abort();
    assert!(tokio::time::timeout(BOUND, round)
        .await
        .expect("the aborted round ends")
        .unwrap_err()
        .is_cancelled());
    for dropped in &mut dropped_all {
        let signal = tokio::time::timeout(BOUND, dropped.recv()).await.unwrap();
        assert_eq!(signal, Some("call dropped"));
    }
    // The aborted tasks held the agents: once every call is gone, so is every agent.
    let deadline = tokio::time::Instant::now() + BOUND;
    while live.load(Ordering::SeqCst) != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} agents never dropped",
            live.load(Ordering::SeqCst)
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_agent_value_shared_by_two_hives_serves_both_and_each_keeps_its_own_state() {
    let shared = adder(3, 2);
    let first = Hive::builder(Tally::default()).build().unwrap();
    let second = Hive::builder(Tally(BTreeMap::from([(3, 100)])))
        .build()
        .unwrap();
    let in_first = first.spawn(shared.clone());
    let in_second = second.spawn(shared.clone());
    let (a, b) = tokio::time::timeout(BOUND, async {
        tokio::join!(first.decide(), second.decide())
    })
    .await
    .expect("both rounds end");
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!((a.version, b.version), (1, 1));
    assert_eq!(first.memory().load().0.get(&3), Some(&2));
    assert_eq!(second.memory().load().0.get(&3), Some(&102));
    assert_eq!(shared.calls.load(Ordering::SeqCst), 2);

    // Removing it from one hive leaves the other's copy working.
    assert!(first.remove(in_first));
    assert!(second.contains(in_second));
    assert!(matches!(
        first.decide().await,
        Err(hivekit_hive::HiveError::NoAgents)
    ));
    tokio::time::timeout(BOUND, second.decide())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.memory().load().0.get(&3), Some(&104));
    assert_eq!(shared.calls.load(Ordering::SeqCst), 3);
    // Only the second hive and this test still hold the counter.
    drop(first);
    assert_eq!(Arc::strong_count(&shared.calls), 2);
    drop(second);
    assert_eq!(Arc::strong_count(&shared.calls), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_agents_each_on_its_own_key_are_all_accepted_in_one_version() {
    const AGENTS: u64 = 10_000;
    let hive = Hive::builder(Tally::default()).build().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let ids = hive.spawn_many(AGENTS as usize, |index| Adder {
        key: index as u64,
        delta: index as u64 + 1,
        calls: Arc::clone(&calls),
    });
    assert_eq!(ids.len(), AGENTS as usize);
    assert_eq!(hive.len(), AGENTS as usize);
    let decision = tokio::time::timeout(BOUND, hive.decide())
        .await
        .expect("a 10k round ends")
        .unwrap();
    assert_eq!(decision.accepted.len(), AGENTS as usize);
    assert!(decision.rejected.is_empty());
    assert!(decision.failures.is_empty());
    assert_eq!(decision.version, 1);
    assert_eq!(calls.load(Ordering::SeqCst), AGENTS as usize);
    let state = hive.memory().load();
    assert_eq!(state.version(), 1);
    assert_eq!(state.0.len(), AGENTS as usize);
    for key in 0..AGENTS {
        assert_eq!(state.0.get(&key), Some(&(key + 1)), "key {key}");
    }
}

/// Holds a clone of a shared counter for as long as its `propose` call lives.
struct StuckHolding(Arc<()>);

impl Agent<Tally> for StuckHolding {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Tally>,
    ) -> Result<Option<ProposalOf<Tally>>, AgentError> {
        let _held = Arc::clone(&self.0);
        std::future::pending().await
    }
}

/// Large hives split their light agents into chunks polled by tasks of their own: dropping the
/// round (here: aborting the task running it) must end every chunk's calls, not leave tasks behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_round_of_a_thousand_stuck_light_agents_leaves_no_call_running() {
    const AGENTS: usize = 1_000;
    let hive = Hive::builder(Tally::default())
        .agent_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let held = Arc::new(());
    hive.spawn_many(AGENTS, |_| StuckHolding(Arc::clone(&held)));
    let agents_only = Arc::strong_count(&held);
    assert_eq!(agents_only, AGENTS + 1);
    let round = tokio::spawn({
        let hive = hive.clone();
        async move { hive.decide().await }
    });
    // Wait until every call holds its clone (the round is fully under way).
    let deadline = tokio::time::Instant::now() + BOUND;
    while Arc::strong_count(&held) < agents_only + AGENTS {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the calls never all started"
        );
        tokio::task::yield_now().await;
    }
    round.abort();
    assert!(tokio::time::timeout(BOUND, round)
        .await
        .unwrap()
        .unwrap_err()
        .is_cancelled());
    let deadline = tokio::time::Instant::now() + BOUND;
    while Arc::strong_count(&held) > agents_only {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} calls still running after their round was dropped",
            Arc::strong_count(&held) - agents_only
        );
        tokio::task::yield_now().await;
    }
    assert_eq!(hive.memory().version(), 0);
}
