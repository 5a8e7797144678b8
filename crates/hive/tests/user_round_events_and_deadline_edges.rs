//! A round seen through its events and its decision; round deadlines at their edges.

mod support;

use std::time::Duration;

use hivekit_hive::{
    DecideOptions, FailureKind, Hive, HiveEvent, HiveEventSink, Phase, RejectReason, Tally,
};
use support::{Behaviour, Choice, Ledger, Writer};

async fn bounded<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(8), future)
        .await
        .expect("round hung")
}

/// A round with two contested keys, a proposer that panics, a voter that errs and one that hangs:
/// the events must agree with the decision, one for one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_agree_with_the_decision_in_a_round_with_conflicts_and_failures() {
    let (sink, mut events) = HiveEventSink::channel();
    let hive = Hive::builder(Ledger::default())
        .events(sink)
        .agent_timeout(Duration::from_millis(150))
        .build()
        .unwrap();
    hive.spawn(Writer::new(1, 10));
    hive.spawn(Writer::new(2, 10));
    hive.spawn(Writer::new(3, 20));
    hive.spawn(Writer::new(4, 20).choosing(Choice::For(4)));
    hive.spawn(Writer::new(5, 30));
    hive.spawn(Writer::new(6, 40).proposing(Behaviour::Panic));
    hive.spawn(Writer::silent().voting(Behaviour::Fail));
    hive.spawn(Writer::silent().voting(Behaviour::Never));
    let decision = bounded(hive.decide()).await.unwrap();

    let mut all = Vec::new();
    while let Ok(event) = events.try_recv() {
        all.push(event);
    }
    assert!(
        matches!(all.first(), Some(HiveEvent::RoundStarted { .. })),
        "{all:#?}"
    );
    assert!(
        matches!(
            all.last(),
            Some(HiveEvent::Committed { .. } | HiveEvent::NothingToCommit { .. })
        ),
        "{all:#?}"
    );
    let started_agents = all.iter().find_map(|event| match event {
        HiveEvent::RoundStarted { agents, .. } => Some(*agents),
        _ => None,
    });
    assert_eq!(started_agents, Some(decision.agents));
    let proposals_in = all.iter().find_map(|event| match event {
        HiveEvent::ProposalsIn { proposals, .. } => Some(*proposals),
        _ => None,
    });
    assert_eq!(proposals_in, Some(decision.proposals));
    assert_eq!(decision.proposals, 5);

    let conflicts = all
        .iter()
        .filter(|event| matches!(event, HiveEvent::ConflictFound { .. }))
        .count();
    let settled: Vec<(u64, Tally)> = all
        .iter()
        .filter_map(|event| match event {
            HiveEvent::BallotSettled { key, tally, .. } => Some((*key, tally.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(conflicts, decision.ballots.len(), "{all:#?}");
    assert_eq!(settled.len(), decision.ballots.len(), "{all:#?}");
    for ballot in &decision.ballots {
        let event = settled.iter().find(|(key, _)| *key == ballot.key);
        assert_eq!(
            event.map(|(_, tally)| tally),
            Some(&ballot.tally),
            "key {}",
            ballot.key
        );
    }

    let failed_events = all
        .iter()
        .filter(|event| matches!(event, HiveEvent::AgentFailed { .. }))
        .count();
    assert_eq!(
        failed_events,
        decision.failures.len(),
        "{all:#?}\n{:#?}",
        decision.failures
    );
    assert!(decision
        .failures
        .iter()
        .any(|failure| failure.phase == Phase::Propose
            && matches!(failure.kind, FailureKind::Panicked { .. })));

    let committed = all.iter().find_map(|event| match event {
        HiveEvent::Committed {
            accepted, version, ..
        } => Some((*accepted, *version)),
        _ => None,
    });
    assert_eq!(committed, Some((decision.accepted.len(), decision.version)));
    assert_eq!(
        decision.accepted.len() + decision.rejected.len(),
        decision.proposals
    );
    assert_eq!(hive.memory().load().log.len(), decision.accepted.len());
}

/// A round deadline of zero: every call counts as timed out at once, nothing is committed, and
/// the round ends (no hang, no panic).
#[tokio::test]
async fn a_zero_round_deadline_times_out_every_call_and_commits_nothing() {
    let hive = Hive::builder(Ledger::default()).build().unwrap();
    hive.spawn(Writer::new(1, 10).proposing(Behaviour::Slow(Duration::from_millis(100))));
    hive.spawn(Writer::new(2, 11).proposing(Behaviour::Never));
    let decision =
        bounded(hive.decide_with(DecideOptions::default().with_deadline(Duration::ZERO)))
            .await
            .unwrap();
    assert_eq!(decision.accepted, []);
    assert_eq!(decision.version, 0);
    assert_eq!(decision.failures.len(), 2, "{:#?}", decision.failures);
    assert!(decision
        .failures
        .iter()
        .all(|failure| failure.kind == FailureKind::TimedOut && failure.phase == Phase::Propose));
    assert_eq!(hive.memory().version(), 0);
}

/// A round deadline of `Duration::MAX` is no deadline at all: no panic, the round decides.
#[tokio::test]
async fn a_round_deadline_of_duration_max_is_no_deadline() {
    let hive = Hive::builder(Ledger::default()).build().unwrap();
    hive.spawn(Writer::new(1, 10));
    hive.spawn(Writer::new(2, 10));
    hive.spawn(Writer::new(3, 11));
    let decision = bounded(hive.decide_with(DecideOptions::default().with_deadline(Duration::MAX)))
        .await
        .unwrap();
    assert_eq!(decision.accepted.len(), 2);
    assert_eq!(decision.rejected.len(), 1);
    assert_eq!(decision.version, 1);
}

/// Every agent weighs zero under a weighted policy: a conflict cannot be voted on, but the round
/// must still end with a decision (the group rejected, the independent proposal accepted), not an
/// error and not a hang.
#[tokio::test]
async fn a_conflict_among_agents_that_all_weigh_zero_is_rejected_not_an_error() {
    let hive = Hive::builder(Ledger::default()).build().unwrap();
    hive.spawn_weighted(Writer::new(1, 10), 0.0).unwrap();
    hive.spawn_weighted(Writer::new(2, 10), 0.0).unwrap();
    hive.spawn_weighted(Writer::new(3, 11), 0.0).unwrap();
    let decision = bounded(hive.decide()).await.unwrap();
    assert_eq!(decision.accepted, [hivekit_hive::ProposalId(3)]);
    assert_eq!(decision.rejected.len(), 2, "{:?}", decision.rejected);
    assert!(
        decision
            .rejected
            .iter()
            .all(|(_, reason)| matches!(reason, RejectReason::NoQuorum)),
        "{:?}",
        decision.rejected
    );
}
