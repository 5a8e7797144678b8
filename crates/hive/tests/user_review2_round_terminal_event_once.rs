//! Review of 72bf274 (the `Unended` guard in crates/hive/src/round/decide.rs) and c37000e: the
//! events of every round end with exactly one of `Committed`, `NothingToCommit` and `RoundFailed`
//! (crates/hive/src/events.rs, `HiveEvent::RoundFailed`), also when a panic unwinds through the
//! round *after* it sent its terminal event, when many rounds are dropped at once, and when a
//! round is dropped on another thread than the one that polled it.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use hivekit_hive::{
    Agent, AgentContext, AgentError, Hive, HiveEvent, HiveEventSink, ProposalOf, Snapshot, State,
};
use parking_lot::Mutex;

type Recorded<K> = Arc<Mutex<Vec<HiveEvent<K>>>>;

fn recorder<K: Send + 'static>() -> (HiveEventSink<K>, Recorded<K>) {
    let events: Recorded<K> = Arc::default();
    let sink = {
        let events = Arc::clone(&events);
        HiveEventSink::callback(move |event| events.lock().push(event))
    };
    (sink, events)
}

fn terminal<K>(event: &HiveEvent<K>) -> bool {
    matches!(
        event,
        HiveEvent::Committed { .. }
            | HiveEvent::NothingToCommit { .. }
            | HiveEvent::RoundFailed { .. }
    )
}

/// How many terminal events each round `1..=rounds` sent, and whether the terminal one is last.
fn check_rounds<K: std::fmt::Debug>(events: &[HiveEvent<K>], rounds: u64) {
    for round in 1..=rounds {
        let of_round: Vec<_> = events.iter().filter(|e| e.round() == round).collect();
        assert!(
            matches!(of_round.first(), Some(HiveEvent::RoundStarted { .. })),
            "round {round}: {of_round:#?}"
        );
        assert_eq!(
            of_round.iter().filter(|e| terminal(e)).count(),
            1,
            "round {round} must end its events with exactly one terminal event: {of_round:#?}"
        );
        assert!(
            terminal(of_round.last().unwrap()),
            "round {round}: {of_round:#?}"
        );
    }
}

/// Armed, a [`Fuse`] panics when dropped (once).
static ARMED: AtomicBool = AtomicBool::new(false);

/// A change whose destructor asserts (an actor's message that checks it was handled).
#[derive(Clone, Debug)]
struct Fuse(u64);

impl Drop for Fuse {
    fn drop(&mut self) {
        if !std::thread::panicking() && ARMED.swap(false, Ordering::SeqCst) {
            panic!("a change asserted in its destructor");
        }
    }
}

#[derive(Clone, Default, Debug)]
struct Total(u64);

impl State for Total {
    type Key = u64;
    type Change = Fuse;
    fn apply(&mut self, change: &Fuse) {
        self.0 += change.0;
    }
}

struct Proposer;

impl Agent<Total> for Proposer {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Total>,
    ) -> Result<Option<ProposalOf<Total>>, AgentError> {
        Ok(Some(ctx.proposal(Fuse(1)).writes([1])))
    }
}

/// The round commits and sends `Committed`; afterwards, as the round gives back its buffers, a
/// change's destructor panics and unwinds through `decide`. The round already ended its events:
/// `RoundFailed` must not follow `Committed`.
#[tokio::test]
async fn a_panic_after_the_committed_event_sends_no_second_terminal_event() {
    let (sink, events) = recorder::<u64>();
    let hive = Hive::builder(Total::default())
        .events(sink)
        .build()
        .unwrap();
    hive.spawn(Proposer);
    ARMED.store(true, Ordering::SeqCst);
    let outcome = tokio::time::timeout(
        Duration::from_secs(5),
        AssertUnwindSafe(hive.decide()).catch_unwind(),
    )
    .await
    .expect("the round ends");
    let fired = !ARMED.swap(false, Ordering::SeqCst);
    assert!(fired, "the change was dropped by the round");
    // Whether `decide` returns or unwinds, the change was applied and committed.
    assert_eq!(hive.memory().version(), 1);
    let _ = outcome;
    let events = events.lock();
    check_rounds(&events, 1);
    assert!(
        matches!(
            events.iter().rev().find(|e| terminal(e)),
            Some(HiveEvent::Committed { .. })
        ),
        "the committed round's terminal event is Committed: {events:#?}"
    );
}

/// A plain state for the other tests.
#[derive(Clone, Default, Debug)]
struct Sum(u64);

impl State for Sum {
    type Key = u64;
    type Change = u64;
    fn apply(&mut self, change: &u64) {
        self.0 += change;
    }
}

/// Never answers.
struct Stuck;

impl Agent<Sum> for Stuck {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Sum>,
    ) -> Result<Option<ProposalOf<Sum>>, AgentError> {
        std::future::pending().await
    }
}

/// 200 rounds started at once (each polled once) and all dropped together: each round's events
/// end with exactly one `RoundFailed`, and the hive's next round is numbered after them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_rounds_dropped_at_once_each_end_once() {
    const ROUNDS: u64 = 200;
    let (sink, events) = recorder::<u64>();
    let hive = Hive::builder(Sum::default()).events(sink).build().unwrap();
    hive.spawn(Stuck);
    let mut rounds: Vec<_> = (0..ROUNDS).map(|_| Box::pin(hive.decide())).collect();
    for round in &mut rounds {
        assert!(futures::poll!(round.as_mut()).is_pending());
    }
    drop(rounds);
    check_rounds(&events.lock(), ROUNDS);
    assert_eq!(hive.stats().rounds, ROUNDS);
}

/// A round polled on one thread and dropped on another (moved into a plain thread): its
/// `RoundFailed` is sent once, by the drop, before the drop returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_dropped_on_another_thread_ends_its_events_once() {
    let (sink, events) = recorder::<u64>();
    let hive = Hive::builder(Sum::default()).events(sink).build().unwrap();
    hive.spawn(Stuck);
    let mut round = Box::pin({
        let hive = hive.clone();
        async move { hive.decide().await }
    });
    assert!(futures::poll!(round.as_mut()).is_pending());
    std::thread::spawn(move || drop(round)).join().unwrap();
    check_rounds(&events.lock(), 1);
}

/// A round on hivekit's global runtime, driven by another executor (`futures`' `block_on` on a
/// plain thread), dropped mid-way by a `select!` against a ready future: one `RoundFailed`.
#[test]
fn a_round_on_the_global_runtime_dropped_by_a_select_ends_its_events_once() {
    let (sink, events) = recorder::<u64>();
    let hive = Hive::builder(Sum::default()).events(sink).build().unwrap();
    hive.spawn(Stuck);
    futures::executor::block_on(async {
        let mut round = Box::pin(hive.decide());
        assert!(futures::poll!(round.as_mut()).is_pending());
        futures::select! {
            _ = round.fuse() => panic!("the stuck round decided"),
            () = futures::future::ready(()).fuse() => {}
        }
    });
    check_rounds(&events.lock(), 1);
    let error = match events.lock().last() {
        Some(HiveEvent::RoundFailed { error, .. }) => error.clone(),
        other => panic!("{other:?}"),
    };
    assert!(error.contains("dropped"), "{error}");
}
