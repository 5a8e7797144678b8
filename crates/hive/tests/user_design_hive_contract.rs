//! The `hivekit-hive` contract of DESIGN.md, written from that document (and the README's hive
//! snippet, which adds the `AgentContext` argument DESIGN.md's signatures leave out).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, AgentId, Ballot, BallotError, ConcurrencyLimit,
    ConsensusPolicy, Contest, Decision, Electorate, FailureKind, Hive, HiveError, PolicyError,
    Proposal, ProposalId, RejectReason, ResolutionStrategy, Snapshot, SnapshotCell, State, Tally,
    Threshold, TieBreak, Vote,
};

#[derive(Clone, Debug, Default, PartialEq)]
struct Counter(i64);

impl State for Counter {
    type Key = &'static str;
    type Change = i64;
    fn apply(&mut self, change: &i64) {
        self.0 += change;
    }
}

/// Proposes `delta` on `key` under a fixed id (or nothing when `id` is `None`), and votes as told.
struct Writer {
    id: Option<u64>,
    delta: i64,
    key: &'static str,
    vote: Voting,
}

#[derive(Clone, Copy)]
enum Voting {
    Preferred,
    For(u64),
    Abstain,
    Hang,
}

impl Writer {
    fn proposer(id: u64, delta: i64, key: &'static str) -> Self {
        Writer {
            id: Some(id),
            delta,
            key,
            vote: Voting::Preferred,
        }
    }

    fn voter(vote: Voting) -> Self {
        Writer {
            id: None,
            delta: 0,
            key: "",
            vote,
        }
    }
}

impl Agent<Counter> for Writer {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Counter>,
    ) -> Result<Option<Proposal<&'static str, i64>>, AgentError> {
        Ok(self
            .id
            .map(|id| Proposal::new(ProposalId(id), self.delta).writes([self.key])))
    }

    async fn vote(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Counter>,
        contest: &Contest<Counter>,
    ) -> Result<Vote, AgentError> {
        match self.vote {
            Voting::Preferred => Ok(contest.preferred().map_or(Vote::Abstain, Vote::For)),
            Voting::For(id) => Ok(Vote::For(ProposalId(id))),
            Voting::Abstain => Ok(Vote::Abstain),
            Voting::Hang => std::future::pending().await,
        }
    }
}

/// A second agent type, to show heterogeneous agents living in one hive.
struct Panicker;

impl Agent<Counter> for Panicker {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Counter>,
    ) -> Result<Option<Proposal<&'static str, i64>>, AgentError> {
        panic!("agent bug")
    }
}

struct Failing;

impl Agent<Counter> for Failing {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Counter>,
    ) -> Result<Option<Proposal<&'static str, i64>>, AgentError> {
        Err(AgentError::msg("model endpoint unavailable"))
    }
}

struct Sleeper;

impl Agent<Counter> for Sleeper {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Counter>,
    ) -> Result<Option<Proposal<&'static str, i64>>, AgentError> {
        std::future::pending().await
    }
}

fn policy(threshold: Threshold, quorum: f64) -> ConsensusPolicy {
    ConsensusPolicy {
        threshold,
        quorum,
        weighted: false,
        tie_break: TieBreak::LowestId,
    }
}

#[test]
fn the_builder_chain_design_names_builds_a_hive() {
    let hive = Hive::builder(Counter(5))
        .policy(policy(Threshold::Majority, 0.5))
        .agent_timeout(Duration::from_secs(3))
        .max_in_flight(ConcurrencyLimit::new(4).unwrap())
        .build()
        .unwrap();
    assert_eq!(hive.agent_timeout(), Duration::from_secs(3));
    assert_eq!(hive.policy().threshold, Threshold::Majority);
    assert_eq!(hive.memory().load().0, 5);
    assert_eq!(hive.memory().version(), 0);
}

#[test]
fn hand_built_invalid_policies_are_rejected_when_the_hive_is_built() {
    let cases = [
        (
            policy(Threshold::Supermajority { num: 1, den: 0 }, 0.5),
            PolicyError::ZeroDenominator { num: 1, den: 0 },
        ),
        (
            policy(Threshold::Supermajority { num: 3, den: 2 }, 0.5),
            PolicyError::FractionOutOfRange { num: 3, den: 2 },
        ),
        (
            policy(Threshold::Plurality, 1.5),
            PolicyError::QuorumOutOfRange { quorum: 1.5 },
        ),
    ];
    for (bad, expected) in cases {
        match Hive::builder(Counter::default()).policy(bad).build() {
            Err(HiveError::Policy(error)) => assert_eq!(error, expected),
            Err(other) => panic!("{bad:?}: expected a policy error, got {other}"),
            Ok(_) => panic!("{bad:?}: an invalid policy was accepted"),
        }
        // A standalone ballot refuses it too.
        let electorate = Electorate::equal([AgentId(0)]).unwrap();
        assert!(matches!(
            Ballot::new(bad, electorate, [ProposalId(1)]),
            Err(BallotError::Policy(_))
        ));
    }
}

#[test]
fn spawn_weighted_refuses_nan_infinite_and_negative_weights() {
    let hive = Hive::builder(Counter::default()).build().unwrap();
    for weight in [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        -1.0,
        -f64::MIN_POSITIVE,
    ] {
        let refused = hive.spawn_weighted(Writer::voter(Voting::Abstain), weight);
        assert!(
            matches!(refused, Err(HiveError::InvalidWeight { .. })),
            "weight {weight} was accepted"
        );
    }
    assert!(hive.is_empty(), "a refused agent must not join the hive");
    let id = hive
        .spawn_weighted(Writer::voter(Voting::Abstain), 2.5)
        .unwrap();
    assert_eq!(hive.weight(id), Some(2.5));
}

#[test]
fn spawn_many_and_remove_from_many_threads_at_once_lose_no_agent() {
    const THREADS: usize = 8;
    const EACH: usize = 100;
    let hive = Arc::new(Hive::builder(Counter::default()).build().unwrap());
    let removed = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let hive = Arc::clone(&hive);
            let removed = Arc::clone(&removed);
            thread::spawn(move || {
                let ids = hive.spawn_many(EACH, |_| Writer::voter(Voting::Abstain));
                assert_eq!(ids.len(), EACH);
                // Every other agent leaves again; removing twice is a no-op.
                for id in ids.iter().step_by(2) {
                    assert!(hive.remove(*id));
                    assert!(!hive.remove(*id));
                    removed.fetch_add(1, Ordering::Relaxed);
                }
                ids
            })
        })
        .collect();
    let mut all: Vec<AgentId> = handles
        .into_iter()
        .flat_map(|handle| handle.join().unwrap())
        .collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), THREADS * EACH, "agent ids must be distinct");
    assert_eq!(hive.len(), THREADS * EACH - removed.load(Ordering::Relaxed));
}

#[test]
fn a_voters_second_vote_replaces_the_first_and_an_unknown_candidate_is_rejected() {
    let electorate = Electorate::equal((0..3).map(AgentId)).unwrap();
    let mut ballot = Ballot::new(
        policy(Threshold::Majority, 1.0),
        electorate,
        [ProposalId(10), ProposalId(20)],
    )
    .unwrap();
    assert_eq!(
        ballot.cast(AgentId(0), Vote::For(ProposalId(10))).unwrap(),
        None
    );
    assert_eq!(
        ballot.cast(AgentId(0), Vote::For(ProposalId(20))).unwrap(),
        Some(Vote::For(ProposalId(10)))
    );
    assert_eq!(
        ballot.votes_cast(),
        1,
        "a replaced vote is not counted twice"
    );
    assert_eq!(ballot.support(ProposalId(10)), Some(0.0));
    assert_eq!(ballot.support(ProposalId(20)), Some(1.0));
    assert!(ballot.cast(AgentId(1), Vote::For(ProposalId(99))).is_err());
    assert_eq!(ballot.votes_cast(), 1, "a rejected vote is not counted");
    // One voter of three: no quorum yet.
    assert!(matches!(ballot.tally(), Tally::NoQuorum { .. }));
    ballot.cast(AgentId(1), Vote::For(ProposalId(20))).unwrap();
    ballot.cast(AgentId(2), Vote::Abstain).unwrap();
    match ballot.tally() {
        Tally::Decided { winner, support } => {
            assert_eq!(winner, ProposalId(20));
            assert!((support - 1.0).abs() < 1e-9);
        }
        other => panic!("expected a decision, got {other:?}"),
    }
}

#[test]
fn tally_is_tie_or_undecided_when_no_candidate_makes_it() {
    let electorate = Electorate::equal((0..2).map(AgentId)).unwrap();
    let tie_policy = policy(Threshold::Plurality, 1.0).with_tie_break(TieBreak::NoDecision);
    let mut tie = Ballot::new(
        tie_policy,
        electorate.clone(),
        [ProposalId(1), ProposalId(2)],
    )
    .unwrap();
    tie.cast(AgentId(0), Vote::For(ProposalId(1))).unwrap();
    tie.cast(AgentId(1), Vote::For(ProposalId(2))).unwrap();
    assert!(matches!(tie.tally(), Tally::Tie { .. }));

    let mut undecided = Ballot::new(
        policy(Threshold::Majority, 1.0),
        electorate,
        [ProposalId(1), ProposalId(2)],
    )
    .unwrap();
    undecided
        .cast(AgentId(0), Vote::For(ProposalId(1)))
        .unwrap();
    undecided
        .cast(AgentId(1), Vote::For(ProposalId(2)))
        .unwrap();
    assert_eq!(undecided.tally(), Tally::Undecided);
}

#[test]
fn a_ballot_is_settled_as_soon_as_the_remaining_voters_cannot_change_the_outcome() {
    let electorate = Electorate::equal((0..5).map(AgentId)).unwrap();
    let mut ballot = Ballot::new(
        policy(Threshold::Majority, 0.5),
        electorate,
        [ProposalId(1), ProposalId(2)],
    )
    .unwrap();
    ballot.cast(AgentId(0), Vote::For(ProposalId(1))).unwrap();
    ballot.cast(AgentId(1), Vote::For(ProposalId(1))).unwrap();
    assert!(!ballot.is_settled(), "two of five can still be outvoted");
    ballot.cast(AgentId(2), Vote::For(ProposalId(1))).unwrap();
    assert!(
        ballot.is_settled(),
        "three of five is a majority whatever the rest do"
    );
    assert_eq!(ballot.tally().winner(), Some(ProposalId(1)));
}

#[tokio::test]
async fn a_round_accepts_independent_proposals_and_settles_a_conflict_by_ballot() {
    let hive = Hive::builder(Counter::default()).build().unwrap();
    hive.spawn(Writer::proposer(1, 10, "a"));
    hive.spawn(Writer::proposer(2, 20, "a"));
    hive.spawn(Writer::proposer(3, 300, "b"));
    // The three proposers vote for the preferred #1 (the lower id); four voters for #2 outvote them.
    for _ in 0..4 {
        hive.spawn(Writer::voter(Voting::For(2)));
    }
    let decision: Decision<Counter> = hive.decide().await.unwrap();
    assert_eq!(decision.round, 1);
    assert_eq!(decision.version, 1);
    let mut accepted = decision.accepted.clone();
    accepted.sort();
    assert_eq!(accepted, [ProposalId(2), ProposalId(3)]);
    assert_eq!(
        decision.rejected,
        [(
            ProposalId(1),
            RejectReason::LostVote {
                winner: ProposalId(2)
            }
        )]
    );
    assert_eq!(decision.ballots.len(), 1);
    assert_eq!(decision.ballots[0].key, "a");
    assert!(decision.failures.is_empty());
    let _: Duration = decision.elapsed;
    let state = hive.memory().load();
    assert_eq!((state.0, state.version()), (320, 1));

    let second = hive.decide().await.unwrap();
    assert_eq!((second.round, second.version), (2, 2));
}

#[tokio::test]
async fn a_round_with_a_priority_strategy_settles_conflicts_without_a_ballot() {
    let hive = Hive::builder(Counter::default())
        .resolution(ResolutionStrategy::HighestPriority)
        .build()
        .unwrap();
    // Equal priorities: the lower id wins, though it is proposed by the agent spawned second.
    hive.spawn(Writer::proposer(2, 2, "a"));
    hive.spawn(Writer::proposer(1, 1, "a"));
    let decision = hive.decide().await.unwrap();
    assert!(decision.ballots.is_empty());
    assert_eq!(decision.accepted, [ProposalId(1)]);
    assert_eq!(hive.memory().load().0, 1);
}

#[tokio::test(start_paused = true)]
async fn agents_that_panic_err_or_time_out_are_failures_and_the_round_goes_on() {
    let hive = Hive::builder(Counter::default())
        .agent_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let panicker = hive.spawn(Panicker);
    let failing = hive.spawn(Failing);
    let sleeper = hive.spawn(Sleeper);
    hive.spawn(Writer::proposer(1, 7, "a"));
    let decision = tokio::time::timeout(Duration::from_secs(60), hive.decide())
        .await
        .expect("the round must end after the agent timeout")
        .unwrap();
    assert_eq!(decision.accepted, [ProposalId(1)]);
    assert_eq!(hive.memory().load().0, 7);
    let kind_of = |agent: AgentId| {
        decision
            .failures
            .iter()
            .find(|failure| failure.agent == agent)
            .map(|failure| failure.kind.clone())
    };
    assert!(matches!(
        kind_of(panicker),
        Some(FailureKind::Panicked { .. })
    ));
    assert!(matches!(
        kind_of(failing),
        Some(FailureKind::Errored { .. })
    ));
    assert_eq!(kind_of(sleeper), Some(FailureKind::TimedOut));
    assert_eq!(decision.failures.len(), 3);
    assert!(decision.elapsed >= Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn a_quorum_that_cannot_be_met_is_rejected_as_no_quorum_not_a_hang() {
    // Everyone must take part, but two of the four voters never answer.
    let hive = Hive::builder(Counter::default())
        .policy(policy(Threshold::Plurality, 1.0))
        .agent_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    hive.spawn(Writer::proposer(1, 1, "a"));
    hive.spawn(Writer::proposer(2, 2, "a"));
    hive.spawn(Writer::voter(Voting::Hang));
    hive.spawn(Writer::voter(Voting::Hang));
    let decision = tokio::time::timeout(Duration::from_secs(60), hive.decide())
        .await
        .expect("a quorum that cannot be met must not hang the round")
        .unwrap();
    assert!(decision.accepted.is_empty());
    let mut rejected = decision.rejected.clone();
    rejected.sort_by_key(|(id, _)| *id);
    assert_eq!(
        rejected,
        [
            (ProposalId(1), RejectReason::NoQuorum),
            (ProposalId(2), RejectReason::NoQuorum)
        ]
    );
    assert_eq!(
        hive.memory().version(),
        0,
        "nothing accepted, nothing committed"
    );
}

#[tokio::test(start_paused = true)]
async fn the_round_stops_waiting_for_voters_once_the_ballot_is_settled() {
    let timeout = Duration::from_secs(3_600);
    let hive = Hive::builder(Counter::default())
        .policy(policy(Threshold::Majority, 0.5))
        .agent_timeout(timeout)
        .build()
        .unwrap();
    // Proposers 1 and 2 and three voters for #1 settle a majority of seven; two voters hang.
    hive.spawn(Writer::proposer(1, 1, "a"));
    hive.spawn(Writer::proposer(2, 2, "a"));
    for _ in 0..3 {
        hive.spawn(Writer::voter(Voting::For(1)));
    }
    hive.spawn(Writer::voter(Voting::Hang));
    hive.spawn(Writer::voter(Voting::Hang));
    let decision = hive.decide().await.unwrap();
    assert_eq!(decision.accepted, [ProposalId(1)]);
    assert!(
        decision.elapsed < timeout,
        "the round waited {:?} for voters that could not change a settled ballot",
        decision.elapsed
    );
}

#[tokio::test]
async fn abstentions_count_towards_the_quorum_but_support_nobody() {
    let hive = Hive::builder(Counter::default())
        .policy(policy(Threshold::Plurality, 1.0))
        .build()
        .unwrap();
    hive.spawn(Writer::proposer(1, 1, "a"));
    hive.spawn(Writer::proposer(2, 2, "a"));
    hive.spawn(Writer::voter(Voting::Abstain));
    hive.spawn(Writer::voter(Voting::Abstain));
    let decision = hive.decide().await.unwrap();
    // The two proposers vote for the preferred #1; the abstainers complete the turnout.
    assert_eq!(decision.accepted, [ProposalId(1)]);
}

#[test]
fn the_hives_memory_is_a_snapshot_cell_for_the_in_process_default() {
    // DESIGN.md: `hive.memory() -> &SnapshotCell<S>`. The code returns a `HiveMemory` whose
    // in-process backend exposes its cell through `local().cell()`.
    let hive = Hive::builder(Counter(1)).build().unwrap();
    let cell: &SnapshotCell<Counter> = hive
        .memory()
        .local()
        .expect("the default memory is local")
        .cell();
    assert_eq!(cell.read(|state, version| (state.0, version)), (1, 0));
    let decision = hivekit_runtime::execute(async {
        hive.spawn(Writer::proposer(1, 4, "a"));
        hive.decide().await
    })
    .unwrap();
    assert_eq!(decision.version, 1);
    assert_eq!(cell.read(|state, version| (state.0, version)), (5, 1));
}

#[test]
fn decide_with_no_agents_is_a_typed_error() {
    let hive = Hive::builder(Counter::default()).build().unwrap();
    let outcome = hivekit_runtime::execute(hive.decide());
    assert!(matches!(outcome, Err(HiveError::NoAgents)), "{outcome:?}");
}
