//! A fan-out stage the run stops (here its deadline) keeps the summary of the fan-out it was
//! running: the items finished so far, the rest not run, as a loop stage stopped beside it keeps
//! the iterations it finished (before, its `fan_out` was empty although items had finished and
//! their events were sent).

use std::time::Duration;

use hivekit_swarm::{
    EventSink, FanOut, LoopPolicy, Pipeline, RunOptions, StageContext, StageError, StageEvent,
    StageStatus,
};

#[tokio::test(start_paused = true)]
async fn a_fan_out_stage_cancelled_by_the_deadline_keeps_the_summary_of_its_finished_items() {
    let body = Pipeline::builder()
        .stage("step", |_: StageContext| async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            Ok::<_, StageError>(())
        })
        .build()
        .expect("valid body");
    let pipeline = Pipeline::builder()
        .repeat("loop", body, LoopPolicy::new(100))
        .stage("fan", |ctx: StageContext| async move {
            let report = ctx
                .fan_out(0..10u64, FanOut::new(1), |item| async move {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    Ok::<_, StageError>(item)
                })
                .await?;
            Ok::<_, StageError>(report.into_successes().count())
        })
        .build()
        .expect("valid");
    let (sink, mut events) = EventSink::channel();
    let report = tokio::time::timeout(
        Duration::from_secs(10),
        pipeline.run_with(
            RunOptions::default()
                .with_deadline(Duration::from_millis(35))
                .with_events(sink),
        ),
    )
    .await
    .expect("no hang");
    let mut items_finished = 0;
    while let Ok(event) = events.try_recv() {
        if matches!(event, StageEvent::ItemFinished { .. }) {
            items_finished += 1;
        }
    }
    assert_eq!(items_finished, 3);
    let looped = report.stage("loop").expect("known");
    assert_eq!(looped.status, StageStatus::Cancelled);
    assert_eq!(
        looped.iterations.len(),
        3,
        "a cancelled loop keeps its iterations"
    );
    let fan = report.stage("fan").expect("known");
    assert_eq!(fan.status, StageStatus::Cancelled);
    assert_eq!(
        fan.fan_out.len(),
        1,
        "the fan-out it launched: {:?}",
        fan.fan_out
    );
    let summary = &fan.fan_out[0];
    assert_eq!((summary.items, summary.required), (10, 10));
    assert_eq!(summary.succeeded, 3);
    assert!(summary.failures.is_empty());
    assert_eq!(summary.not_run, 7);
}
