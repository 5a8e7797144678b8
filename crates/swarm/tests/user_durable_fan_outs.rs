//! Durable fan-outs: several in one stage, resumed after the stage failed in the second; one over
//! no items; and items whose JSON would read back as another value (a `Some(None)`, written as
//! `null`), which are refused rather than recorded.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use hivekit_swarm::checkpoint::{Durable, MemoryStore};
use hivekit_swarm::{FanOut, Pipeline, RunOptions, StageContext, StageError, SubtaskOutcome};

#[tokio::test]
async fn a_stage_with_two_durable_fan_outs_resumes_each_from_its_own_records() {
    let calls: Arc<Mutex<Vec<String>>> = Arc::default();
    let broken = Arc::new(AtomicUsize::new(0));
    let (log, gate) = (calls.clone(), broken.clone());
    let pipeline = Pipeline::builder()
        .stage("work", move |ctx: StageContext| {
            let (log, gate) = (log.clone(), gate.clone());
            async move {
                let l1 = log.clone();
                let first = ctx
                    .durable_fan_out([1u32, 2, 3], FanOut::new(3), move |n| {
                        l1.lock().push(format!("a{n}"));
                        async move { Ok::<_, StageError>(n * 10) }
                    })
                    .await?;
                let l2 = log.clone();
                let g2 = gate.clone();
                let second = ctx
                    .durable_fan_out([4u32, 5, 6], FanOut::new(1), move |n| {
                        l2.lock().push(format!("b{n}"));
                        let fail = n == 6 && g2.fetch_add(1, Ordering::SeqCst) == 0;
                        async move {
                            if fail {
                                Err(StageError::permanent("b6 broken the first time"))
                            } else {
                                Ok::<_, StageError>(n * 100)
                            }
                        }
                    })
                    .await?;
                let mut all: Vec<u32> = first.into_successes().collect();
                all.extend(second.into_successes());
                all.sort_unstable();
                Ok::<_, StageError>(all)
            }
        })
        .durable()
        .build()
        .expect("valid");
    let durable = Durable::new(MemoryStore::new());
    let first = tokio::time::timeout(
        Duration::from_secs(5),
        durable.start(&pipeline, "r", RunOptions::default()),
    )
    .await
    .expect("no hang")
    .expect("starts");
    assert!(!first.report().is_success());
    let mut before = calls.lock().clone();
    before.sort();
    assert_eq!(before, ["a1", "a2", "a3", "b4", "b5", "b6"]);
    calls.lock().clear();
    let second = tokio::time::timeout(
        Duration::from_secs(5),
        durable.resume(&pipeline, "r", RunOptions::default()),
    )
    .await
    .expect("no hang")
    .expect("resumes");
    let report = second.report();
    assert!(report.is_success(), "{:?}", report.status("work"));
    assert_eq!(
        *report.artifact::<Vec<u32>>("work").unwrap(),
        [10, 20, 30, 400, 500, 600]
    );
    assert_eq!(*calls.lock(), ["b6"], "only the unfinished item runs again");
    let summaries = &report.stage("work").unwrap().fan_out;
    assert_eq!(summaries.len(), 2, "{summaries:?}");
}

/// A durable fan-out over no items: nothing to run, nothing to record, an empty report.
#[tokio::test]
async fn a_durable_fan_out_over_no_items_succeeds_and_resumes() {
    let pipeline = Pipeline::builder()
        .stage("none", |ctx: StageContext| async move {
            let report = ctx
                .durable_fan_out(Vec::<u32>::new(), FanOut::new(4), |n| async move {
                    Ok::<_, StageError>(n)
                })
                .await?;
            Ok::<_, StageError>(report.into_successes().count())
        })
        .durable()
        .build()
        .expect("valid");
    let durable = Durable::new(MemoryStore::new());
    let first = tokio::time::timeout(
        Duration::from_secs(5),
        durable.start(&pipeline, "r", RunOptions::default()),
    )
    .await
    .expect("no hang")
    .expect("starts");
    assert!(
        first.report().is_success(),
        "{:?}",
        first.report().status("none")
    );
    assert_eq!(*first.report().artifact::<usize>("none").unwrap(), 0);
}

/// An item of `Some(None)` is written as `null`, which reads back as `None`: before, it was
/// recorded and a resume handed the stage `None` for it. It fails instead (not recorded: a resume
/// runs it again), naming the item, the stage, its type and why.
#[tokio::test]
async fn a_fan_out_item_of_some_none_is_refused_rather_than_restored_as_none() {
    let calls: Arc<Mutex<Vec<u8>>> = Arc::default();
    let attempts = Arc::new(AtomicUsize::new(0));
    let (log, gate) = (calls.clone(), attempts.clone());
    let pipeline = Pipeline::builder()
        .stage("items", move |ctx: StageContext| {
            let (log, gate) = (log.clone(), gate.clone());
            async move {
                let report = ctx
                    .durable_fan_out([1_u8, 2, 3], FanOut::new(3).require(2).wait_all(), |n| {
                        log.lock().push(n);
                        let value = match n {
                            1 => Some(Some(1_u8)),
                            2 => Some(None),
                            _ => None,
                        };
                        async move { Ok::<_, StageError>(value) }
                    })
                    .await?;
                if gate.fetch_add(1, Ordering::SeqCst) == 0 {
                    return Err(StageError::permanent("crash after the fan-out"));
                }
                let outcomes: Vec<String> = report
                    .outcomes
                    .into_iter()
                    .map(|outcome| match outcome {
                        SubtaskOutcome::Succeeded(value) => format!("{value:?}"),
                        SubtaskOutcome::Failed(error) => error.to_string(),
                        _ => "not run".to_owned(),
                    })
                    .collect();
                Ok::<_, StageError>(outcomes)
            }
        })
        .durable()
        .build()
        .expect("valid");
    let durable = Durable::new(MemoryStore::new());
    let first = tokio::time::timeout(
        Duration::from_secs(5),
        durable.start(&pipeline, "r", RunOptions::default()),
    )
    .await
    .expect("no hang")
    .expect("starts");
    assert!(!first.report().is_success());
    calls.lock().clear();
    let second = tokio::time::timeout(
        Duration::from_secs(5),
        durable.resume(&pipeline, "r", RunOptions::default()),
    )
    .await
    .expect("no hang")
    .expect("resumes");
    let report = second.report();
    assert!(report.is_success(), "{:?}", report.status("items"));
    assert_eq!(*calls.lock(), [2], "only the refused item runs again");
    let outcomes = report.artifact::<Vec<String>>("items").unwrap();
    assert_eq!(outcomes[0], "Some(Some(1))");
    assert_eq!(outcomes[2], "None");
    let refused = &outcomes[1];
    assert!(refused.contains("item 1 of stage `items`"), "{refused}");
    assert!(refused.contains("core::option::Option<"), "{refused}");
    assert!(refused.contains("would read back as `None`"), "{refused}");
}
