//! A hive stage whose commit's outcome is unknown (`MemoryError::OutcomeUnknown`: the commit may
//! have landed) must not be retried by the pipeline as a new decision: the memory's docs say a
//! caller must not simply retry it, and a retry here applies the same change twice.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, CommitRequest, Committed, Hive, HiveError, LocalMemory,
    Memory, MemoryError, Proposal, ProposalId, ProposalOf, Snapshot, State,
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

/// Commits every request, but loses the reply to the first one (as a backend whose connection
/// drops after the write landed).
struct LosesFirstReply {
    inner: LocalMemory<Tally>,
    lost: AtomicBool,
}

#[derive(Debug)]
struct ConnectionReset;

impl std::fmt::Display for ConnectionReset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset")
    }
}

impl std::error::Error for ConnectionReset {}

impl Memory<Tally> for LosesFirstReply {
    fn snapshot(&self) -> Snapshot<Tally> {
        self.inner.snapshot()
    }

    async fn commit<'a>(
        &'a self,
        request: CommitRequest<'a, Tally>,
    ) -> Result<Committed, MemoryError> {
        let decision_id = request.decision_id;
        let committed = self.inner.commit(request).await?;
        if !self.lost.swap(true, Ordering::SeqCst) {
            return Err(MemoryError::OutcomeUnknown {
                decision_id,
                source: Arc::new(ConnectionReset),
            });
        }
        Ok(committed)
    }

    async fn changed(&self, after: u64) -> Result<Snapshot<Tally>, MemoryError> {
        self.inner.changed(after).await
    }
}

/// Appends 7: one decision of the stage appends it once.
struct AddSeven;

impl Agent<Tally> for AddSeven {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _: &Snapshot<Tally>,
    ) -> Result<Option<ProposalOf<Tally>>, AgentError> {
        Ok(Some(Proposal::new(ProposalId(7), 7).writes([0])))
    }
}

#[tokio::test]
async fn a_commit_of_unknown_outcome_is_not_retried_as_a_new_decision() {
    let hive = Hive::builder_with_memory(LosesFirstReply {
        inner: LocalMemory::new(Tally::default()),
        lost: AtomicBool::new(false),
    })
    .build()
    .unwrap();
    hive.spawn(AddSeven);
    let pipeline = Pipeline::builder()
        .stage("decide", hive_stage(hive.clone()))
        .retry(RetryPolicy::attempts(3).with_backoff(Backoff::NONE))
        .build()
        .unwrap();
    let report = tokio::time::timeout(Duration::from_secs(5), pipeline.run())
        .await
        .expect("the run ends");
    let status = report.status("decide").unwrap().clone();
    let committed = hive.memory().load().0.clone();
    assert!(
        matches!(status, StageStatus::Failed { attempts: 1, .. }),
        "the stage whose commit may have landed was retried: {status:?}; the memory holds \
         {committed:?}"
    );
    assert_eq!(committed, [7], "the change was applied more than once");
}

#[tokio::test]
async fn the_round_itself_reports_the_unknown_outcome() {
    // The hive side is right: `decide` reports the doubt instead of retrying.
    let hive = Hive::builder_with_memory(LosesFirstReply {
        inner: LocalMemory::new(Tally::default()),
        lost: AtomicBool::new(false),
    })
    .build()
    .unwrap();
    hive.spawn(AddSeven);
    let error = hive.decide().await.unwrap_err();
    assert!(
        matches!(error, HiveError::Memory(MemoryError::OutcomeUnknown { .. })),
        "{error:?}"
    );
    assert_eq!(hive.memory().load().0, [7]);
}
