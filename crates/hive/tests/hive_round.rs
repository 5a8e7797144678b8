//! `Hive::decide`: agents that answer instantly, slowly, never, panic, err or vote at random; every
//! resolution strategy; bad configuration.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, ConcurrencyLimit, ConsensusPolicy, FailureKind, Hive,
    HiveError, Phase, PolicyError, Priority, ProposalId, RejectReason, ResolutionStrategy, Role,
    Snapshot, Tally, Threshold,
};
use support::{add, Behaviour, Choice, Ledger, LedgerProposal, Writer};

const TIMEOUT: Duration = Duration::from_secs(5);

fn hive() -> Hive<Ledger> {
    Hive::builder(Ledger::default())
        .agent_timeout(TIMEOUT)
        .build()
        .unwrap()
}

fn hive_with(policy: ConsensusPolicy) -> Hive<Ledger> {
    Hive::builder(Ledger::default())
        .policy(policy)
        .agent_timeout(TIMEOUT)
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn independent_proposals_are_all_accepted_and_committed() {
    let hive = hive();
    for id in 1..=3 {
        hive.spawn(Writer::new(id, id * 10));
    }
    hive.spawn(Writer::silent());
    let decision = hive.decide().await.unwrap();
    assert_eq!(decision.round, 1);
    assert_eq!((decision.base_version, decision.version), (0, 1));
    assert_eq!(decision.agents, 4);
    assert_eq!(decision.proposals, 3);
    let mut accepted = decision.accepted.clone();
    accepted.sort();
    assert_eq!(accepted, [ProposalId(1), ProposalId(2), ProposalId(3)]);
    assert!(decision.rejected.is_empty() && decision.failures.is_empty());
    assert!(decision.ballots.is_empty());
    let memory = hive.memory().load();
    assert_eq!(memory.version(), 1);
    assert_eq!(memory.counters.values().sum::<i64>(), 3);
    assert_eq!(memory.log.len(), 3);
    let stats = hive.stats();
    assert_eq!((stats.rounds, stats.commits, stats.accepted), (1, 1, 3));
}

#[tokio::test(start_paused = true)]
async fn a_round_without_proposals_commits_nothing() {
    let hive = hive();
    hive.spawn(Writer::silent());
    let decision = hive.decide().await.unwrap();
    assert_eq!((decision.base_version, decision.version), (0, 0));
    assert!(decision.accepted.is_empty());
    assert_eq!(hive.memory().version(), 0);
    assert_eq!(hive.stats().commits, 0);
}

#[tokio::test(start_paused = true)]
async fn conflicts_are_settled_by_vote() {
    let hive = hive_with(ConsensusPolicy::majority());
    for id in 1..=3 {
        hive.spawn(Writer::new(id, 7).choosing(Choice::For(2)));
    }
    hive.spawn(Writer::new(4, 8).choosing(Choice::For(1)));
    let decision = hive.decide().await.unwrap();
    let mut accepted = decision.accepted.clone();
    accepted.sort();
    assert_eq!(accepted, [ProposalId(2), ProposalId(4)]);
    for loser in [1, 3] {
        assert_eq!(
            decision.rejection(ProposalId(loser)),
            Some(&RejectReason::LostVote {
                winner: ProposalId(2)
            })
        );
    }
    assert_eq!(decision.ballots.len(), 1);
    let ballot = &decision.ballots[0];
    assert_eq!(ballot.key, 7);
    assert_eq!(ballot.tally.winner(), Some(ProposalId(2)));
    assert_eq!(hive.memory().load().counters[&7], 1);
}

#[tokio::test(start_paused = true)]
async fn slow_agents_within_the_timeout_are_waited_for() {
    let hive = hive();
    hive.spawn(Writer::new(1, 1).proposing(Behaviour::Slow(Duration::from_secs(2))));
    hive.spawn(Writer::new(2, 2));
    let decision = hive.decide().await.unwrap();
    assert_eq!(decision.accepted.len(), 2);
    assert!(decision.failures.is_empty());
    assert_eq!(decision.elapsed, Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn agents_that_never_answer_time_out_and_the_round_goes_on() {
    let hive = hive();
    let never = hive.spawn(Writer::new(1, 1).proposing(Behaviour::Never));
    hive.spawn(Writer::new(2, 2));
    let decision = hive.decide().await.unwrap();
    assert_eq!(decision.accepted, [ProposalId(2)]);
    assert_eq!(decision.failures.len(), 1);
    assert_eq!(decision.failures[0].agent, never);
    assert_eq!(decision.failures[0].phase, Phase::Propose);
    assert_eq!(decision.failures[0].kind, FailureKind::TimedOut);
    assert_eq!(decision.elapsed, TIMEOUT);
    assert_eq!(hive.stats().timeouts, 1);
}

#[tokio::test(start_paused = true)]
async fn panics_and_errors_are_recorded_per_agent() {
    let hive = hive();
    let panicking = hive.spawn(Writer::new(1, 1).proposing(Behaviour::Panic));
    let failing = hive.spawn(Writer::new(2, 2).proposing(Behaviour::Fail));
    hive.spawn(Writer::new(3, 3));
    let decision = hive.decide().await.unwrap();
    assert_eq!(decision.accepted, [ProposalId(3)]);
    let kind_of = |agent| {
        decision
            .failures
            .iter()
            .find(|failure| failure.agent == agent)
            .map(|failure| failure.kind.clone())
    };
    assert_eq!(
        kind_of(panicking),
        Some(FailureKind::Panicked {
            message: "agent exploded".into()
        })
    );
    assert_eq!(
        kind_of(failing),
        Some(FailureKind::Errored {
            error: AgentError::msg("agent failed on purpose")
        })
    );
    let stats = hive.stats();
    assert_eq!((stats.panics, stats.errors), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn voters_that_fail_are_recorded_and_do_not_count() {
    // Two of five voters answer validly: a quorum of 40% is just met.
    let hive = hive_with(ConsensusPolicy::new(Threshold::Majority, 0.4).unwrap());
    // Voters are asked in id order: the failing ones first, so that the ballot cannot settle
    // before all three failures are seen.
    hive.spawn(Writer::silent().voting(Behaviour::Panic));
    hive.spawn(Writer::silent().voting(Behaviour::Fail));
    hive.spawn(Writer::silent().choosing(Choice::Bogus));
    hive.spawn(Writer::new(1, 7).choosing(Choice::For(1)));
    hive.spawn(Writer::new(2, 7).choosing(Choice::For(1)));
    let decision = hive.decide().await.unwrap();
    assert_eq!(decision.accepted, [ProposalId(1)]);
    let vote_failures: Vec<&FailureKind> = decision
        .failures
        .iter()
        .filter(|failure| failure.phase == Phase::Vote)
        .map(|failure| &failure.kind)
        .collect();
    assert_eq!(vote_failures.len(), 3);
    assert!(vote_failures.contains(&&FailureKind::InvalidVote {
        candidate: ProposalId(u64::MAX)
    }));
    assert_eq!(decision.ballots[0].votes, 2);
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_quorum_is_no_quorum_within_the_timeout() {
    let policy = ConsensusPolicy::new(Threshold::Majority, 1.0).unwrap();
    let hive = hive_with(policy);
    hive.spawn(Writer::new(1, 7));
    hive.spawn(Writer::new(2, 7));
    hive.spawn(Writer::silent().voting(Behaviour::Never));
    let decision = hive.decide().await.unwrap();
    assert!(decision.accepted.is_empty());
    assert_eq!(
        decision.rejection(ProposalId(1)),
        Some(&RejectReason::NoQuorum)
    );
    assert_eq!(
        decision.rejection(ProposalId(2)),
        Some(&RejectReason::NoQuorum)
    );
    assert!(matches!(decision.ballots[0].tally, Tally::NoQuorum { .. }));
    assert_eq!(decision.elapsed, TIMEOUT);
    assert_eq!(hive.memory().version(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_quorum_lost_to_a_failed_voter_settles_at_once_and_cancels_the_rest() {
    let policy = ConsensusPolicy::new(Threshold::Majority, 1.0).unwrap();
    let hive = hive_with(policy);
    let (proposals, votes) = (Arc::default(), Arc::new(AtomicUsize::new(0)));
    hive.spawn(Writer::new(1, 7).voting(Behaviour::Fail));
    hive.spawn(
        Writer::new(2, 7)
            .voting(Behaviour::Slow(Duration::from_secs(3)))
            .counting(&proposals, &votes),
    );
    let decision = hive.decide().await.unwrap();
    assert_eq!(
        decision.rejection(ProposalId(1)),
        Some(&RejectReason::NoQuorum)
    );
    // The slow voter was cancelled once the failed one made the quorum unreachable.
    assert_eq!(decision.elapsed, Duration::ZERO);
    assert_eq!(votes.load(Ordering::SeqCst), 0);
    assert_eq!(decision.ballots[0].cancelled, 1);
}

#[tokio::test(start_paused = true)]
async fn a_settled_ballot_stops_waiting_for_its_remaining_voters() {
    let hive = hive_with(ConsensusPolicy::majority());
    hive.spawn(Writer::new(1, 7).choosing(Choice::For(1)));
    hive.spawn(Writer::new(2, 7).choosing(Choice::For(1)));
    for _ in 0..4 {
        hive.spawn(Writer::silent().choosing(Choice::For(1)));
    }
    let (proposals, votes) = (Arc::default(), Arc::new(AtomicUsize::new(0)));
    for _ in 0..4 {
        hive.spawn(
            Writer::silent()
                .voting(Behaviour::Never)
                .counting(&proposals, &votes),
        );
    }
    let decision = hive.decide().await.unwrap();
    assert_eq!(decision.accepted, [ProposalId(1)]);
    assert_eq!(decision.ballots[0].votes, 6);
    assert_eq!(decision.ballots[0].cancelled, 4);
    assert_eq!(decision.elapsed, Duration::ZERO);
    assert!(decision.failures.is_empty());
    assert_eq!(hive.stats().cancelled_votes, 4);
}

#[tokio::test(start_paused = true)]
async fn random_voters_never_accept_two_conflicting_proposals() {
    for seed in 0..20u64 {
        let hive = hive_with(ConsensusPolicy::default());
        // 30 agents proposing on 6 keys, so most keys are contested; everyone votes at random.
        for id in 0..30 {
            hive.spawn(Writer::new(id, id % 6).choosing(Choice::Random(seed * 1000 + id)));
        }
        let decision = hive.decide().await.unwrap();
        assert_eq!(decision.accepted.len() + decision.rejected.len(), 30);
        let mut keys: Vec<u64> = decision.accepted.iter().map(|id| id.0 % 6).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(
            keys.len(),
            decision.accepted.len(),
            "two accepted writers of one key"
        );
        for ballot in &decision.ballots {
            let winner = ballot
                .tally
                .winner()
                .expect("plurality with ties to the lowest id decides");
            assert!(decision.is_accepted(winner));
            assert_eq!(ballot.votes + ballot.cancelled, 30);
        }
        let memory = hive.memory().load();
        assert_eq!(memory.log.len(), decision.accepted.len());
    }
}

#[tokio::test(start_paused = true)]
async fn highest_priority_first_proposed_and_reject_all() {
    let build = |resolution| {
        let hive = Hive::builder(Ledger::default())
            .resolution(resolution)
            .build()
            .unwrap();
        hive.spawn(Writer::new(1, 7).proposing(Behaviour::Slow(Duration::from_millis(10))));
        hive.spawn(
            Writer::new(2, 7)
                .with_priority(Priority::High)
                .proposing(Behaviour::Slow(Duration::from_millis(20))),
        );
        hive.spawn(Writer::new(3, 7));
        hive.spawn(Writer::new(4, 8));
        hive
    };
    let decision = build(ResolutionStrategy::HighestPriority)
        .decide()
        .await
        .unwrap();
    assert!(decision.is_accepted(ProposalId(2)) && decision.is_accepted(ProposalId(4)));
    assert_eq!(
        decision.rejection(ProposalId(1)),
        Some(&RejectReason::ConflictWith {
            winner: ProposalId(2)
        })
    );
    let decision = build(ResolutionStrategy::FirstProposed)
        .decide()
        .await
        .unwrap();
    assert!(decision.is_accepted(ProposalId(3)) && decision.is_accepted(ProposalId(4)));
    assert_eq!(
        decision.rejection(ProposalId(2)),
        Some(&RejectReason::ConflictWith {
            winner: ProposalId(3)
        })
    );
    let decision = build(ResolutionStrategy::RejectAll).decide().await.unwrap();
    assert_eq!(decision.accepted, [ProposalId(4)]);
    for loser in 1..=3 {
        assert_eq!(
            decision.rejection(ProposalId(loser)),
            Some(&RejectReason::Contested)
        );
    }
}

/// Reads one key and writes another.
struct ReadThenWrite {
    id: u64,
    read: u64,
    write: Option<u64>,
}

impl Agent<Ledger> for ReadThenWrite {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _: &Snapshot<Ledger>,
    ) -> Result<Option<LedgerProposal>, AgentError> {
        let mut proposal = add(self.id, self.write.unwrap_or(1000 + self.id), 1).reads([self.read]);
        if self.write.is_none() {
            proposal.writes.clear();
        }
        Ok(Some(proposal))
    }
}

#[tokio::test(start_paused = true)]
async fn a_winning_reader_keeps_the_other_readers() {
    let hive = Hive::builder(Ledger::default())
        .resolution(ResolutionStrategy::HighestPriority)
        .build()
        .unwrap();
    // 1 and 2 only read key 5; 3 writes it. Equal priority: the lowest id (a reader) wins, so the
    // writer is rejected and the other reader stays.
    hive.spawn(ReadThenWrite {
        id: 1,
        read: 5,
        write: None,
    });
    hive.spawn(ReadThenWrite {
        id: 2,
        read: 5,
        write: None,
    });
    hive.spawn(Writer::new(3, 5));
    let decision = hive.decide().await.unwrap();
    assert!(decision.is_accepted(ProposalId(1)) && decision.is_accepted(ProposalId(2)));
    assert_eq!(
        decision.rejection(ProposalId(3)),
        Some(&RejectReason::ConflictWith {
            winner: ProposalId(1)
        })
    );
}

#[tokio::test(start_paused = true)]
async fn duplicate_proposal_ids_are_dropped_and_reported_naming_both_agents() {
    let hive = hive();
    let holder = hive.spawn(Writer::new(1, 1));
    let duplicate =
        hive.spawn(Writer::new(1, 2).proposing(Behaviour::Slow(Duration::from_millis(1))));
    let decision = hive.decide().await.unwrap();
    assert_eq!(decision.accepted, [ProposalId(1)]);
    assert_eq!(decision.failures.len(), 1);
    assert_eq!(decision.failures[0].agent, duplicate);
    assert_eq!(
        decision.failures[0].kind,
        FailureKind::DuplicateProposal {
            id: ProposalId(1),
            holder
        }
    );
}

#[tokio::test(start_paused = true)]
async fn max_in_flight_bounds_concurrent_calls() {
    struct Gauge {
        id: u64,
        current: Arc<AtomicUsize>,
        peak: Arc<AtomicUsize>,
    }
    impl Agent<Ledger> for Gauge {
        async fn propose(
            &self,
            _ctx: &AgentContext,
            _: &Snapshot<Ledger>,
        ) -> Result<Option<LedgerProposal>, AgentError> {
            let now = self.current.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(10)).await;
            self.current.fetch_sub(1, Ordering::SeqCst);
            Ok(Some(add(self.id, self.id, 1)))
        }
    }
    let hive = Hive::builder(Ledger::default())
        .max_in_flight(ConcurrencyLimit::new(3).unwrap())
        .build()
        .unwrap();
    let (current, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    hive.spawn_many(10, |index| Gauge {
        id: index as u64,
        current: Arc::clone(&current),
        peak: Arc::clone(&peak),
    });
    let decision = hive.decide().await.unwrap();
    assert_eq!(decision.accepted.len(), 10);
    assert_eq!(peak.load(Ordering::SeqCst), 3);
    // Four waves of at most three 10 ms calls.
    assert_eq!(decision.elapsed, Duration::from_millis(40));
}

#[tokio::test(start_paused = true)]
async fn only_the_voting_roles_vote() {
    let hive = Hive::builder(Ledger::default())
        .policy(ConsensusPolicy::majority())
        .voting_roles([Role::Validator])
        .build()
        .unwrap();
    // The two proposers would back 1, but only the validator votes, for 2.
    hive.spawn(Writer::new(1, 7).choosing(Choice::For(1)));
    hive.spawn(Writer::new(2, 7).choosing(Choice::For(1)));
    let validator = hive.spawn(
        Writer::silent()
            .with_role(Role::Validator)
            .choosing(Choice::For(2)),
    );
    assert_eq!(hive.agents_with_role(&Role::Validator), [validator]);
    assert_eq!(hive.agents_with_role(&Role::Analyzer).len(), 2);
    let decision = hive.decide().await.unwrap();
    assert_eq!(decision.accepted, [ProposalId(2)]);
    assert_eq!(decision.ballots[0].votes, 1);
}

#[tokio::test(start_paused = true)]
async fn weighted_votes_follow_the_weights() {
    let hive = hive_with(ConsensusPolicy::majority());
    hive.spawn_weighted(Writer::new(1, 7).choosing(Choice::For(1)), 5.0)
        .unwrap();
    hive.spawn(Writer::new(2, 7).choosing(Choice::For(2)));
    hive.spawn(Writer::silent().choosing(Choice::For(2)));
    let decision = hive.decide().await.unwrap();
    assert_eq!(decision.accepted, [ProposalId(1)]);
}

#[tokio::test]
async fn a_hive_without_agents_is_an_error() {
    let hive = hive();
    assert_eq!(hive.decide().await.unwrap_err(), HiveError::NoAgents);
    let id = hive.spawn(Writer::silent());
    assert!(hive.remove(id));
    assert!(!hive.remove(id));
    assert_eq!(hive.decide().await.unwrap_err(), HiveError::NoAgents);
}

#[test]
fn deciding_outside_a_runtime_uses_the_global_runtime() {
    let hive = hive();
    hive.spawn(Writer::new(1, 7));
    hive.spawn(Writer::new(2, 7));
    // Another executor: the round's timers and calls run on hivekit's global runtime.
    let decision = futures::executor::block_on(hive.decide()).unwrap();
    assert_eq!(decision.accepted.len(), 1);
    assert_eq!(decision.ballots.len(), 1);
    assert_eq!(hive.memory().version(), 1);
}

#[test]
fn invalid_configuration_is_rejected_when_built() {
    let bad_policy = ConsensusPolicy {
        threshold: Threshold::Supermajority { num: 3, den: 0 },
        ..ConsensusPolicy::default()
    };
    assert_eq!(
        Hive::builder(Ledger::default())
            .policy(bad_policy)
            .build()
            .unwrap_err(),
        HiveError::Policy(PolicyError::ZeroDenominator { num: 3, den: 0 })
    );
    let nan_quorum = ConsensusPolicy {
        quorum: f64::NAN,
        ..ConsensusPolicy::default()
    };
    assert!(matches!(
        Hive::builder(Ledger::default()).policy(nan_quorum).build(),
        Err(HiveError::Policy(PolicyError::QuorumOutOfRange { .. }))
    ));
    assert_eq!(
        Hive::builder(Ledger::default())
            .agent_timeout(Duration::ZERO)
            .build()
            .unwrap_err(),
        HiveError::ZeroTimeout
    );
}

#[test]
fn invalid_weights_are_rejected() {
    let hive = hive();
    for weight in [f64::NAN, f64::INFINITY, -1.0] {
        let error = hive.spawn_weighted(Writer::silent(), weight).unwrap_err();
        assert!(matches!(error, HiveError::InvalidWeight { .. }));
    }
    assert!(hive.is_empty());
    let id = hive.spawn_weighted(Writer::silent(), 0.0).unwrap();
    assert!(matches!(
        hive.set_weight(id, f64::NAN),
        Err(HiveError::InvalidWeight { .. })
    ));
    hive.set_weight(id, 2.5).unwrap();
    assert_eq!(hive.weight(id), Some(2.5));
    assert_eq!(
        hive.set_weight(hivekit_hive::AgentId(99), 1.0),
        Err(HiveError::UnknownAgent {
            agent: hivekit_hive::AgentId(99)
        })
    );
}

#[tokio::test(start_paused = true)]
async fn a_policy_the_agents_can_never_satisfy_rejects_without_waiting() {
    // Unanimity among agents that disagree: settled (undecided) as soon as the quorum is met and
    // two votes differ, so the slow voters are never waited for.
    let hive = hive_with(ConsensusPolicy::new(Threshold::Unanimous, 0.4).unwrap());
    hive.spawn(Writer::new(1, 7).choosing(Choice::For(1)));
    hive.spawn(Writer::new(2, 7).choosing(Choice::For(2)));
    for _ in 0..3 {
        hive.spawn(
            Writer::silent()
                .voting(Behaviour::Slow(Duration::from_secs(4)))
                .choosing(Choice::For(1)),
        );
    }
    let decision = hive.decide().await.unwrap();
    assert!(decision.accepted.is_empty());
    assert_eq!(
        decision.rejection(ProposalId(1)),
        Some(&RejectReason::Undecided)
    );
    assert_eq!(
        decision.rejection(ProposalId(2)),
        Some(&RejectReason::Undecided)
    );
    assert_eq!(decision.ballots[0].tally, Tally::Undecided);
    assert_eq!(decision.ballots[0].cancelled, 3);
    assert_eq!(decision.elapsed, Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn weightless_voters_cannot_make_a_quorum() {
    let hive = hive();
    hive.spawn_weighted(Writer::new(1, 7), 0.0).unwrap();
    hive.spawn_weighted(Writer::new(2, 7), 0.0).unwrap();
    let decision = hive.decide().await.unwrap();
    assert!(decision.accepted.is_empty());
    assert_eq!(
        decision.rejection(ProposalId(1)),
        Some(&RejectReason::NoQuorum)
    );
    assert_eq!(
        decision.rejection(ProposalId(2)),
        Some(&RejectReason::NoQuorum)
    );
}

#[tokio::test(start_paused = true)]
async fn voters_still_running_are_cancelled_when_later_votes_settle_the_ballot() {
    // Regression: the hanging voters are asked first, so the ballot settles on votes that answer
    // at once while the hanging calls are in flight; the round must not wait for them.
    let hive = hive_with(ConsensusPolicy::majority());
    let (proposals, votes) = (Arc::default(), Arc::new(AtomicUsize::new(0)));
    for _ in 0..3 {
        hive.spawn(
            Writer::silent()
                .voting(Behaviour::Never)
                .counting(&proposals, &votes),
        );
    }
    hive.spawn(Writer::new(1, 7).choosing(Choice::For(1)));
    hive.spawn(Writer::new(2, 7).choosing(Choice::For(1)));
    for _ in 0..5 {
        hive.spawn(Writer::silent().choosing(Choice::For(1)));
    }
    let decision = hive.decide().await.unwrap();
    assert_eq!(decision.accepted, [ProposalId(1)]);
    assert_eq!(decision.elapsed, Duration::ZERO);
    // Six of ten settle it: the three hanging calls and the tenth voter are not waited for.
    assert_eq!(decision.ballots[0].votes, 6);
    assert_eq!(decision.ballots[0].cancelled, 4);
    assert!(decision.failures.is_empty());
    assert_eq!(votes.load(Ordering::SeqCst), 0);
}

/// Light voters' calls reuse one slot per voter when they answer at once; a call still pending
/// takes its slot along and a panicking call drops it. Over several contests, every voter must
/// still be counted exactly once per ballot, whatever happened to its earlier calls.
#[tokio::test(start_paused = true)]
async fn voters_pending_or_panicking_in_one_contest_vote_correctly_in_the_next() {
    let hive = hive_with(ConsensusPolicy::majority());
    let (proposals, votes) = (Arc::default(), Arc::new(AtomicUsize::new(0)));
    // Three contests (keys 1, 2, 3), each between a high and a normal priority proposal.
    for key in 1..=3 {
        hive.spawn(
            Writer::new(key * 10, key)
                .with_priority(Priority::High)
                .voting(Behaviour::Slow(Duration::from_secs(1)))
                .counting(&proposals, &votes),
        );
        // Votes for its own proposal and abstains elsewhere, so no ballot settles early.
        hive.spawn(
            Writer::new(key * 10 + 1, key)
                .choosing(Choice::For(key * 10 + 1))
                .counting(&proposals, &votes),
        );
    }
    let panicking = hive.spawn(Writer::silent().voting(Behaviour::Panic));
    let decision = hive.decide().await.unwrap();
    assert_eq!(
        decision.accepted,
        [ProposalId(10), ProposalId(20), ProposalId(30)]
    );
    assert_eq!(decision.ballots.len(), 3);
    for ballot in &decision.ballots {
        // Six voters answer (three of them after a second), one panics: nothing is cancelled.
        assert_eq!((ballot.votes, ballot.cancelled), (6, 0), "{ballot:?}");
    }
    // Every call of the counting voters ran to its end exactly once.
    assert_eq!(votes.load(Ordering::SeqCst), 18);
    assert_eq!(decision.failures.len(), 3);
    assert!(decision
        .failures
        .iter()
        .all(|failure| failure.agent == panicking
            && failure.phase == Phase::Vote
            && failure.kind
                == FailureKind::Panicked {
                    message: "agent exploded".into()
                }));
    assert_eq!(decision.elapsed, Duration::from_secs(1));
}

/// As above over twelve contests: from 8 (contest, voter) pairs a voter, light voters start their
/// calls in slots of their own, below (the test above) in one block for the whole round; both
/// must count every voter once per ballot whatever its earlier calls did.
#[tokio::test(start_paused = true)]
async fn voters_pending_or_panicking_over_many_contests_are_counted_once_per_ballot() {
    const CONTESTS: u64 = 12;
    let hive = hive_with(ConsensusPolicy::majority());
    let (proposals, votes) = (Arc::default(), Arc::new(AtomicUsize::new(0)));
    for key in 1..=CONTESTS {
        hive.spawn(
            Writer::new(key * 10, key)
                .with_priority(Priority::High)
                .voting(Behaviour::Slow(Duration::from_secs(1)))
                .counting(&proposals, &votes),
        );
        hive.spawn(
            Writer::new(key * 10 + 1, key)
                .choosing(Choice::For(key * 10 + 1))
                .counting(&proposals, &votes),
        );
    }
    let panicking = hive.spawn(Writer::silent().voting(Behaviour::Panic));
    let decision = hive.decide().await.unwrap();
    let expected: Vec<ProposalId> = (1..=CONTESTS).map(|key| ProposalId(key * 10)).collect();
    assert_eq!(decision.accepted, expected);
    assert_eq!(decision.ballots.len(), CONTESTS as usize);
    let mut counted = 0;
    for ballot in &decision.ballots {
        // Every counting voter is either counted or no longer waited for; the panicking one
        // failed.
        assert_eq!(
            ballot.votes + ballot.cancelled,
            2 * CONTESTS as usize,
            "{ballot:?}"
        );
        counted += ballot.votes;
    }
    // Each vote counted is a call that ran to its end, once.
    assert_eq!(votes.load(Ordering::SeqCst), counted);
    assert_eq!(decision.failures.len(), CONTESTS as usize);
    assert!(decision
        .failures
        .iter()
        .all(|failure| failure.agent == panicking
            && failure.phase == Phase::Vote
            && failure.kind
                == FailureKind::Panicked {
                    message: "agent exploded".into()
                }));
}

/// Names by key: a state whose keys own memory (the ballot record's key is moved out of the
/// round's contest rather than copied).
#[derive(Debug, Clone, Default)]
struct Names {
    names: std::collections::BTreeMap<String, u64>,
}

impl hivekit_hive::State for Names {
    type Key = String;
    type Change = (String, u64);

    fn apply(&mut self, (key, value): &(String, u64)) {
        self.names.insert(key.clone(), *value);
    }
}

/// Proposes `value` for `key`; votes for the lowest candidate id.
struct Namer {
    key: &'static str,
    value: u64,
}

impl Agent<Names> for Namer {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Names>,
    ) -> Result<Option<hivekit_hive::Proposal<String, (String, u64)>>, AgentError> {
        Ok(Some(
            hivekit_hive::Proposal::new(ProposalId(self.value), (self.key.to_owned(), self.value))
                .writes([self.key.to_owned()]),
        ))
    }

    async fn vote(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Names>,
        contest: &hivekit_hive::Contest<Names>,
    ) -> Result<hivekit_hive::Vote, AgentError> {
        let lowest = contest
            .candidates
            .iter()
            .map(|candidate| candidate.id)
            .min();
        Ok(lowest.map_or(hivekit_hive::Vote::Abstain, hivekit_hive::Vote::For))
    }
}

#[tokio::test(start_paused = true)]
async fn a_ballot_on_a_key_that_owns_memory_records_its_key_round_after_round() {
    let hive = Hive::builder(Names::default())
        .agent_timeout(TIMEOUT)
        .build()
        .unwrap();
    for (key, value) in [
        ("alpha", 1),
        ("alpha", 2),
        ("beta", 3),
        ("beta", 4),
        ("gamma", 5),
    ] {
        hive.spawn(Namer { key, value });
    }
    for _ in 0..2 {
        let decision = hive.decide().await.unwrap();
        // Each record's key is its own contest's.
        let mut ballots: Vec<(&str, Vec<ProposalId>)> = decision
            .ballots
            .iter()
            .map(|ballot| (ballot.key.as_str(), ballot.candidates.clone()))
            .collect();
        ballots.sort_unstable();
        assert_eq!(
            ballots,
            [
                ("alpha", vec![ProposalId(1), ProposalId(2)]),
                ("beta", vec![ProposalId(3), ProposalId(4)])
            ]
        );
        let mut accepted = decision.accepted.clone();
        accepted.sort();
        assert_eq!(accepted, [ProposalId(1), ProposalId(3), ProposalId(5)]);
    }
    let names = &hive.memory().load().names;
    assert_eq!(names["alpha"], 1);
    assert_eq!(names["beta"], 3);
}
