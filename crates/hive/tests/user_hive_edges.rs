//! What a user coming from kameo or ractor tries first with a hive: an agent that panics in every
//! phase, a round whose options sit at their edges (`Duration::MAX`, a token cancelled before the
//! round starts), a round future dropped half way, every agent removed, a state whose `apply`
//! panics, and ballots where nobody votes for anyone. Every wait is bounded.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, AgentId, Ballot, BallotError, CancellationToken,
    ConsensusPolicy, Contest, DecideOptions, Electorate, FailureKind, Hive, HiveError, Phase,
    ProposalId, ProposalOf, Snapshot, State, Tally, Threshold, Vote,
};

const LIMIT: Duration = Duration::from_secs(5);

/// A sum of changes; `apply` panics on the change 666, as buggy user code would.
#[derive(Clone, Default, Debug)]
struct Sum(u64);

impl State for Sum {
    type Key = &'static str;
    type Change = u64;
    fn apply(&mut self, change: &u64) {
        assert_ne!(*change, 666, "apply refused the change");
        self.0 += change;
    }
}

/// Proposes `change` on `key`; votes for the preferred candidate.
struct Adder {
    key: &'static str,
    change: u64,
}

impl Agent<Sum> for Adder {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Sum>,
    ) -> Result<Option<ProposalOf<Sum>>, AgentError> {
        Ok(Some(ctx.proposal(self.change).writes([self.key])))
    }
}

/// Panics in `propose` and in `vote`.
struct AlwaysPanics;

impl Agent<Sum> for AlwaysPanics {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Sum>,
    ) -> Result<Option<ProposalOf<Sum>>, AgentError> {
        panic!("propose exploded")
    }

    async fn vote(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Sum>,
        _contest: &Contest<Sum>,
    ) -> Result<Vote, AgentError> {
        panic!("vote exploded")
    }
}

/// Waits in `propose` until released.
struct Waiter {
    started: Arc<AtomicBool>,
}

impl Agent<Sum> for Waiter {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Sum>,
    ) -> Result<Option<ProposalOf<Sum>>, AgentError> {
        self.started.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok(Some(ctx.proposal(1).writes(["w"])))
    }
}

fn hive() -> Hive<Sum> {
    Hive::builder(Sum::default())
        .policy(ConsensusPolicy::majority())
        .agent_timeout(LIMIT)
        .build()
        .expect("valid hive")
}

async fn bounded<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .expect("the round must not hang")
}

#[tokio::test(start_paused = true)]
async fn an_agent_that_panics_in_every_phase_is_recorded_per_phase_and_the_round_commits() {
    let hive = hive();
    let panicking = hive.spawn(AlwaysPanics);
    hive.spawn(Adder {
        key: "k",
        change: 1,
    });
    hive.spawn(Adder {
        key: "k",
        change: 2,
    });
    hive.spawn(Adder {
        key: "k",
        change: 4,
    });
    let decision = bounded(hive.decide()).await.expect("the round goes on");
    let phases: Vec<Phase> = decision
        .failures
        .iter()
        .filter(|failure| failure.agent == panicking)
        .map(|failure| failure.phase)
        .collect();
    assert!(phases.contains(&Phase::Propose), "{:?}", decision.failures);
    assert!(phases.contains(&Phase::Vote), "{:?}", decision.failures);
    assert!(decision
        .failures
        .iter()
        .all(|failure| failure.agent == panicking));
    assert!(decision
        .failures
        .iter()
        .all(|failure| matches!(&failure.kind, FailureKind::Panicked { message } if message.contains("exploded"))));
    assert_eq!(decision.accepted.len(), 1, "{decision:?}");
    assert_eq!(hive.memory().version(), 1);
    // The panicking agent stays (no supervision) and panics again next round without harm.
    let again = bounded(hive.decide()).await.expect("second round");
    assert_eq!(again.round, 2);
    assert_eq!(hive.memory().version(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_round_deadline_of_duration_max_means_no_deadline() {
    let hive = hive();
    hive.spawn(Adder {
        key: "a",
        change: 3,
    });
    let decision = bounded(hive.decide_with(DecideOptions::default().with_deadline(Duration::MAX)))
        .await
        .expect("Duration::MAX is no deadline, not an overflow");
    assert_eq!(decision.accepted.len(), 1);
    assert_eq!(hive.memory().load().0, 3);
}

#[tokio::test(start_paused = true)]
async fn a_hive_built_with_an_agent_timeout_of_duration_max_decides() {
    let hive = Hive::builder(Sum::default())
        .agent_timeout(Duration::MAX)
        .build()
        .expect("Duration::MAX is a valid timeout");
    hive.spawn(Adder {
        key: "a",
        change: 5,
    });
    let decision = bounded(hive.decide()).await.expect("decides");
    assert_eq!(decision.accepted.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_round_whose_token_is_cancelled_before_it_starts_commits_nothing() {
    let hive = hive();
    hive.spawn(Adder {
        key: "a",
        change: 3,
    });
    let cancel = CancellationToken::new();
    cancel.cancel();
    let outcome = bounded(hive.decide_with(DecideOptions::default().with_cancel(cancel))).await;
    assert!(
        matches!(outcome, Err(HiveError::Cancelled { .. })),
        "{outcome:?}"
    );
    assert_eq!(hive.memory().version(), 0);
    assert_eq!(hive.memory().load().0, 0);
    let next = bounded(hive.decide())
        .await
        .expect("the hive is still usable");
    assert_eq!(next.accepted.len(), 1);
    assert_eq!(hive.memory().load().0, 3);
}

#[tokio::test(start_paused = true)]
async fn dropping_a_round_half_way_commits_nothing_and_the_next_round_decides() {
    let hive = hive();
    let started = Arc::new(AtomicBool::new(false));
    hive.spawn(Waiter {
        started: started.clone(),
    });
    let dropped = tokio::time::timeout(Duration::from_millis(10), hive.decide()).await;
    assert!(
        dropped.is_err(),
        "the round was still waiting for the agent"
    );
    assert!(started.load(Ordering::SeqCst));
    assert_eq!(hive.memory().version(), 0);
    let decision = bounded(hive.decide()).await.expect("decides");
    assert_eq!(decision.accepted.len(), 1);
    assert_eq!(hive.memory().version(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_hive_whose_agents_were_all_removed_is_a_typed_error() {
    let hive = hive();
    let ids: Vec<AgentId> = hive.spawn_many(3, |_| Adder {
        key: "a",
        change: 1,
    });
    for id in &ids {
        assert!(hive.remove(*id));
    }
    assert!(!hive.remove(ids[0]), "removing twice says it was not there");
    assert!(hive.is_empty());
    assert_eq!(
        bounded(hive.decide()).await.unwrap_err(),
        HiveError::NoAgents
    );
}

#[tokio::test(start_paused = true)]
async fn removing_an_agent_while_its_round_waits_for_it_ends_the_round() {
    let hive = hive();
    let started = Arc::new(AtomicBool::new(false));
    let waiter = hive.spawn(Waiter {
        started: started.clone(),
    });
    hive.spawn(Adder {
        key: "a",
        change: 1,
    });
    let remover = async {
        while !started.load(Ordering::SeqCst) {
            tokio::task::yield_now().await;
        }
        assert!(hive.remove(waiter));
    };
    let (decision, ()) = bounded(async { tokio::join!(hive.decide(), remover) }).await;
    let decision = decision.expect("the round ends");
    assert!(decision.accepted.len() <= 2);
    assert!(!hive.contains(waiter));
    let next = bounded(hive.decide())
        .await
        .expect("the next round decides");
    assert_eq!(next.agents, 1);
}

#[test]
fn a_state_whose_apply_panics_leaves_the_memory_at_its_version_and_the_hive_usable() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let hive = hive();
    let bad = hive.spawn(Adder {
        key: "a",
        change: 666,
    });
    let first = {
        let hive = hive.clone();
        runtime.block_on(async move {
            tokio::time::timeout(
                LIMIT,
                tokio::spawn(async move { hive.decide().await.is_ok() }),
            )
            .await
        })
    };
    let first = first.expect("a panicking apply must not hang the round");
    // A panic in the user's own `apply` may surface as a panic or as an error, but nothing of the
    // round may be committed.
    assert!(!matches!(first, Ok(true)), "{first:?}");
    assert_eq!(hive.memory().version(), 0);
    assert!(hive.remove(bad));
    hive.spawn(Adder {
        key: "a",
        change: 2,
    });
    let next = runtime
        .block_on(async { tokio::time::timeout(LIMIT, hive.decide()).await })
        .expect("no hang")
        .expect("the hive still decides");
    assert_eq!(next.accepted.len(), 1);
    assert_eq!(hive.memory().load().0, 2);
    assert_eq!(hive.memory().version(), 1);
}

#[test]
fn a_ballot_where_everyone_abstains_decides_nothing_and_is_settled() {
    let electorate = Electorate::equal((0..3).map(AgentId)).expect("electorate");
    let mut ballot = Ballot::new(
        ConsensusPolicy::majority(),
        electorate,
        [ProposalId(1), ProposalId(2)],
    )
    .expect("ballot");
    for voter in 0..3 {
        assert_eq!(ballot.cast(AgentId(voter), Vote::Abstain), Ok(None));
    }
    assert_eq!(ballot.tally().winner(), None);
    assert!(!matches!(ballot.tally(), Tally::Decided { .. }));
    assert!(ballot.is_settled());
    assert_eq!(ballot.votes_cast(), 3);
}

#[test]
fn an_empty_electorate_and_an_empty_ballot_are_typed_errors() {
    assert_eq!(
        Electorate::equal(std::iter::empty()).unwrap_err(),
        BallotError::EmptyElectorate
    );
    let electorate = Electorate::equal([AgentId(1)]).expect("electorate");
    assert_eq!(
        Ballot::new(ConsensusPolicy::majority(), electorate.clone(), []).unwrap_err(),
        BallotError::NoCandidates
    );
    assert_eq!(
        Ballot::new(
            ConsensusPolicy::majority(),
            electorate,
            [ProposalId(3), ProposalId(3)]
        )
        .unwrap_err(),
        BallotError::DuplicateCandidate {
            candidate: ProposalId(3)
        }
    );
}

#[test]
fn a_single_voter_ballot_decides_on_its_one_vote_and_a_revote_replaces_it() {
    let electorate = Electorate::equal([AgentId(7)]).expect("electorate");
    let policy = ConsensusPolicy::new(Threshold::Unanimous, 1.0).expect("policy");
    let mut ballot =
        Ballot::new(policy, electorate, [ProposalId(1), ProposalId(2)]).expect("ballot");
    assert!(
        matches!(ballot.tally(), Tally::NoQuorum { .. }),
        "{:?}",
        ballot.tally()
    );
    assert_eq!(ballot.cast(AgentId(7), Vote::For(ProposalId(1))), Ok(None));
    assert_eq!(ballot.tally().winner(), Some(ProposalId(1)));
    assert_eq!(
        ballot.cast(AgentId(7), Vote::For(ProposalId(2))),
        Ok(Some(Vote::For(ProposalId(1))))
    );
    assert_eq!(ballot.tally().winner(), Some(ProposalId(2)));
    assert_eq!(ballot.votes_cast(), 1);
    assert_eq!(ballot.support(ProposalId(1)), Some(0.0));
    assert_eq!(
        ballot.cast(AgentId(8), Vote::For(ProposalId(1))),
        Err(BallotError::NotAVoter { voter: AgentId(8) })
    );
}

#[tokio::test(start_paused = true)]
async fn one_agent_spawned_many_times_gets_distinct_ids_and_conflicts_with_itself() {
    let hive = hive();
    let calls = Arc::new(AtomicUsize::new(0));
    let ids = hive.spawn_many(4, |_| Adder {
        key: "same",
        change: 1,
    });
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 4);
    let decision = bounded(hive.decide()).await.expect("decides");
    calls.fetch_add(decision.proposals, Ordering::SeqCst);
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert_eq!(decision.accepted.len(), 1, "one write to `same` wins");
    assert_eq!(decision.rejected.len(), 3);
    assert_eq!(hive.memory().load().0, 1);
}
