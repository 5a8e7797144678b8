//! Where and how often a user runs one pipeline: twice at once with different inputs, from a plain
//! thread through `hivekit_runtime::execute`, from inside a multi-thread runtime, with the run
//! future dropped half way; and graphs far larger than a test suite's usual three stages.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use hivekit_swarm::{
    FailurePolicy, Pipeline, RunOptions, RunOutcome, SkipReason, StageContext, StageError,
    StageStatus,
};

fn doubling_pipeline() -> Pipeline {
    Pipeline::builder()
        .stage("read", |ctx: StageContext| async move {
            let input = *ctx.run_input::<u64>()?;
            tokio::task::yield_now().await;
            Ok::<_, StageError>(input)
        })
        .stage("double", |ctx: StageContext| async move {
            tokio::task::yield_now().await;
            Ok::<_, StageError>(*ctx.input::<u64>("read")? * 2)
        })
        .after(["read"])
        .spawn()
        .build()
        .expect("valid")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_pipeline_runs_many_times_at_once_each_with_its_own_input_and_artifacts() {
    let pipeline = doubling_pipeline();
    let runs = (0..32u64).map(|input| {
        let pipeline = &pipeline;
        async move {
            (
                input,
                pipeline
                    .run_with(RunOptions::default().with_input(input))
                    .await,
            )
        }
    });
    let reports = tokio::time::timeout(Duration::from_secs(5), futures::future::join_all(runs))
        .await
        .expect("no hang");
    for (input, report) in reports {
        assert!(report.is_success());
        assert_eq!(
            *report.artifact::<u64>("double").expect("artifact"),
            input * 2
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloned_pipeline_runs_on_other_tasks_concurrently() {
    let pipeline = doubling_pipeline();
    let handles: Vec<_> = (0..8u64)
        .map(|input| {
            let pipeline = pipeline.clone();
            tokio::spawn(async move {
                let report = pipeline
                    .run_with(RunOptions::default().with_input(input))
                    .await;
                *report.artifact::<u64>("double").expect("artifact")
            })
        })
        .collect();
    for (input, handle) in handles.into_iter().enumerate() {
        let doubled = tokio::time::timeout(Duration::from_secs(5), handle)
            .await
            .expect("no hang")
            .expect("no panic");
        assert_eq!(doubled, input as u64 * 2);
    }
}

#[test]
fn a_plain_thread_runs_a_pipeline_through_execute() {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let pipeline = doubling_pipeline();
        let report =
            hivekit_runtime::execute(pipeline.run_with(RunOptions::default().with_input(21u64)));
        let _ = sender.send(*report.artifact::<u64>("double").expect("artifact"));
    });
    assert_eq!(receiver.recv_timeout(Duration::from_secs(5)), Ok(42));
}

#[test]
fn a_multi_thread_runtime_worker_runs_a_pipeline_through_execute() {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let doubled = runtime.block_on(async {
            tokio::spawn(async {
                let pipeline = doubling_pipeline();
                let report = hivekit_runtime::execute(
                    pipeline.run_with(RunOptions::default().with_input(4u64)),
                );
                *report.artifact::<u64>("double").expect("artifact")
            })
            .await
            .expect("no panic")
        });
        let _ = sender.send(doubled);
    });
    assert_eq!(receiver.recv_timeout(Duration::from_secs(5)), Ok(8));
}

#[test]
fn try_execute_inside_a_current_thread_runtime_is_a_typed_error() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let result = runtime.block_on(async {
        let pipeline = doubling_pipeline();
        hivekit_runtime::try_execute(pipeline.run_with(RunOptions::default().with_input(1u64)))
            .map(|report| report.is_success())
    });
    assert!(
        matches!(result, Err(hivekit_runtime::RuntimeError::WouldDeadlock)),
        "{result:?}"
    );
}

/// Counts live instances; a stage holding one that is dropped with the run releases it.
struct Live(Arc<AtomicUsize>);

impl Live {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn dropping_a_run_half_way_drops_its_inline_stages_and_the_pipeline_runs_again() {
    let live = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let (live_in, started_in) = (live.clone(), started.clone());
    let pipeline = Pipeline::builder()
        .stage("fast", |_: StageContext| async { Ok::<_, StageError>(()) })
        .stage("slow", move |_: StageContext| {
            let guard = Live::new(&live_in);
            started_in.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                drop(guard);
                Ok::<_, StageError>(())
            }
        })
        .after(["fast"])
        .build()
        .expect("valid");
    let dropped = tokio::time::timeout(Duration::from_millis(10), pipeline.run()).await;
    assert!(dropped.is_err(), "the run was still going");
    assert_eq!(started.load(Ordering::SeqCst), 1);
    assert_eq!(
        live.load(Ordering::SeqCst),
        0,
        "the dropped run left a stage alive"
    );
    let report = tokio::time::timeout(Duration::from_secs(1), pipeline.run())
        .await
        .expect("no hang");
    assert!(report.is_success());
    assert_eq!(live.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_chain_of_five_thousand_stages_runs_in_order() {
    let stages = 5_000;
    let mut builder = Pipeline::builder()
        .stage("s0", |_: StageContext| async { Ok::<_, StageError>(0u64) })
        .into_builder();
    for index in 1..stages {
        let previous = format!("s{}", index - 1);
        let reads = previous.clone();
        builder = builder
            .stage(format!("s{index}"), move |ctx: StageContext| {
                let reads = reads.clone();
                async move { Ok::<_, StageError>(*ctx.input::<u64>(&reads)? + 1) }
            })
            .after([previous])
            .into_builder();
    }
    let pipeline = builder.build().expect("valid chain");
    let report = tokio::time::timeout(Duration::from_secs(20), pipeline.run())
        .await
        .expect("no hang");
    assert!(report.is_success());
    let last = format!("s{}", stages - 1);
    assert_eq!(
        *report.artifact::<u64>(&last).expect("artifact"),
        stages as u64 - 1
    );
    drop(report);
}

#[tokio::test]
async fn a_failure_at_the_root_of_a_huge_chain_explains_the_last_stage() {
    let stages = 5_000;
    let mut builder = Pipeline::builder()
        .stage("s0", |_: StageContext| async {
            Err::<(), _>(StageError::msg("root"))
        })
        .into_builder();
    for index in 1..stages {
        builder = builder
            .stage(format!("s{index}"), |_: StageContext| async {
                Ok::<_, StageError>(())
            })
            .after([format!("s{}", index - 1)])
            .into_builder();
    }
    let pipeline = builder.build().expect("valid chain");
    let report = tokio::time::timeout(
        Duration::from_secs(20),
        pipeline.run_with(RunOptions::default().with_failure(FailurePolicy::ContinueIndependent)),
    )
    .await
    .expect("no hang");
    assert_eq!(report.outcome(), RunOutcome::Failed);
    let Some(StageStatus::Skipped {
        because: SkipReason::Dependency { root, .. },
    }) = report.status("s4999")
    else {
        panic!("{:?}", report.status("s4999"))
    };
    assert_eq!(root, "s0");
    let explained = report.explain("s2").expect("known stage");
    assert_eq!(
        explained,
        "s2 skipped because s1 was skipped because s0 failed: root (after 1 attempt)"
    );
}

#[tokio::test]
async fn a_join_of_two_thousand_parents_runs_once_after_all_of_them() {
    let parents = 2_000;
    let joined = Arc::new(AtomicUsize::new(0));
    let mut builder = Pipeline::builder();
    for index in 0..parents {
        builder = builder
            .stage(format!("p{index}"), |_: StageContext| async {
                Ok::<_, StageError>(1u8)
            })
            .into_builder();
    }
    let counter = joined.clone();
    let pipeline = builder
        .stage("join", move |ctx: StageContext| {
            counter.fetch_add(1, Ordering::SeqCst);
            async move {
                let mut sum = 0usize;
                for index in 0..parents {
                    sum += usize::from(*ctx.input::<u8>(&format!("p{index}"))?);
                }
                Ok::<_, StageError>(sum)
            }
        })
        .after((0..parents).map(|index| format!("p{index}")))
        .build()
        .expect("valid");
    let report = tokio::time::timeout(Duration::from_secs(20), pipeline.run())
        .await
        .expect("no hang");
    assert_eq!(
        *report.artifact::<usize>("join").expect("artifact"),
        parents
    );
    assert_eq!(joined.load(Ordering::SeqCst), 1);
}
