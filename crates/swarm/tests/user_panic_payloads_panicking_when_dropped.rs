//! A stage, a fan-out item or an event callback that panics with a payload whose own destructor
//! panics (`panic_any` of such a type): the run goes on and reports the panic, as for any other.

use std::time::Duration;

use hivekit_swarm::{
    EventSink, FanOut, Pipeline, RunOptions, StageContext, StageError, StageStatus,
};

/// A panic payload that panics again when it is dropped.
struct Bomb;

impl Drop for Bomb {
    fn drop(&mut self) {
        panic!("the panic payload exploded when dropped");
    }
}

async fn run(pipeline: &Pipeline, options: RunOptions) -> hivekit_swarm::RunReport {
    tokio::time::timeout(Duration::from_secs(10), pipeline.run_with(options))
        .await
        .expect("the run ends")
}

#[tokio::test]
async fn a_stage_panicking_with_such_a_payload_fails_and_its_dependent_is_skipped() {
    for spawned in [false, true] {
        let boom = Pipeline::builder().stage("boom", |_: StageContext| async {
            if true {
                std::panic::panic_any(Bomb);
            }
            Ok::<_, StageError>(1_u32)
        });
        let boom = if spawned { boom.spawn() } else { boom };
        let pipeline = boom
            .stage("after", |_: StageContext| async { Ok::<_, StageError>(()) })
            .after(["boom"])
            .build()
            .unwrap();
        let report = run(&pipeline, RunOptions::default()).await;
        assert!(
            matches!(
                report.status("boom"),
                Some(StageStatus::Failed {
                    error: StageError::Panicked(_),
                    ..
                })
            ),
            "spawned {spawned}: {:?}",
            report.status("boom")
        );
        assert!(
            matches!(report.status("after"), Some(StageStatus::Skipped { .. })),
            "spawned {spawned}: {:?}",
            report.status("after")
        );
    }
}

#[tokio::test]
async fn a_fan_out_item_panicking_with_such_a_payload_is_a_failed_item() {
    let pipeline = Pipeline::builder()
        .stage("fan", |ctx: StageContext| async move {
            let report = ctx
                .fan_out([1_u32, 2, 3], FanOut::new(3).require(2), |n| async move {
                    if n == 2 {
                        std::panic::panic_any(Bomb);
                    }
                    Ok::<_, StageError>(n)
                })
                .await?;
            Ok::<_, StageError>(report.into_successes().sum::<u32>())
        })
        .build()
        .unwrap();
    let report = run(&pipeline, RunOptions::default()).await;
    assert_eq!(report.artifact::<u32>("fan").map(|sum| *sum).ok(), Some(4));
}

#[tokio::test]
async fn an_event_callback_panicking_with_such_a_payload_does_not_stop_the_run() {
    let pipeline = Pipeline::builder()
        .stage("a", |_: StageContext| async { Ok::<_, StageError>(1_u32) })
        .build()
        .unwrap();
    let sink = EventSink::callback(|_| std::panic::panic_any(Bomb));
    let report = run(&pipeline, RunOptions::default().with_events(sink)).await;
    assert!(report.is_success(), "{:?}", report.outcome());
}
