//! Ballots against hand-computed and brute-forced expectations: every policy on small cases,
//! re-votes, unknown candidates, and `is_settled` checked against every way the remaining voters
//! could still vote (small electorates), and against random continuations (large ones, where
//! the ballot's quiet-count shortcut is on).

use hivekit_hive::{
    AgentId, Ballot, BallotError, ConsensusPolicy, Electorate, ProposalId, Tally, Threshold,
    TieBreak, Vote,
};

const A: ProposalId = ProposalId(1);
const B: ProposalId = ProposalId(2);
const C: ProposalId = ProposalId(3);

fn policy(threshold: Threshold, quorum: f64, weighted: bool, tie: TieBreak) -> ConsensusPolicy {
    ConsensusPolicy::new(threshold, quorum)
        .unwrap()
        .with_weighted(weighted)
        .with_tie_break(tie)
}

fn ballot(policy: ConsensusPolicy, weights: &[f64], candidates: &[ProposalId]) -> Ballot {
    let electorate = Electorate::new(
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| (AgentId(i as u64), w)),
    )
    .unwrap();
    Ballot::new(policy, electorate, candidates.iter().copied()).unwrap()
}

#[test]
fn hand_computed_outcomes_of_small_ballots() {
    let equal = [1.0; 5];
    // 3 of 5 for A, 2 for B.
    let votes = [A, A, A, B, B];
    let run = |threshold, weighted, weights: &[f64], votes: &[ProposalId]| {
        let mut b = ballot(
            policy(threshold, 0.5, weighted, TieBreak::LowestId),
            weights,
            &[A, B, C],
        );
        for (voter, &v) in votes.iter().enumerate() {
            b.cast(AgentId(voter as u64), Vote::For(v)).unwrap();
        }
        b.tally()
    };
    assert_eq!(
        run(Threshold::Majority, false, &equal, &votes).winner(),
        Some(A)
    );
    assert_eq!(
        run(
            Threshold::Supermajority { num: 2, den: 3 },
            false,
            &equal,
            &votes
        ),
        Tally::Undecided,
        "3/5 < 2/3"
    );
    assert_eq!(
        run(
            Threshold::Supermajority { num: 3, den: 5 },
            false,
            &equal,
            &votes
        )
        .winner(),
        Some(A),
        "3/5 >= 3/5"
    );
    assert_eq!(
        run(Threshold::Unanimous, false, &equal, &votes),
        Tally::Undecided
    );
    // Weighted: B's two voters weigh 3 each: B has 6 of 9.
    let weights = [1.0, 1.0, 1.0, 3.0, 3.0];
    match run(
        Threshold::Supermajority { num: 2, den: 3 },
        true,
        &weights,
        &votes,
    ) {
        Tally::Decided { winner, support } => {
            assert_eq!(winner, B);
            assert!((support - 6.0 / 9.0).abs() < 1e-12, "{support}");
        }
        other => panic!("{other:?}"),
    }
    // Unweighted, the same votes: A by count.
    assert_eq!(
        run(Threshold::Plurality, false, &weights, &votes).winner(),
        Some(A)
    );
    // Majority of exactly half is not more than half.
    assert_eq!(
        run(Threshold::Majority, false, &[1.0; 4], &[A, A, B, B]),
        Tally::Undecided
    );
}

#[test]
fn ties_follow_the_tie_break_and_quorum_counts_abstentions() {
    let mut b = ballot(
        policy(Threshold::Plurality, 0.5, false, TieBreak::NoDecision),
        &[1.0; 4],
        &[B, A],
    );
    b.cast(AgentId(0), Vote::For(B)).unwrap();
    b.cast(AgentId(1), Vote::For(A)).unwrap();
    assert_eq!(
        b.tally(),
        Tally::Tie {
            candidates: vec![A, B]
        }
    );
    let mut b = ballot(
        policy(Threshold::Plurality, 0.5, false, TieBreak::LowestId),
        &[1.0; 4],
        &[B, A],
    );
    b.cast(AgentId(0), Vote::For(B)).unwrap();
    b.cast(AgentId(1), Vote::For(A)).unwrap();
    assert_eq!(b.tally().winner(), Some(A));

    // Quorum 0.75 of 4: three must take part; abstentions count.
    let mut b = ballot(
        policy(Threshold::Majority, 0.75, false, TieBreak::LowestId),
        &[1.0; 4],
        &[A, B],
    );
    b.cast(AgentId(0), Vote::For(A)).unwrap();
    b.cast(AgentId(1), Vote::Abstain).unwrap();
    assert!(
        matches!(b.tally(), Tally::NoQuorum { turnout, required } if turnout == 2.0 && required == 3.0)
    );
    b.cast(AgentId(2), Vote::Abstain).unwrap();
    assert_eq!(
        b.tally().winner(),
        Some(A),
        "1 of 1 cast for candidates is a majority"
    );
}

#[test]
fn a_second_vote_replaces_the_first_and_bad_votes_leave_the_ballot_unchanged() {
    let mut b = ballot(ConsensusPolicy::majority(), &[1.0, 2.0, 1.0], &[A, B]);
    assert_eq!(b.cast(AgentId(1), Vote::For(A)).unwrap(), None);
    assert_eq!(
        b.cast(AgentId(1), Vote::For(B)).unwrap(),
        Some(Vote::For(A))
    );
    assert_eq!(
        b.cast(AgentId(1), Vote::Abstain).unwrap(),
        Some(Vote::For(B))
    );
    assert_eq!(
        b.cast(AgentId(1), Vote::For(A)).unwrap(),
        Some(Vote::Abstain)
    );
    assert_eq!(b.votes_cast(), 1);
    assert_eq!((b.support(A), b.support(B)), (Some(2.0), Some(0.0)));
    assert_eq!(
        b.cast(AgentId(0), Vote::For(C)),
        Err(BallotError::UnknownCandidate { candidate: C })
    );
    assert_eq!(
        b.cast(AgentId(7), Vote::For(A)),
        Err(BallotError::NotAVoter { voter: AgentId(7) })
    );
    assert_eq!(b.votes_cast(), 1);
    assert_eq!(b.support(C), None);
    assert_eq!(b.support(A), Some(2.0));
}

/// What a voter does: `None` stays away; `Some(None)` abstains; `Some(Some(i))` votes for candidate i.
type Choice = Option<Option<usize>>;

fn choices(candidates: usize) -> Vec<Choice> {
    let mut all = vec![None, Some(None)];
    all.extend((0..candidates).map(|c| Some(Some(c))));
    all
}

fn apply(b: &mut Ballot, voter: usize, choice: Choice, candidates: &[ProposalId]) {
    if let Some(vote) = choice {
        let vote = vote.map_or(Vote::Abstain, |c| Vote::For(candidates[c]));
        b.cast(AgentId(voter as u64), vote).unwrap();
    }
}

/// Every outcome reachable from `b` when voters `from..n` each choose anything.
fn outcomes(b: &Ballot, from: usize, n: usize, candidates: &[ProposalId], out: &mut Vec<Tally>) {
    if from == n {
        out.push(b.tally());
        return;
    }
    for choice in choices(candidates.len()) {
        let mut next = b.clone();
        apply(&mut next, from, choice, candidates);
        outcomes(&next, from + 1, n, candidates, out);
    }
}

fn policies() -> Vec<ConsensusPolicy> {
    let mut all = Vec::new();
    for threshold in [
        Threshold::Plurality,
        Threshold::Majority,
        Threshold::Supermajority { num: 2, den: 3 },
        Threshold::Supermajority { num: 1, den: 3 },
        Threshold::Unanimous,
    ] {
        for quorum in [0.25, 0.5, 1.0] {
            for weighted in [false, true] {
                for tie in [TieBreak::LowestId, TieBreak::NoDecision] {
                    all.push(policy(threshold, quorum, weighted, tie));
                }
            }
        }
    }
    all
}

#[test]
fn is_settled_never_claims_an_outcome_the_remaining_voters_could_change() {
    let candidates = [A, B];
    for weights in [
        &[1.0, 1.0, 1.0, 1.0][..],
        &[3.0, 1.0, 1.0, 1.0],
        &[1.0, 1.0, 2.0, 0.0],
    ] {
        let n = weights.len();
        for policy in policies() {
            // Every prefix: voters 0..k have chosen, k..n have not.
            let mut stack = vec![(ballot(policy, weights, &candidates), 0_usize)];
            while let Some((b, k)) = stack.pop() {
                let mut reachable = Vec::new();
                outcomes(&b, k, n, &candidates, &mut reachable);
                let now = b.tally();
                let fixed = reachable.iter().all(|t| t.same_outcome(&now));
                if b.is_settled() {
                    assert!(
                        fixed,
                        "settled but changeable: {policy:?} weights {weights:?} after {k} voters \
                         ({b:?}); now {now:?}, reachable {reachable:?}"
                    );
                }
                if k == n {
                    assert!(b.is_settled(), "everyone voted: settled");
                    continue;
                }
                for choice in choices(candidates.len()) {
                    // Staying away is "not yet" for the prefix: skip it (the voter would be
                    // counted as still to vote).
                    if choice.is_none() {
                        continue;
                    }
                    let mut next = b.clone();
                    apply(&mut next, k, choice, &candidates);
                    stack.push((next, k + 1));
                }
            }
        }
    }
}

#[test]
fn a_ballot_settled_when_the_outcome_is_clearly_fixed() {
    // 3 of 5 for A under majority: the other two cannot change it.
    let mut b = ballot(ConsensusPolicy::majority(), &[1.0; 5], &[A, B]);
    for voter in 0..2 {
        b.cast(AgentId(voter), Vote::For(A)).unwrap();
        assert!(!b.is_settled());
    }
    b.cast(AgentId(2), Vote::For(A)).unwrap();
    assert!(b.is_settled());
    // Unanimous: one dissent settles it as undecided.
    let mut b = ballot(
        policy(Threshold::Unanimous, 0.5, false, TieBreak::LowestId),
        &[1.0; 5],
        &[A, B],
    );
    b.cast(AgentId(0), Vote::For(A)).unwrap();
    b.cast(AgentId(1), Vote::For(B)).unwrap();
    assert!(
        !b.is_settled(),
        "2 of 5 is below the quorum of 2.5: a third voter changes it"
    );
    b.cast(AgentId(2), Vote::Abstain).unwrap();
    assert_eq!(b.tally(), Tally::Undecided);
    assert!(b.is_settled(), "no candidate can be unanimous any more");
}

/// xorshift64*: a deterministic stream for the random continuations.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
    }
}

#[test]
fn large_ballots_once_settled_keep_their_outcome_whatever_follows() {
    settled_outcomes_stay(&[0.5, 1.0, 2.0, 5.0], 0x9E37_79B9_7F4A_7C15);
}

#[test]
fn large_ballots_with_extreme_weights_once_settled_keep_their_outcome() {
    // Totals that overflow or underflow: the electorate is scaled (and the lightest may vanish).
    settled_outcomes_stay(&[f64::MAX, f64::MAX / 3.0, 1.0, 0.0], 0x0123_4567_89AB_CDEF);
    settled_outcomes_stay(&[1e-310, 5e-324, 3e-320, 0.0], 0x0FED_CBA9_8765_4321);
    settled_outcomes_stay(&[0.1, 0.2, 0.3, 0.7], 0x5555_AAAA_5555_AAAA);
}

fn settled_outcomes_stay(weight_choices: &[f64], seed: u64) {
    let candidates = [A, B, C];
    let mut rng = Rng(seed);
    for policy in policies() {
        for round in 0..4 {
            let n = 40 + round * 7;
            let weights: Vec<f64> = (0..n)
                .map(|_| weight_choices[rng.below(weight_choices.len())])
                .collect();
            if policy.weighted && weights.iter().all(|&w| w == 0.0) {
                continue;
            }
            let mut b = ballot(policy, &weights, &candidates);
            // A biased electorate so that some ballots settle early.
            let favourite = rng.below(3);
            let mut order: Vec<usize> = (0..n).collect();
            for i in (1..n).rev() {
                order.swap(i, rng.below(i + 1));
            }
            let mut settled: Option<(Tally, usize)> = None;
            for (step, &voter) in order.iter().enumerate() {
                let pick = rng.below(10);
                let vote = match pick {
                    0 => Vote::Abstain,
                    1..=6 => Vote::For(candidates[favourite]),
                    _ => Vote::For(candidates[rng.below(3)]),
                };
                b.cast(AgentId(voter as u64), vote).unwrap();
                if let Some((tally, at)) = &settled {
                    // Any later tally (had the ballot closed here) has the settled outcome.
                    assert!(
                        b.tally().same_outcome(tally),
                        "{policy:?}: settled at step {at} as {tally:?}, at step {step} {:?}",
                        b.tally()
                    );
                    assert!(b.is_settled(), "settled stays settled without re-votes");
                } else if b.is_settled() {
                    settled = Some((b.tally(), step));
                }
            }
            assert!(b.is_settled());
        }
    }
}

#[test]
fn votes_for_every_candidate_position_count_on_ballots_of_any_size() {
    // Around the compact vote codes' limits and the candidate lookup's switch to a map.
    for count in [
        1_u64, 2, 15, 16, 17, 126, 127, 128, 129, 130, 253, 254, 255, 256, 257, 300,
    ] {
        let candidates: Vec<ProposalId> = (0..count).map(|i| ProposalId(1_000 + i * 7)).collect();
        let voters = count as usize + 2;
        let electorate = Electorate::equal((0..voters as u64).map(AgentId)).unwrap();
        let policy = ConsensusPolicy::new(Threshold::Plurality, 1.0)
            .unwrap()
            .with_tie_break(TieBreak::NoDecision);
        let mut b = Ballot::new(policy, electorate, candidates.iter().copied()).unwrap();
        // Voter i votes for candidate i; the last two vote for the last candidate, then one of
        // them abstains and votes again.
        for (i, &candidate) in candidates.iter().enumerate() {
            assert_eq!(
                b.cast(AgentId(i as u64), Vote::For(candidate)).unwrap(),
                None
            );
        }
        let last = *candidates.last().unwrap();
        let (extra, other) = (AgentId(count), AgentId(count + 1));
        b.cast(extra, Vote::For(last)).unwrap();
        assert_eq!(b.cast(other, Vote::Abstain).unwrap(), None);
        assert_eq!(b.cast(other, Vote::For(last)).unwrap(), Some(Vote::Abstain));
        assert_eq!(b.cast(extra, Vote::Abstain).unwrap(), Some(Vote::For(last)));
        assert_eq!(b.cast(extra, Vote::For(last)).unwrap(), Some(Vote::Abstain));
        assert_eq!(b.votes_cast(), voters, "{count} candidates");
        for (i, &candidate) in candidates.iter().enumerate() {
            let expected = if i + 1 == candidates.len() { 3.0 } else { 1.0 };
            assert_eq!(
                b.support(candidate),
                Some(expected),
                "{count}: candidate {i}"
            );
        }
        assert_eq!(b.tally().winner(), Some(last), "{count} candidates");
        assert!(b.is_settled());
        assert_eq!(
            b.cast(AgentId(0), Vote::For(ProposalId(3))),
            Err(BallotError::UnknownCandidate {
                candidate: ProposalId(3)
            })
        );
    }
}

#[test]
fn a_duplicate_candidate_is_refused_on_ballots_of_any_size() {
    for count in [2_u64, 16, 17, 200] {
        let mut candidates: Vec<ProposalId> = (0..count).map(ProposalId).collect();
        candidates.push(ProposalId(count / 2));
        let electorate = Electorate::equal([AgentId(0)]).unwrap();
        let error = Ballot::new(ConsensusPolicy::majority(), electorate, candidates).unwrap_err();
        assert_eq!(
            error,
            BallotError::DuplicateCandidate {
                candidate: ProposalId(count / 2)
            }
        );
    }
}
