//! Seeded runs as a user replays them: the same seed gives the same start order and the same
//! retry waits (jitter included), run after run; another seed gives other waits; the seed a stage
//! sees is the same in runs of the same seed.

use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::{
    Backoff, FailurePolicy, Pipeline, RetryPolicy, RunOptions, RunReport, StageContext, StageError,
};

fn pipeline(order: &Arc<parking_lot::Mutex<Vec<String>>>) -> Pipeline {
    let mut builder = Pipeline::builder()
        .stage("root", |_: StageContext| async { Ok::<_, StageError>(()) })
        .into_builder();
    for index in 0..8 {
        let order = order.clone();
        builder = builder
            .stage(format!("flaky{index}"), move |ctx: StageContext| {
                order.lock().push(ctx.name().to_owned());
                async move {
                    if ctx.attempt() < 3 {
                        return Err(StageError::msg("again"));
                    }
                    Ok::<_, StageError>(ctx.seed())
                }
            })
            .after(["root"])
            .retry(RetryPolicy::attempts(3).with_backoff(Backoff {
                initial: Duration::from_millis(10),
                multiplier: 2.0,
                max: Duration::from_millis(50),
                jitter: 1.0,
            }))
            .into_builder();
    }
    builder.build().expect("valid")
}

async fn run(seed: u64) -> (RunReport, Vec<String>) {
    let order = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let report = tokio::time::timeout(
        Duration::from_secs(10),
        pipeline(&order).run_with(
            RunOptions::default()
                .with_seed(seed)
                .with_max_concurrency(hivekit_swarm::ConcurrencyLimit::new(1).expect("limit"))
                .with_failure(FailurePolicy::ContinueIndependent),
        ),
    )
    .await
    .expect("no hang");
    let order = order.lock().clone();
    (report, order)
}

fn waits(report: &RunReport) -> Vec<Vec<Duration>> {
    report
        .stages()
        .iter()
        .map(|stage| {
            stage
                .failed_attempts
                .iter()
                .map(|record| record.backoff)
                .collect()
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn the_same_seed_replays_the_same_order_and_the_same_retry_waits() {
    let (first, first_order) = run(42).await;
    let (second, second_order) = run(42).await;
    assert!(first.is_success() && second.is_success());
    assert_eq!(first_order, second_order);
    assert_eq!(waits(&first), waits(&second));
    assert_eq!(first_order.len(), 24, "8 stages, 3 attempts each");
    for stage in first.stages().iter().skip(1) {
        assert_eq!(stage.failed_attempts.len(), 2);
        for record in &stage.failed_attempts {
            assert!(record.backoff <= Duration::from_millis(50));
        }
    }
}

#[tokio::test(start_paused = true)]
async fn another_seed_draws_other_retry_waits() {
    let (first, _) = run(1).await;
    let (second, _) = run(2).await;
    assert_ne!(waits(&first), waits(&second), "jitter 1.0 over 16 waits");
}

#[tokio::test(start_paused = true)]
async fn a_stage_sees_the_same_seed_in_runs_of_the_same_seed() {
    let (first, _) = run(7).await;
    let (second, _) = run(7).await;
    for stage in first.stages().iter().skip(1) {
        assert_eq!(
            *first.artifact::<u64>(&stage.name).expect("artifact"),
            *second.artifact::<u64>(&stage.name).expect("artifact")
        );
    }
}
