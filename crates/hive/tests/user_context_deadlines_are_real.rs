//! The deadline an agent's context shows is the one its call is held to (propose and vote, light and heavy), and dropping a round cancels its contexts.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, Contest, DecideOptions, FailureKind, Hive, Phase, ProposalOf,
    ResourceCost, Snapshot, Vote,
};
use support::{Add, Ledger};

const BOUND: Duration = Duration::from_secs(120);
const MARGIN: Duration = Duration::from_millis(1);

/// Proposes on key 1 (all such agents conflict) and works until just before (`late: false`) or
/// just after (`late: true`) the deadline its context shows, in the phase `slow_in`.
struct Edge {
    slow_in: Phase,
    late: bool,
    heavy: bool,
}

impl Edge {
    async fn work(&self, ctx: &AgentContext, phase: Phase) {
        if phase != self.slow_in {
            return;
        }
        let until = if self.late {
            ctx.deadline() + MARGIN
        } else {
            ctx.deadline() - MARGIN
        };
        tokio::time::sleep_until(until).await;
    }
}

impl Agent<Ledger> for Edge {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
    ) -> Result<Option<ProposalOf<Ledger>>, AgentError> {
        self.work(ctx, Phase::Propose).await;
        let id = ctx.proposal_id();
        Ok(Some(
            ctx.proposal(Add {
                id,
                key: 1,
                delta: 1,
            })
            .writes([1]),
        ))
    }

    async fn vote(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
        contest: &Contest<Ledger>,
    ) -> Result<Vote, AgentError> {
        self.work(ctx, Phase::Vote).await;
        Ok(Vote::For(contest.candidates[0].id))
    }

    fn cost(&self) -> ResourceCost {
        support::cost(self.heavy)
    }
}

async fn edge(phase: Phase, late: bool, heavy: bool, round_deadline: Option<Duration>) {
    let hive = Hive::builder(Ledger::default())
        .agent_timeout(Duration::from_secs(10))
        .policy(hivekit_hive::ConsensusPolicy::unanimous())
        .build()
        .unwrap();
    for _ in 0..3 {
        hive.spawn(Edge {
            slow_in: phase,
            late,
            heavy,
        });
    }
    let options = match round_deadline {
        Some(deadline) => DecideOptions::default().with_deadline(deadline),
        None => DecideOptions::default(),
    };
    let decision = tokio::time::timeout(BOUND, hive.decide_with(options))
        .await
        .expect("round hung")
        .unwrap();
    let case =
        format!("phase {phase:?}, late {late}, heavy {heavy}, round deadline {round_deadline:?}");
    let timeouts: Vec<_> = decision
        .failures
        .iter()
        .filter(|f| f.kind == FailureKind::TimedOut && f.phase == phase)
        .collect();
    if late && phase == Phase::Propose {
        assert_eq!(
            timeouts.len(),
            3,
            "{case}: calls that ran past the deadline their context showed did not time out: {decision}"
        );
    } else if late {
        // The first voter to time out settles the unanimous ballot; the others are not waited for.
        assert!(!timeouts.is_empty(), "{case}: {decision}");
        assert!(
            decision.ballots.iter().all(|b| b.votes == 0),
            "{case}: a vote given after the deadline its context showed was counted: {decision}"
        );
    } else {
        assert!(
            decision.failures.is_empty(),
            "{case}: calls that answered before the deadline their context showed failed: {decision}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn light_calls_are_held_to_the_deadline_their_context_shows() {
    for phase in [Phase::Propose, Phase::Vote] {
        for late in [false, true] {
            for deadline in [None, Some(Duration::from_secs(4))] {
                edge(phase, late, false, deadline).await;
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn heavy_calls_are_held_to_the_deadline_their_context_shows() {
    for phase in [Phase::Propose, Phase::Vote] {
        for late in [false, true] {
            for deadline in [None, Some(Duration::from_secs(4))] {
                edge(phase, late, true, deadline).await;
            }
        }
    }
}

/// Hangs while proposing; a watcher task records when its context is cancelled.
struct Watched {
    cancelled: Arc<AtomicBool>,
    heavy: bool,
}

impl Agent<Ledger> for Watched {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
    ) -> Result<Option<ProposalOf<Ledger>>, AgentError> {
        let token = ctx.cancellation().clone();
        let cancelled = Arc::clone(&self.cancelled);
        tokio::spawn(async move {
            token.cancelled().await;
            cancelled.store(true, Ordering::SeqCst);
        });
        std::future::pending().await
    }

    fn cost(&self) -> ResourceCost {
        support::cost(self.heavy)
    }
}

/// `decide`'s cancel safety: dropping the future abandons the round; the contexts' tokens are
/// "Cancelled ... when the round ends", so work an agent started can stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_round_cancels_its_agents_contexts() {
    for heavy in [false, true] {
        let cancelled = Arc::new(AtomicBool::new(false));
        let hive = Hive::builder(Ledger::default()).build().unwrap();
        hive.spawn(Watched {
            cancelled: Arc::clone(&cancelled),
            heavy,
        });
        // Drop the round once its agent is hanging (the watcher task exists once `propose` ran).
        let outcome = tokio::time::timeout(Duration::from_millis(200), hive.decide()).await;
        assert!(outcome.is_err(), "the round cannot finish");
        tokio::time::timeout(Duration::from_secs(10), async {
            while !cancelled.load(Ordering::SeqCst) {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap_or_else(|_| {
            panic!("heavy={heavy}: the dropped round's context was never cancelled")
        });
        assert_eq!(hive.memory().version(), 0);
    }
}
