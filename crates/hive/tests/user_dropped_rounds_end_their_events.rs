//! A round whose future is dropped before it ends (a timeout around `decide`, a `select!`), or
//! that a panicking memory unwinds, still ends its events with `RoundFailed`: whoever watches the
//! events (a progress display) sees every started round end, once.

mod support;

use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{
    CommitRequest, Committed, Hive, HiveEvent, HiveEventSink, LocalMemory, Memory, MemoryError,
    Snapshot,
};
use parking_lot::Mutex;
use support::{Behaviour, Ledger, Writer};

type Recorded = Arc<Mutex<Vec<HiveEvent<u64>>>>;

fn recorder() -> (HiveEventSink<u64>, Recorded) {
    let events: Recorded = Arc::default();
    let sink = {
        let events = Arc::clone(&events);
        HiveEventSink::callback(move |event| events.lock().push(event))
    };
    (sink, events)
}

fn terminal(event: &HiveEvent<u64>) -> bool {
    matches!(
        event,
        HiveEvent::Committed { .. }
            | HiveEvent::NothingToCommit { .. }
            | HiveEvent::RoundFailed { .. }
    )
}

/// The error of the single terminal event of `round`, which must be the round's last event.
fn failed_with(events: &[HiveEvent<u64>], round: u64) -> String {
    let of_round: Vec<_> = events.iter().filter(|e| e.round() == round).collect();
    assert!(
        matches!(of_round.first(), Some(HiveEvent::RoundStarted { .. })),
        "{of_round:#?}"
    );
    assert_eq!(
        of_round.iter().filter(|e| terminal(e)).count(),
        1,
        "{of_round:#?}"
    );
    match of_round.last() {
        Some(HiveEvent::RoundFailed { error, .. }) => error.clone(),
        other => panic!("the round's last event is {other:?}: {of_round:#?}"),
    }
}

#[tokio::test]
async fn a_round_dropped_by_a_timeout_ends_its_events_with_round_failed() {
    let (sink, events) = recorder();
    let hive = Hive::builder(Ledger::default())
        .events(sink)
        .build()
        .unwrap();
    hive.spawn(Writer::new(1, 7).proposing(Behaviour::Never));
    let cut = tokio::time::timeout(Duration::from_millis(20), hive.decide()).await;
    assert!(cut.is_err(), "the agent never answers");
    let error = failed_with(&events.lock(), 1);
    assert!(error.contains("dropped"), "{error}");
    // The next round is numbered and ended as usual.
    hive.spawn(Writer::new(2, 8));
    let cut = tokio::time::timeout(Duration::from_millis(20), hive.decide()).await;
    assert!(cut.is_err());
    failed_with(&events.lock(), 2);
}

#[tokio::test]
async fn a_round_that_ends_normally_sends_no_extra_round_failed() {
    let (sink, events) = recorder();
    let hive = Hive::builder(Ledger::default())
        .events(sink)
        .build()
        .unwrap();
    hive.spawn(Writer::new(1, 7));
    hive.decide().await.unwrap();
    drop(hive);
    let events = events.lock();
    assert_eq!(
        events.iter().filter(|e| terminal(e)).count(),
        1,
        "{events:#?}"
    );
    assert!(matches!(events.last(), Some(HiveEvent::Committed { .. })));
}

/// A memory whose commit panics.
struct Exploding(LocalMemory<Ledger>);

impl Memory<Ledger> for Exploding {
    fn snapshot(&self) -> Snapshot<Ledger> {
        self.0.snapshot()
    }

    async fn commit<'a>(
        &'a self,
        _request: CommitRequest<'a, Ledger>,
    ) -> Result<Committed, MemoryError> {
        panic!("the backend exploded")
    }

    async fn changed(&self, after: u64) -> Result<Snapshot<Ledger>, MemoryError> {
        self.0.changed(after).await
    }
}

#[tokio::test]
async fn a_round_a_panicking_memory_unwinds_ends_its_events_with_round_failed() {
    let (sink, events) = recorder();
    let hive = Hive::builder_with_memory(Exploding(LocalMemory::new(Ledger::default())))
        .events(sink)
        .build()
        .unwrap();
    hive.spawn(Writer::new(1, 7));
    let round = tokio::spawn({
        let hive = hive.clone();
        async move { hive.decide().await }
    });
    let joined = round.await;
    assert!(joined.is_err_and(|error| error.is_panic()));
    let error = failed_with(&events.lock(), 1);
    assert!(error.contains("panicked"), "{error}");
}
