//! Review: a round's events end with its terminal event (Committed / NothingToCommit / RoundFailed), also when supervision acts.

mod support;

use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{Hive, HiveEvent, HiveEventSink, Supervision};
use parking_lot::Mutex;
use support::{Behaviour, Ledger, Writer};

const BOUND: Duration = Duration::from_secs(10);

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

fn check_last(events: &[HiveEvent<u64>]) {
    assert!(
        events
            .iter()
            .any(|e| matches!(e, HiveEvent::AgentSupervised { .. })),
        "supervision should have acted: {events:#?}"
    );
    assert_eq!(
        events.iter().filter(|e| terminal(e)).count(),
        1,
        "{events:#?}"
    );
    assert!(
        events.last().is_some_and(terminal),
        "HiveEvent::RoundFailed doc: 'Every round's events end with exactly one of Committed, \
         NothingToCommit and this', but the last event was {:?}: {events:#?}",
        events.last()
    );
}

/// A round that commits while supervision removes a failing agent.
#[tokio::test]
async fn a_committing_round_ends_its_events_with_committed_when_supervision_acts() {
    let (sink, events) = recorder();
    let hive = Hive::builder(Ledger::default())
        .supervision(Supervision::remove(1))
        .events(sink)
        .build()
        .unwrap();
    hive.spawn(Writer::new(1, 7));
    hive.spawn(Writer::new(2, 8).proposing(Behaviour::Fail));
    let decision = tokio::time::timeout(BOUND, hive.decide())
        .await
        .expect("round hung")
        .unwrap();
    assert_eq!(decision.accepted.len(), 1);
    check_last(&events.lock());
}

/// A round that commits nothing while supervision removes a failing agent.
#[tokio::test]
async fn a_round_with_nothing_to_commit_ends_its_events_with_nothing_to_commit() {
    let (sink, events) = recorder();
    let hive = Hive::builder(Ledger::default())
        .supervision(Supervision::remove(1))
        .events(sink)
        .build()
        .unwrap();
    hive.spawn(Writer::silent());
    hive.spawn(Writer::new(2, 8).proposing(Behaviour::Fail));
    tokio::time::timeout(BOUND, hive.decide())
        .await
        .expect("round hung")
        .unwrap();
    check_last(&events.lock());
}
