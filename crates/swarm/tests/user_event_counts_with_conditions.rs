//! The decided-events of a run with conditions, routes and a failure add up.

use std::collections::HashMap;
use std::time::Duration;

use hivekit_swarm::{
    EventSink, FailurePolicy, Pipeline, Route, RunOptions, StageContext, StageError, StageEvent,
};

fn pipeline() -> Pipeline {
    Pipeline::builder()
        .stage("a", |_: StageContext| async { Ok::<_, StageError>(1u32) })
        .stage("off", |_: StageContext| async { Ok::<_, StageError>(()) })
        .after(["a"])
        .when(|_| false)
        .stage("below_off", |_: StageContext| async {
            Ok::<_, StageError>(())
        })
        .after(["off"])
        .router("route", |_: StageContext| async {
            Ok::<_, StageError>(Route::none())
        })
        .after(["a"])
        .stage("x", |_: StageContext| async { Ok::<_, StageError>(()) })
        .after(["route"])
        .stage("join", |_: StageContext| async { Ok::<_, StageError>(()) })
        .after(["x", "below_off", "a"])
        .stage("fail", |_: StageContext| async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            Err::<(), _>(StageError::permanent("no"))
        })
        .stage("after_fail", |_: StageContext| async {
            Ok::<_, StageError>(())
        })
        .after(["fail", "join"])
        .stage("panicky", |_: StageContext| async {
            Ok::<_, StageError>(())
        })
        .after(["a"])
        .when(|_| panic!("condition exploded"))
        .stage("below_panicky", |_: StageContext| async {
            Ok::<_, StageError>(())
        })
        .after(["panicky"])
        .build()
        .unwrap()
}

#[tokio::test]
async fn every_stage_is_decided_once_with_done_rising_to_the_total() {
    for limit in [1usize, 2, 64] {
        let (sink, mut events) = EventSink::channel();
        let report = tokio::time::timeout(
            Duration::from_secs(5),
            pipeline().run_with(
                RunOptions::default()
                    .with_failure(FailurePolicy::ContinueIndependent)
                    .with_max_concurrency(hivekit_swarm::ConcurrencyLimit::new(limit).unwrap())
                    .with_events(sink),
            ),
        )
        .await
        .expect("run hung");
        let mut all = Vec::new();
        while let Ok(event) = events.try_recv() {
            all.push(event);
        }
        let total = report.stages().len();
        let mut decided: HashMap<String, usize> = HashMap::new();
        let mut dones = Vec::new();
        for event in &all {
            let done = match event {
                StageEvent::Finished { done, total: t, .. }
                | StageEvent::Skipped { done, total: t, .. }
                | StageEvent::Cancelled { done, total: t, .. } => {
                    assert_eq!(*t, total);
                    *done
                }
                _ => continue,
            };
            dones.push(done);
            *decided.entry(event.stage().to_string()).or_default() += 1;
        }
        assert_eq!(
            dones,
            (1..=total).collect::<Vec<_>>(),
            "limit {limit}: {all:#?}"
        );
        for stage in report.stages() {
            assert_eq!(
                decided.get(&*stage.name),
                Some(&1),
                "limit {limit}: {}",
                stage.name
            );
        }
        // What the report says matches the last event of each stage.
        for stage in report.stages() {
            let last = all
                .iter()
                .rev()
                .find(|event| {
                    event.stage() == &*stage.name && !matches!(event, StageEvent::Started { .. })
                })
                .unwrap();
            match last {
                StageEvent::Finished { status, .. } => assert_eq!(status, &stage.status),
                StageEvent::Skipped { because, .. } => assert!(
                    matches!(&stage.status, hivekit_swarm::StageStatus::Skipped { because: b } if b == because)
                ),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            report
                .explain("join")
                .as_deref()
                .map(|s| s.contains("skipped")),
            Some(false),
            "{report}"
        );
    }
}
