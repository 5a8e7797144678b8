//! What agents see of their call (`AgentContext`), hive-assigned proposal ids, and a round's own
//! deadline and cancellation (`decide_with`).

mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, AgentId, CancellationToken, Contest, DecideOptions,
    FailureKind, Hive, HiveError, Phase, ProposalId, ResourceCost, Snapshot, Vote,
};
use parking_lot::Mutex;
use support::{Add, Ledger, LedgerProposal};

const TIMEOUT: Duration = Duration::from_secs(5);

/// What one call showed its agent.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    phase: Phase,
    agent: AgentId,
    round: u64,
    proposal_id: ProposalId,
    deadline_in: Duration,
    own: Option<ProposalId>,
}

/// Proposes on key 1 under the hive-assigned id, votes for its own candidate, and records what its
/// context said.
struct Reporter {
    seen: Arc<Mutex<Vec<Seen>>>,
    heavy: bool,
}

impl Agent<Ledger> for Reporter {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _: &Snapshot<Ledger>,
    ) -> Result<Option<LedgerProposal>, AgentError> {
        self.seen.lock().push(Seen {
            phase: Phase::Propose,
            agent: ctx.agent(),
            round: ctx.round(),
            proposal_id: ctx.proposal_id(),
            deadline_in: ctx.remaining(),
            own: None,
        });
        let change = Add {
            id: ctx.proposal_id(),
            key: 1,
            delta: 1,
        };
        Ok(Some(ctx.proposal(change).writes([1])))
    }

    async fn vote(
        &self,
        ctx: &AgentContext,
        _: &Snapshot<Ledger>,
        contest: &Contest<Ledger>,
    ) -> Result<Vote, AgentError> {
        let own = ctx.own(contest).map(|candidate| candidate.id);
        assert!(contest
            .candidates
            .iter()
            .all(|candidate| ctx.is_own(candidate) == (Some(candidate.id) == own)));
        self.seen.lock().push(Seen {
            phase: Phase::Vote,
            agent: ctx.agent(),
            round: ctx.round(),
            proposal_id: ctx.proposal_id(),
            deadline_in: ctx.remaining(),
            own,
        });
        Ok(own.map_or(Vote::Abstain, Vote::For))
    }

    fn cost(&self) -> ResourceCost {
        support::cost(self.heavy)
    }
}

#[tokio::test(start_paused = true)]
async fn agents_see_their_own_id_the_round_their_deadline_and_their_own_candidate() {
    for heavy in [false, true] {
        let hive = Hive::builder(Ledger::default())
            .agent_timeout(TIMEOUT)
            .build()
            .unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let ids: Vec<AgentId> = (0..3)
            .map(|_| {
                hive.spawn(Reporter {
                    seen: Arc::clone(&seen),
                    heavy,
                })
            })
            .collect();
        for round in 1..=2 {
            let decision = hive.decide().await.unwrap();
            assert_eq!(decision.round, round);
            // Everyone votes for itself: a three-way tie on key 1.
            assert_eq!(decision.ballots.len(), 1);
            let seen = std::mem::take(&mut *seen.lock());
            assert_eq!(seen.len(), 6, "three proposals and three votes");
            for call in &seen {
                assert!(ids.contains(&call.agent));
                assert_eq!(call.round, round);
                assert_eq!(
                    call.deadline_in, TIMEOUT,
                    "paused clock: the whole timeout is left"
                );
            }
            let proposal_of = |agent: AgentId| {
                seen.iter()
                    .find(|call| call.phase == Phase::Propose && call.agent == agent)
                    .map(|call| call.proposal_id)
            };
            for vote in seen.iter().filter(|call| call.phase == Phase::Vote) {
                // The vote's context carries the same assigned id, and the contest shows it.
                assert_eq!(Some(vote.proposal_id), proposal_of(vote.agent));
                assert_eq!(vote.own, Some(vote.proposal_id));
            }
            for candidate in &decision.ballots[0].candidates {
                let proposer = decision.proposer(*candidate).unwrap();
                assert_eq!(proposal_of(proposer), Some(*candidate));
            }
        }
    }
}

#[tokio::test]
async fn hive_assigned_proposal_ids_are_unique_across_agents_and_rounds() {
    let hive = Hive::new(Ledger::default());
    let seen = Arc::new(Mutex::new(Vec::new()));
    for _ in 0..50 {
        hive.spawn(Reporter {
            seen: Arc::clone(&seen),
            heavy: false,
        });
    }
    let mut ids = HashSet::new();
    for _ in 0..3 {
        hive.decide().await.unwrap();
        for call in seen.lock().drain(..) {
            if call.phase == Phase::Propose {
                assert!(
                    ids.insert(call.proposal_id),
                    "{:?} reused",
                    call.proposal_id
                );
                // Never equal to an id an agent picks below 2^52, and exact as a JSON number.
                assert!((1 << 52..1 << 53).contains(&call.proposal_id.0));
            }
        }
    }
    assert_eq!(ids.len(), 150);
}

#[test]
fn a_context_made_outside_a_hive_is_usable_in_tests() {
    let ctx = AgentContext::new(AgentId(9), 4);
    assert_eq!((ctx.agent(), ctx.round()), (AgentId(9), 4));
    assert!(!ctx.is_cancelled());
    assert!(!ctx.cancellation().is_cancelled());
    assert!(ctx.remaining() > Duration::from_secs(1));
}

/// Hangs in `propose` until its round is cancelled, and says whether its context saw that.
struct Hanger {
    noticed: Arc<AtomicBool>,
}

impl Agent<Ledger> for Hanger {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _: &Snapshot<Ledger>,
    ) -> Result<Option<LedgerProposal>, AgentError> {
        // Work the agent started for the round (here a task) stops when the round no longer
        // wants the answer.
        let token = ctx.cancellation().clone();
        let noticed = Arc::clone(&self.noticed);
        tokio::spawn(async move {
            token.cancelled().await;
            noticed.store(true, Ordering::SeqCst);
        });
        std::future::pending().await
    }
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_round_commits_nothing_and_cancels_the_agents_token() {
    let hive = Hive::builder(Ledger::default())
        .agent_timeout(TIMEOUT)
        .build()
        .unwrap();
    hive.spawn(support::Writer::new(1, 1));
    let noticed = Arc::new(AtomicBool::new(false));
    hive.spawn(Hanger {
        noticed: Arc::clone(&noticed),
    });
    let cancel = CancellationToken::new();
    let round = hive.decide_with(DecideOptions::default().with_cancel(cancel.clone()));
    let canceller = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        cancel.cancel();
    };
    let (outcome, ()) = tokio::join!(round, canceller);
    assert_eq!(outcome.unwrap_err(), HiveError::Cancelled { round: 1 });
    assert_eq!(
        HiveError::Cancelled { round: 1 }.to_string(),
        "round 1 was cancelled before it committed"
    );
    assert_eq!(hive.memory().version(), 0);
    // Let the agent's task run.
    tokio::task::yield_now().await;
    assert!(noticed.load(Ordering::SeqCst));
    assert_eq!(hive.stats().commits, 0);
}

#[tokio::test(start_paused = true)]
async fn the_agents_token_is_cancelled_when_a_round_ends_normally() {
    let hive = Hive::builder(Ledger::default())
        .agent_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let noticed = Arc::new(AtomicBool::new(false));
    hive.spawn(Hanger {
        noticed: Arc::clone(&noticed),
    });
    let decision = hive.decide().await.unwrap();
    assert_eq!(decision.failures[0].kind, FailureKind::TimedOut);
    tokio::task::yield_now().await;
    assert!(noticed.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn a_round_deadline_cuts_calls_short_of_the_agent_timeout() {
    let hive = Hive::builder(Ledger::default())
        .agent_timeout(TIMEOUT)
        .build()
        .unwrap();
    hive.spawn(support::Writer::new(1, 1));
    let hung = hive.spawn(support::Writer::new(2, 2).proposing(support::Behaviour::Never));
    let deadline = Duration::from_millis(200);
    let decision = hive
        .decide_with(DecideOptions::default().with_deadline(deadline))
        .await
        .unwrap();
    assert_eq!(decision.accepted, [ProposalId(1)]);
    assert_eq!(decision.failures.len(), 1);
    assert_eq!(decision.failures[0].agent, hung);
    assert_eq!(decision.failures[0].kind, FailureKind::TimedOut);
    assert_eq!(decision.elapsed, deadline);
}
