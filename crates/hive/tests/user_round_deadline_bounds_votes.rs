//! `DecideOptions::deadline` bounds the whole round's agent calls from the round's start: the vote
//! phase does not get a fresh allowance, and the agents' contexts say so.

use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, Contest, DecideOptions, FailureKind, Hive, Phase, ProposalOf,
    ResourceCost, Snapshot, State, Vote,
};
use parking_lot::Mutex;
use tokio::time::Instant;

#[derive(Clone, Default, Debug)]
struct Sum(u64);

impl State for Sum {
    type Key = u64;
    type Change = u64;
    fn apply(&mut self, change: &u64) {
        self.0 += change;
    }
}

/// Takes 60 ms to propose on key 0, then never answers a vote; records its contexts' deadlines.
struct Slow {
    heavy: bool,
    deadlines: Arc<Mutex<Vec<(Phase, Instant)>>>,
}

impl Agent<Sum> for Slow {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _: &Snapshot<Sum>,
    ) -> Result<Option<ProposalOf<Sum>>, AgentError> {
        self.deadlines.lock().push((Phase::Propose, ctx.deadline()));
        tokio::time::sleep(Duration::from_millis(60)).await;
        Ok(Some(ctx.proposal(1).writes([0])))
    }

    async fn vote(
        &self,
        ctx: &AgentContext,
        _: &Snapshot<Sum>,
        _: &Contest<Sum>,
    ) -> Result<Vote, AgentError> {
        self.deadlines.lock().push((Phase::Vote, ctx.deadline()));
        std::future::pending().await
    }

    fn cost(&self) -> ResourceCost {
        if self.heavy {
            ResourceCost::Moderate
        } else {
            ResourceCost::Light
        }
    }
}

async fn run(heavy: bool) {
    let hive = Hive::builder(Sum::default())
        .agent_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let deadlines = Arc::new(Mutex::new(Vec::new()));
    for _ in 0..2 {
        hive.spawn(Slow {
            heavy,
            deadlines: deadlines.clone(),
        });
    }
    let start = Instant::now();
    let decision = tokio::time::timeout(
        Duration::from_secs(5),
        hive.decide_with(DecideOptions::default().with_deadline(Duration::from_millis(100))),
    )
    .await
    .expect("the round ends by its deadline")
    .unwrap();
    let end = start + Duration::from_millis(100);
    assert!(
        decision.elapsed <= Duration::from_millis(101),
        "the round took {:?}: {decision:#}",
        decision.elapsed
    );
    assert_eq!(decision.failures.len(), 2, "{decision:#}");
    for failure in &decision.failures {
        assert_eq!(
            (failure.phase, &failure.kind),
            (Phase::Vote, &FailureKind::TimedOut)
        );
    }
    let deadlines = deadlines.lock().clone();
    assert_eq!(deadlines.len(), 4);
    for (phase, deadline) in deadlines {
        assert!(
            deadline <= end,
            "a {phase} context's deadline is {:?} past the round's",
            deadline - end
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_round_deadline_bounds_the_vote_phase_too() {
    run(false).await;
}

#[tokio::test(start_paused = true)]
async fn a_round_deadline_bounds_a_heavy_agents_vote_too() {
    run(true).await;
}
