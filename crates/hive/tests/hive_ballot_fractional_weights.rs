//! Ballots with fractional weights: a candidate every voter withdrew from has exactly no support
//! and does not win (floating-point subtraction left 1.1e-16, and it won with support 1.0), and
//! weights whose sums are equal in exact arithmetic (0.1 + 0.2 against 0.3) tie, and a ballot the
//! last voter can still tie is not settled though rounding put the lead a hair past the remaining
//! weight, and thresholds met exactly by fractional weights are met (two thirds of 0.9) or not
//! (half of 0.6 is no majority) as in exact arithmetic (found by qa3).

use hivekit_hive::{
    AgentId, Ballot, ConsensusPolicy, Electorate, ProposalId, Tally, Threshold, TieBreak, Vote,
};

fn ballot(weights: &[f64]) -> Ballot {
    let electorate = Electorate::new(
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| (AgentId(i as u64), w)),
    )
    .unwrap();
    Ballot::new(
        ConsensusPolicy::majority(),
        electorate,
        [ProposalId(1), ProposalId(2)],
    )
    .unwrap()
}

#[test]
fn a_candidate_everyone_withdrew_from_does_not_win() {
    for weights in [[0.1, 0.2, 0.7], [0.1, 0.1, 0.1]] {
        let mut b = ballot(&weights);
        for voter in 0..3 {
            b.cast(AgentId(voter), Vote::For(ProposalId(1))).unwrap();
        }
        for voter in [1, 0, 2] {
            b.cast(AgentId(voter), Vote::Abstain).unwrap();
        }
        assert_eq!(b.support(ProposalId(1)), Some(0.0), "weights {weights:?}");
        assert_eq!(b.tally(), Tally::Undecided, "weights {weights:?}");
    }
}

#[test]
fn weights_that_sum_to_the_same_value_tie() {
    let electorate =
        Electorate::new([(AgentId(0), 0.1), (AgentId(1), 0.2), (AgentId(2), 0.3)]).unwrap();
    let policy = ConsensusPolicy::new(Threshold::Plurality, 0.5)
        .unwrap()
        .with_tie_break(TieBreak::NoDecision);
    let (a, b) = (ProposalId(2), ProposalId(1));
    let mut ballot = Ballot::new(policy, electorate, [a, b]).unwrap();
    ballot.cast(AgentId(0), Vote::For(a)).unwrap();
    ballot.cast(AgentId(1), Vote::For(a)).unwrap();
    ballot.cast(AgentId(2), Vote::For(b)).unwrap();
    assert_eq!(
        ballot.tally(),
        Tally::Tie {
            candidates: vec![b, a]
        }
    );
}

#[test]
fn a_ballot_the_last_voter_can_still_tie_and_win_is_not_settled() {
    let (a, b) = (ProposalId(1), ProposalId(2));
    let electorate = Electorate::new([
        (AgentId(0), 0.1),
        (AgentId(1), 0.2),
        (AgentId(2), 0.3),
        (AgentId(3), 0.4),
    ])
    .unwrap();
    let policy = ConsensusPolicy::new(Threshold::Plurality, 0.25)
        .unwrap()
        .with_tie_break(TieBreak::LowestId);
    let mut ballot = Ballot::new(policy, electorate, [a, b]).unwrap();
    ballot.cast(AgentId(0), Vote::For(b)).unwrap();
    ballot.cast(AgentId(1), Vote::Abstain).unwrap();
    ballot.cast(AgentId(2), Vote::For(b)).unwrap();
    assert_eq!(ballot.tally().winner(), Some(b));

    let mut finished = ballot.clone();
    finished.cast(AgentId(3), Vote::For(a)).unwrap();
    assert_eq!(
        finished.tally().winner(),
        Some(a),
        "the last voter ties it; A wins the tie"
    );

    assert!(
        !ballot.is_settled(),
        "the last voter can still change the winner"
    );
}

#[test]
fn exactly_two_thirds_by_fractional_weights_meets_a_two_thirds_supermajority() {
    let electorate =
        Electorate::new([(AgentId(0), 0.1), (AgentId(1), 0.2), (AgentId(2), 0.6)]).unwrap();
    let policy = ConsensusPolicy::new(Threshold::Supermajority { num: 2, den: 3 }, 0.5).unwrap();
    let (a, b) = (ProposalId(1), ProposalId(2));
    let mut ballot = Ballot::new(policy, electorate, [a, b]).unwrap();
    ballot.cast(AgentId(0), Vote::For(b)).unwrap();
    ballot.cast(AgentId(1), Vote::For(b)).unwrap();
    ballot.cast(AgentId(2), Vote::For(a)).unwrap();
    assert_eq!(ballot.tally().winner(), Some(a), "{:?}", ballot.tally());
}

#[test]
fn half_by_fractional_weights_is_not_a_majority() {
    let electorate =
        Electorate::new([(AgentId(0), 0.1), (AgentId(1), 0.2), (AgentId(2), 0.3)]).unwrap();
    let policy = ConsensusPolicy::new(Threshold::Majority, 0.5).unwrap();
    let (a, b) = (ProposalId(1), ProposalId(2));
    let mut ballot = Ballot::new(policy, electorate, [a, b]).unwrap();
    ballot.cast(AgentId(0), Vote::For(a)).unwrap();
    ballot.cast(AgentId(1), Vote::For(a)).unwrap();
    ballot.cast(AgentId(2), Vote::For(b)).unwrap();
    assert_eq!(ballot.tally(), Tally::Undecided);
}
