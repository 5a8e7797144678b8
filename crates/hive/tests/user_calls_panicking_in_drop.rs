//! Agent calls whose future panics when it is dropped unfinished (a guard in the agent's code
//! that asserts on its way out), as the round drops a call it timed out or no longer waits for:
//! the round must not unwind. Light calls (polled by the round, kept in reused blocks) and heavy
//! ones (their own tasks), round after round. Every wait is bounded.

mod support;

use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, Contest, Hive, ProposalOf, ResourceCost, Snapshot, Vote,
};
use support::Count;

const BOUND: Duration = Duration::from_secs(10);

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

// The round cancelled by its token, or dropped half way (qa5's case: the calls' futures were
// dropped unguarded there and the panic unwound out of decide_with).
fn hive_with_slow_members() -> Hive<Count> {
    let hive = Hive::builder(Count::default())
        .agent_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    hive.spawn(Member {
        slow: false,
        heavy: false,
    });
    for heavy in [false, true] {
        hive.spawn(Member { slow: true, heavy });
    }
    hive
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_round_whose_calls_panic_when_dropped_returns_cancelled() {
    let hive = hive_with_slow_members();
    let cancel = hivekit_hive::CancellationToken::new();
    let cancelled = tokio::spawn({
        let (hive, cancel) = (hive.clone(), cancel.clone());
        async move {
            hive.decide_with(hivekit_hive::DecideOptions::default().with_cancel(cancel))
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    cancel.cancel();
    let outcome = tokio::time::timeout(BOUND, cancelled)
        .await
        .expect("the cancelled round ends")
        .expect("cancelling must not panic");
    assert!(matches!(
        outcome,
        Err(hivekit_hive::HiveError::Cancelled { .. })
    ));
    assert_eq!(hive.memory().version(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_round_whose_calls_panic_when_dropped_does_not_unwind() {
    let hive = hive_with_slow_members();
    let dropped = tokio::spawn({
        let hive = hive.clone();
        async move {
            let round = tokio::time::timeout(Duration::from_millis(20), hive.decide()).await;
            round.is_err()
        }
    });
    let timed_out = tokio::time::timeout(BOUND, dropped)
        .await
        .expect("the dropping task ends")
        .expect("dropping a round must not panic");
    assert!(timed_out);
    assert_eq!(hive.memory().version(), 0);
}
