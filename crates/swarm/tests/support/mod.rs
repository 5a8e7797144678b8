//! Helpers shared by the pipeline tests.

#![allow(dead_code, unreachable_pub)] // each test binary uses a different subset

pub mod crash;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hivekit_swarm::{Pipeline, PipelineBuilder, RunOptions, RunReport, StageContext, StageError};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// A stage that succeeds at once with `()`.
pub async fn noop(_: StageContext) -> Result<(), StageError> {
    Ok(())
}

/// Adds a stage to `builder` with `after` dependencies, returning the pipeline builder.
pub fn add<F, Fut, T>(
    builder: PipelineBuilder,
    name: &str,
    after: &[String],
    f: F,
) -> PipelineBuilder
where
    F: Fn(StageContext) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<T, StageError>> + Send + 'static,
    T: Send + Sync + 'static,
{
    builder
        .stage(name, f)
        .after(after.iter().cloned())
        .into_builder()
}

/// Stage names `s0`, `s1`, ...
pub fn name(index: usize) -> String {
    format!("s{index}")
}

/// A random DAG: edges only from lower to higher index, each with probability `edge_probability`.
/// Returns the dependency lists.
pub fn random_dag(stages: usize, edge_probability: f64, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..stages)
        .map(|stage| {
            (0..stage)
                .filter(|_| rng.gen_bool(edge_probability))
                .collect()
        })
        .collect()
}

/// A chain `s0 -> s1 -> ... -> s(n-1)` of no-op stages.
pub fn chain(stages: usize) -> Pipeline {
    let mut builder = Pipeline::builder();
    for stage in 0..stages {
        let after: Vec<String> = if stage == 0 {
            vec![]
        } else {
            vec![name(stage - 1)]
        };
        builder = add(builder, &name(stage), &after, noop);
    }
    builder.build().expect("a chain is a valid pipeline")
}

/// Counts live objects: increments when created, decrements when dropped.
#[derive(Debug)]
pub struct LiveGuard(Arc<AtomicUsize>);

impl LiveGuard {
    pub fn new(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(counter.clone())
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A two-worker multi-thread runtime, the shape of the 2-core machines the tests run on.
pub fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `pipeline` with `options` on a fresh two-worker runtime in a thread of its own and waits at
/// most `limit` for its report: `None` when it did not end in time, so a test of a run that must
/// end fails instead of hanging.
pub fn run_bounded(
    pipeline: Pipeline,
    options: RunOptions,
    limit: std::time::Duration,
) -> Option<RunReport> {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let report = multi_thread().block_on(pipeline.run_with(options));
        let _ = sender.send(report);
    });
    receiver.recv_timeout(limit).ok()
}
