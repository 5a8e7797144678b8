//! A heavy agent that computes past its deadline in one poll (it holds its worker, so its task
//! never sees its own timer) is timed out by the round, which settles at its deadline with the
//! answers it has; a late answer is not accepted (qa5's case: a round with a 150 ms deadline took
//! as long as the agent, 400 ms, and accepted its answer).

mod support;

use std::time::{Duration, Instant};

use hivekit_hive::{
    Agent, AgentContext, AgentError, DecideOptions, FailureKind, Hive, ProposalOf, ResourceCost,
    Snapshot,
};
use support::Count;

/// CPU-bound work that holds its worker for 800 ms in one poll.
struct Busy;

impl Agent<Count> for Busy {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Count>,
    ) -> Result<Option<ProposalOf<Count>>, AgentError> {
        let until = Instant::now() + Duration::from_millis(800);
        let mut work = 0_u64;
        while Instant::now() < until {
            work = std::hint::black_box(work.wrapping_add(1));
        }
        Ok(Some(ctx.proposal(1).writes([1])))
    }

    fn cost(&self) -> ResourceCost {
        ResourceCost::Heavy
    }
}

/// Never answers.
struct Never;

impl Agent<Count> for Never {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Count>,
    ) -> Result<Option<ProposalOf<Count>>, AgentError> {
        std::future::pending().await
    }

    fn cost(&self) -> ResourceCost {
        ResourceCost::Heavy
    }
}

#[test]
fn a_cpu_bound_heavy_agent_cannot_hold_the_round_past_its_deadline() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let hive = Hive::builder(Count::default())
        .agent_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let busy = hive.spawn(Busy);
    hive.spawn(Never);
    let decision = runtime
        .block_on(
            hive.decide_with(DecideOptions::default().with_deadline(Duration::from_millis(150))),
        )
        .unwrap();
    assert!(
        // 150 ms and a margin for a loaded machine, well below the agent's 800 ms.
        decision.elapsed < Duration::from_millis(600),
        "the round took {:?} with a 150 ms deadline; accepted {:?}",
        decision.elapsed,
        decision.accepted
    );
    assert!(
        decision.accepted.is_empty(),
        "a late answer was accepted: {decision:?}"
    );
    assert!(decision
        .failures
        .iter()
        .any(|failure| failure.agent == busy && failure.kind == FailureKind::TimedOut));
}
