//! A supermajority whose fraction is one (`num == den`) asks for every vote cast: the policy's
//! docs call `u32::MAX / u32::MAX` "unanimity among the votes cast" (src/policy.rs). Unanimity
//! already refuses to let a light dissenter (weight 1 beside 1e13) pass for no vote; a fraction
//! of one must refuse it too, in a ballot and in a round.

use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, AgentId, Ballot, ConsensusPolicy, Contest, Electorate, Hive,
    ProposalId, ProposalOf, RejectReason, Snapshot, State, Tally, Threshold, Vote, VoterChoice,
};

/// The fractions that mean "every vote cast".
const EVERY_VOTE: [(u32, u32); 3] = [(1, 1), (7, 7), (u32::MAX, u32::MAX)];

/// Dissenters from one part in a thousand down to one part in a million billion.
const DISSENT_RATIOS: [f64; 5] = [1e3, 1e9, 1e12, 1e13, 1e15];

fn every_vote(num: u32, den: u32) -> ConsensusPolicy {
    ConsensusPolicy::new(Threshold::Supermajority { num, den }, 0.5).expect("a valid fraction")
}

/// A ballot where a voter of weight `heavy` backs #1 and a voter of weight 1 backs #2.
fn split_ballot(policy: ConsensusPolicy, heavy: f64) -> Ballot {
    let electorate = Electorate::new([(AgentId(0), heavy), (AgentId(1), 1.0)]).expect("valid");
    let mut ballot =
        Ballot::new(policy, electorate, [ProposalId(1), ProposalId(2)]).expect("valid ballot");
    ballot
        .cast(AgentId(0), Vote::For(ProposalId(1)))
        .expect("a voter");
    ballot
        .cast(AgentId(1), Vote::For(ProposalId(2)))
        .expect("a voter");
    ballot
}

#[test]
fn unanimity_refuses_a_light_dissenter_at_every_ratio() {
    // The reference behaviour the supermajority of one is held to below.
    for ratio in DISSENT_RATIOS {
        let ballot = split_ballot(ConsensusPolicy::unanimous(), ratio);
        assert_eq!(ballot.tally(), Tally::Undecided, "dissent 1 : {ratio}");
    }
}

#[test]
fn a_supermajority_of_one_is_not_met_while_a_light_voter_dissents() {
    let mut wrong = Vec::new();
    for (num, den) in EVERY_VOTE {
        for ratio in DISSENT_RATIOS {
            let ballot = split_ballot(every_vote(num, den), ratio);
            // Everyone has voted, so the outcome is final; #1 has less than every vote cast.
            assert!(ballot.is_settled());
            if ballot.tally() != Tally::Undecided {
                wrong.push(format!(
                    "{num}/{den} with dissent 1 : {ratio:e}: {:?}",
                    ballot.tally()
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "a fraction of one is every vote cast, yet:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn a_supermajority_of_one_is_met_when_every_vote_backs_one_candidate() {
    for (num, den) in EVERY_VOTE {
        let electorate =
            Electorate::new([(AgentId(0), 1e13), (AgentId(1), 1.0), (AgentId(2), 3.0)])
                .expect("valid");
        let mut ballot =
            Ballot::new(every_vote(num, den), electorate, [ProposalId(1)]).expect("valid ballot");
        ballot.cast(AgentId(0), Vote::For(ProposalId(1))).unwrap();
        ballot.cast(AgentId(1), Vote::For(ProposalId(1))).unwrap();
        // An abstention is not a vote cast for anyone: it does not break the agreement.
        ballot.cast(AgentId(2), Vote::Abstain).unwrap();
        assert_eq!(ballot.tally().winner(), Some(ProposalId(1)), "{num}/{den}");
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

/// Proposes `level` for the one key and votes for its own proposal.
struct Stubborn {
    level: u64,
}

impl Agent<Level> for Stubborn {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Level>,
    ) -> Result<Option<ProposalOf<Level>>, AgentError> {
        Ok(Some(ctx.proposal(self.level).writes(["level"])))
    }

    async fn vote(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Level>,
        contest: &Contest<Level>,
    ) -> Result<Vote, AgentError> {
        Ok(ctx
            .own(contest)
            .map_or(Vote::Abstain, |candidate| Vote::For(candidate.id)))
    }
}

#[tokio::test]
async fn a_round_under_a_supermajority_of_one_accepts_neither_side_of_a_split_vote() {
    let hive = Hive::builder(Level(0))
        .policy(every_vote(u32::MAX, u32::MAX))
        .build()
        .expect("valid");
    let heavy = hive
        .spawn_weighted(Stubborn { level: 7 }, 1e13)
        .expect("valid weight");
    let light = hive.spawn(Stubborn { level: 9 });
    let decision = tokio::time::timeout(Duration::from_secs(10), hive.decide())
        .await
        .expect("the round ends")
        .expect("the round decides");
    assert_eq!(decision.ballots.len(), 1);
    let ballot = &decision.ballots[0];
    // Each side votes for its own proposal: the vote can only split, so nobody can have every
    // vote cast, and the round must not stop waiting for the light voter either.
    assert!(
        decision.accepted.is_empty(),
        "a split vote met a supermajority of u32::MAX/u32::MAX (unanimity among the votes cast): \
         {ballot:#}\naccepted {:?} from {:?}",
        decision.accepted,
        decision
            .accepted
            .first()
            .and_then(|&id| decision.proposer(id)),
    );
    let own = |agent: AgentId| {
        let proposal = decision.proposers.iter().find(|(_, by)| *by == agent);
        proposal.map(|&(id, _)| VoterChoice::For(id))
    };
    assert_eq!(ballot.choice_of(light), own(light), "{ballot:#}");
    assert_eq!(ballot.choice_of(heavy), own(heavy), "{ballot:#}");
    assert!(decision
        .rejected
        .iter()
        .all(|(_, reason)| *reason == RejectReason::Undecided));
    assert_eq!(hive.memory().load().0, 0, "nothing committed");
}
