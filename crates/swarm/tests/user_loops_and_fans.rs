//! Loops and fan-outs pushed where LangGraph users push them: a stop condition that panics, a loop
//! policy of 0 iterations, fan-outs over nothing and of width 0. A hang fails.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::{
    FanOut, LoopPolicy, LoopReport, LoopStop, Pipeline, RunOutcome, StageContext, StageError,
    StageStatus,
};

/// Iterations after which the body below fails on purpose (a bound on a runaway loop).
const BODY_CAP: u32 = 100_000;

fn instant_body(iterations: &Arc<AtomicU32>) -> Pipeline {
    let iterations = iterations.clone();
    Pipeline::builder()
        .stage("step", move |_: StageContext| {
            let count = iterations.fetch_add(1, Ordering::Relaxed) + 1;
            std::future::ready(if count >= BODY_CAP {
                Err(StageError::msg("the loop never noticed its deadline"))
            } else {
                Ok(count)
            })
        })
        .build()
        .expect("valid body")
}

#[tokio::test]
async fn a_panicking_stop_condition_fails_the_loop_stage_not_the_run() {
    let iterations = Arc::new(AtomicU32::new(0));
    let pipeline = Pipeline::builder()
        .repeat(
            "loop",
            instant_body(&iterations),
            LoopPolicy::new(5).until(|_| panic!("condition exploded")),
        )
        .stage("after", |_: StageContext| async { Ok::<_, StageError>(()) })
        .after(["loop"])
        .build()
        .expect("valid");
    let report = tokio::time::timeout(Duration::from_secs(5), pipeline.run())
        .await
        .expect("no hang");
    assert_eq!(report.outcome(), RunOutcome::Failed);
    assert!(
        matches!(
            report.status("loop"),
            Some(StageStatus::Failed { error: StageError::Panicked(message), .. }) if message.contains("condition exploded")
        ),
        "{:?}",
        report.status("loop")
    );
    assert!(report
        .explain("after")
        .expect("known")
        .starts_with("after skipped because loop failed"));
}

#[tokio::test]
async fn a_loop_stopped_at_once_by_its_condition_keeps_one_iteration() {
    let iterations = Arc::new(AtomicU32::new(0));
    let pipeline = Pipeline::builder()
        .repeat(
            "loop",
            instant_body(&iterations),
            LoopPolicy::new(0).until(|report| report.is_success()),
        )
        .build()
        .expect("valid");
    let report = tokio::time::timeout(Duration::from_secs(5), pipeline.run())
        .await
        .expect("no hang");
    let looped = report.artifact::<LoopReport>("loop").expect("artifact");
    assert_eq!(looped.iterations.len(), 1);
    assert_eq!(looped.stopped, LoopStop::Condition);
    assert_eq!(iterations.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_fan_out_over_no_items_succeeds_with_nothing() {
    let pipeline = Pipeline::builder()
        .stage("fan", |ctx: StageContext| async move {
            let report = ctx
                .fan_out(
                    Vec::<u32>::new(),
                    FanOut::new(usize::MAX),
                    |item| async move { Ok::<_, StageError>(item) },
                )
                .await?;
            Ok::<_, StageError>(report.into_successes().count())
        })
        .build()
        .expect("valid");
    let report = tokio::time::timeout(Duration::from_secs(5), pipeline.run())
        .await
        .expect("no hang");
    assert_eq!(*report.artifact::<usize>("fan").expect("artifact"), 0);
}

#[tokio::test]
async fn a_fan_out_of_width_zero_is_a_typed_error() {
    let pipeline = Pipeline::builder()
        .stage("fan", |ctx: StageContext| async move {
            let report = ctx
                .fan_out([1u32], FanOut::new(0), |item| async move {
                    Ok::<_, StageError>(item)
                })
                .await?;
            Ok::<_, StageError>(report.into_successes().count())
        })
        .build()
        .expect("valid");
    let report = tokio::time::timeout(Duration::from_secs(5), pipeline.run())
        .await
        .expect("no hang");
    assert!(
        matches!(
            report.status("fan"),
            Some(StageStatus::Failed {
                error: StageError::InvalidFanOut { .. },
                ..
            })
        ),
        "{:?}",
        report.status("fan")
    );
}
