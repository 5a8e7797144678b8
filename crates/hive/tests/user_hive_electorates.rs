//! Electorates users end up with by accident: no voting role at all, agents interested in no key,
//! every agent quarantined. Each contest must end (rejected without quorum), never hang.

use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, ConsensusPolicy, Hive, HiveError, Interest, ProposalId,
    ProposalOf, RejectReason, Role, Snapshot, State, Supervision,
};

#[derive(Clone, Default, Debug)]
struct Sum(u64);

impl State for Sum {
    type Key = &'static str;
    type Change = u64;
    fn apply(&mut self, change: &u64) {
        self.0 += change;
    }
}

/// Writes `key`; votes in no contest when `picky`.
struct Writer {
    id: u64,
    key: &'static str,
    picky: bool,
}

impl Agent<Sum> for Writer {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Sum>,
    ) -> Result<Option<ProposalOf<Sum>>, AgentError> {
        Ok(Some(
            hivekit_hive::Proposal::new(ProposalId(self.id), self.id).writes([self.key]),
        ))
    }

    fn interest(&self) -> Interest<&'static str> {
        if self.picky {
            Interest::Keys(Vec::new())
        } else {
            Interest::All
        }
    }
}

/// Always fails.
struct Failing;

impl Agent<Sum> for Failing {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Sum>,
    ) -> Result<Option<ProposalOf<Sum>>, AgentError> {
        Err(AgentError::msg("down"))
    }
}

async fn bounded<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .expect("the round must not hang")
}

#[tokio::test(start_paused = true)]
async fn a_hive_where_no_role_votes_rejects_every_conflict_without_quorum() {
    let hive = Hive::builder(Sum::default())
        .policy(ConsensusPolicy::majority())
        .voting_roles(Vec::<Role>::new())
        .build()
        .expect("valid");
    hive.spawn(Writer {
        id: 1,
        key: "k",
        picky: false,
    });
    hive.spawn(Writer {
        id: 2,
        key: "k",
        picky: false,
    });
    hive.spawn(Writer {
        id: 3,
        key: "other",
        picky: false,
    });
    let decision = bounded(hive.decide()).await.expect("the round ends");
    assert_eq!(decision.accepted, [ProposalId(3)]);
    let mut rejected = decision.rejected.clone();
    rejected.sort_by_key(|(id, _)| *id);
    assert_eq!(
        rejected,
        [
            (ProposalId(1), RejectReason::NoQuorum),
            (ProposalId(2), RejectReason::NoQuorum)
        ]
    );
    assert_eq!(hive.memory().load().0, 3);
}

#[tokio::test(start_paused = true)]
async fn agents_interested_in_no_key_leave_a_contest_without_quorum() {
    let hive = Hive::builder(Sum::default())
        .policy(ConsensusPolicy::majority())
        .build()
        .expect("valid");
    hive.spawn(Writer {
        id: 1,
        key: "k",
        picky: true,
    });
    hive.spawn(Writer {
        id: 2,
        key: "k",
        picky: true,
    });
    let decision = bounded(hive.decide()).await.expect("the round ends");
    assert!(decision.accepted.is_empty());
    assert_eq!(decision.rejected.len(), 2);
    assert!(decision
        .rejected
        .iter()
        .all(|(_, reason)| *reason == RejectReason::NoQuorum));
    assert_eq!(decision.ballots.len(), 1);
    assert_eq!(decision.ballots[0].voters().count(), 0);
    assert_eq!(hive.memory().version(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_hive_whose_only_agent_is_quarantined_gives_a_typed_answer_and_takes_it_back() {
    let hive = Hive::builder(Sum::default())
        .supervision(Supervision::quarantine(1, 1))
        .build()
        .expect("valid");
    let agent = hive.spawn(Failing);
    let first = bounded(hive.decide()).await.expect("round 1");
    assert_eq!(first.failures.len(), 1);
    assert!(hive.quarantined_until(agent).is_some());
    // Round 2: the only agent sits out. Either an empty round or `NoAgents`, never a hang.
    match bounded(hive.decide()).await {
        Ok(decision) => assert!(decision.failures.is_empty() && decision.accepted.is_empty()),
        Err(error) => assert_eq!(error, HiveError::NoAgents),
    }
    // Round 3: it is back and asked again.
    let third = bounded(hive.decide()).await.expect("round 3");
    assert_eq!(third.failures.len(), 1, "{third:?}");
    assert!(hive.contains(agent));
}
