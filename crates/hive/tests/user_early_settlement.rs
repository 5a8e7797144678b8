//! A ballot the round stops waiting for (`cancelled` voters, `VoterChoice::NotCounted`) must be one
//! whose outcome "could no longer change": whatever the voters not waited for would have answered
//! (any candidate, an abstention, or nothing), the recorded outcome stands. And the recorded tally
//! is the one a standalone `Ballot` gives for the votes the record lists.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, Ballot, BallotRecord, ConsensusPolicy, Contest, Electorate,
    Hive, ProposalId, ProposalOf, Snapshot, State, Threshold, TieBreak, Vote, VoterChoice,
};

#[derive(Clone, Default, Debug)]
struct Sum(u64);

impl State for Sum {
    type Key = u64;
    type Change = u64;
    fn apply(&mut self, change: &u64) {
        self.0 += change;
    }
}

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// Agents 0..3 propose on key 0; every agent votes as the round's dice say: at once, after a
/// while, never, for some candidate or abstaining.
struct Dice {
    index: u64,
    round: Arc<AtomicU64>,
    seed: u64,
}

impl Agent<Sum> for Dice {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _: &Snapshot<Sum>,
    ) -> Result<Option<ProposalOf<Sum>>, AgentError> {
        if self.index < 3 {
            Ok(Some(ctx.proposal(1).writes([0])))
        } else {
            Ok(None)
        }
    }

    async fn vote(
        &self,
        ctx: &AgentContext,
        _: &Snapshot<Sum>,
        contest: &Contest<Sum>,
    ) -> Result<Vote, AgentError> {
        let r = mix(self.seed ^ (ctx.round() << 20) ^ (self.index << 8));
        self.round.fetch_max(ctx.round(), Ordering::Relaxed);
        match (r >> 8) % 6 {
            0 => std::future::pending::<()>().await,
            1 | 2 => tokio::time::sleep(Duration::from_millis(10 + (r >> 16) % 200)).await,
            _ => {}
        }
        if r % 5 == 0 {
            Ok(Vote::Abstain)
        } else {
            let candidates = &contest.candidates;
            Ok(Vote::For(
                candidates[(r >> 3) as usize % candidates.len()].id,
            ))
        }
    }
}

fn options(candidates: &[ProposalId]) -> Vec<Option<Vote>> {
    let mut options = vec![None, Some(Vote::Abstain)];
    options.extend(candidates.iter().map(|&c| Some(Vote::For(c))));
    options
}

fn check(policy: ConsensusPolicy, ballot: &BallotRecord<u64>) {
    let voters: Vec<_> = ballot.voters().collect();
    let electorate = Arc::new(
        Electorate::new(voters.iter().map(|record| (record.voter, record.weight))).unwrap(),
    );
    let waiting: Vec<_> = voters
        .iter()
        .filter(|record| record.choice == VoterChoice::NotCounted)
        .map(|record| record.voter)
        .collect();
    assert_eq!(waiting.len(), ballot.cancelled);
    let base = || {
        let mut held =
            Ballot::new(policy, Arc::clone(&electorate), ballot.candidates.clone()).unwrap();
        for record in &voters {
            let vote = match record.choice {
                VoterChoice::For(candidate) => Vote::For(candidate),
                VoterChoice::Abstain => Vote::Abstain,
                _ => continue,
            };
            held.cast(record.voter, vote).unwrap();
        }
        held
    };
    let counted = base().tally();
    assert!(
        counted.same_outcome(&ballot.tally),
        "the recorded tally is not the votes' tally ({counted}):\n{ballot:#}"
    );
    if waiting.is_empty() {
        return;
    }
    let options = options(&ballot.candidates);
    let combinations = options.len().pow(waiting.len() as u32);
    for mut code in 0..combinations {
        let mut held = base();
        let mut what = Vec::new();
        for &voter in &waiting {
            let option = options[code % options.len()];
            code /= options.len();
            what.push((voter, option));
            if let Some(vote) = option {
                held.cast(voter, vote).unwrap();
            }
        }
        let tally = held.tally();
        assert!(
            tally.same_outcome(&ballot.tally),
            "the ballot stopped waiting, but {what:?} would have made it {tally} under \
             {policy:?}:\n{ballot:#}"
        );
    }
}

async fn run(policy: ConsensusPolicy, seed: u64) {
    let hive = Hive::builder(Sum::default())
        .policy(policy)
        .agent_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let round = Arc::new(AtomicU64::new(0));
    for index in 0..7 {
        let weight = [1.0, 2.0, 0.5, 3.0, 1.0, 0.0, 1.5][index as usize];
        hive.spawn_weighted(
            Dice {
                index,
                round: round.clone(),
                seed,
            },
            weight,
        )
        .unwrap();
    }
    for _ in 0..12 {
        let decision = tokio::time::timeout(Duration::from_secs(5), hive.decide())
            .await
            .unwrap()
            .unwrap();
        for ballot in &decision.ballots {
            check(policy, ballot);
            STOPPED_EARLY.fetch_add(ballot.cancelled as u64, Ordering::Relaxed);
        }
    }
}

/// Voters not waited for, over every round: the check above must have had some to check.
static STOPPED_EARLY: AtomicU64 = AtomicU64::new(0);

fn policies() -> Vec<ConsensusPolicy> {
    let mut all = Vec::new();
    for threshold in [
        Threshold::Plurality,
        Threshold::Majority,
        Threshold::Supermajority { num: 2, den: 3 },
        Threshold::Unanimous,
    ] {
        for quorum in [0.01, 0.5, 0.9, 1.0] {
            for weighted in [false, true] {
                for tie_break in [TieBreak::LowestId, TieBreak::NoDecision] {
                    all.push(
                        ConsensusPolicy::new(threshold, quorum)
                            .unwrap()
                            .with_weighted(weighted)
                            .with_tie_break(tie_break),
                    );
                }
            }
        }
    }
    all
}

#[tokio::test(start_paused = true)]
async fn a_ballot_stops_waiting_only_when_no_answer_could_change_it() {
    for policy in policies() {
        for seed in 1..4 {
            run(policy, seed).await;
        }
    }
    assert!(STOPPED_EARLY.load(Ordering::Relaxed) > 0);
}
