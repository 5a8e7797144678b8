//! `Electorate` over sparse voter ids, small (a contest's few interested voters, as a round with
//! `Interest::Keys` voters builds one per contest) and large: every voter is found with its weight,
//! nobody else is, and a voter listed twice is an error.

use hivekit_hive::{AgentId, Ballot, BallotError, ConsensusPolicy, Electorate, ProposalId, Vote};

/// An electorate of `count` voters with sparse ids (never their positions), weighing their
/// position plus one.
fn sparse(count: u64) -> Electorate {
    Electorate::new(
        (0..count).map(|position| (AgentId(1_000 + 7 * position), (position + 1) as f64)),
    )
    .unwrap()
}

#[test]
fn small_and_large_sparse_electorates_find_every_voter_and_nobody_else() {
    for count in [1, 3, 16, 17, 200] {
        let electorate = sparse(count);
        assert_eq!(electorate.len(), count as usize);
        for position in 0..count {
            assert_eq!(
                electorate.weight(AgentId(1_000 + 7 * position)),
                Some((position + 1) as f64),
                "voter {position} of {count}"
            );
        }
        for outsider in [0, 999, 1_001, 1_000 + 7 * count] {
            assert_eq!(
                electorate.weight(AgentId(outsider)),
                None,
                "{outsider} of {count}"
            );
        }
    }
}

#[test]
fn a_voter_listed_twice_is_rejected_in_small_and_large_electorates() {
    for count in [2_u64, 16, 17, 100] {
        let voters = (0..count)
            .map(|position| (AgentId(50 + position), 1.0))
            .chain([(AgentId(50 + count / 2), 1.0)]);
        assert_eq!(
            Electorate::new(voters).unwrap_err(),
            BallotError::DuplicateVoter {
                voter: AgentId(50 + count / 2)
            },
            "{count} voters"
        );
    }
}

#[test]
fn a_ballot_over_a_small_sparse_electorate_counts_its_voters_and_refuses_outsiders() {
    let mut ballot = Ballot::new(
        ConsensusPolicy::majority(),
        sparse(3),
        [ProposalId(1), ProposalId(2)],
    )
    .unwrap();
    ballot
        .cast(AgentId(1_000), Vote::For(ProposalId(2)))
        .unwrap();
    ballot
        .cast(AgentId(1_007), Vote::For(ProposalId(2)))
        .unwrap();
    assert!(ballot.cast(AgentId(3), Vote::For(ProposalId(1))).is_err());
    assert_eq!(ballot.votes_cast(), 2);
    assert_eq!(ballot.tally().winner(), Some(ProposalId(2)));
}
