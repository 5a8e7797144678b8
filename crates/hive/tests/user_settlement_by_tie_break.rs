//! A ballot whose leader wins any tie its rivals can still reach (ties go to the lowest id, and
//! the leader has it) is settled: the remaining voters cannot change the winner, so a round stops
//! waiting for them. Before, the ballot waited for a lead beyond the remaining weight, and a round
//! waited one voter longer (for a voter that hangs, until its timeout).

use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, AgentId, Ballot, ConsensusPolicy, Contest, Electorate, Hive,
    ProposalId, ProposalOf, ResolutionStrategy, Snapshot, State, Threshold, TieBreak, Vote,
};

const A: ProposalId = ProposalId(1);
const B: ProposalId = ProposalId(2);
const C: ProposalId = ProposalId(3);

fn ballot(tie: TieBreak, threshold: Threshold, voters: u64, candidates: &[ProposalId]) -> Ballot {
    let policy = ConsensusPolicy::new(threshold, 0.01)
        .unwrap()
        .with_tie_break(tie);
    let electorate = Electorate::equal((0..voters).map(AgentId)).unwrap();
    Ballot::new(policy, electorate, candidates.iter().copied()).unwrap()
}

#[test]
fn a_leader_with_the_lowest_id_is_settled_once_its_rivals_can_at_most_tie() {
    // 4 voters: A, A, B. The last voter can only bring B level, and A wins a tie.
    let mut lowest = ballot(TieBreak::LowestId, Threshold::Plurality, 4, &[A, B]);
    let mut none = ballot(TieBreak::NoDecision, Threshold::Plurality, 4, &[A, B]);
    for ballot in [&mut lowest, &mut none] {
        for (voter, vote) in [A, A, B].into_iter().enumerate() {
            ballot.cast(AgentId(voter as u64), Vote::For(vote)).unwrap();
        }
    }
    assert!(lowest.is_settled(), "{lowest:?}");
    assert_eq!(lowest.tally().winner(), Some(A));
    // Without a tie-break the last voter can still make it a tie.
    assert!(!none.is_settled());

    // The same votes for the higher id: B leads, but the last voter's tie would go to A.
    let mut higher = ballot(TieBreak::LowestId, Threshold::Plurality, 4, &[A, B]);
    for (voter, vote) in [B, B, A].into_iter().enumerate() {
        higher.cast(AgentId(voter as u64), Vote::For(vote)).unwrap();
    }
    assert!(!higher.is_settled());
}

/// Every way the remaining voters could still answer: a candidate, an abstention, or nothing.
fn continuations(candidates: &[ProposalId], left: usize) -> Vec<Vec<Option<Vote>>> {
    let mut options = vec![None, Some(Vote::Abstain)];
    options.extend(candidates.iter().map(|&c| Some(Vote::For(c))));
    let mut all = vec![Vec::new()];
    for _ in 0..left {
        all = all
            .into_iter()
            .flat_map(|prefix| {
                options.iter().map(move |option| {
                    let mut next = prefix.clone();
                    next.push(*option);
                    next
                })
            })
            .collect();
    }
    all
}

/// Plurality with a quorum any vote meets, small unweighted electorates, every sequence of votes: whenever no
/// continuation can change the outcome, the ballot says it is settled (for plurality the check is
/// exact), and it never says so while one still can.
#[test]
fn plurality_settlement_is_exact_on_small_electorates() {
    let candidates = [A, B, C];
    for tie in [TieBreak::LowestId, TieBreak::NoDecision] {
        for voters in 1..=5_usize {
            for cast in 1..=voters {
                for votes in continuations(&candidates, cast) {
                    // Only votes for candidates or abstentions before the check: absences are
                    // covered by the continuations.
                    if votes.iter().any(Option::is_none) {
                        continue;
                    }
                    let mut b = ballot(tie, Threshold::Plurality, voters as u64, &candidates);
                    for (voter, vote) in votes.iter().enumerate() {
                        b.cast(AgentId(voter as u64), vote.unwrap()).unwrap();
                    }
                    let now = b.tally();
                    let fixed = continuations(&candidates, voters - cast)
                        .into_iter()
                        .all(|rest| {
                            let mut c = b.clone();
                            for (offset, vote) in rest.into_iter().enumerate() {
                                let voter = AgentId((cast + offset) as u64);
                                if let Some(vote) = vote {
                                    c.cast(voter, vote).unwrap();
                                }
                            }
                            c.tally().same_outcome(&now)
                        });
                    assert_eq!(
                        b.is_settled(),
                        fixed,
                        "{tie:?}, {voters} voters, votes {votes:?}: tally {now:?}"
                    );
                }
            }
        }
    }
}

#[derive(Clone, Default, Debug)]
struct Sum(u64);

impl State for Sum {
    type Key = u64;
    type Change = u64;
    fn apply(&mut self, change: &u64) {
        self.0 += change;
    }
}

/// Agents 0 and 1 propose on one key; agents 0 and 2 vote for the lower id, 1 for the higher, and
/// 3 never answers.
struct Voter {
    index: u64,
}

impl Agent<Sum> for Voter {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _: &Snapshot<Sum>,
    ) -> Result<Option<ProposalOf<Sum>>, AgentError> {
        Ok((self.index < 2).then(|| ctx.proposal(self.index + 1).writes([0])))
    }

    async fn vote(
        &self,
        _: &AgentContext,
        _: &Snapshot<Sum>,
        contest: &Contest<Sum>,
    ) -> Result<Vote, AgentError> {
        let ids = contest.candidates.iter().map(|candidate| candidate.id);
        let (lower, higher) = (ids.clone().min().unwrap(), ids.max().unwrap());
        match self.index {
            0 | 2 => Ok(Vote::For(lower)),
            1 => Ok(Vote::For(higher)),
            _ => std::future::pending().await,
        }
    }
}

/// A round whose fourth voter hangs ends as soon as three have voted 2 to 1 for the lower id: the
/// fourth could only tie, and the tie goes to the leader. Before, the round waited for the
/// hanging voter's timeout.
#[tokio::test(start_paused = true)]
async fn a_round_does_not_wait_for_a_voter_who_could_only_tie() {
    let timeout = Duration::from_secs(600);
    let hive = Hive::builder(Sum::default())
        .agent_timeout(timeout)
        .resolution(ResolutionStrategy::Vote)
        .policy(ConsensusPolicy::new(Threshold::Plurality, 0.5).unwrap())
        .build()
        .unwrap();
    for index in 0..4 {
        hive.spawn(Voter { index });
    }
    let started = tokio::time::Instant::now();
    let decision = hive.decide().await.unwrap();
    assert!(
        started.elapsed() < timeout,
        "the round waited {:?} for a voter who could only tie",
        started.elapsed()
    );
    assert_eq!(decision.accepted.len(), 1, "{decision:?}");
    let winner = decision.accepted[0];
    assert!(
        decision.rejected.iter().all(|(id, _)| *id > winner),
        "the lower id won: {decision:?}"
    );
    assert!(decision.failures.is_empty(), "{:?}", decision.failures);
}

/// A large electorate, where the ballot counts votes down against a bound before checking in
/// full: the tie the last voter could reach settles it as the small ballot above.
#[test]
fn a_large_ballot_settles_on_a_tie_that_goes_to_the_leader() {
    for (leader, other) in [(A, B), (B, A)] {
        let mut b = ballot(TieBreak::LowestId, Threshold::Plurality, 1_000, &[A, B]);
        for voter in 0..999_u64 {
            let vote = if voter % 2 == 0 { leader } else { other };
            b.cast(AgentId(voter), Vote::For(vote)).unwrap();
            if voter < 998 {
                assert!(!b.is_settled(), "settled after {voter} votes");
            }
        }
        // 500 to 499 with one voter left: they can at most make it a tie, which A wins.
        assert_eq!(b.is_settled(), leader == A, "{leader} leads");
        b.cast(AgentId(999), Vote::For(other)).unwrap();
        assert_eq!(b.tally().winner(), Some(A));
    }
}
