//! A hive round cut off by its stage's timeout or by the run's cancellation: the round's future is
//! dropped mid-way, and the hive still decides the next round (the retry, or another run).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, Decision, Hive, Proposal, ProposalId, Snapshot, State,
};
use hivekit_swarm::{hive_stage, Backoff, Pipeline, RetryPolicy, StageStatus};

#[derive(Clone, Default, Debug)]
struct Tally(Vec<u64>);

impl State for Tally {
    type Key = u64;
    type Change = u64;
    fn apply(&mut self, change: &u64) {
        self.0.push(*change);
    }
}

/// Hangs on its first call, then proposes at once.
struct SlowFirst(Arc<AtomicUsize>);

impl Agent<Tally> for SlowFirst {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _: &Snapshot<Tally>,
    ) -> Result<Option<Proposal<u64, u64>>, AgentError> {
        if self.0.fetch_add(1, Ordering::SeqCst) == 0 {
            std::future::pending::<()>().await;
        }
        Ok(Some(Proposal::new(ProposalId(7), 7).writes([0])))
    }
}

#[tokio::test]
async fn a_round_timed_out_by_its_stage_is_dropped_and_the_retry_decides() {
    let calls = Arc::new(AtomicUsize::new(0));
    let hive = Hive::builder(Tally::default()).build().unwrap();
    hive.spawn(SlowFirst(calls.clone()));
    let pipeline = Pipeline::builder()
        .stage("decide", hive_stage(hive.clone()))
        .timeout(Duration::from_millis(50))
        .retry(RetryPolicy::attempts(2).with_backoff(Backoff::NONE))
        .build()
        .unwrap();
    let report = tokio::time::timeout(Duration::from_secs(5), pipeline.run())
        .await
        .expect("the run ended");
    assert_eq!(
        report.status("decide"),
        Some(&StageStatus::Succeeded { attempts: 2 }),
        "{report:?}"
    );
    let decision = report.artifact::<Decision<Tally>>("decide").unwrap();
    assert_eq!(decision.accepted.len(), 1);
    assert_eq!(
        hive.memory().load().0,
        [7],
        "the dropped round applied nothing"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}
