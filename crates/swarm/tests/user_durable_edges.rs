//! Durable runs with the run ids users pass: empty, unicode, with a NUL byte.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::checkpoint::{Durable, MemoryStore};
use hivekit_swarm::{Pipeline, RunOptions, StageContext, StageError};

fn counting_pipeline(runs: &Arc<AtomicUsize>) -> Pipeline {
    let runs = runs.clone();
    Pipeline::builder()
        .stage("work", move |_: StageContext| {
            runs.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Ok::<_, StageError>(7u64))
        })
        .durable()
        .build()
        .expect("valid durable pipeline")
}

#[tokio::test]
async fn empty_and_unicode_run_ids_start_and_resume() {
    let durable = Durable::new(MemoryStore::new());
    let runs = Arc::new(AtomicUsize::new(0));
    let pipeline = counting_pipeline(&runs);
    for run_id in ["", "ジョブ 1/2 ✓", "a\0b"] {
        let outcome = tokio::time::timeout(
            Duration::from_secs(5),
            durable.start(&pipeline, run_id, RunOptions::default()),
        )
        .await
        .expect("no hang")
        .expect("any string is a run id");
        assert!(outcome.report().is_success());
        let resumed = tokio::time::timeout(
            Duration::from_secs(5),
            durable.resume(&pipeline, run_id, RunOptions::default()),
        )
        .await
        .expect("no hang")
        .expect("resumes");
        assert_eq!(
            *resumed.report().artifact::<u64>("work").expect("artifact"),
            7
        );
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        3,
        "resuming a finished run runs nothing again"
    );
    assert_eq!(durable.runs().expect("runs").len(), 3);
}

#[tokio::test]
async fn a_failed_durable_run_resumed_after_the_fix_reruns_only_the_failed_stage_and_its_dependents(
) {
    use hivekit_swarm::{FailurePolicy, RunOutcome, StageStatus};
    use std::sync::atomic::AtomicBool;

    let healthy = Arc::new(AtomicBool::new(false));
    let calls: Arc<Vec<AtomicUsize>> = Arc::new((0..4).map(|_| AtomicUsize::new(0)).collect());
    let counted = |index: usize| {
        let calls = calls.clone();
        move || {
            calls[index].fetch_add(1, Ordering::SeqCst);
        }
    };
    let (fetch, other, flaky, report) = (counted(0), counted(1), counted(2), counted(3));
    let gate = healthy.clone();
    let pipeline = Pipeline::builder()
        .stage("fetch", move |_: StageContext| {
            fetch();
            std::future::ready(Ok::<_, StageError>(2u64))
        })
        .durable()
        .stage("other", move |_: StageContext| {
            other();
            std::future::ready(Ok::<_, StageError>(5u64))
        })
        .durable()
        .stage("flaky", move |ctx: StageContext| {
            flaky();
            let up = gate.load(Ordering::SeqCst);
            async move {
                if !up {
                    return Err(StageError::msg("service down"));
                }
                Ok::<_, StageError>(*ctx.input::<u64>("fetch")? * 10)
            }
        })
        .after(["fetch"])
        .durable()
        .stage("report", move |ctx: StageContext| {
            report();
            async move { Ok::<_, StageError>(*ctx.input::<u64>("flaky")? + 1) }
        })
        .after(["flaky"])
        .durable()
        .build()
        .expect("valid durable pipeline");
    let durable = Durable::new(MemoryStore::new());
    let options = || RunOptions::default().with_failure(FailurePolicy::ContinueIndependent);
    let first = tokio::time::timeout(
        Duration::from_secs(5),
        durable.start(&pipeline, "job", options()),
    )
    .await
    .expect("no hang")
    .expect("started");
    assert_eq!(first.report().outcome(), RunOutcome::Failed);
    healthy.store(true, Ordering::SeqCst);
    let second = tokio::time::timeout(
        Duration::from_secs(5),
        durable.resume(&pipeline, "job", options()),
    )
    .await
    .expect("no hang")
    .expect("resumed");
    let report = second.report();
    assert!(report.is_success(), "{report}");
    assert_eq!(*report.artifact::<u64>("report").expect("artifact"), 21);
    assert!(report.stage("fetch").expect("known").resumed);
    assert!(report.stage("other").expect("known").resumed);
    assert!(!report.stage("flaky").expect("known").resumed);
    assert_eq!(
        report.status("flaky"),
        Some(&StageStatus::Succeeded { attempts: 1 })
    );
    let counts: Vec<usize> = calls
        .iter()
        .map(|count| count.load(Ordering::SeqCst))
        .collect();
    assert_eq!(counts, [1, 1, 2, 1], "fetch, other, flaky, report");
    // Resuming the finished run runs nothing again.
    let third = durable
        .resume(&pipeline, "job", options())
        .await
        .expect("resumed");
    assert!(third.report().is_success());
    let again: Vec<usize> = calls
        .iter()
        .map(|count| count.load(Ordering::SeqCst))
        .collect();
    assert_eq!(again, counts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_runs_of_one_durable_pipeline_at_once_keep_their_own_inputs_and_records() {
    use hivekit_swarm::RunInput;

    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let pipeline = Pipeline::builder()
        .stage("double", move |ctx: StageContext| {
            counter.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::task::yield_now().await;
                Ok::<_, StageError>(*ctx.run_input::<u64>()? * 2)
            }
        })
        .durable()
        .spawn()
        .stage("plus", |ctx: StageContext| async move {
            Ok::<_, StageError>(*ctx.input::<u64>("double")? + 1)
        })
        .after(["double"])
        .durable()
        .build()
        .expect("valid durable pipeline");
    let durable = Durable::new(MemoryStore::new()).with_input::<u64>();
    let runs: Vec<_> = (0..16u64)
        .map(|input| {
            let (durable, pipeline) = (durable.clone(), pipeline.clone());
            tokio::spawn(async move {
                let outcome = durable
                    .start(
                        &pipeline,
                        &format!("job-{input}"),
                        RunOptions::default().with_run_input(RunInput::serializable(input)),
                    )
                    .await
                    .expect("started");
                *outcome.report().artifact::<u64>("plus").expect("artifact")
            })
        })
        .collect();
    for (input, run) in runs.into_iter().enumerate() {
        let plus = tokio::time::timeout(Duration::from_secs(5), run)
            .await
            .expect("no hang")
            .expect("no panic");
        assert_eq!(plus, input as u64 * 2 + 1);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 16);
    for input in 0..16u64 {
        let resumed = durable
            .resume(&pipeline, &format!("job-{input}"), RunOptions::default())
            .await
            .expect("resumed");
        assert_eq!(
            *resumed.report().artifact::<u64>("plus").expect("artifact"),
            input * 2 + 1
        );
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        16,
        "resuming finished runs runs nothing"
    );
}
