//! Review of run nesting (crates/swarm/src/run/nesting.rs) through a hive stage: a hive agent's
//! call is polled inside the stage's poll, so a pipeline an agent runs is nested in the outer run.
//! An agent call the round stops waiting for (its timeout passed) is dropped, and the nested run
//! with it: the outer run returns once its stage is gone. But an agent is long-lived and keeps
//! state between rounds: one that starts a pipeline in a round and keeps it (to finish in a
//! later round) must not make the outer run wait for the rest of time.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hivekit_hive::{Agent, AgentContext, AgentError, Hive, ProposalOf, Snapshot, State};
use hivekit_swarm::{hive_stage, Pipeline, RunReport, StageContext, StageError};

type Started = Pin<Box<dyn Future<Output = RunReport> + Send>>;

#[derive(Clone, Default, Debug)]
struct Count(u64);

impl State for Count {
    type Key = ();
    type Change = u64;
    fn apply(&mut self, change: &u64) {
        self.0 += change;
    }
}

struct Live(Arc<AtomicUsize>);

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A pipeline whose spawned stage counts itself live and never ends.
fn hanging(live: &Arc<AtomicUsize>) -> Pipeline {
    let live = live.clone();
    Pipeline::builder()
        .stage("work", move |_: StageContext| {
            live.fetch_add(1, Ordering::SeqCst);
            let guard = Live(live.clone());
            async move {
                let _guard = guard;
                std::future::pending::<Result<u32, StageError>>().await
            }
        })
        .spawn()
        .build()
        .unwrap()
}

/// Runs `pipeline` to its end in every call (and is timed out by the hive).
struct Waiting(Pipeline);

impl Agent<Count> for Waiting {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Count>,
    ) -> Result<Option<ProposalOf<Count>>, AgentError> {
        let _ = self.0.run().await;
        Ok(None)
    }
}

/// Starts `pipeline` in its first call and keeps it, to look at it again in later rounds.
struct Keeping {
    pipeline: Pipeline,
    kept: Mutex<Option<Started>>,
}

impl Agent<Count> for Keeping {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Count>,
    ) -> Result<Option<ProposalOf<Count>>, AgentError> {
        let mut kept = self.kept.lock().unwrap().take();
        let run = kept.get_or_insert_with(|| {
            let pipeline = self.pipeline.clone();
            Box::pin(async move { pipeline.run().await })
        });
        // Look at it once; it goes on in later rounds (kept only while it has not ended: a
        // finished future must not be polled again).
        if futures::poll!(run.as_mut()).is_pending() {
            *self.kept.lock().unwrap() = kept;
        }
        Ok(None)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nested_run_in_a_timed_out_agent_call_ends_before_the_outer_run_returns() {
    let live = Arc::new(AtomicUsize::new(0));
    let hive = Hive::builder(Count::default())
        .agent_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    hive.spawn(Waiting(hanging(&live)));
    let outer = Pipeline::builder()
        .stage("decide", hive_stage(hive.clone()))
        .build()
        .unwrap();
    let report = tokio::time::timeout(Duration::from_secs(5), outer.run())
        .await
        .expect("the outer run ends");
    assert!(report.is_success(), "{:?}", report.outcome());
    assert_eq!(
        live.load(Ordering::SeqCst),
        0,
        "the stage of the nested run the hive dropped still lives"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_keeping_a_started_pipeline_between_rounds_does_not_hang_the_outer_run() {
    let live = Arc::new(AtomicUsize::new(0));
    let hive = Hive::builder(Count::default())
        .agent_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    hive.spawn(Keeping {
        pipeline: hanging(&live),
        kept: Mutex::new(None),
    });
    let outer = Pipeline::builder()
        .stage("decide", hive_stage(hive.clone()))
        .build()
        .unwrap();
    let report = tokio::time::timeout(Duration::from_secs(3), outer.run()).await;
    // The hive (and the kept run in its agent) outlives the test's run either way.
    drop(hive);
    let report = report.expect(
        "the outer run returned (it waits for the run an agent keeps in its own state, which \
         lives as long as the hive)",
    );
    assert!(report.is_success(), "{:?}", report.outcome());
}
