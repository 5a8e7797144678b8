//! The vote loop's two ways of asking light voters give the same decision: runs of calls that
//! answer at once counted in `LightStarts::run`, and the loop asking every voter itself (as it
//! does when call spans are recorded). Scripted voters answer at once, abstain, vote for a
//! non-candidate, fail, panic or answer after a yield, by a seeded roll per (voter, contest); some
//! voters are heavy and some vote in batches, so that runs stop and resume around them. Rounds
//! with varied weights, an unweighted policy and interested voters (each contest its own list of
//! voters) take each of the run's ways of finding a voter and its weight.

use std::hash::BuildHasher;

use rustc_hash::FxBuildHasher;

use super::light::{GENERAL_ONLY, QUIET_VOTES, RUN_VOTES};
use crate::agent::{Agent, AgentError, Contest, Interest, Vote};
use crate::context::AgentContext;
use crate::decision::Decision;
use crate::hive::Hive;
use crate::lockfree::{Proposal, ProposalId, ResourceCost, Snapshot};
use crate::policy::ConsensusPolicy;
use crate::state::State;

#[derive(Debug, Clone, Default)]
struct Board {
    sum: u64,
}

impl State for Board {
    type Key = u64;
    type Change = u64;

    fn apply(&mut self, change: &u64) {
        self.sum = self.sum.wrapping_add(*change);
    }
}

/// Proposes on its key (if any) and answers each contest as its roll says.
struct Scripted {
    index: u64,
    seed: u64,
    proposal: Option<(u64, u64)>,
    heavy: bool,
    batch: bool,
    /// The contest keys it is asked about (`None`: every contest).
    keys: Option<Vec<u64>>,
    /// Whether the rolls that wait (a yield before the answer) do: on a runtime of several
    /// threads, when a waiting call answers (and so which voters a settled ballot counted)
    /// depends on timing.
    waits: bool,
}

impl Scripted {
    /// 0..100, fixed by the seed, the voter and the contest's key.
    fn roll(&self, contest: &Contest<Board>) -> u64 {
        FxBuildHasher.hash_one((self.seed, self.index, contest.key)) % 100
    }

    async fn answer(&self, contest: &Contest<Board>) -> Result<Vote, AgentError> {
        let roll = self.roll(contest);
        match roll {
            0..=2 => panic!("scripted voter {} panics", self.index),
            3..=5 => Err(AgentError::msg("scripted failure")),
            6..=8 => Ok(Vote::For(ProposalId(u64::MAX))),
            9..=14 => {
                if self.waits {
                    tokio::task::yield_now().await;
                }
                Ok(Vote::For(contest.candidates[0].id))
            }
            15..=22 => Ok(Vote::Abstain),
            _ => {
                let candidates = &contest.candidates;
                Ok(Vote::For(candidates[roll as usize % candidates.len()].id))
            }
        }
    }
}

impl Agent<Board> for Scripted {
    async fn propose(
        &self,
        _: &AgentContext,
        _: &Snapshot<Board>,
    ) -> Result<Option<Proposal<u64, u64>>, AgentError> {
        Ok(self
            .proposal
            .map(|(id, key)| Proposal::new(ProposalId(id), key).writes([key])))
    }

    async fn vote(
        &self,
        _: &AgentContext,
        _: &Snapshot<Board>,
        contest: &Contest<Board>,
    ) -> Result<Vote, AgentError> {
        self.answer(contest).await
    }

    fn batch_votes(&self) -> bool {
        self.batch
    }

    async fn vote_all(
        &self,
        _: &AgentContext,
        _: &Snapshot<Board>,
        contests: &[&Contest<Board>],
    ) -> Result<Vec<Vote>, AgentError> {
        let mut votes = Vec::with_capacity(contests.len());
        for contest in contests {
            votes.push(self.answer(contest).await.unwrap_or(Vote::Abstain));
        }
        Ok(votes)
    }

    fn interest(&self) -> Interest<u64> {
        match &self.keys {
            Some(keys) => Interest::Keys(keys.clone()),
            None => Interest::All,
        }
    }

    fn cost(&self) -> ResourceCost {
        if self.heavy {
            ResourceCost::Heavy
        } else {
            ResourceCost::Light
        }
    }
}

/// How a round's voters are weighted and which contests each is asked about.
#[derive(Clone, Copy)]
struct Electorates {
    /// Voters of weights 1 to 4 (otherwise 1).
    varied_weights: bool,
    /// The policy counts heads, not weights.
    unweighted: bool,
    /// Each voter is asked about about two thirds of the contests (`Interest::Keys`).
    interested: bool,
}

const EVERY_VOTER_ALIKE: Electorates = Electorates {
    varied_weights: false,
    unweighted: false,
    interested: false,
};

/// A round of `voters` scripted voters over `contests` keys, each proposed on by three of them,
/// weighted and interested as `electorates` says.
async fn round_of(
    seed: u64,
    voters: u64,
    contests: u64,
    mixed: bool,
    electorates: Electorates,
    general: bool,
) -> Decision<Board> {
    let hive = hive_of(seed, voters, contests, mixed, electorates, true);
    decide(&hive, general).await
}

/// One round of `hive`, its light voters asked by the loop itself if `general`.
async fn decide(hive: &Hive<Board>, general: bool) -> Decision<Board> {
    GENERAL_ONLY.set(general);
    let decision = hive.decide().await.expect("a round");
    GENERAL_ONLY.set(false);
    decision
}

/// The hive of [`round_of`].
fn hive_of(
    seed: u64,
    voters: u64,
    contests: u64,
    mixed: bool,
    electorates: Electorates,
    waits: bool,
) -> Hive<Board> {
    let policy = ConsensusPolicy::majority().with_weighted(!electorates.unweighted);
    let hive = Hive::builder(Board::default())
        .policy(policy)
        .build()
        .expect("a hive");
    for index in 0..voters {
        let keys = electorates
            .interested
            .then(|| (0..contests).filter(|key| (index + key) % 3 != 0).collect());
        let agent = Scripted {
            index,
            seed,
            proposal: (index < 3 * contests).then_some((index, index % contests)),
            heavy: mixed && index % 7 == 3,
            batch: mixed && index % 11 == 5,
            keys,
            waits,
        };
        let weight = if electorates.varied_weights {
            1.0 + (index % 4) as f64
        } else {
            1.0
        };
        hive.spawn_weighted(agent, weight).expect("a valid weight");
    }
    hive
}

/// Everything a decision says about its ballots and failures, comparable.
fn audit(decision: &Decision<Board>) -> Vec<String> {
    let mut lines: Vec<String> = decision
        .ballots
        .iter()
        .map(|ballot| {
            let voters: Vec<_> = ballot.voters().collect();
            format!(
                "key {} {:?} votes {} cancelled {} {voters:?}",
                ballot.key, ballot.tally, ballot.votes, ballot.cancelled
            )
        })
        .collect();
    lines.extend(
        decision
            .failures
            .iter()
            .map(|failure| format!("{failure:?}")),
    );
    lines.push(format!(
        "accepted {:?} rejected {:?}",
        decision.accepted, decision.rejected
    ));
    lines
}

async fn both_paths_agree(voters: u64, contests: u64, mixed: bool) {
    both_paths_agree_with(voters, contests, mixed, EVERY_VOTER_ALIKE).await;
}

async fn both_paths_agree_with(voters: u64, contests: u64, mixed: bool, electorates: Electorates) {
    for seed in 0..12 {
        RUN_VOTES.set(0);
        QUIET_VOTES.set(0);
        let runs = round_of(seed, voters, contests, mixed, electorates, false).await;
        let counted_in_runs = RUN_VOTES.get();
        assert!(
            QUIET_VOTES.get() > 0,
            "seed {seed}: no vote was counted without a settlement check"
        );
        let general = round_of(seed, voters, contests, mixed, electorates, true).await;
        assert!(
            counted_in_runs > 0,
            "seed {seed}: no vote was counted in a run"
        );
        assert_eq!(
            RUN_VOTES.get(),
            counted_in_runs,
            "seed {seed}: the general path ran runs"
        );
        assert_eq!(runs.ballots.len() as u64, contests);
        assert_eq!(audit(&runs), audit(&general), "seed {seed}");
    }
}

#[tokio::test]
async fn runs_and_the_general_path_give_the_same_ballots_choices_and_failures() {
    // 10 contests a voter: the light voters' calls start in slots of their own, where runs are.
    both_paths_agree(60, 10, false).await;
}

#[tokio::test]
async fn runs_stop_and_resume_around_heavy_and_batch_voters_with_the_same_outcome() {
    both_paths_agree(60, 10, true).await;
}

#[tokio::test]
async fn runs_count_weighted_votes_as_the_general_path_does() {
    let varied = Electorates {
        varied_weights: true,
        ..EVERY_VOTER_ALIKE
    };
    both_paths_agree_with(60, 10, false, varied).await;
    both_paths_agree_with(60, 10, true, varied).await;
}

#[tokio::test]
async fn runs_count_heads_under_an_unweighted_policy_as_the_general_path_does() {
    let unweighted = Electorates {
        varied_weights: true,
        unweighted: true,
        ..EVERY_VOTER_ALIKE
    };
    both_paths_agree_with(60, 10, false, unweighted).await;
    both_paths_agree_with(60, 10, true, unweighted).await;
}

#[tokio::test]
async fn runs_over_interested_voters_give_the_same_ballots_as_the_general_path() {
    // Each contest asks its own list of voters: the run finds each voter through the list, with
    // and without weights.
    for electorates in [
        Electorates {
            interested: true,
            varied_weights: true,
            unweighted: false,
        },
        Electorates {
            interested: true,
            varied_weights: true,
            unweighted: true,
        },
    ] {
        // 15 contests, about 10 a voter: enough pairs for the voters' own slots, where runs are.
        both_paths_agree_with(90, 15, false, electorates).await;
        both_paths_agree_with(90, 15, true, electorates).await;
    }
}

/// Rounds after a hive's first make their voters' slots in the blocks the last round kept
/// (`LightSpare`): each later round gives the first round's ballots, on either path, and runs
/// still count votes. The scripted answers depend on the voter and the contest's key only, so
/// every round asks the same; some calls wait if `waits` (their slots leave with them), some
/// panic; some voters are heavy or vote in batches in the rounds of `mixes` that say so.
async fn later_rounds_agree(voters: u64, contests: u64, waits: bool, mixes: &[bool]) {
    for seed in 0..4 {
        for &mixed in mixes {
            let runs = hive_of(seed, voters, contests, mixed, EVERY_VOTER_ALIKE, waits);
            let general = hive_of(seed, voters, contests, mixed, EVERY_VOTER_ALIKE, waits);
            let first = audit(&decide(&runs, false).await);
            for round in 2..=4 {
                RUN_VOTES.set(0);
                let by_runs = audit(&decide(&runs, false).await);
                assert!(RUN_VOTES.get() > 0, "seed {seed} round {round}: no run");
                let by_loop = audit(&decide(&general, true).await);
                assert_eq!(by_runs, first, "seed {seed} round {round}");
                assert_eq!(by_loop, first, "seed {seed} round {round} (general path)");
            }
        }
    }
}

#[tokio::test]
async fn later_rounds_in_kept_slot_blocks_give_the_first_rounds_ballots() {
    later_rounds_agree(60, 10, true, &[false, true]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_rounds_split_in_chunks_keep_each_chunks_blocks_and_agree() {
    // 150 voters on 30 contests: 4,500 pairs, two chunks on two workers, each with its own kept
    // blocks. No call waits and no voter is heavy: which waiting calls a ballot counts, and in
    // which order heavy proposers' proposals arrive, would depend on timing.
    later_rounds_agree(150, 30, false, &[false]).await;
}
