use proptest::prelude::*;

use super::*;
use crate::agent::{AgentId, Vote};
use crate::lockfree::ProposalId;
use crate::policy::{ConsensusPolicy, Threshold, TieBreak};

fn threshold() -> impl Strategy<Value = Threshold> {
    prop_oneof![
        Just(Threshold::Plurality),
        Just(Threshold::Majority),
        Just(Threshold::Unanimous),
        (1u32..=4, 0u32..=3).prop_map(|(num, extra)| Threshold::Supermajority {
            num,
            den: num + extra
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Voters that fail (marked absent, as the hive does) never make settlement wrong: once a
    /// ballot says it is settled, the outcome when every voter has voted or failed is the same.
    #[test]
    fn settlement_holds_with_absent_voters(
        threshold in threshold(),
        quorum in prop_oneof![Just(0.25), Just(0.5), Just(1.0)],
        weights in prop::collection::vec(1u8..=3, 1..10),
        actions in prop::collection::vec(prop::option::of(prop::option::of(0usize..3)), 10),
        candidates in 1usize..4,
    ) {
        let policy = ConsensusPolicy { threshold, quorum, weighted: true, tie_break: TieBreak::LowestId };
        let electorate = Electorate::new(
            weights.iter().enumerate().map(|(voter, &w)| (AgentId(voter as u64), f64::from(w))),
        ).unwrap();
        let mut ballot = Ballot::new(policy, electorate, (0..candidates as u64).map(ProposalId)).unwrap();
        let mut settled: Option<Tally> = None;
        for (voter, action) in actions.iter().take(weights.len()).enumerate() {
            match action {
                // Fails: never votes.
                None => ballot.mark_absent(voter),
                Some(choice) => {
                    let vote = choice.map_or(Vote::Abstain, |c| Vote::For(ProposalId((c % candidates) as u64)));
                    ballot.cast_at(voter, vote).unwrap();
                }
            }
            if settled.is_none() && ballot.is_settled() {
                settled = Some(ballot.tally());
            }
        }
        prop_assert!(ballot.is_settled());
        let settled = settled.unwrap();
        prop_assert!(settled.same_outcome(&ballot.tally()), "settled {:?}, final {:?}", settled, ballot.tally());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The O(1) answer of `is_settled` (the quiet bound) never hides a settled ballot: whenever
    /// the bound says "not yet", the full check agrees, through votes, abstentions, absences,
    /// absent voters voting after all, and re-votes.
    #[test]
    fn the_quiet_bound_never_hides_a_settled_ballot(
        threshold in threshold(),
        quorum in prop_oneof![Just(0.25), Just(0.5), Just(1.0)],
        weighted in any::<bool>(),
        weights in prop::collection::vec(0u8..=3, 1..40),
        actions in prop::collection::vec((0usize..40, prop::option::of(prop::option::of(0usize..4))), 0..80),
        candidates in 1usize..5,
    ) {
        let policy = ConsensusPolicy { threshold, quorum, weighted, tie_break: TieBreak::LowestId };
        let electorate = Electorate::new(
            weights.iter().enumerate().map(|(voter, &w)| (AgentId(voter as u64), f64::from(w))),
        ).unwrap();
        let Ok(mut ballot) = Ballot::new(policy, electorate, (0..candidates as u64).map(ProposalId)) else {
            // Every voter weighs zero.
            return Ok(());
        };
        for (voter, action) in actions {
            let voter = voter % weights.len();
            match action {
                None => ballot.mark_absent(voter),
                Some(choice) => {
                    let vote = choice.map_or(Vote::Abstain, |c| Vote::For(ProposalId((c % candidates) as u64)));
                    ballot.cast_at(voter, vote).unwrap();
                }
            }
            if ballot.quiet > 0 {
                prop_assert!(!ballot.settled_now(), "quiet {} on a settled ballot {:?}", ballot.quiet, ballot);
            }
        }
    }
}

#[test]
fn a_large_ballot_answers_not_settled_without_a_full_check_early_on() {
    let electorate = Arc::new(Electorate::equal((0..1_000).map(AgentId)).unwrap());
    let mut ballot = Ballot::new(
        ConsensusPolicy::majority(),
        electorate,
        [ProposalId(1), ProposalId(2)],
    )
    .unwrap();
    assert!(ballot.quiet > 0);
    for voter in 0..600 {
        ballot.cast_at(voter, Vote::For(ProposalId(1))).unwrap();
        assert_eq!(ballot.is_settled(), ballot.settled_now());
    }
    // 600 of 1000 for #1: the other 400 cannot change the outcome.
    assert!(ballot.is_settled());
}

#[test]
fn an_absent_voter_who_votes_after_all_is_counted_once() {
    let electorate = Electorate::equal((0..3).map(AgentId)).unwrap();
    let mut ballot = Ballot::new(ConsensusPolicy::majority(), electorate, [ProposalId(1)]).unwrap();
    ballot.mark_absent(0);
    ballot.mark_absent(0);
    ballot.cast_at(0, Vote::For(ProposalId(1))).unwrap();
    assert_eq!(ballot.votes_cast(), 1);
    assert_eq!(ballot.support(ProposalId(1)), Some(1.0));
    ballot.mark_absent(0);
    assert_eq!(ballot.votes_cast(), 1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The round's cast (`cast_once_at`, with its short path for a first vote) counts exactly as
    /// `cast_at` does, for first votes, re-votes, votes of voters marked absent and votes for
    /// proposals that are not candidates (rejected, the ballot unchanged).
    #[test]
    fn the_rounds_cast_counts_as_cast_at(
        threshold in threshold(),
        weights in prop::collection::vec(1u8..=3, 1..40),
        actions in prop::collection::vec((0usize..40, prop::option::of(prop::option::of(0u64..4))), 0..80),
    ) {
        let policy = ConsensusPolicy { threshold, quorum: 0.5, weighted: true, tie_break: TieBreak::LowestId };
        let electorate = Electorate::new(
            weights.iter().enumerate().map(|(voter, &w)| (AgentId(voter as u64), f64::from(w))),
        ).unwrap();
        let mut ours = Ballot::new(policy, electorate, (0..3).map(ProposalId)).unwrap();
        let mut model = ours.clone();
        for &(voter, action) in &actions {
            let voter = voter % weights.len();
            match action {
                None => {
                    ours.mark_absent(voter);
                    model.mark_absent(voter);
                }
                Some(choice) => {
                    // Candidate 3 is not on the ballot.
                    let vote = choice.map_or(Vote::Abstain, |c| Vote::For(ProposalId(c)));
                    let expected = model.cast_at(voter, vote).map(drop).map_err(|error| match error {
                        BallotError::UnknownCandidate { candidate } => candidate,
                        other => panic!("unexpected {other:?}"),
                    });
                    prop_assert_eq!(ours.cast_once_at(voter, vote), expected);
                }
            }
            prop_assert_eq!(ours.votes_cast(), model.votes_cast());
            prop_assert_eq!(ours.is_settled(), model.is_settled());
            prop_assert!(ours.tally().same_outcome(&model.tally()));
            for candidate in 0..3 {
                prop_assert_eq!(ours.support(ProposalId(candidate)), model.support(ProposalId(candidate)));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A quiet run (`cast_quiet_run`) counts exactly as one `cast_code_once_at` per vote would,
    /// stops where it must (a voter with a code, a vote for a proposal that is not a candidate, a
    /// voter who gives no vote, the end, the settlement bound) and never passes a vote after which
    /// the ballot is settled.
    #[test]
    fn a_quiet_run_counts_as_one_cast_per_vote_and_never_passes_a_settlement(
        threshold in threshold(),
        weighted in any::<bool>(),
        weights in prop::collection::vec(1u8..=3, 1..120),
        before in prop::collection::vec((0usize..120, prop::option::of(0u64..3)), 0..40),
        from in 0usize..120,
        length in 0usize..130,
        votes in prop::collection::vec(prop::option::of(prop::option::of(0u64..4)), 130),
    ) {
        let policy = ConsensusPolicy { threshold, quorum: 0.5, weighted, tie_break: TieBreak::LowestId };
        let electorate = Electorate::new(
            weights.iter().enumerate().map(|(voter, &w)| (AgentId(voter as u64), f64::from(w))),
        ).unwrap();
        let mut ours = Ballot::new(policy, electorate, (0..3).map(ProposalId)).unwrap();
        for &(voter, choice) in &before {
            let voter = voter % weights.len();
            match choice {
                None => ours.mark_absent(voter),
                Some(c) => ours.cast_once_at(voter, Vote::For(ProposalId(c))).unwrap(),
            }
        }
        let from = from % weights.len();
        let end = (from + length).min(weights.len());
        let weight_at = |position: usize| if weighted { f64::from(weights[position]) } else { 1.0 };
        // `votes[i]`: the answer of the voter at `from + i` (`None`: no vote to count now; a
        // vote for proposal 3 is refused).
        let answer = |position: usize| {
            votes[position - from].map(|choice| choice.map_or(Vote::Abstain, |c| Vote::For(ProposalId(c))))
        };
        let mut model = ours.clone();
        let mut last = (ProposalId(0), 0);
        let (reached, refused) = ours.cast_quiet_run(from, end, &mut last, |position| {
            answer(position).map(|vote| (vote, weight_at(position)))
        });
        // The model: one cast a vote, while the bound says no vote can settle the ballot.
        let mut position = from;
        let mut expected_refused = None;
        while position < end && model.quiet > 1 && model.votes.get(position) == NOT_VOTED {
            let Some(vote) = answer(position) else { break };
            let Ok(code) = model.code_of(vote) else {
                expected_refused = Some(vote);
                break;
            };
            model.cast_code_once_at(position, code, weight_at(position));
            prop_assert!(!model.settled_now(), "a run passed a settlement");
            position += 1;
        }
        prop_assert_eq!(reached, position);
        prop_assert_eq!(refused, expected_refused);
        prop_assert_eq!(format!("{ours:?}"), format!("{model:?}"));
        if let Some((candidate, code)) = (reached > from).then_some(last) {
            prop_assert_eq!(model.code_of(Vote::For(candidate)), Ok(code));
        }
    }
}
