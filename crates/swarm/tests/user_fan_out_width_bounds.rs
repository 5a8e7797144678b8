//! A fan-out never runs more than `width` items at once, counted inside the items, with
//! retries backing off, k-of-n, wait_all, several stages fanning out at once on a multi-thread
//! runtime; loops and routers under a concurrency limit.

mod support;

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::{
    Backoff, FanOut, LoopPolicy, Pipeline, RetryPolicy, Route, RunOptions, StageContext,
    StageError, StageStatus,
};

#[derive(Clone, Default)]
struct Occupancy {
    now: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    runs: Arc<AtomicUsize>,
}

impl Occupancy {
    fn enter(&self) {
        self.runs.fetch_add(1, Ordering::SeqCst);
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
    }
    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Leave(Occupancy);
impl Drop for Leave {
    fn drop(&mut self) {
        self.0.leave();
    }
}

fn fan_policy(variant: usize, width: usize) -> FanOut {
    let retry = RetryPolicy::attempts(3).with_backoff(Backoff::fixed(Duration::from_micros(500)));
    match variant % 4 {
        0 => FanOut::new(width),
        1 => FanOut::new(width).retry(retry),
        2 => FanOut::new(width).require(5).retry(retry),
        _ => FanOut::new(width).require(3).wait_all().retry(retry),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_outs_keep_their_width_with_retries_on_many_stages_at_once() {
    let mut problems = Vec::new();
    for variant in 0..8usize {
        let width = variant % 3 + 1;
        let mut builder = Pipeline::builder();
        let mut occupancies = Vec::new();
        for stage in 0..4 {
            let occupancy = Occupancy::default();
            occupancies.push(occupancy.clone());
            let policy = fan_policy(variant + stage, width);
            let mut sb = builder.stage(format!("fan{stage}"), move |ctx: StageContext| {
                let occupancy = occupancy.clone();
                async move {
                    let report = ctx
                        .fan_out(0..20usize, policy, |item| {
                            let occupancy = occupancy.clone();
                            let attempts_key = item;
                            async move {
                                occupancy.enter();
                                let _leave = Leave(occupancy.clone());
                                tokio::time::sleep(Duration::from_micros(
                                    200 + (item as u64 * 37) % 400,
                                ))
                                .await;
                                if attempts_key % 5 == 1
                                    && occupancy.runs.load(Ordering::SeqCst) % 2 == 0
                                {
                                    return Err(StageError::msg("flaky"));
                                }
                                Ok(item)
                            }
                        })
                        .await?;
                    Ok::<_, StageError>(report.into_successes().count())
                }
            });
            if stage % 2 == 0 {
                sb = sb.spawn();
            }
            builder = sb.into_builder();
        }
        let pipeline = builder.build().expect("valid");
        let report = tokio::time::timeout(Duration::from_secs(10), pipeline.run())
            .await
            .expect("ends");
        for (stage, occupancy) in occupancies.iter().enumerate() {
            let peak = occupancy.peak.load(Ordering::SeqCst);
            if peak > width {
                problems.push(format!(
                    "variant {variant} fan{stage}: width {width}, peak {peak}, status {:?}",
                    report.status(&format!("fan{stage}"))
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Loop stages and routers under a concurrency limit: the stages of a run (loop bodies excluded,
/// they are sub-runs) never exceed the limit, and every taken stage runs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routers_and_loops_under_a_limit() {
    for limit in 1..=3usize {
        let occupancy = Occupancy::default();
        let body_runs = Arc::new(AtomicUsize::new(0));
        let body = {
            let body_runs = body_runs.clone();
            Pipeline::builder()
                .stage("step", move |_: StageContext| {
                    let body_runs = body_runs.clone();
                    async move {
                        body_runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_micros(200)).await;
                        Ok::<_, StageError>(())
                    }
                })
                .build()
                .expect("valid")
        };
        let mut builder = Pipeline::builder()
            .router("route", |_: StageContext| async {
                Ok::<_, StageError>(Route::to(["w0", "w2", "w4", "w6"]))
            })
            .into_builder();
        for w in 0..8 {
            let occupancy = occupancy.clone();
            let mut sb = builder
                .stage(format!("w{w}"), move |_: StageContext| {
                    let occupancy = occupancy.clone();
                    async move {
                        occupancy.enter();
                        let _leave = Leave(occupancy.clone());
                        tokio::time::sleep(Duration::from_micros(300 + w * 50)).await;
                        Ok::<_, StageError>(w)
                    }
                })
                .after(["route"]);
            if w % 3 == 0 {
                sb = sb.spawn();
            }
            builder = sb.into_builder();
        }
        let pipeline = builder
            .repeat("loop", body, LoopPolicy::new(3))
            .after(["w0"])
            .into_builder()
            .stage("join", |ctx: StageContext| async move {
                Ok::<_, StageError>(*ctx.input::<u64>("w0")? + *ctx.input::<u64>("w6")?)
            })
            .after(["w0", "w1", "w6", "loop"])
            .build()
            .expect("valid");
        let report = tokio::time::timeout(
            Duration::from_secs(10),
            pipeline.run_with(
                RunOptions::default().with_max_concurrency(NonZeroUsize::new(limit).unwrap()),
            ),
        )
        .await
        .expect("ends");
        assert!(report.is_success(), "limit {limit}: {:?}", report.outcome());
        assert!(
            occupancy.peak.load(Ordering::SeqCst) <= limit,
            "limit {limit}: peak {}",
            occupancy.peak.load(Ordering::SeqCst)
        );
        assert_eq!(
            occupancy.runs.load(Ordering::SeqCst),
            4,
            "limit {limit}: taken stages run once"
        );
        assert_eq!(
            body_runs.load(Ordering::SeqCst),
            3,
            "limit {limit}: three iterations"
        );
        assert_eq!(*report.artifact::<u64>("join").unwrap(), 6);
        for w in [1, 3, 5, 7] {
            assert!(matches!(
                report.status(&format!("w{w}")),
                Some(StageStatus::Skipped { .. })
            ));
        }
    }
}
