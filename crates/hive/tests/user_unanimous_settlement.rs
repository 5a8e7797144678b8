//! Review: a weighted unanimous ballot is not called settled while a light voter could still dissent.

use hivekit_hive::{AgentId, Ballot, ConsensusPolicy, Electorate, ProposalId, Tally, Vote};

const CANDIDATES: [ProposalId; 2] = [ProposalId(1), ProposalId(2)];

/// `Ballot::is_settled`: "True once the voters who have not voted yet cannot change the outcome,
/// whatever they do". Under `Unanimous`, any vote for another candidate is a dissent (c6f3bc2), so
/// while the light voter has not voted the outcome is not final.
#[test]
fn a_unanimous_ballot_is_not_settled_while_a_light_voter_may_dissent() {
    for heavy in [1e12, 1e13, 1e15, f64::MAX] {
        let electorate = Electorate::new([(AgentId(0), heavy), (AgentId(1), 1.0)]).unwrap();
        let policy = ConsensusPolicy {
            weighted: true,
            ..ConsensusPolicy::unanimous()
        };
        let mut ballot = Ballot::new(policy, electorate, CANDIDATES).unwrap();
        ballot.cast(AgentId(0), Vote::For(CANDIDATES[0])).unwrap();
        let settled = ballot.is_settled();
        let before = ballot.tally();
        ballot.cast(AgentId(1), Vote::For(CANDIDATES[1])).unwrap();
        let after = ballot.tally();
        assert_eq!(
            after,
            Tally::Undecided,
            "heavy {heavy:e}: the dissent blocks it"
        );
        assert!(
            !settled,
            "heavy {heavy:e}: is_settled() was true with the tally {before:?}, yet the remaining \
             voter's dissent changed it to {after:?}"
        );
    }
}
