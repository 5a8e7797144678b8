//! A non-finite float below an `Option` (`Some(NaN)`) is not recorded: serde_json writes it as
//! `null`, which reads back as `None`, another value. The stage fails with a typed error, as for
//! a bare NaN, and a resume runs it again rather than restoring `None`. Before, the record passed
//! the reads-back check (`null` decodes as an `Option`) and the resume restored the stage as
//! `None`: its dependent took the other branch. Same for durable fan-out items.

use std::time::Duration;

use hivekit_swarm::checkpoint::{Durable, MemoryStore};
use hivekit_swarm::{FanOut, Pipeline, RunOptions, StageContext, StageError, StageStatus};

async fn bounded<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(5), future)
        .await
        .expect("ended in time")
}

fn pipeline(score: Option<f64>, broken: bool) -> Pipeline {
    Pipeline::builder()
        .stage("score", move |_: StageContext| async move {
            Ok::<_, StageError>(score)
        })
        .durable()
        .stage("report", move |ctx: StageContext| async move {
            if broken {
                return Err(StageError::permanent("not yet"));
            }
            Ok::<_, StageError>(match *ctx.input::<Option<f64>>("score")? {
                Some(score) if score.is_nan() => "score could not be computed".to_owned(),
                Some(score) => format!("score {score}"),
                None => "no score".to_owned(),
            })
        })
        .durable()
        .after(["score"])
        .build()
        .unwrap()
}

fn failed_with(status: Option<&StageStatus>, needle: &str) -> bool {
    matches!(status, Some(StageStatus::Failed { error, .. }) if error.to_string().contains(needle))
}

#[tokio::test]
async fn some_nan_is_refused_and_never_restored_as_none() {
    let durable = Durable::new(MemoryStore::new());
    let first = bounded(durable.start(&pipeline(Some(f64::NAN), true), "r", RunOptions::default()))
        .await
        .expect("started");
    let status = first.report().status("score");
    assert!(failed_with(status, "non-finite float"), "{status:?}");
    let resumed =
        bounded(durable.resume(&pipeline(Some(f64::NAN), false), "r", RunOptions::default()))
            .await
            .expect("resumed");
    let report = resumed.report();
    assert!(!report.stage("score").unwrap().resumed, "{report:?}");
    assert!(failed_with(report.status("score"), "non-finite float"));
    assert!(report.artifact::<String>("report").is_err(), "{report:?}");
}

#[tokio::test]
async fn finite_and_absent_scores_are_recorded_and_restored() {
    for (score, text) in [(Some(1.5), "score 1.5"), (None, "no score")] {
        let durable = Durable::new(MemoryStore::new());
        let first = bounded(durable.start(&pipeline(score, true), "r", RunOptions::default()))
            .await
            .expect("started");
        assert!(first.report().status("score").unwrap().is_success());
        let resumed = bounded(durable.resume(&pipeline(score, false), "r", RunOptions::default()))
            .await
            .expect("resumed");
        let report = resumed.report();
        assert!(report.stage("score").unwrap().resumed);
        assert_eq!(*report.artifact::<String>("report").unwrap(), text);
    }
}

#[tokio::test]
async fn a_fan_out_item_holding_some_nan_is_not_recorded() {
    let pipeline = Pipeline::builder()
        .stage("scores", |ctx: StageContext| async move {
            let scores = ctx
                .durable_fan_out(
                    [1.0, f64::NAN],
                    FanOut::new(2).require(1).wait_all(),
                    |score| async move { Ok::<_, StageError>(Some(score)) },
                )
                .await?;
            Ok::<_, StageError>(scores.into_successes().count())
        })
        .durable()
        .build()
        .unwrap();
    let durable = Durable::new(MemoryStore::new());
    let outcome = bounded(durable.start(&pipeline, "r", RunOptions::default()))
        .await
        .expect("started");
    let report = outcome.report();
    // The NaN item failed (not recorded); the other succeeded.
    assert_eq!(
        *report.artifact::<usize>("scores").unwrap(),
        1,
        "{report:?}"
    );
}

#[tokio::test]
async fn a_run_input_holding_some_nan_is_refused_at_start() {
    use hivekit_swarm::checkpoint::CheckpointError;
    use hivekit_swarm::RunInput;

    let pipeline = Pipeline::builder()
        .stage("read", |ctx: StageContext| async move {
            Ok::<_, StageError>(ctx.run_input::<Option<f64>>()?.is_some())
        })
        .durable()
        .build()
        .unwrap();
    // With or without the input's type on the handle: `null` would read back as `None`.
    for durable in [
        Durable::new(MemoryStore::new()),
        Durable::new(MemoryStore::new()).with_input::<Option<f64>>(),
    ] {
        let started = bounded(durable.start(
            &pipeline,
            "r",
            RunOptions::default().with_run_input(RunInput::serializable(Some(f64::NAN))),
        ))
        .await;
        assert!(
            matches!(started, Err(CheckpointError::InputNotSerializable { .. })),
            "{started:?}"
        );
        assert!(durable.runs().unwrap().is_empty(), "nothing was created");
    }
}
