//! A value that would not read back is never checkpointed as if it would. serde_json writes a
//! non-finite float (`NaN`, infinities) as `null`, which no `f64` reads: a durable stage whose
//! artifact is one fails with a permanent error naming the run, the stage and the reason, is not
//! recorded (a resume runs it again), and the run stays resumable. The same holds for an item of
//! a durable fan-out. Values whose `null` does read back (`None`, `()`, a string "null") are
//! recorded and restored as before. Before, the stage was recorded as succeeded with
//! `"artifact": null` and every resume failed with `CorruptRecord`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use hivekit_swarm::checkpoint::{Durable, MemoryStore};
use hivekit_swarm::{
    FailurePolicy, FanOut, Pipeline, RunOptions, StageContext, StageError, StageStatus,
    SubtaskOutcome,
};

fn options() -> RunOptions {
    RunOptions::default().with_failure(FailurePolicy::ContinueIndependent)
}

fn failure(report: &hivekit_swarm::RunReport, stage: &str) -> String {
    match &report.stage(stage).expect("stage").status {
        StageStatus::Failed { error, .. } => error.to_string(),
        other => panic!("`{stage}` did not fail: {other:?}"),
    }
}

#[tokio::test]
async fn a_nan_artifact_fails_its_stage_and_leaves_the_run_resumable() {
    let up = Arc::new(AtomicBool::new(false));
    let nan = up.clone();
    let pipeline = Pipeline::builder()
        .stage("score", move |_: StageContext| {
            let finite = nan.load(Ordering::SeqCst);
            async move { Ok::<_, StageError>(if finite { 0.5 } else { f64::NAN }) }
        })
        .durable()
        .stage("report", |ctx: StageContext| async move {
            Ok::<_, StageError>(*ctx.input::<f64>("score")? > 0.0)
        })
        .after(["score"])
        .durable()
        .build()
        .expect("valid durable pipeline");
    let durable = Durable::new(MemoryStore::new());
    let first = durable
        .start(&pipeline, "r", options())
        .await
        .expect("started");
    assert!(!first.report().is_success());
    let message = failure(first.report(), "score");
    assert!(
        message.contains("`score`") && message.contains("read back") && message.contains("`r`"),
        "{message}"
    );
    // Not recorded: the resume runs `score` again (and it fails the same way, typed).
    let again = durable
        .resume(&pipeline, "r", options())
        .await
        .expect("the run resumes");
    assert!(failure(again.report(), "score").contains("read back"));
    // Once the value is finite, the run completes.
    up.store(true, Ordering::SeqCst);
    let last = durable
        .resume(&pipeline, "r", options())
        .await
        .expect("the run resumes");
    assert!(last.report().is_success(), "{}", last.report());
    assert!(*last.report().artifact::<bool>("report").expect("artifact"));
}

#[tokio::test]
async fn artifacts_whose_null_reads_back_are_recorded_and_restored() {
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let pipeline = Pipeline::builder()
        .stage("none", move |_: StageContext| {
            counted.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, StageError>(None::<f64>) }
        })
        .durable()
        .stage("text", |_: StageContext| async {
            Ok::<_, StageError>(String::from("null, nan and null again"))
        })
        .durable()
        .stage("end", |ctx: StageContext| async move {
            if ctx.input::<Option<f64>>("none")?.is_none() {
                return Err(ctx.interrupt("wait"));
            }
            Ok::<_, StageError>(())
        })
        .after(["none", "text"])
        .durable()
        .build()
        .expect("valid durable pipeline");
    let durable = Durable::new(MemoryStore::new());
    let first = durable
        .start(&pipeline, "r", options())
        .await
        .expect("started");
    assert_eq!(first.interrupted_stage(), Some("end"), "{}", first.report());
    let second = durable
        .resume(&pipeline, "r", options())
        .await
        .expect("resumed");
    let report = second.report();
    assert!(report.stage("none").expect("none").resumed);
    assert!(report.stage("text").expect("text").resumed);
    assert_eq!(
        *report.artifact::<String>("text").expect("text"),
        "null, nan and null again"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_fan_out_item_that_would_not_read_back_fails_typed() {
    let pipeline = Pipeline::builder()
        .stage("items", |ctx: StageContext| async move {
            let items = ctx
                .durable_fan_out(
                    [1.0_f64, f64::INFINITY, 2.0],
                    FanOut::new(1).require(2).wait_all(),
                    |x| async move { Ok::<_, StageError>(x) },
                )
                .await?;
            let failures: Vec<String> = items
                .outcomes
                .into_iter()
                .filter_map(|outcome| match outcome {
                    SubtaskOutcome::Failed(error) => Some(error.to_string()),
                    _ => None,
                })
                .collect();
            Ok::<_, StageError>(failures)
        })
        .durable()
        .build()
        .expect("valid durable pipeline");
    let durable = Durable::new(MemoryStore::new());
    let outcome = durable
        .start(&pipeline, "r", options())
        .await
        .expect("started");
    let report = outcome.report();
    assert!(report.is_success(), "{report}");
    let failures = report.artifact::<Vec<String>>("items").expect("artifact");
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].contains("item 1") && failures[0].contains("read back"),
        "{failures:?}"
    );
}
