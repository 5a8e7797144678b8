//! The event stream of a round that commits nothing, as a dashboard shows it: a voter that fails
//! in the vote phase (reported after the proposals are in and before its ballot closes), a ballot
//! without quorum, `NothingToCommit` instead of `Committed`, and supervision removing the failing
//! voter, each reported once and matching the decision. Every wait is bounded.

mod support;

use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, ConsensusPolicy, Contest, Hive, HiveEvent, HiveEventSink,
    Phase, ProposalOf, Snapshot, Supervision, SupervisionAction, Tally, Vote,
};
use support::Count;

/// Proposes 1 on key 3; votes for the preferred candidate.
struct Writer;

impl Agent<Count> for Writer {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Count>,
    ) -> Result<Option<ProposalOf<Count>>, AgentError> {
        Ok(Some(ctx.proposal(1).writes([3])))
    }
}

/// Proposes nothing; fails every vote.
struct BadVoter;

impl Agent<Count> for BadVoter {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Count>,
    ) -> Result<Option<ProposalOf<Count>>, AgentError> {
        Ok(None)
    }

    async fn vote(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Count>,
        _contest: &Contest<Count>,
    ) -> Result<Vote, AgentError> {
        Err(AgentError::msg("no opinion"))
    }
}

#[tokio::test(start_paused = true)]
async fn a_round_without_quorum_reports_its_vote_failure_nothing_to_commit_and_the_removal() {
    let (sink, mut events) = HiveEventSink::channel();
    let hive = Hive::builder(Count::default())
        .policy(ConsensusPolicy::unanimous())
        .supervision(Supervision::remove(1))
        .events(sink)
        .build()
        .unwrap();
    hive.spawn(Writer);
    hive.spawn(Writer);
    let bad = hive.spawn(BadVoter);
    let decision = tokio::time::timeout(Duration::from_secs(10), hive.decide())
        .await
        .expect("the round ends")
        .unwrap();
    assert!(decision.accepted.is_empty());
    assert_eq!(decision.version, 0);
    assert!(matches!(decision.ballots[0].tally, Tally::NoQuorum { .. }));
    assert_eq!(decision.supervised.len(), 1);
    assert_eq!(decision.supervised[0].action, SupervisionAction::Remove);
    assert!(!hive.contains(bad));

    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        assert_eq!(event.round(), 1);
        seen.push(event);
    }
    let position = |matches: &dyn Fn(&HiveEvent<u64>) -> bool| -> Vec<usize> {
        seen.iter()
            .enumerate()
            .filter(|(_, event)| matches(event))
            .map(|(index, _)| index)
            .collect()
    };
    let started = position(&|e| matches!(e, HiveEvent::RoundStarted { .. }));
    let proposals_in = position(&|e| matches!(e, HiveEvent::ProposalsIn { proposals: 2, .. }));
    let conflict = position(&|e| matches!(e, HiveEvent::ConflictFound { key: 3, .. }));
    let failed = position(&|e| {
        matches!(e, HiveEvent::AgentFailed { failure, .. }
            if failure.agent == bad && failure.phase == Phase::Vote)
    });
    let settled = position(&|e| {
        matches!(
            e,
            HiveEvent::BallotSettled {
                key: 3,
                tally: Tally::NoQuorum { .. },
                ..
            }
        )
    });
    let nothing = position(&|e| matches!(e, HiveEvent::NothingToCommit { .. }));
    let committed = position(&|e| matches!(e, HiveEvent::Committed { .. }));
    let supervised = position(
        &|e| matches!(e, HiveEvent::AgentSupervised { record, .. } if record.agent == bad),
    );
    assert_eq!(started, [0], "{seen:#?}");
    assert_eq!(proposals_in.len(), 1, "{seen:#?}");
    assert_eq!(conflict.len(), 1, "{seen:#?}");
    assert_eq!(failed.len(), 1, "{seen:#?}");
    assert_eq!(settled.len(), 1, "{seen:#?}");
    assert_eq!(nothing.len(), 1, "{seen:#?}");
    assert!(committed.is_empty(), "{seen:#?}");
    assert_eq!(supervised.len(), 1, "{seen:#?}");
    assert!(
        proposals_in[0] < conflict[0] && conflict[0] < settled[0],
        "{seen:#?}"
    );
    assert!(
        proposals_in[0] < failed[0] && failed[0] < settled[0],
        "{seen:#?}"
    );
    let failures_reported = seen
        .iter()
        .filter(|e| matches!(e, HiveEvent::AgentFailed { .. }))
        .count();
    assert_eq!(failures_reported, decision.failures.len());
}
