//! Loop stages seen from their report, their events and a retry of the whole loop.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::{
    Backoff, EventSink, Iteration, LoopPolicy, LoopReport, LoopStop, Pipeline, RetryPolicy,
    RunOptions, StageContext, StageError, StageEvent,
};

/// A loop stage retried as a whole: the first attempt fails in iteration 2, the second attempt
/// runs all three. The stage's report lists "the report of each iteration, in order": whatever
/// it keeps of the failed attempt, the successful attempt's iterations 1, 2, 3 must read in order
/// at the end of the list, not interleaved with the failed attempt's.
#[tokio::test]
async fn a_retried_loop_stage_lists_its_iterations_in_order() {
    let body = Pipeline::builder()
        .stage("step", |ctx: StageContext| async move {
            let iteration = ctx.run_input::<Iteration>()?;
            let attempt = iteration.parent().attempt();
            if attempt == 1 && iteration.number() == 2 {
                return Err(StageError::msg("first attempt breaks in iteration 2"));
            }
            Ok::<_, StageError>((attempt, iteration.number()))
        })
        .build()
        .unwrap();
    let pipeline = Pipeline::builder()
        .repeat("loop", body, LoopPolicy::new(3))
        .retry(RetryPolicy::attempts(2).with_backoff(Backoff::NONE))
        .build()
        .unwrap();
    let report = tokio::time::timeout(Duration::from_secs(5), pipeline.run())
        .await
        .expect("run hung");
    assert!(report.is_success(), "{report}");
    let looped = report.artifact::<LoopReport>("loop").unwrap();
    assert_eq!(looped.iterations.len(), 3);
    assert_eq!(looped.stopped, LoopStop::MaxIterations);

    let listed: Vec<Option<(u32, u32)>> = report
        .stage("loop")
        .unwrap()
        .iterations
        .iter()
        .map(|iteration| iteration.artifact::<(u32, u32)>("step").ok().map(|a| *a))
        .collect();
    assert!(listed.len() >= 3, "{listed:?}");
    assert_eq!(
        listed[listed.len() - 3..],
        [Some((2, 1)), Some((2, 2)), Some((2, 3))],
        "the stage report's iterations are out of order: {listed:?}"
    );
    // Whatever is listed of the failed attempt comes before, in its own order.
    assert_eq!(
        listed[..listed.len() - 3],
        [Some((1, 1)), None][..listed.len() - 3],
        "{listed:?}"
    );
}

/// Each iteration is an `IterationFinished` event, numbered 1, 2, .., all before the loop
/// stage's own `Finished`, and the count matches the loop's report.
#[tokio::test]
async fn iteration_events_are_numbered_in_order_before_the_loop_finishes() {
    let counter = Arc::new(AtomicU32::new(0));
    let seen = counter.clone();
    let body = Pipeline::builder()
        .stage("tick", move |_: StageContext| {
            let counter = seen.clone();
            async move { Ok::<_, StageError>(counter.fetch_add(1, Ordering::SeqCst) + 1) }
        })
        .build()
        .unwrap();
    let pipeline = Pipeline::builder()
        .repeat(
            "loop",
            body,
            LoopPolicy::new(10)
                .until(|report| report.artifact::<u32>("tick").is_ok_and(|n| *n >= 4)),
        )
        .stage("after", |_: StageContext| async { Ok::<_, StageError>(()) })
        .after(["loop"])
        .build()
        .unwrap();
    let (sink, mut events) = EventSink::channel();
    let report = tokio::time::timeout(
        Duration::from_secs(5),
        pipeline.run_with(RunOptions::default().with_events(sink)),
    )
    .await
    .expect("run hung");
    assert!(report.is_success(), "{report}");
    let mut all = Vec::new();
    while let Ok(event) = events.try_recv() {
        all.push(event);
    }
    let numbers: Vec<u32> = all
        .iter()
        .filter_map(|event| match event {
            StageEvent::IterationFinished { iteration, .. } => Some(*iteration),
            _ => None,
        })
        .collect();
    assert_eq!(numbers, [1, 2, 3, 4], "{all:#?}");
    let last_iteration = all
        .iter()
        .rposition(|event| matches!(event, StageEvent::IterationFinished { .. }))
        .unwrap();
    let finished = all
        .iter()
        .position(|event| matches!(event, StageEvent::Finished { stage, .. } if &**stage == "loop"))
        .unwrap();
    assert!(last_iteration < finished, "{all:#?}");
    assert_eq!(report.stage("loop").unwrap().iterations.len(), 4);
}

/// `LoopPolicy::new(0)` counts as 1: exactly one iteration.
#[tokio::test]
async fn a_zero_iteration_policy_runs_once() {
    let body = Pipeline::builder()
        .stage("tick", |_: StageContext| async { Ok::<_, StageError>(()) })
        .build()
        .unwrap();
    let pipeline = Pipeline::builder()
        .repeat("loop", body, LoopPolicy::new(0))
        .build()
        .unwrap();
    let report = tokio::time::timeout(Duration::from_secs(5), pipeline.run())
        .await
        .expect("run hung");
    let looped = report.artifact::<LoopReport>("loop").unwrap();
    assert_eq!(looped.iterations.len(), 1);
    assert_eq!(report.stage("loop").unwrap().iterations.len(), 1);
}

/// An iteration that fails because one body stage failed (the body fails fast, so a slower
/// independent stage declared before it is cancelled): the loop's `StageError::Iteration` must
/// name the stage that failed, not the innocent stage the failure cancelled.
#[tokio::test]
async fn a_failed_iteration_names_the_stage_that_failed_not_one_it_cancelled() {
    let body = Pipeline::builder()
        .stage("slow", |_: StageContext| async {
            tokio::time::sleep(Duration::from_millis(150)).await;
            Ok::<_, StageError>(())
        })
        .stage("broken", |_: StageContext| async {
            Err::<(), _>(StageError::permanent("the real cause"))
        })
        .build()
        .unwrap();
    let pipeline = Pipeline::builder()
        .repeat("loop", body, LoopPolicy::new(3))
        .build()
        .unwrap();
    let report = tokio::time::timeout(Duration::from_secs(5), pipeline.run())
        .await
        .expect("run hung");
    let Some(hivekit_swarm::StageStatus::Failed { error, .. }) = report.status("loop") else {
        panic!("{report}");
    };
    let StageError::Iteration {
        iteration,
        stage,
        status,
    } = error
    else {
        panic!("{error:?}");
    };
    assert_eq!(*iteration, 1);
    assert_eq!(stage, "broken", "the error blames {stage:?} ({status})");
    assert!(status.contains("the real cause"), "{status}");
}
