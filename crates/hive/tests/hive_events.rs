//! Round events (`HiveEventSink`) and what a round logs through `tracing`.

mod support;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{FailureKind, Hive, HiveEvent, HiveEventSink, Phase, ProposalId};
use parking_lot::Mutex;
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

/// Collects what a `tracing-subscriber` formatter writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn at_info_level_a_round_logs_its_failures_and_its_commit_in_a_named_span() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let hive = Hive::builder(Ledger::default())
        .name("reviewers")
        .agent_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    hive.spawn(Writer::new(1, 7));
    hive.spawn(Writer::silent().proposing(Behaviour::Fail));
    hive.spawn(Writer::silent().proposing(Behaviour::Never));
    hive.decide().await.unwrap();

    let log = String::from_utf8(captured.0.lock().clone()).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    let warnings: Vec<&&str> = lines.iter().filter(|line| line.contains("WARN")).collect();
    assert_eq!(warnings.len(), 2, "{log}");
    assert!(warnings
        .iter()
        .any(|line| line.contains("returned an error: agent failed on purpose in propose")));
    assert!(warnings
        .iter()
        .any(|line| line.contains("timed out in propose")));
    let committed = lines
        .iter()
        .find(|line| line.contains("committed"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(committed.contains("INFO"), "{committed}");
    assert!(
        committed.contains("hive_round{hive=reviewers round=1}"),
        "{committed}"
    );
}
