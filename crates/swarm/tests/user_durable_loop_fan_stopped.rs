//! A durable loop whose body fans out, stopped by the run's deadline or its cancellation in the middle of an iteration's fan-out (on the redb store): the report names the stopped stages, and a resume runs each finished item and iteration exactly once and equals an uninterrupted run.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hivekit_swarm::checkpoint::{Durable, RedbStore};
use hivekit_swarm::{
    FanOut, Iteration, LoopPolicy, LoopReport, Pipeline, RunOptions, RunOutcome, SkipReason,
    StageContext, StageError, StageStatus,
};
use tokio_util::sync::CancellationToken;

type Calls = Arc<Mutex<HashMap<(u32, u32), u32>>>;

const ITEMS: u32 = 4;

/// Loop of 3 iterations; the body's `fan` fans out durably over 4 items, width 4. Items 2 and 3 of
/// iteration 2 sleep 10 s (paused clock); everything else is instant. `after` follows the loop.
fn pipeline(calls: Calls, recorded: Arc<AtomicUsize>) -> Pipeline {
    let body = Pipeline::builder()
        .stage("fan", move |ctx: StageContext| {
            let (calls, recorded) = (calls.clone(), recorded.clone());
            async move {
                let n = ctx.run_input::<Iteration>()?.number();
                let report = ctx
                    .durable_fan_out(0..ITEMS, FanOut::new(ITEMS as usize), |item| {
                        let (calls, recorded) = (calls.clone(), recorded.clone());
                        async move {
                            *calls.lock().unwrap().entry((n, item)).or_default() += 1;
                            if n == 2 && item >= 2 {
                                tokio::time::sleep(Duration::from_secs(10)).await;
                            } else if n == 2 {
                                recorded.fetch_add(1, Ordering::SeqCst);
                            }
                            Ok::<_, StageError>(n * 10 + item)
                        }
                    })
                    .await?;
                Ok::<_, StageError>(report.into_successes().collect::<Vec<u32>>())
            }
        })
        .durable()
        .build()
        .unwrap();
    Pipeline::builder()
        .repeat("rounds", body, LoopPolicy::new(3))
        .stage("after", |ctx: StageContext| async move {
            let rounds = ctx.input::<LoopReport>("rounds")?;
            let mut all = Vec::new();
            for iteration in &rounds.iterations {
                all.extend(iteration.artifact::<Vec<u32>>("fan")?.iter().copied());
            }
            Ok::<_, StageError>(all)
        })
        .after(["rounds"])
        .durable()
        .into_builder()
        .durable()
        .build()
        .unwrap()
}

fn expected() -> Vec<u32> {
    (1..=3)
        .flat_map(|n| (0..ITEMS).map(move |item| n * 10 + item))
        .collect()
}

fn check_calls(calls: &Calls) {
    let calls = calls.lock().unwrap().clone();
    let mut wrong = Vec::new();
    for n in 1..=3 {
        for item in 0..ITEMS {
            // Items in flight when the run stopped run again; finished ones never.
            let want = if n == 2 && item >= 2 { 2 } else { 1 };
            let got = calls.get(&(n, item)).copied().unwrap_or(0);
            if got != want {
                wrong.push(format!(
                    "(iteration {n}, item {item}) ran {got} times, want {want}"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

async fn resume_and_check(durable: &Durable, pipeline: &Pipeline, calls: &Calls) {
    let second = tokio::time::timeout(
        Duration::from_secs(120),
        durable.resume(pipeline, "run", RunOptions::default()),
    )
    .await
    .expect("the resume ends")
    .expect("resumes");
    let report = second.report();
    assert!(report.is_success(), "{:?}", report.outcome());
    assert_eq!(*report.artifact::<Vec<u32>>("after").unwrap(), expected());
    check_calls(calls);
    let rounds = report.artifact::<LoopReport>("rounds").unwrap();
    let summary = rounds.iterations[1]
        .stage("fan")
        .unwrap()
        .fan_out
        .last()
        .cloned()
        .unwrap();
    assert_eq!(summary.resumed, 2, "{summary}");
}

fn check_stopped(report: &hivekit_swarm::RunReport, outcome: RunOutcome, because: SkipReason) {
    assert_eq!(report.outcome(), outcome);
    assert_eq!(report.status("rounds"), Some(&StageStatus::Cancelled));
    assert_eq!(
        report.status("after"),
        Some(&StageStatus::Skipped { because })
    );
    // The finished first iteration is kept in the stopped loop stage's report.
    let iterations = &report.stage("rounds").unwrap().iterations;
    assert_eq!(iterations.len(), 1, "{iterations:?}");
}

#[tokio::test(start_paused = true)]
async fn a_deadline_in_the_middle_of_an_iterations_fan_out_resumes_there() {
    let dir = tempfile::tempdir().unwrap();
    let durable = Durable::new(RedbStore::open(dir.path().join("runs.redb")).unwrap());
    let calls: Calls = Arc::default();
    let pipeline = pipeline(calls.clone(), Arc::default());
    let first = tokio::time::timeout(
        Duration::from_secs(120),
        durable.start(
            &pipeline,
            "run",
            RunOptions::default().with_deadline(Duration::from_secs(5)),
        ),
    )
    .await
    .expect("the first run ends")
    .expect("starts");
    check_stopped(
        first.report(),
        RunOutcome::DeadlineExceeded,
        SkipReason::DeadlineExceeded,
    );
    resume_and_check(&durable, &pipeline, &calls).await;
}

#[tokio::test(start_paused = true)]
async fn a_cancellation_in_the_middle_of_an_iterations_fan_out_resumes_there() {
    let dir = tempfile::tempdir().unwrap();
    let durable = Durable::new(RedbStore::open(dir.path().join("runs.redb")).unwrap());
    let calls: Calls = Arc::default();
    let recorded = Arc::new(AtomicUsize::new(0));
    let pipeline = pipeline(calls.clone(), recorded.clone());
    let cancel = CancellationToken::new();
    let run = durable.start(
        &pipeline,
        "run",
        RunOptions::default().with_cancel(cancel.clone()),
    );
    let stop = async {
        // Once items 0 and 1 of iteration 2 returned (and, slow items pending, were recorded).
        while recorded.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        // Let the fan-out take their results in.
        tokio::time::sleep(Duration::from_secs(1)).await;
        cancel.cancel();
    };
    let (first, ()) =
        tokio::time::timeout(Duration::from_secs(120), async { tokio::join!(run, stop) })
            .await
            .expect("the first run ends");
    let first = first.expect("starts");
    check_stopped(first.report(), RunOutcome::Cancelled, SkipReason::Cancelled);
    resume_and_check(&durable, &pipeline, &calls).await;
}
