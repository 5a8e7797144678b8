//! A hive round's ballot against the full count: whatever the round did to finish early (voters
//! not waited for once the outcome could no longer change), its recorded outcome is the one an
//! exact count of *every* voter's scripted answer gives, on electorates of 33 to 80 agents (where
//! ballots keep their settlement bound and the round counts runs of votes without a check each).
//! The decision's accepted and rejected proposals follow the tally, and the record lists each
//! voter's real answer.

use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, AgentId, ConsensusPolicy, Contest, Decision, FailureKind,
    Hive, Phase, ProposalId, ProposalOf, RejectReason, ResourceCost, Snapshot, State, Tally,
    Threshold, TieBreak, Vote, VoterChoice,
};
use proptest::prelude::*;

#[derive(Clone, Debug, Default)]
struct Sum(u64);

impl State for Sum {
    type Key = u64;
    type Change = u64;
    fn apply(&mut self, change: &u64) {
        self.0 += change;
    }
}

const INVALID: ProposalId = ProposalId(u64::MAX - 5);

/// What an agent answers when asked to vote.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Answer {
    /// For the candidate of proposer `p`.
    For(usize),
    Abstain,
    Fail,
    /// For a proposal that is not a candidate.
    Invalid,
}

struct Scripted {
    proposes: bool,
    answer: Answer,
    heavy: bool,
}

impl Agent<Sum> for Scripted {
    fn cost(&self) -> ResourceCost {
        if self.heavy {
            ResourceCost::Heavy
        } else {
            ResourceCost::Light
        }
    }

    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Sum>,
    ) -> Result<Option<ProposalOf<Sum>>, AgentError> {
        Ok(self.proposes.then(|| ctx.proposal(1).writes([0])))
    }

    async fn vote(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Sum>,
        contest: &Contest<Sum>,
    ) -> Result<Vote, AgentError> {
        match self.answer {
            Answer::For(p) => Ok(Vote::For(
                contest
                    .candidates
                    .iter()
                    .find(|c| c.proposer == AgentId(p as u64))
                    .expect("every proposer has a candidate")
                    .id,
            )),
            Answer::Abstain => Ok(Vote::Abstain),
            Answer::Fail => Err(AgentError::msg("scripted failure")),
            Answer::Invalid => Ok(Vote::For(INVALID)),
        }
    }
}

#[derive(Debug, Clone)]
struct Case {
    policy: ConsensusPolicy,
    /// Per agent: weight and answer; agents `0..proposers` propose.
    agents: Vec<(u64, Answer)>,
    proposers: usize,
    /// Agents whose calls run as tasks of their own.
    heavy: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    NoQuorum,
    Decided(ProposalId),
    Tie(Vec<ProposalId>),
    Undecided,
}

fn outcome_of(tally: &Tally) -> Outcome {
    match tally {
        Tally::NoQuorum { .. } => Outcome::NoQuorum,
        Tally::Decided { winner, .. } => Outcome::Decided(*winner),
        Tally::Tie { candidates } => Outcome::Tie(candidates.clone()),
        Tally::Undecided => Outcome::Undecided,
    }
}

/// The exact count of every agent's answer (failed and invalid answers count as absent).
/// `quorum` is `p / 100`.
fn full_count(case: &Case, quorum_pct: u64, candidates: &[ProposalId]) -> Outcome {
    let weighted = case.policy.weighted;
    let weight = |w: u64| if weighted { w } else { 1 };
    let total: u64 = case.agents.iter().map(|&(w, _)| weight(w)).sum();
    let mut turnout = 0;
    let mut support = vec![0_u64; case.proposers];
    for &(w, answer) in &case.agents {
        match answer {
            Answer::For(p) => {
                turnout += weight(w);
                support[p] += weight(w);
            }
            Answer::Abstain => turnout += weight(w),
            Answer::Fail | Answer::Invalid => {}
        }
    }
    if turnout == 0 || turnout * 100 < quorum_pct * total {
        return Outcome::NoQuorum;
    }
    let top = support.iter().copied().max().unwrap_or(0);
    let cast: u64 = support.iter().sum();
    let meets = top > 0
        && match case.policy.threshold {
            Threshold::Plurality => true,
            Threshold::Majority => 2 * top > cast,
            Threshold::Supermajority { num, den } => top * u64::from(den) >= cast * u64::from(num),
            Threshold::Unanimous => top == cast,
        };
    if !meets {
        return Outcome::Undecided;
    }
    let mut tied: Vec<ProposalId> = (0..case.proposers)
        .filter(|&p| support[p] == top)
        .map(|p| candidates[p])
        .collect();
    tied.sort_unstable();
    if tied.len() == 1 || case.policy.tie_break == TieBreak::LowestId {
        Outcome::Decided(tied[0])
    } else {
        Outcome::Tie(tied)
    }
}

async fn hold(case: &Case) -> Decision<Sum> {
    let hive = Hive::builder(Sum::default())
        .policy(case.policy)
        .agent_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    for (i, &(weight, answer)) in case.agents.iter().enumerate() {
        let id = hive
            .spawn_weighted(
                Scripted {
                    proposes: i < case.proposers,
                    answer,
                    heavy: case.heavy,
                },
                weight as f64,
            )
            .unwrap();
        assert_eq!(id, AgentId(i as u64));
    }
    tokio::time::timeout(Duration::from_secs(10), hive.decide())
        .await
        .expect("a round of instant agents ends")
        .unwrap()
}

fn check(case: &Case, quorum_pct: u64, decision: &Decision<Sum>) -> Result<(), TestCaseError> {
    // Proposer p's candidate.
    let candidates: Vec<ProposalId> = (0..case.proposers)
        .map(|p| {
            decision
                .proposers
                .iter()
                .find(|(_, agent)| *agent == AgentId(p as u64))
                .unwrap()
                .0
        })
        .collect();
    prop_assert_eq!(decision.ballots.len(), 1, "{}", decision);
    let ballot = &decision.ballots[0];
    let mut listed = ballot.candidates.clone();
    listed.sort_unstable();
    let mut expected_listed = candidates.clone();
    expected_listed.sort_unstable();
    prop_assert_eq!(listed, expected_listed);

    // Early settlement never differs from the full count.
    let full = full_count(case, quorum_pct, &candidates);
    prop_assert_eq!(
        outcome_of(&ballot.tally),
        full.clone(),
        "{:?}\n{:#}",
        case.policy,
        ballot
    );

    // The record: every counted choice is the scripted one; every not-counted voter was one the
    // round stopped waiting for.
    let mut counted = 0;
    let mut not_counted = 0;
    for record in ballot.voters() {
        let (weight, answer) = case.agents[record.voter.0 as usize];
        let expected_weight = if case.policy.weighted {
            weight as f64
        } else {
            1.0
        };
        prop_assert_eq!(record.weight, expected_weight);
        match (record.choice, answer) {
            (VoterChoice::For(c), Answer::For(p)) => {
                prop_assert_eq!(c, candidates[p]);
                counted += 1;
            }
            (VoterChoice::Abstain, Answer::Abstain) => counted += 1,
            (VoterChoice::Failed, Answer::Fail | Answer::Invalid) => {}
            (VoterChoice::NotCounted, _) => not_counted += 1,
            (choice, answer) => {
                prop_assert!(false, "{:?} recorded as {:?}", answer, choice);
            }
        }
    }
    prop_assert_eq!(ballot.voters().count(), case.agents.len());
    prop_assert_eq!(ballot.votes, counted);
    prop_assert_eq!(ballot.cancelled, not_counted);
    for failure in &decision.failures {
        prop_assert_eq!(failure.phase, Phase::Vote);
        let (_, answer) = case.agents[failure.agent.0 as usize];
        match (&failure.kind, answer) {
            (FailureKind::Errored { .. }, Answer::Fail) => {}
            (FailureKind::InvalidVote { candidate }, Answer::Invalid) => {
                prop_assert_eq!(*candidate, INVALID)
            }
            (kind, answer) => prop_assert!(false, "{:?} failed as {:?}", answer, kind),
        }
    }

    // Accepted and rejected follow the tally.
    let mut rejected_ids: Vec<ProposalId> = decision.rejected.iter().map(|(id, _)| *id).collect();
    rejected_ids.sort_unstable();
    match &full {
        Outcome::Decided(winner) => {
            prop_assert_eq!(&decision.accepted, &vec![*winner]);
            for (id, reason) in &decision.rejected {
                prop_assert_ne!(id, winner);
                prop_assert_eq!(reason, &RejectReason::LostVote { winner: *winner });
            }
            prop_assert_eq!(rejected_ids.len(), case.proposers - 1);
        }
        other => {
            let reason = match other {
                Outcome::NoQuorum => RejectReason::NoQuorum,
                Outcome::Tie(_) => RejectReason::Tie,
                _ => RejectReason::Undecided,
            };
            prop_assert!(decision.accepted.is_empty());
            prop_assert_eq!(rejected_ids.len(), case.proposers);
            for (_, r) in &decision.rejected {
                prop_assert_eq!(r, &reason);
            }
        }
    }
    Ok(())
}

fn answer(proposers: usize) -> impl Strategy<Value = Answer> {
    prop_oneof![
        10 => (0..proposers).prop_map(Answer::For),
        2 => Just(Answer::Abstain),
        1 => Just(Answer::Fail),
        1 => Just(Answer::Invalid),
    ]
}

fn case() -> impl Strategy<Value = (Case, u64)> {
    let threshold = prop_oneof![
        Just(Threshold::Plurality),
        Just(Threshold::Majority),
        Just(Threshold::Unanimous),
        Just(Threshold::Supermajority { num: 2, den: 3 }),
        Just(Threshold::Supermajority { num: 1, den: 2 }),
        Just(Threshold::Supermajority { num: 1, den: 3 }),
    ];
    let quorum_pct = prop_oneof![Just(1_u64), Just(25), Just(50), Just(75), Just(100)];
    let tie = prop_oneof![Just(TieBreak::LowestId), Just(TieBreak::NoDecision)];
    (
        threshold,
        quorum_pct,
        any::<bool>(),
        tie,
        2usize..=4,
        33usize..=80,
        prop::bool::weighted(0.25),
    )
        .prop_flat_map(
            |(threshold, quorum_pct, weighted, tie, proposers, n, heavy)| {
                // A favourite so that ballots often settle early; weights 0 to 3.
                let agents = prop::collection::vec(
                    (
                        0u64..=3,
                        prop_oneof![3 => Just(Answer::For(0)), 4 => answer(proposers)],
                    ),
                    n,
                );
                (
                    Just(threshold),
                    Just(quorum_pct),
                    Just(weighted),
                    Just(tie),
                    Just(proposers),
                    agents,
                    Just(heavy),
                )
            },
        )
        .prop_filter(
            "a weighted hive needs some weight",
            |(_, _, weighted, _, _, agents, _)| !*weighted || agents.iter().any(|&(w, _)| w > 0),
        )
        .prop_map(
            |(threshold, quorum_pct, weighted, tie, proposers, agents, heavy)| {
                let policy = ConsensusPolicy::new(threshold, quorum_pct as f64 / 100.0)
                    .unwrap()
                    .with_weighted(weighted)
                    .with_tie_break(tie);
                (
                    Case {
                        policy,
                        agents,
                        proposers,
                        heavy,
                    },
                    quorum_pct,
                )
            },
        )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A multi-thread runtime: heavy agents' calls then finish on other workers while the round counts.
fn multi_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn a_rounds_ballot_always_has_the_outcome_of_the_full_count((case, quorum_pct) in case()) {
        let runtime = if case.heavy { multi_thread_runtime() } else { runtime() };
        let decision = runtime.block_on(hold(&case));
        check(&case, quorum_pct, &decision)?;
    }
}

#[test]
fn a_one_sided_round_stops_counting_once_a_majority_is_in() {
    // n equal agents, all for agent 0's proposal (agent 1 proposes too): n / 2 + 1 votes settle
    // it, and "the round stops waiting for a ballot's remaining voters as soon as they can no
    // longer change its outcome" (`Hive::decide`).
    for heavy in [false, true] {
        for n in [33_usize, 40, 64, 80] {
            let case = Case {
                policy: ConsensusPolicy::majority().with_weighted(false),
                agents: vec![(1, Answer::For(0)); n],
                proposers: 2,
                heavy,
            };
            let runtime = if heavy {
                multi_thread_runtime()
            } else {
                runtime()
            };
            let decision = runtime.block_on(hold(&case));
            check(&case, 50, &decision).unwrap();
            let ballot = &decision.ballots[0];
            assert_eq!(
                ballot.votes,
                n / 2 + 1,
                "{n} agents (heavy: {heavy}): counted past the settling vote:\n{ballot:#}"
            );
            assert_eq!(ballot.votes + ballot.cancelled, n);
        }
    }
}

#[test]
fn an_even_split_of_a_large_round_is_a_tie_or_goes_to_the_lowest_id() {
    // 40 agents (weights 1 and 3 alternating): the even agents for agent 0's proposal, the odd
    // ones for agent 1's: 20 against 20 by count, 20 against 60 by weight.
    let agents: Vec<(u64, Answer)> = (0..40)
        .map(|i| (if i % 2 == 0 { 1 } else { 3 }, Answer::For(i % 2)))
        .collect();
    for tie in [TieBreak::NoDecision, TieBreak::LowestId] {
        for weighted in [false, true] {
            let case = Case {
                policy: ConsensusPolicy::new(Threshold::Plurality, 0.5)
                    .unwrap()
                    .with_weighted(weighted)
                    .with_tie_break(tie),
                agents: agents.clone(),
                proposers: 2,
                heavy: false,
            };
            let decision = runtime().block_on(hold(&case));
            check(&case, 50, &decision).unwrap();
            let ballot = &decision.ballots[0];
            let mut ids = ballot.candidates.clone();
            ids.sort_unstable();
            let expected = match (weighted, tie) {
                (false, TieBreak::NoDecision) => Outcome::Tie(ids.clone()),
                (false, TieBreak::LowestId) => Outcome::Decided(ids[0]),
                (true, _) => Outcome::Decided(
                    decision.proposers[..]
                        .iter()
                        .find(|(_, a)| *a == AgentId(1))
                        .unwrap()
                        .0,
                ),
            };
            assert_eq!(outcome_of(&ballot.tally), expected, "{decision}");
            match (weighted, tie) {
                (false, TieBreak::NoDecision) => {
                    assert_eq!(ballot.cancelled, 0, "a tie needs every vote: {ballot:#}");
                }
                // 20 to 19 for the lower id with one voter left: they could at most tie, and a
                // tie goes to the lower id, so the last vote is not waited for.
                (false, TieBreak::LowestId) => {
                    assert!(ballot.votes >= 39, "{ballot:#}");
                }
                (true, _) => {}
            }
        }
    }
}
