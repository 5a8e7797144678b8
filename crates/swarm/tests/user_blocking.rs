//! Blocking stages as users write them (synchronous work on tokio's blocking pool): a timed-out or
//! cancelled attempt is abandoned, so the run does not wait for the thread to finish; a panic on
//! the pool is a failure; retries of a blocking stage run again on the pool.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hivekit_swarm::{
    Backoff, CancellationToken, FailurePolicy, Pipeline, RetryPolicy, RunOptions, RunOutcome,
    StageContext, StageError, StageStatus,
};

/// Blocking work that ends only when the test releases it (or after 10 s): the run must return
/// long before, without waiting for the thread; the test then releases it so that the runtime's
/// shutdown does not wait either.
#[derive(Clone)]
struct Gate(Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>);

impl Gate {
    fn new() -> Self {
        Self(Arc::new((
            std::sync::Mutex::new(false),
            std::sync::Condvar::new(),
        )))
    }

    fn wait(&self) {
        let (open, signal) = &*self.0;
        let guard = open.lock().expect("no poison");
        let _ = signal
            .wait_timeout_while(guard, Duration::from_secs(10), |open| !*open)
            .expect("no poison");
    }

    fn open(&self) {
        let (open, signal) = &*self.0;
        *open.lock().expect("no poison") = true;
        signal.notify_all();
    }
}

/// Far below the gate's 10 s: a run that waited for the thread would take that long.
const PROMPT: Duration = Duration::from_secs(3);

fn gated(gate: &Gate) -> hivekit_swarm::StageBuilder<()> {
    let gate = gate.clone();
    Pipeline::builder()
        .stage("sync", move |_: StageContext| {
            let gate = gate.clone();
            async move {
                gate.wait();
                Ok::<_, StageError>(())
            }
        })
        .blocking()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_blocking_stage_is_abandoned_and_the_run_does_not_wait_for_its_thread() {
    let gate = Gate::new();
    let pipeline = gated(&gate)
        .timeout(Duration::from_millis(10))
        .build()
        .expect("valid");
    let start = Instant::now();
    let report = tokio::time::timeout(Duration::from_secs(15), pipeline.run())
        .await
        .expect("no hang");
    let elapsed = start.elapsed();
    gate.open();
    assert_eq!(
        report.status("sync"),
        Some(&StageStatus::TimedOut { attempts: 1 })
    );
    assert!(
        elapsed < PROMPT,
        "the run waited {elapsed:?} for an abandoned thread"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_blocking_stage_is_abandoned_and_the_run_ends_at_once() {
    let gate = Gate::new();
    let pipeline = gated(&gate).build().expect("valid");
    let cancel = CancellationToken::new();
    let canceller = cancel.clone();
    let start = Instant::now();
    let stop = async move {
        tokio::time::sleep(Duration::from_millis(10)).await;
        canceller.cancel();
    };
    let (report, ()) = tokio::time::timeout(Duration::from_secs(15), async {
        tokio::join!(
            pipeline.run_with(RunOptions::default().with_cancel(cancel)),
            stop
        )
    })
    .await
    .expect("no hang");
    let elapsed = start.elapsed();
    gate.open();
    assert_eq!(report.outcome(), RunOutcome::Cancelled);
    assert_eq!(report.status("sync"), Some(&StageStatus::Cancelled));
    assert!(
        elapsed < PROMPT,
        "the run waited {elapsed:?} for a cancelled thread"
    );
}

#[tokio::test]
async fn a_blocking_stage_that_panics_is_a_failure_and_is_retried_on_the_pool() {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let pipeline = Pipeline::builder()
        .stage("sync", move |ctx: StageContext| {
            counter.fetch_add(1, Ordering::SeqCst);
            async move {
                assert!(ctx.attempt() >= 3, "attempt {} blew up", ctx.attempt());
                Ok::<_, StageError>(std::thread::current().name().map(str::to_owned))
            }
        })
        .blocking()
        .retry(RetryPolicy::attempts(3).with_backoff(Backoff::NONE))
        .stage("fragile", |_: StageContext| async {
            panic!("always");
            #[allow(unreachable_code)]
            Ok::<_, StageError>(())
        })
        .blocking()
        .build()
        .expect("valid");
    let report = tokio::time::timeout(
        Duration::from_secs(5),
        pipeline.run_with(RunOptions::default().with_failure(FailurePolicy::ContinueIndependent)),
    )
    .await
    .expect("no hang");
    assert_eq!(
        report.status("sync"),
        Some(&StageStatus::Succeeded { attempts: 3 })
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert!(matches!(
        report.status("fragile"),
        Some(StageStatus::Failed { error: StageError::Panicked(message), attempts: 1 }) if message.contains("always")
    ));
}
