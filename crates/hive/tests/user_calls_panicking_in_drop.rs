//! Agent calls whose future panics when it is dropped unfinished (a guard in the agent's code
//! that asserts on its way out), as the round drops a call it timed out or no longer waits for:
//! the round must not unwind. Light calls (polled by the round, kept in reused blocks) and heavy
//! ones (their own tasks), round after round. Every wait is bounded.

use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, Contest, Hive, ProposalOf, ResourceCost, Snapshot, State, Vote,
};

const BOUND: Duration = Duration::from_secs(10);

#[derive(Clone, Default, Debug)]
struct Count(u64);

impl State for Count {
    type Key = u64;
    type Change = u64;
    fn apply(&mut self, change: &u64) {
        self.0 += change;
    }
}

/// Panics when dropped, unless already unwinding.
struct ExplodesOnDrop;

impl Drop for ExplodesOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("guard exploded on drop");
        }
    }
}

/// Proposes 1 on key 7 at once and votes for the preferred candidate at once, or (`slow`) holds
/// the guard in calls that never end: a propose the timeout cuts, a vote the settled ballot drops.
struct Member {
    slow: bool,
    heavy: bool,
}

impl Agent<Count> for Member {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Count>,
    ) -> Result<Option<ProposalOf<Count>>, AgentError> {
        if self.slow {
            let _guard = ExplodesOnDrop;
            std::future::pending::<()>().await;
        }
        Ok(Some(ctx.proposal(1).writes([7])))
    }

    async fn vote(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Count>,
        contest: &Contest<Count>,
    ) -> Result<Vote, AgentError> {
        if self.slow {
            let _guard = ExplodesOnDrop;
            std::future::pending::<()>().await;
        }
        Ok(contest.preferred().map_or(Vote::Abstain, Vote::For))
    }

    fn cost(&self) -> ResourceCost {
        if self.heavy {
            ResourceCost::Heavy
        } else {
            ResourceCost::Light
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_whose_futures_panic_when_dropped_unfinished_do_not_unwind_the_round() {
    let hive = Hive::builder(Count::default())
        .agent_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    for _ in 0..6 {
        hive.spawn(Member {
            slow: false,
            heavy: false,
        });
    }
    for heavy in [false, true] {
        hive.spawn(Member { slow: true, heavy });
    }
    for round in 1..=3_u64 {
        let decision = tokio::spawn({
            let hive = hive.clone();
            async move { hive.decide().await }
        });
        let decision = tokio::time::timeout(BOUND, decision)
            .await
            .expect("the round ends")
            .expect("the round must not panic")
            .expect("the round decides");
        // One of the six quick proposals on key 7 wins; the slow ones timed out in propose.
        assert_eq!(decision.accepted.len(), 1, "{decision:?}");
        assert_eq!(decision.rejected.len(), 5);
        assert_eq!(hive.memory().load().0, round);
    }
}
