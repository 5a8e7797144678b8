//! dagrs's suite ported: a failing task stops its dependants (inline and all-spawned), diamonds pass outputs, many independent tasks each run once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::{
    FailurePolicy, Pipeline, RunOptions, SkipReason, StageBuilder, StageContext, StageError,
    StageStatus,
};

async fn bounded<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), future)
        .await
        .expect("the run ends")
}

/// a -> {b, c} -> d, and e independent; b fails. Every stage spawned when `spawn`.
fn diamond(spawn: bool, ran: Arc<AtomicUsize>) -> Pipeline {
    let value = |n: u32| {
        let ran = ran.clone();
        move |_: StageContext| {
            ran.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, StageError>(n) }
        }
    };
    fn maybe<T>(stage: StageBuilder<T>, spawn: bool) -> StageBuilder<T> {
        if spawn {
            stage.spawn()
        } else {
            stage
        }
    }
    let builder = maybe(Pipeline::builder().stage("a", value(1)), spawn).into_builder();
    let builder = maybe(
        builder.stage("b", |_: StageContext| async {
            Err::<u32, _>(StageError::permanent("b broke"))
        }),
        spawn,
    )
    .after(["a"])
    .into_builder();
    let builder = maybe(builder.stage("c", value(3)), spawn)
        .after(["a"])
        .into_builder();
    let builder = maybe(
        builder.stage("d", |ctx: StageContext| async move {
            Ok::<_, StageError>(*ctx.input::<u32>("b")? + *ctx.input::<u32>("c")?)
        }),
        spawn,
    )
    .after(["b", "c"])
    .into_builder();
    maybe(builder.stage("e", value(5)), spawn).build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_task_skips_its_dependants_and_independent_tasks_still_run() {
    for spawn in [false, true] {
        let ran = Arc::new(AtomicUsize::new(0));
        let pipeline = diamond(spawn, ran.clone());
        let report = bounded(
            pipeline
                .run_with(RunOptions::default().with_failure(FailurePolicy::ContinueIndependent)),
        )
        .await;
        assert!(!report.is_success());
        assert_eq!(
            ran.load(Ordering::SeqCst),
            3,
            "spawn {spawn}: a, c and e ran"
        );
        for stage in ["a", "c", "e"] {
            assert!(
                report.status(stage).unwrap().is_success(),
                "spawn {spawn}: {stage}"
            );
        }
        assert_eq!(
            report.explain("d").unwrap(),
            "d skipped because b failed: b broke (after 1 attempt)",
            "spawn {spawn}"
        );
        let Some(StageStatus::Skipped {
            because: SkipReason::Dependency {
                dependency, root, ..
            },
        }) = report.status("d")
        else {
            panic!("spawn {spawn}: {:?}", report.status("d"));
        };
        assert_eq!((dependency.as_str(), root.as_str()), ("b", "b"));
        assert_eq!(*report.artifact::<u32>("c").unwrap(), 3);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_independent_tasks_each_run_once_and_a_diamond_sums_its_parents() {
    for spawn in [false, true] {
        let ran = Arc::new(AtomicUsize::new(0));
        let mut builder = Pipeline::builder();
        for i in 0..2_000u64 {
            let ran = ran.clone();
            let stage = builder.stage(format!("t{i}"), move |_: StageContext| {
                ran.fetch_add(1, Ordering::SeqCst);
                async move { Ok::<_, StageError>(i) }
            });
            builder = if spawn { stage.spawn() } else { stage }.into_builder();
        }
        let names: Vec<String> = (0..2_000).map(|i| format!("t{i}")).collect();
        let join_names = names.clone();
        let join = builder
            .stage("sum", move |ctx: StageContext| {
                let names = join_names.clone();
                async move {
                    let mut sum = 0u64;
                    for name in &names {
                        sum += *ctx.input::<u64>(name)?;
                    }
                    Ok::<_, StageError>(sum)
                }
            })
            .after(&names);
        let pipeline = if spawn { join.spawn() } else { join }.build().unwrap();
        let report = bounded(pipeline.run()).await;
        assert!(report.is_success());
        assert_eq!(ran.load(Ordering::SeqCst), 2_000, "spawn {spawn}");
        assert_eq!(*report.artifact::<u64>("sum").unwrap(), 1_999 * 2_000 / 2);
    }
}

#[tokio::test]
async fn fail_fast_explains_every_stage_it_did_not_start() {
    // `independent` is declared first, so it is running (pending) when `bad` fails.
    let pipeline = Pipeline::builder()
        .stage("independent", |_: StageContext| {
            std::future::pending::<Result<(), StageError>>()
        })
        .stage("after_independent", |_: StageContext| async {
            Ok::<_, StageError>(())
        })
        .after(["independent"])
        .stage("bad", |_: StageContext| async {
            Err::<(), _>(StageError::permanent("nope"))
        })
        .stage("later", |_: StageContext| async { Ok::<_, StageError>(()) })
        .after(["bad"])
        .build()
        .unwrap();
    let report = bounded(pipeline.run()).await;
    assert_eq!(
        report.explain("later").unwrap(),
        "later skipped because bad failed: nope (after 1 attempt)"
    );
    assert_eq!(report.status("independent"), Some(&StageStatus::Cancelled));
    assert_eq!(
        report.explain("after_independent").unwrap(),
        "after_independent skipped because the run stopped after bad failed"
    );
}
