//! A loop stage with a per-attempt timeout and retries, its body fanning out slowly under a paused clock: each attempt times out after the iterations it finished, the report lists them per attempt, and nothing of the body outlives the run.

mod support;

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::{
    Backoff, FanOut, LoopPolicy, Pipeline, RetryPolicy, RunOutcome, StageContext, StageError,
    StageStatus,
};
use support::LiveGuard;

#[tokio::test(start_paused = true)]
async fn each_attempt_of_a_looping_stage_times_out_after_the_iterations_it_finished() {
    let live = Arc::new(AtomicUsize::new(0));
    let item_runs = Arc::new(AtomicU32::new(0));
    let (live_in, runs_in) = (live.clone(), item_runs.clone());
    // Each iteration fans out over 2 items that take 1 s each, in parallel: an iteration is 1 s.
    let body = Pipeline::builder()
        .stage("fan", move |ctx: StageContext| {
            let (live, runs) = (live_in.clone(), runs_in.clone());
            async move {
                let report = ctx
                    .fan_out(0..2u32, FanOut::new(2), |item| {
                        let guard = LiveGuard::new(&live);
                        runs.fetch_add(1, Ordering::SeqCst);
                        async move {
                            let _guard = guard;
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            Ok::<_, StageError>(item)
                        }
                    })
                    .await?;
                Ok::<_, StageError>(report.succeeded)
            }
        })
        .build()
        .unwrap();
    let pipeline = Pipeline::builder()
        .repeat("loop", body, LoopPolicy::new(10))
        .timeout(Duration::from_millis(2500))
        .retry(RetryPolicy::attempts(2).with_backoff(Backoff::NONE))
        .build()
        .unwrap();
    let report = tokio::time::timeout(Duration::from_secs(120), pipeline.run())
        .await
        .expect("the run ends");
    assert_eq!(
        live.load(Ordering::SeqCst),
        0,
        "body items outlived the run"
    );
    assert_eq!(report.outcome(), RunOutcome::Failed);
    assert_eq!(
        report.status("loop"),
        Some(&StageStatus::TimedOut { attempts: 2 })
    );
    // Per attempt: iterations 1 and 2 finished (2 s), the third was cut at 2.5 s.
    assert_eq!(item_runs.load(Ordering::SeqCst), 2 * 3 * 2, "items started");
    // The finished iterations of both attempts, in turn: 2 and 2.
    let stage = report.stage("loop").unwrap();
    assert_eq!(stage.iterations.len(), 4, "iterations kept");
    for iteration in &stage.iterations {
        assert_eq!(*iteration.artifact::<usize>("fan").unwrap(), 2);
    }
}
