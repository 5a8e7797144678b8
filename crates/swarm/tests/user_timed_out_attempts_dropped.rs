//! An attempt that overruns its stage's timeout is over (dropped) before the next attempt
//! or another stage takes its slot: counted by guards alive inside the attempts, inline and
//! spawned, with a concurrency limit, on a multi-thread runtime.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::{
    Backoff, Pipeline, RetryPolicy, RunOptions, StageContext, StageError, StageStatus,
};

#[derive(Clone, Default)]
struct Alive {
    now: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

struct Guard(Alive);
impl Drop for Guard {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Alive {
    fn enter(&self) -> Guard {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        Guard(self.clone())
    }
}

async fn scenario(spawn: bool, limit: usize) {
    let alive = Alive::default();
    let mut builder = Pipeline::builder();
    for s in 0..4 {
        let alive = alive.clone();
        let mut sb = builder
            .stage(format!("t{s}"), move |ctx: StageContext| {
                let alive = alive.clone();
                async move {
                    let _guard = alive.enter();
                    if ctx.attempt() == 1 {
                        // Overruns the timeout, ignoring cancellation.
                        tokio::time::sleep(Duration::from_millis(30)).await;
                    } else {
                        tokio::time::sleep(Duration::from_micros(200)).await;
                    }
                    Ok::<_, StageError>(s)
                }
            })
            .timeout(Duration::from_millis(3))
            .retry(RetryPolicy::attempts(2).with_backoff(Backoff::NONE));
        if spawn {
            sb = sb.spawn();
        }
        builder = sb.into_builder();
    }
    let pipeline = builder.build().expect("valid");
    let report = tokio::time::timeout(
        Duration::from_secs(10),
        pipeline.run_with(
            RunOptions::default().with_max_concurrency(NonZeroUsize::new(limit).unwrap()),
        ),
    )
    .await
    .expect("ends");
    for s in 0..4 {
        assert_eq!(
            report.status(&format!("t{s}")),
            Some(&StageStatus::Succeeded { attempts: 2 }),
            "t{s}"
        );
    }
    let peak = alive.peak.load(Ordering::SeqCst);
    assert!(
        peak <= limit,
        "spawn {spawn} limit {limit}: {peak} attempts alive at once"
    );
    tokio::time::sleep(Duration::from_millis(40)).await;
    assert_eq!(
        alive.now.load(Ordering::SeqCst),
        0,
        "nothing alive after the run"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timed_out_inline_attempts_are_dropped_before_their_slot_is_reused() {
    scenario(false, 1).await;
    scenario(false, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timed_out_spawned_attempts_are_dropped_before_their_slot_is_reused() {
    scenario(true, 1).await;
    scenario(true, 2).await;
}
