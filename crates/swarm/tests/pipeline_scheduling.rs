//! Scheduling honesty: backoff waits hold no slot, blocking stages use the blocking pool, long
//! inline runs yield to other tasks.

mod support;

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::{Backoff, Pipeline, RetryPolicy, RunOptions, StageContext, StageError};
use support::{add, name, noop};
use tokio::time::Instant;

/// Counts stages running at once and the most seen.
#[derive(Clone, Default)]
struct Occupancy {
    now: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

impl Occupancy {
    fn enter(&self) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
    }

    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn a_stage_waiting_out_its_backoff_holds_no_concurrency_slot() {
    let start = Instant::now();
    let occupancy = Occupancy::default();
    let (retrying, slow, other) = (occupancy.clone(), occupancy.clone(), occupancy.clone());
    let pipeline = Pipeline::builder()
        .stage("retrying", move |ctx: StageContext| {
            let occupancy = retrying.clone();
            async move {
                occupancy.enter();
                occupancy.leave();
                if ctx.attempt() == 1 {
                    return Err(StageError::msg("try again in 30 ms"));
                }
                Ok(start.elapsed())
            }
        })
        .retry(RetryPolicy::attempts(2).with_backoff(Backoff::fixed(Duration::from_millis(30))))
        .stage("slow", move |_: StageContext| {
            let occupancy = slow.clone();
            async move {
                occupancy.enter();
                tokio::time::sleep(Duration::from_millis(100)).await;
                occupancy.leave();
                Ok::<_, StageError>(start.elapsed())
            }
        })
        .stage("unrelated", move |_: StageContext| {
            let occupancy = other.clone();
            async move {
                let started = start.elapsed();
                occupancy.enter();
                tokio::time::sleep(Duration::from_millis(10)).await;
                occupancy.leave();
                Ok::<_, StageError>(started)
            }
        })
        .build()
        .unwrap();
    let report = pipeline
        .run_with(RunOptions::default().with_max_concurrency(NonZeroUsize::new(2).unwrap()))
        .await;
    assert!(report.is_success(), "{report}");
    // The unrelated stage took the slot the retrying one left for its backoff: it started at
    // once instead of 30 ms later.
    assert_eq!(
        *report.artifact::<Duration>("unrelated").unwrap(),
        Duration::ZERO
    );
    // The retry itself waited its 30 ms and then for a slot.
    assert!(*report.artifact::<Duration>("retrying").unwrap() >= Duration::from_millis(30));
    assert!(occupancy.peak.load(Ordering::SeqCst) <= 2);
}

#[tokio::test(start_paused = true)]
async fn the_concurrency_bound_holds_while_many_stages_retry() {
    let occupancy = Occupancy::default();
    let mut builder = Pipeline::builder();
    for stage in 0..20 {
        let occupancy = occupancy.clone();
        builder = builder
            .stage(name(stage), move |ctx: StageContext| {
                let occupancy = occupancy.clone();
                async move {
                    occupancy.enter();
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    occupancy.leave();
                    if ctx.attempt() < 3 {
                        return Err(StageError::msg("again"));
                    }
                    Ok(())
                }
            })
            .retry(RetryPolicy::attempts(3).with_backoff(Backoff::fixed(Duration::from_millis(7))))
            .into_builder();
    }
    let report = builder
        .build()
        .unwrap()
        .run_with(RunOptions::default().with_max_concurrency(NonZeroUsize::new(3).unwrap()))
        .await;
    assert!(report.is_success(), "{report}");
    assert_eq!(occupancy.peak.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_blocking_stage_runs_on_the_blocking_pool() {
    let caller = std::thread::current().id();
    let pipeline = Pipeline::builder()
        .stage("blocking", |_: StageContext| async {
            // Synchronous work: it would stall a current-thread runtime if run inline.
            std::thread::sleep(Duration::from_millis(1));
            Ok::<_, StageError>(std::thread::current().id())
        })
        .blocking()
        .stage("inline", |_: StageContext| async {
            Ok::<_, StageError>(std::thread::current().id())
        })
        .build()
        .unwrap();
    let report = pipeline.run().await;
    assert!(report.is_success(), "{report}");
    assert_ne!(
        *report
            .artifact::<std::thread::ThreadId>("blocking")
            .unwrap(),
        caller
    );
    assert_eq!(
        *report.artifact::<std::thread::ThreadId>("inline").unwrap(),
        caller
    );
}

#[tokio::test]
async fn a_panic_in_a_blocking_stage_fails_the_stage() {
    let pipeline = Pipeline::builder()
        .stage("blocking", |_: StageContext| async {
            if true {
                panic!("blocking boom");
            }
            Ok::<_, StageError>(())
        })
        .blocking()
        .build()
        .unwrap();
    let report = pipeline.run().await;
    assert!(matches!(
        report.status("blocking"),
        Some(hivekit_swarm::StageStatus::Failed { error: StageError::Panicked(message), .. }) if message == "blocking boom"
    ));
}

#[tokio::test(flavor = "current_thread")]
async fn a_ten_thousand_stage_inline_chain_does_not_starve_another_task() {
    let other_ran = Arc::new(AtomicBool::new(false));
    let mut builder = Pipeline::builder();
    for stage in 0..10_000 {
        let after: Vec<String> = match stage {
            0 => vec![],
            _ => vec![name(stage - 1)],
        };
        builder = add(builder, &name(stage), &after, noop);
    }
    let seen = other_ran.clone();
    let pipeline = builder
        .stage("last", move |_: StageContext| {
            let seen = seen.clone();
            async move { Ok::<_, StageError>(seen.load(Ordering::SeqCst)) }
        })
        .after([name(9_999)])
        .build()
        .unwrap();
    let flag = other_ran.clone();
    // On this one thread, the task can only run if the run yields.
    let other = tokio::spawn(async move { flag.store(true, Ordering::SeqCst) });
    let report = pipeline.run().await;
    assert!(report.is_success());
    assert!(
        *report.artifact::<bool>("last").unwrap(),
        "the other task ran while the chain was running"
    );
    other.await.unwrap();
}
