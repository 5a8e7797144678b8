//! Interrupts from every kind of stage a user writes (inline, spawned on its own task, blocking on
//! the pool, with retries and a timeout), several at once in one durable run: each ends
//! `Interrupted` after one attempt, and one `resume_with` hands the value to all of them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::checkpoint::{Durable, MemoryStore};
use hivekit_swarm::{
    Pipeline, RetryPolicy, RunOptions, RunOutcome, StageBuilder, StageContext, StageError,
    StageStatus,
};

/// A stage that asks for a reviewer's name, counting its calls.
fn asking(
    builder: hivekit_swarm::PipelineBuilder,
    name: &'static str,
    calls: &Arc<AtomicUsize>,
) -> StageBuilder<String> {
    let calls = calls.clone();
    builder
        .stage(name, move |ctx: StageContext| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                match ctx.resume_value::<String>()? {
                    Some(reviewer) => Ok::<_, StageError>(format!("{name} reviewed by {reviewer}")),
                    None => Err(ctx.interrupt(format!("{name} needs a reviewer"))),
                }
            }
        })
        .durable()
}

const STAGES: [&str; 4] = ["inline", "spawned", "blocking", "retried"];

fn pipeline(calls: &Arc<AtomicUsize>) -> Pipeline {
    let builder = asking(Pipeline::builder(), "inline", calls).into_builder();
    let builder = asking(builder, "spawned", calls).spawn().into_builder();
    let builder = asking(builder, "blocking", calls).blocking().into_builder();
    asking(builder, "retried", calls)
        .retry(RetryPolicy::attempts(5))
        .timeout(Duration::from_secs(5))
        .stage("summary", |ctx: StageContext| async move {
            let mut lines = Vec::new();
            for stage in STAGES {
                lines.push((*ctx.input::<String>(stage)?).clone());
            }
            Ok::<_, StageError>(lines.join("; "))
        })
        .after(STAGES)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupts_from_every_kind_of_stage_pause_once_and_one_resume_with_answers_them_all() {
    let calls = Arc::new(AtomicUsize::new(0));
    let pipeline = pipeline(&calls);
    let durable = Durable::new(MemoryStore::new());
    let first = tokio::time::timeout(
        Duration::from_secs(10),
        durable.start(&pipeline, "review", RunOptions::default()),
    )
    .await
    .expect("the run ended")
    .unwrap();
    let report = first.report();
    assert_eq!(report.outcome(), RunOutcome::Interrupted, "{report:?}");
    for stage in STAGES {
        match report.status(stage) {
            Some(StageStatus::Interrupted { reason, attempts }) => {
                assert_eq!(*attempts, 1, "{stage} was not retried");
                assert_eq!(*reason, format!("{stage} needs a reviewer"));
            }
            other => panic!("{stage}: {other:?}"),
        }
    }
    assert!(matches!(
        report.status("summary"),
        Some(StageStatus::Skipped { .. })
    ));
    assert_eq!(calls.load(Ordering::SeqCst), STAGES.len());

    let done = tokio::time::timeout(
        Duration::from_secs(10),
        durable.resume_with(&pipeline, "review", "ada", RunOptions::default()),
    )
    .await
    .expect("the run ended")
    .unwrap();
    let report = done.report();
    assert!(report.is_success(), "{report:?}");
    assert_eq!(
        *report.artifact::<String>("summary").unwrap(),
        "inline reviewed by ada; spawned reviewed by ada; blocking reviewed by ada; \
         retried reviewed by ada"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2 * STAGES.len());
}
