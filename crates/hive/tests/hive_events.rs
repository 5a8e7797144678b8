//! Round events (`HiveEventSink`) and what a round logs through `tracing`.

mod support;

use std::time::Duration;

use hivekit_hive::{FailureKind, Hive, HiveEvent, HiveEventSink, Phase, ProposalId};
use support::{Behaviour, Ledger, Writer};

#[tokio::test(start_paused = true)]
async fn a_round_reports_each_step_as_it_happens() {
    let (sink, mut events) = HiveEventSink::channel();
    let hive = Hive::builder(Ledger::default())
        .agent_timeout(Duration::from_secs(1))
        .events(sink)
        .build()
        .unwrap();
    hive.spawn(Writer::new(1, 7));
    hive.spawn(Writer::new(2, 7));
    let hung = hive.spawn(Writer::silent().proposing(Behaviour::Never));
    hive.decide().await.unwrap();

    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        assert_eq!(event.round(), 1);
        seen.push(event);
    }
    assert_eq!(
        seen,
        [
            HiveEvent::RoundStarted {
                round: 1,
                agents: 3,
                version: 0
            },
            HiveEvent::AgentFailed {
                round: 1,
                failure: hivekit_hive::AgentFailure {
                    agent: hung,
                    phase: Phase::Propose,
                    kind: FailureKind::TimedOut,
                },
            },
            HiveEvent::ProposalsIn {
                round: 1,
                proposals: 2
            },
            HiveEvent::ConflictFound {
                round: 1,
                key: 7,
                kind: hivekit_hive::ConflictKind::WriteWrite,
                candidates: vec![ProposalId(1), ProposalId(2)],
            },
            HiveEvent::BallotSettled {
                round: 1,
                key: 7,
                tally: hivekit_hive::Tally::Decided {
                    winner: ProposalId(1),
                    support: 1.0
                },
                votes: 2,
            },
            HiveEvent::Committed {
                round: 1,
                version: 1,
                accepted: 1,
                rebased: false
            },
        ]
    );
    assert_eq!(
        seen[3].to_string(),
        "round 1: write-write conflict on 7 between #1, #2"
    );
    assert_eq!(
        seen.last().unwrap().to_string(),
        "round 1: committed 1 changes as version 1"
    );
}

#[tokio::test(start_paused = true)]
async fn a_callback_that_panics_loses_its_events_not_the_round() {
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sink = HiveEventSink::callback({
        let calls = calls.clone();
        move |_| {
            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            panic!("the dashboard broke");
        }
    });
    let hive = Hive::builder(Ledger::default())
        .agent_timeout(Duration::from_secs(1))
        .events(sink)
        .build()
        .unwrap();
    hive.spawn(Writer::new(1, 7));
    hive.spawn(Writer::new(2, 7));
    let decision = hive.decide().await.unwrap();
    assert_eq!(decision.accepted.len(), 1);
    assert!(calls.load(std::sync::atomic::Ordering::Relaxed) >= 2);
    // The hive stays usable: the next round decides too.
    hive.decide().await.unwrap();
}
