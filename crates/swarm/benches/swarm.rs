//! hivekit-swarm: the cost of running DAG pipelines, beside dagrs and a hand-written tokio baseline.
//!
//! What is measured and why:
//!
//! - `pipeline_execution`: no-op chains of 3 to 1k stages and the six-stage shape of the seed
//!   project: the per-stage overhead of the run driver (target: at most 0.5 us per stage). Beside
//!   them, hivekit only (the peers have no such shapes that run the same way): `routed/100`, a
//!   router choosing one of two 49-stage branches that join again (the other branch pruned), and
//!   `loop/10x10`, a loop stage running a 10-stage chain ten times: routing and loops must keep
//!   the same per-stage overhead.
//! - `concurrent_execution`: `1 -> n -> 1` fans, the cost of many stages ready at once.
//! - `dependency_resolution`: resolving a random DAG of 100 to 100k stages once its stages are added
//!   (`build()`: names to indices, topological order, cycle check; dagrs: `check_loop_and_partition`).
//! - `pipeline_construction`: everything a user pays to get a runnable pipeline from a random DAG:
//!   adding the stages and building (target: 100k stages under 50 ms).
//! - `semaphore_coordination`: a 1k-wide fan of stages that each yield once, under concurrency
//!   limits 1 to 64: the cost of the ready queue and slot accounting.
//! - `timeout_overhead`: a 100-stage chain with and without per-stage timeouts and retry policies, on
//!   the success path (the wrappers should cost almost nothing when nothing fails).
//! - `artifact_conversion`: handing an artifact to a dependent (zero-copy `Arc`) versus exporting it
//!   as JSON, and versus sending the same `Arc` through a oneshot channel between two tasks.
//! - `swarm_memory_allocation`: allocations and bytes per run (and per stage) of a chain and a fan.
//! - `fan_out`: `StageContext::fan_out` over 1k sub-tasks, by width and k-of-n.
//! - `cpu_parallelism`: two independent CPU-bound stages must use both cores, so the run takes about
//!   half the time of running the two one after the other.
//!
//! `hivekit-spawn` rows run the same pipelines with every stage marked `.spawn()` (a task per
//! stage, as the tokio baseline has); `hivekit-spawn-watched` the same with an event sink (a
//! callback dropping each event); `hivekit-spawn-driven` the same with a seed (what became ready
//! together is launched in the seeded order: by the run's driver, or, up to 128 stages and no
//! limit, by the task of the stage that made them ready; a lone stage made ready while nothing
//! waits runs next on that task, as unseeded).
//! `cargo-lock` is a real dependency graph, the registry packages of this workspace's
//! `Cargo.lock` (277 stages when written).
//!
//! Peers, same groups, same inputs, same runtime, each what a competent user would write first:
//!
//! - `dagrs`: its `Graph` of `DefaultNode`s with no-op `Action`s, built outside the measurement like
//!   ours, on the DAGs it expresses, run with `async_start`; written as its documentation shows.
//! - `tokio-baseline` (pipelines): one spawned task per stage, one oneshot channel per edge, a
//!   `Semaphore` only where a concurrency limit is asked for, `tokio::time::timeout` where a timeout
//!   is; written as a user would.
//! - `tokio-baseline` (`artifact_conversion`): a producer task sends the `Arc` through a oneshot to a
//!   consumer task; written as a user would.
//! - `tokio-baseline` (`fan_out`): a `JoinSet` of one task per item, each holding a `Semaphore`
//!   permit (tokio's documented way to bound concurrent tasks), stopped once k succeeded; written
//!   as a user would.
//! - `tokio-baseline` (`cpu_parallelism`): two spawned tasks, both awaited; `sequential`: the two
//!   computations one after the other on the bench thread; written as a user would.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use benches_common::dags::{self, DagShape};
use benches_common::{sizes, AllocationStats};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use dagrs::{Action, DefaultNode, EnvVar, Graph, InChannels, Node, NodeTable, OutChannels, Output};
use hivekit_swarm::{
    Backoff, EventSink, FanOut, LatencyTier, LoopPolicy, Pipeline, PipelineBuilder, Priority,
    ResourceCost, RetryPolicy, Route, RunOptions, SchedulingHint, StageContext, StageError,
};
use tokio::runtime::Runtime;
use tokio::sync::{oneshot, Semaphore};

benches_common::install_counting_allocator!();

/// The runtime every async bench uses: two workers, like the machine the targets were set on.
fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("the bench runtime starts")
}

// ---------------------------------------------------------------------------------------------
// Converting a shape: hivekit

async fn noop(_: StageContext) -> Result<(), StageError> {
    Ok(())
}

async fn yield_once(_: StageContext) -> Result<(), StageError> {
    tokio::task::yield_now().await;
    Ok(())
}

/// Options applied to every stage of a converted pipeline.
#[derive(Clone, Copy, Default)]
struct StageOptions {
    timeout: Option<Duration>,
    retry: Option<RetryPolicy>,
    yields: bool,
    /// Every stage marked `.spawn()`: a task of its own, like the tokio baseline's.
    spawn: bool,
}

fn hivekit_pipeline(shape: &DagShape, options: StageOptions) -> Pipeline {
    hivekit_builder(&shape.stage_list(), options)
        .build()
        .expect("bench shapes are valid pipelines")
}

/// A pipeline as a user describes it before building (parsed from a config file, say): each stage's
/// name and the names of the stages it runs after, in the order the stages are added. Built outside
/// the measurement: turning the shape's dependency indices back into names means reading 100k
/// scattered `String`s at random, a cost of this bench's input format, not of building a pipeline.
type StageList = Vec<(String, Vec<String>)>;

/// The stages of `stages` added to a builder, not yet built. Names are passed as `&str`, as a user
/// holding them would: the builder copies what it keeps (one `Arc<str>` per stage name) and reads
/// dependency names without keeping them, so cloning a `String` per name first would only measure
/// the bench's own allocations.
fn hivekit_builder(stages: &StageList, options: StageOptions) -> PipelineBuilder {
    let mut builder = PipelineBuilder::with_capacity(stages.len());
    for (name, after) in stages {
        let mut stage = if options.yields {
            builder.stage(name.as_str(), yield_once)
        } else {
            builder.stage(name.as_str(), noop)
        }
        .after(after);
        if let Some(timeout) = options.timeout {
            stage = stage.timeout(timeout);
        }
        if let Some(retry) = options.retry {
            stage = stage.retry(retry);
        }
        if options.spawn {
            stage = stage.spawn();
        }
        builder = stage.into_builder();
    }
    builder
}

// ---------------------------------------------------------------------------------------------
// Converting a shape: dagrs

struct DagrsNoop;

#[dagrs::async_trait::async_trait]
impl Action for DagrsNoop {
    async fn run(&self, _: &mut InChannels, _: &mut OutChannels, _: Arc<EnvVar>) -> Output {
        Output::empty()
    }
}

/// `shape` as a dagrs graph; `dependents` are `shape.dependents()`, the edges as dagrs adds them
/// (computed by the caller, outside the measurement where it is measured).
fn dagrs_graph(shape: &DagShape, dependents: &[Vec<usize>]) -> Graph {
    let mut table = NodeTable::default();
    let nodes: Vec<DefaultNode> = shape
        .names
        .iter()
        .map(|name| DefaultNode::with_action(name.clone(), DagrsNoop, &mut table))
        .collect();
    let ids: Vec<_> = nodes.iter().map(Node::id).collect();
    let mut graph = Graph::new();
    for node in nodes {
        graph.add_node(node).expect("dagrs accepts the node");
    }
    for (stage, dependents) in dependents.iter().enumerate() {
        if !dependents.is_empty() {
            graph
                .add_edge(
                    ids[stage],
                    dependents.iter().map(|&dependent| ids[dependent]),
                )
                .expect("dagrs accepts the edge");
        }
    }
    graph.set_env(EnvVar::new(table));
    graph
}

async fn dagrs_run(mut graph: Graph) -> Graph {
    graph.async_start().await.expect("the dagrs graph runs");
    graph
}

// ---------------------------------------------------------------------------------------------
// The hand-written tokio baseline: a task per stage, a oneshot channel per edge, a semaphore.

struct Baseline {
    dependencies: Vec<Vec<usize>>,
    dependents: Vec<Vec<usize>>,
}

impl Baseline {
    fn new(shape: &DagShape) -> Self {
        Self {
            dependencies: shape.dependencies.clone(),
            dependents: shape.dependents(),
        }
    }

    /// Runs the stages; `limit` below `Semaphore::MAX_PERMITS` bounds how many run at once.
    async fn run(&self, limit: usize, yields: bool, timeout: Option<Duration>) {
        // No limit asked for, no semaphore: a user adds one only to bound concurrency.
        let semaphore = (limit < Semaphore::MAX_PERMITS).then(|| Arc::new(Semaphore::new(limit)));
        let mut senders: Vec<Vec<oneshot::Sender<()>>> = self
            .dependents
            .iter()
            .map(|dependents| Vec::with_capacity(dependents.len()))
            .collect();
        let mut receivers: Vec<Vec<oneshot::Receiver<()>>> = self
            .dependencies
            .iter()
            .map(|deps| Vec::with_capacity(deps.len()))
            .collect();
        for (stage, dependents) in self.dependents.iter().enumerate() {
            for &dependent in dependents {
                let (sender, receiver) = oneshot::channel();
                senders[stage].push(sender);
                receivers[dependent].push(receiver);
            }
        }
        let tasks: Vec<_> = senders
            .into_iter()
            .zip(receivers)
            .map(|(senders, receivers)| {
                let semaphore = semaphore.clone();
                tokio::spawn(async move {
                    for receiver in receivers {
                        receiver.await.expect("dependencies never fail");
                    }
                    let _permit = match &semaphore {
                        Some(semaphore) => Some(semaphore.acquire().await.expect("never closed")),
                        None => None,
                    };
                    let work = async {
                        if yields {
                            tokio::task::yield_now().await;
                        }
                    };
                    match timeout {
                        Some(timeout) => tokio::time::timeout(timeout, work)
                            .await
                            .expect("no-op work is in time"),
                        None => work.await,
                    }
                    for sender in senders {
                        let _ = sender.send(());
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("baseline stages do not panic");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Groups

/// Runs `shape` with hivekit, dagrs and the baseline in one group under the parameter `parameter`.
fn compare_runs(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    runtime: &Runtime,
    shape: &DagShape,
    parameter: &str,
) {
    group.throughput(Throughput::Elements(shape.len() as u64));
    let pipeline = hivekit_pipeline(shape, StageOptions::default());
    group.bench_function(BenchmarkId::new("hivekit", parameter), |b| {
        b.to_async(runtime).iter(|| pipeline.run());
    });
    if dagrs_can_run(shape.len()) {
        let dependents = shape.dependents();
        group.bench_function(BenchmarkId::new("dagrs", parameter), |b| {
            b.to_async(runtime).iter_batched(
                || dagrs_graph(shape, &dependents),
                dagrs_run,
                BatchSize::SmallInput,
            );
        });
    }
    let spawned = hivekit_pipeline(
        shape,
        StageOptions {
            spawn: true,
            ..StageOptions::default()
        },
    );
    group.bench_function(BenchmarkId::new("hivekit-spawn", parameter), |b| {
        b.to_async(runtime).iter(|| spawned.run());
    });
    // Watched: an event sink (a callback that drops each event) on the same pipeline; the
    // stages' tasks announce what they launch and end.
    group.bench_function(BenchmarkId::new("hivekit-spawn-watched", parameter), |b| {
        b.to_async(runtime).iter(|| {
            let sink = EventSink::callback(|event| drop(std::hint::black_box(event)));
            spawned.run_with(RunOptions::default().with_events(sink))
        });
    });
    // The design before spawned stages launched each other: a seeded run keeps every launch in
    // the driver, a round trip through it per stage.
    group.bench_function(BenchmarkId::new("hivekit-spawn-driven", parameter), |b| {
        b.to_async(runtime)
            .iter(|| spawned.run_with(RunOptions::default().with_seed(0)));
    });
    let baseline = Baseline::new(shape);
    group.bench_function(BenchmarkId::new("tokio-baseline", parameter), |b| {
        b.to_async(runtime)
            .iter(|| baseline.run(Semaphore::MAX_PERMITS, false, None));
    });
}

fn pipeline_execution(c: &mut Criterion) {
    let runtime = runtime();
    let mut group = c.benchmark_group("pipeline_execution");
    for &stages in sizes(&[3, 10, 100, 1_000], &[3, 10, 100, 1_000]) {
        compare_runs(
            &mut group,
            &runtime,
            &dags::chain(stages),
            &stages.to_string(),
        );
    }
    compare_runs(&mut group, &runtime, &dags::six_stage(), "six-stage");
    compare_runs(&mut group, &runtime, &cargo_lock_graph(), "cargo-lock");

    let routed = routed_pipeline(49);
    group.throughput(Throughput::Elements(100));
    group.bench_function(BenchmarkId::new("hivekit", "routed/100"), |b| {
        b.to_async(&runtime).iter(|| routed.run());
    });
    let looped = loop_pipeline(10, 10);
    group.throughput(Throughput::Elements(100));
    group.bench_function(BenchmarkId::new("hivekit", "loop/10x10"), |b| {
        b.to_async(&runtime).iter(|| looped.run());
    });
    group.finish();
}

/// A real dependency graph: the registry packages of this workspace's `Cargo.lock` (277 when
/// written), each stage after the packages it depends on. (Workspace members are left out: their
/// dev-dependencies on each other make cycles.)
fn cargo_lock_graph() -> DagShape {
    let lock = include_str!("../../../Cargo.lock");
    let mut packages: Vec<(String, String, Vec<String>)> = Vec::new();
    for block in lock.split("[[package]]").skip(1) {
        let field = |key: &str| {
            block.lines().find_map(|line| {
                line.strip_prefix(key).map(|value| {
                    value
                        .trim_matches(|c| c == ' ' || c == '=' || c == '"')
                        .to_owned()
                })
            })
        };
        let (Some(name), Some(version), Some(_registry)) =
            (field("name"), field("version"), field("source"))
        else {
            continue;
        };
        let dependencies = match block.split_once("dependencies = [") {
            Some((_, rest)) => rest
                .split(']')
                .next()
                .unwrap_or_default()
                .lines()
                .map(|line| {
                    line.trim()
                        .trim_end_matches(',')
                        .trim_matches('"')
                        .to_owned()
                })
                .filter(|line| !line.is_empty())
                .collect(),
            None => Vec::new(),
        };
        packages.push((name, version, dependencies));
    }
    // A dependency is `name` or, when several versions are locked, `name version`.
    let position = |dependency: &str| {
        let mut words = dependency.split(' ');
        let name = words.next().unwrap_or_default();
        let version = words.next();
        packages
            .iter()
            .position(|(candidate, candidate_version, _)| {
                candidate == name && version.is_none_or(|version| version == candidate_version)
            })
    };
    let dependencies: Vec<Vec<usize>> = packages
        .iter()
        .map(|(_, _, dependencies)| {
            dependencies
                .iter()
                .filter_map(|dependency| position(dependency))
                .collect()
        })
        .collect();
    // A shape lists its stages in a topological order: depth-first, dependencies first.
    let mut order = Vec::with_capacity(packages.len());
    let mut placed = vec![usize::MAX; packages.len()];
    let mut visiting = vec![false; packages.len()];
    for root in 0..packages.len() {
        let mut stack = vec![(root, 0)];
        while let Some((package, next)) = stack.pop() {
            if placed[package] != usize::MAX {
                continue;
            }
            visiting[package] = true;
            match dependencies[package].get(next) {
                Some(&dependency) => {
                    stack.push((package, next + 1));
                    // (A cycle, which a lock file of registry packages never has, loses an edge.)
                    if placed[dependency] == usize::MAX && !visiting[dependency] {
                        stack.push((dependency, 0));
                    }
                }
                None => {
                    placed[package] = order.len();
                    order.push(package);
                }
            }
        }
    }
    DagShape {
        names: order
            .iter()
            .map(|&package| format!("{}@{}", packages[package].0, packages[package].1))
            .collect(),
        dependencies: order
            .iter()
            .map(|&package| {
                dependencies[package]
                    .iter()
                    .map(|&dependency| placed[dependency])
                    .filter(|&dependency| dependency < placed[package])
                    .collect()
            })
            .collect(),
    }
}

/// A router choosing branch `a` of two `branch`-stage chains, which join in a last stage.
fn routed_pipeline(branch: usize) -> Pipeline {
    let mut builder = Pipeline::builder()
        .router("route", |_: StageContext| async {
            Ok::<_, StageError>(Route::to(["a0"]))
        })
        .into_builder();
    for side in ["a", "b"] {
        for index in 0..branch {
            let previous = match index {
                0 => "route".to_owned(),
                _ => format!("{side}{}", index - 1),
            };
            builder = builder
                .stage(format!("{side}{index}"), noop)
                .after([previous])
                .into_builder();
        }
    }
    builder
        .stage("join", noop)
        .after([format!("a{}", branch - 1), format!("b{}", branch - 1)])
        .build()
        .expect("the routed pipeline is valid")
}

/// A loop stage running a `body`-stage chain `iterations` times.
fn loop_pipeline(body: usize, iterations: u32) -> Pipeline {
    let body = hivekit_pipeline(&dags::chain(body), StageOptions::default());
    Pipeline::builder()
        .repeat("loop", body, LoopPolicy::new(iterations))
        .build()
        .expect("the loop pipeline is valid")
}

fn concurrent_execution(c: &mut Criterion) {
    let runtime = runtime();
    let mut group = c.benchmark_group("concurrent_execution");
    for &width in sizes(&[10, 100, 1_000, 10_000], &[10, 100, 1_000, 10_000]) {
        compare_runs(&mut group, &runtime, &dags::fan(width), &width.to_string());
    }
    group.finish();
}

fn dependency_resolution(c: &mut Criterion) {
    let runtime = runtime();
    let mut group = c.benchmark_group("dependency_resolution");
    group.sample_size(10);
    // 100k is measured end to end in `pipeline_construction` in every mode; here in full runs only.
    for &stages in sizes(&[100, 1_000, 10_000], &[100, 1_000, 10_000, 100_000]) {
        let shape = dags::random(stages, 0.2, benches_common::workload::DEFAULT_SEED);
        let (list, dependents) = (shape.stage_list(), shape.dependents());
        group.throughput(Throughput::Elements(stages as u64));
        // Resolution only: the stages are added outside the measurement (`build()` is timed).
        group.bench_function(BenchmarkId::new("hivekit", stages), |b| {
            b.iter_batched(
                || hivekit_builder(&list, StageOptions::default()),
                |builder| builder.build().expect("the shape is acyclic"),
                BatchSize::PerIteration,
            );
        });
        if dagrs_can_build(stages) {
            group.bench_function(BenchmarkId::new("dagrs", stages), |b| {
                b.iter_batched(
                    || dagrs_graph(&shape, &dependents),
                    |mut graph| {
                        runtime.block_on(async {
                            graph
                                .check_loop_and_partition()
                                .await
                                .expect("the shape is acyclic");
                        });
                        graph
                    },
                    BatchSize::PerIteration,
                );
            });
        }
    }
    group.finish();
}

/// Whether dagrs runs a graph this large in this mode: a 10k-stage run and its graph take about
/// 0.2 s per iteration, so they are left to full runs.
fn dagrs_can_run(stages: usize) -> bool {
    stages <= *sizes(&[1_002], &[10_002]).last().unwrap_or(&0)
}

/// Whether dagrs builds a graph this large in this mode: it creates a channel per edge while adding
/// it, and one 100k-stage graph takes seconds, so 100k is left to full runs.
fn dagrs_can_build(stages: usize) -> bool {
    stages <= *sizes(&[10_000], &[100_000]).last().unwrap_or(&0)
}

fn pipeline_construction(c: &mut Criterion) {
    let runtime = runtime();
    let mut group = c.benchmark_group("pipeline_construction");
    group.sample_size(10);
    for &stages in &[100, 1_000, 10_000, 100_000] {
        let shape = dags::random(stages, 0.2, benches_common::workload::DEFAULT_SEED);
        // The inputs as each library takes them, prepared outside the measurement.
        let (list, dependents) = (shape.stage_list(), shape.dependents());
        group.throughput(Throughput::Elements(stages as u64));
        // Everything a user pays: adding the stages and building.
        group.bench_function(BenchmarkId::new("hivekit", stages), |b| {
            b.iter_with_large_drop(|| {
                hivekit_builder(&list, StageOptions::default())
                    .build()
                    .expect("the shape is acyclic")
            });
        });
        if dagrs_can_build(stages) {
            group.bench_function(BenchmarkId::new("dagrs", stages), |b| {
                b.iter_with_large_drop(|| {
                    runtime.block_on(async {
                        let mut graph = dagrs_graph(&shape, &dependents);
                        graph
                            .check_loop_and_partition()
                            .await
                            .expect("the shape is acyclic");
                        graph
                    })
                });
            });
        }
    }
    group.finish();
}

fn semaphore_coordination(c: &mut Criterion) {
    let runtime = runtime();
    let mut group = c.benchmark_group("semaphore_coordination");
    let shape = dags::fan(998);
    let options = StageOptions {
        yields: true,
        ..StageOptions::default()
    };
    let pipeline = hivekit_pipeline(&shape, options);
    let baseline = Baseline::new(&shape);
    group.throughput(Throughput::Elements(shape.len() as u64));
    for limit in [1usize, 4, 16, 64] {
        let run_options = RunOptions::default()
            .with_max_concurrency(NonZeroUsize::new(limit).unwrap_or(NonZeroUsize::MIN));
        group.bench_function(BenchmarkId::new("hivekit", limit), |b| {
            b.to_async(&runtime)
                .iter(|| pipeline.run_with(run_options.clone()));
        });
        group.bench_function(BenchmarkId::new("tokio-baseline", limit), |b| {
            b.to_async(&runtime)
                .iter(|| baseline.run(limit, true, None));
        });
    }
    group.finish();
}

fn timeout_overhead(c: &mut Criterion) {
    let runtime = runtime();
    let mut group = c.benchmark_group("timeout_overhead");
    let shape = dags::chain(100);
    group.throughput(Throughput::Elements(100));
    let timeout = Duration::from_secs(5);
    let retry = RetryPolicy::attempts(3).with_backoff(Backoff::default());
    let variants = [
        ("none", StageOptions::default()),
        (
            "timeout",
            StageOptions {
                timeout: Some(timeout),
                ..StageOptions::default()
            },
        ),
        (
            "retry",
            StageOptions {
                retry: Some(retry),
                ..StageOptions::default()
            },
        ),
        (
            "timeout+retry",
            StageOptions {
                timeout: Some(timeout),
                retry: Some(retry),
                ..StageOptions::default()
            },
        ),
    ];
    for (parameter, options) in variants {
        let pipeline = hivekit_pipeline(&shape, options);
        group.bench_function(BenchmarkId::new("hivekit", parameter), |b| {
            b.to_async(&runtime).iter(|| pipeline.run());
        });
    }
    let baseline = Baseline::new(&shape);
    for (parameter, timeout) in [("none", None), ("timeout", Some(timeout))] {
        group.bench_function(BenchmarkId::new("tokio-baseline", parameter), |b| {
            b.to_async(&runtime)
                .iter(|| baseline.run(Semaphore::MAX_PERMITS, false, timeout));
        });
    }
    group.finish();
}

fn artifact_conversion(c: &mut Criterion) {
    let runtime = runtime();
    let mut group = c.benchmark_group("artifact_conversion");
    // Exporting 1 MiB as JSON takes ~0.1 s per iteration: full mode only.
    for &bytes in sizes(&[1_024, 65_536], &[1_024, 65_536, 1_048_576]) {
        let payload: Arc<Vec<u8>> = Arc::new((0..bytes).map(|byte| byte as u8).collect());
        group.throughput(Throughput::Bytes(bytes as u64));
        let produced = payload.clone();
        let pipeline = Pipeline::builder()
            .stage("produce", move |_: StageContext| {
                let payload = produced.clone();
                async move { Ok::<_, StageError>(payload) }
            })
            .export()
            .stage("consume", |ctx: StageContext| async move {
                Ok::<_, StageError>(ctx.input::<Arc<Vec<u8>>>("produce")?.len())
            })
            .after(["produce"])
            .build()
            .expect("a valid pipeline");
        group.bench_function(BenchmarkId::new("hivekit", bytes), |b| {
            b.to_async(&runtime).iter(|| pipeline.run());
        });
        let report = runtime.block_on(pipeline.run());
        group.bench_function(BenchmarkId::new("hivekit-json-export", bytes), |b| {
            b.iter(|| report.artifact_json("produce").expect("exported"));
        });
        group.bench_function(BenchmarkId::new("tokio-baseline", bytes), |b| {
            b.to_async(&runtime).iter(|| {
                let payload = payload.clone();
                async move {
                    let (sender, receiver) = oneshot::channel::<Arc<Vec<u8>>>();
                    let producer = tokio::spawn(async move {
                        let _ = sender.send(payload);
                    });
                    let consumer = tokio::spawn(async move {
                        receiver.await.map(|bytes| bytes.len()).unwrap_or(0)
                    });
                    producer.await.expect("no panic");
                    consumer.await.expect("no panic")
                }
            });
        });
    }
    group.finish();
}

fn swarm_memory_allocation(c: &mut Criterion) {
    let runtime = runtime();
    let mut group = c.benchmark_group("swarm_memory_allocation");
    for (parameter, shape) in [("chain-100", dags::chain(100)), ("fan-100", dags::fan(100))] {
        group.throughput(Throughput::Elements(shape.len() as u64));
        let pipeline = hivekit_pipeline(&shape, StageOptions::default());
        let baseline = Baseline::new(&shape);
        let stages = shape.len();
        bench_allocations(&mut group, "hivekit", parameter, stages, || {
            runtime.block_on(pipeline.run())
        });
        bench_allocations(&mut group, "tokio-baseline", parameter, stages, || {
            runtime.block_on(baseline.run(Semaphore::MAX_PERMITS, false, None))
        });
    }
    group.finish();
}

/// Times `op` and records its allocations and bytes per run and per stage.
fn bench_allocations<O>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    function: &str,
    parameter: &str,
    stages: usize,
    mut op: impl FnMut() -> O,
) {
    let key = benches_common::BenchKey::from(("swarm_memory_allocation", function, parameter));
    let stats = AllocationStats::measure(200, &mut op);
    stats.record(key.clone());
    benches_common::record_extra(
        &key,
        "allocs_per_stage",
        stats.allocations_per_op / stages as f64,
    );
    benches_common::record_extra(&key, "bytes_per_stage", stats.bytes_per_op / stages as f64);
    group.bench_function(BenchmarkId::new(function, parameter), |b| b.iter(&mut op));
}

fn fan_out(c: &mut Criterion) {
    let runtime = runtime();
    let mut group = c.benchmark_group("fan_out");
    let items = 1_000usize;
    group.throughput(Throughput::Elements(items as u64));
    for (parameter, width, required) in [
        ("w1", 1, items),
        ("w8", 8, items),
        ("w64", 64, items),
        ("w64-k500", 64, 500),
    ] {
        let pipeline = Pipeline::builder()
            .stage("fan", move |ctx: StageContext| async move {
                let report = ctx
                    .fan_out(
                        0..items,
                        FanOut::new(width).require(required),
                        |item| async move {
                            tokio::task::yield_now().await;
                            Ok::<_, StageError>(item)
                        },
                    )
                    .await?;
                Ok::<_, StageError>(report.succeeded)
            })
            .build()
            .expect("a valid pipeline");
        group.bench_function(BenchmarkId::new("hivekit", parameter), |b| {
            b.to_async(&runtime).iter(|| pipeline.run());
        });
        group.bench_function(BenchmarkId::new("tokio-baseline", parameter), |b| {
            b.to_async(&runtime).iter(|| async move {
                let semaphore = Arc::new(Semaphore::new(width));
                let mut tasks = tokio::task::JoinSet::new();
                for item in 0..items {
                    let semaphore = semaphore.clone();
                    tasks.spawn(async move {
                        let _permit = semaphore.acquire().await.expect("never closed");
                        tokio::task::yield_now().await;
                        item
                    });
                }
                let mut succeeded = 0;
                while let Some(joined) = tasks.join_next().await {
                    succeeded += usize::from(joined.is_ok());
                    if succeeded >= required {
                        tasks.abort_all();
                        break;
                    }
                }
                succeeded
            });
        });
    }
    group.finish();
}

fn cpu_parallelism(c: &mut Criterion) {
    let runtime = runtime();
    let mut group = c.benchmark_group("cpu_parallelism");
    // About a millisecond of work per stage.
    let rounds = calibrate_rounds(Duration::from_millis(1));
    let heavy = SchedulingHint::new(Priority::Normal, LatencyTier::Warm, ResourceCost::Heavy);
    let pipeline = Pipeline::builder()
        .stage("left", move |_: StageContext| async move {
            Ok::<_, StageError>(benches_common::workload::spin(rounds))
        })
        .priority(heavy)
        .stage("right", move |_: StageContext| async move {
            Ok::<_, StageError>(benches_common::workload::spin(rounds))
        })
        .priority(heavy)
        .build()
        .expect("a valid pipeline");
    group.bench_function(BenchmarkId::new("hivekit", "2x1ms"), |b| {
        b.to_async(&runtime).iter(|| pipeline.run());
    });
    group.bench_function(BenchmarkId::new("sequential", "2x1ms"), |b| {
        b.iter(|| benches_common::workload::spin(rounds) ^ benches_common::workload::spin(rounds));
    });
    group.bench_function(BenchmarkId::new("tokio-baseline", "2x1ms"), |b| {
        b.to_async(&runtime).iter(|| async move {
            let left = tokio::spawn(async move { benches_common::workload::spin(rounds) });
            let right = tokio::spawn(async move { benches_common::workload::spin(rounds) });
            left.await.expect("no panic") ^ right.await.expect("no panic")
        });
    });
    group.finish();
}

/// Spin rounds that take about `target` on this machine (measured once, outside any benchmark).
fn calibrate_rounds(target: Duration) -> u64 {
    let probe = 1_000_000;
    let start = Instant::now();
    std::hint::black_box(benches_common::workload::spin(probe));
    let per_round = start.elapsed().as_secs_f64() / probe as f64;
    ((target.as_secs_f64() / per_round.max(1e-12)) as u64).max(1)
}

criterion_group! {
    name = benches;
    config = benches_common::criterion();
    targets = pipeline_execution, concurrent_execution, dependency_resolution, pipeline_construction,
        semaphore_coordination,
        timeout_overhead, artifact_conversion, swarm_memory_allocation, fan_out, cpu_parallelism
}
criterion_main!(benches);
