//! The quorum is the "fraction of the electorate that must take part, in (0, 1]: ... a subnormal
//! quorum is any turnout at all" (src/policy.rs). Any turnout at all is still a turnout: a ballot
//! nobody took part in has no quorum, whatever the quorum's size, and a round whose voters all
//! failed rejects its contest with `RejectReason::NoQuorum` ("a quorum that cannot be met ends with
//! `RejectReason::NoQuorum` once the missing voters have failed", `Hive::decide`).

use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, AgentId, Ballot, ConsensusPolicy, Contest, Electorate,
    FailureKind, Hive, ProposalId, ProposalOf, RejectReason, Snapshot, State, Tally, Threshold,
    Vote,
};

/// Quorums from the smallest subnormal up to one a millionth of a millionth of the electorate.
const TINY_QUORUMS: [f64; 5] = [
    f64::from_bits(1),
    f64::MIN_POSITIVE / 2.0,
    f64::MIN_POSITIVE,
    1e-13,
    1e-12,
];

fn policy(threshold: Threshold, quorum: f64, weighted: bool) -> ConsensusPolicy {
    ConsensusPolicy::new(threshold, quorum)
        .expect("a quorum in (0, 1]")
        .with_weighted(weighted)
}

#[test]
fn a_ballot_nobody_took_part_in_has_no_quorum_however_small_the_quorum() {
    let mut wrong = Vec::new();
    for quorum in TINY_QUORUMS {
        for weighted in [false, true] {
            for threshold in [Threshold::Plurality, Threshold::Majority] {
                let electorate =
                    Electorate::new([(AgentId(0), 1.0), (AgentId(1), 2.0), (AgentId(2), 3.0)])
                        .expect("valid");
                let ballot = Ballot::new(
                    policy(threshold, quorum, weighted),
                    electorate,
                    [ProposalId(1), ProposalId(2)],
                )
                .expect("valid ballot");
                assert_eq!(ballot.votes_cast(), 0);
                if !matches!(ballot.tally(), Tally::NoQuorum { .. }) {
                    wrong.push(format!(
                        "quorum {quorum:e}, weighted {weighted}, {threshold:?}: {:?}",
                        ballot.tally()
                    ));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "nobody took part, yet the quorum was met:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn a_subnormal_quorum_is_met_by_a_single_abstention() {
    for quorum in TINY_QUORUMS {
        let electorate = Electorate::equal((0..1_000).map(AgentId)).expect("valid");
        let mut ballot = Ballot::new(
            policy(Threshold::Plurality, quorum, false),
            electorate,
            [ProposalId(1)],
        )
        .expect("valid ballot");
        ballot.cast(AgentId(999), Vote::Abstain).expect("a voter");
        // One of a thousand took part: the quorum is met, and nobody backs the candidate.
        assert_eq!(ballot.tally(), Tally::Undecided, "quorum {quorum:e}");
        ballot
            .cast(AgentId(3), Vote::For(ProposalId(1)))
            .expect("a voter");
        assert_eq!(
            ballot.tally().winner(),
            Some(ProposalId(1)),
            "quorum {quorum:e}"
        );
    }
}

#[derive(Clone, Default, Debug)]
struct Level(u64);

impl State for Level {
    type Key = &'static str;
    type Change = u64;
    fn apply(&mut self, level: &u64) {
        self.0 = *level;
    }
}

/// Proposes `level` for the one key, and fails every vote.
struct NoVoter {
    level: u64,
}

impl Agent<Level> for NoVoter {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Level>,
    ) -> Result<Option<ProposalOf<Level>>, AgentError> {
        Ok(Some(ctx.proposal(self.level).writes(["level"])))
    }

    async fn vote(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Level>,
        _contest: &Contest<Level>,
    ) -> Result<Vote, AgentError> {
        Err(AgentError::msg("no opinion service"))
    }
}

#[tokio::test]
async fn a_round_whose_voters_all_failed_rejects_its_contest_for_want_of_a_quorum() {
    let hive = Hive::builder(Level(0))
        .policy(policy(Threshold::Plurality, f64::MIN_POSITIVE / 2.0, true))
        .build()
        .expect("valid");
    hive.spawn_many(3, |index| NoVoter {
        level: index as u64 + 1,
    });
    let decision = tokio::time::timeout(Duration::from_secs(10), hive.decide())
        .await
        .expect("the round ends")
        .expect("the round decides");
    let voting_failures = decision
        .failures
        .iter()
        .filter(|failure| matches!(failure.kind, FailureKind::Errored { .. }))
        .count();
    assert_eq!(voting_failures, 3, "{decision}");
    assert_eq!(decision.ballots.len(), 1);
    let ballot = &decision.ballots[0];
    assert_eq!(ballot.votes, 0, "{ballot:#}");
    assert!(
        matches!(ballot.tally, Tally::NoQuorum { .. }),
        "nobody voted, yet: {ballot:#}"
    );
    assert_eq!(decision.rejected.len(), 3);
    for (id, reason) in &decision.rejected {
        assert_eq!(*reason, RejectReason::NoQuorum, "{id}");
    }
    assert!(decision.accepted.is_empty());
}
