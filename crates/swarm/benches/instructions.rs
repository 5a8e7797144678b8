//! Instruction counts of hivekit-swarm's single-thread hot path, for `cargo xtask bench
//! --instructions` (gungraun on Valgrind's callgrind).
//!
//! - `chain_run/*/stages_100`: one run of a 100-stage chain of no-op stages on a current-thread
//!   tokio runtime (so every task of the run executes on the counted thread): `hivekit`
//!   (`Pipeline::run`) against `dagrs` (`Graph::async_start` on the same chain). The pipeline, the
//!   graph and the runtime are built in the `#[bench]` argument, outside the count; dagrs consumes
//!   its graph, so its row counts one run of a fresh graph.
//! - `chain_run/hivekit-spawn/stages_100`: the same chain with every stage marked `.spawn()`,
//!   against `chain_run/tokio-baseline/stages_100`: a task per stage and a oneshot channel per
//!   edge, all spawned at once, each awaiting its dependency's oneshot (the pipelines' tokio
//!   baseline, written as a user would). On one thread this counts the work, not the wake-ups
//!   between workers that the criterion rows also pay. `chain_run/hivekit-spawn-driven/stages_100`:
//!   the same spawned chain seeded (`hivekit-spawn-driven` in the criterion rows).
//! - `fan_run/hivekit-spawn-seeded/stages_1k`: one seeded run of a `1 -> 1,000 -> 1` fan of
//!   `.spawn()` stages: the run's driver launches what became ready together, in the seeded
//!   order (the fan's stages; the sink, made ready alone, runs on its last dependency's task),
//!   and the tasks report through the fleet's notes (they awaited the 1,000 tasks' handles in
//!   one set, a quarter more instructions); `fan_run/hivekit-spawn-fan/stages_1k`, the same fan unseeded
//!   (on the fleet: each task launches the dependents it releases), against
//!   `fan_run/tokio-baseline-fan/stages_1k`, the tokio baseline's fan (a task per stage, a oneshot
//!   per edge).
//! - `pipeline_build/hivekit-build/fan_in_10k`: building 10,000 stages and one after all of them
//!   (its dependency list was searched per entry for duplicates, quadratic in its length).
//! - `checkpoint_run/hivekit_memory/stages_100`: the same chain started durably on a
//!   [`MemoryStore`] (the header with the pipeline's shape, then one record per stage): against
//!   `chain_run/hivekit/stages_100`, what checkpointing costs per stage (target: under 1 us).
//!
//! What these counts miss: the run reads its clock once per stage, and under Valgrind
//! `clock_gettime` is a system call counted as about ten instructions, while natively it is the
//! vDSO reading the time-stamp counter fenced (about 29 ns on the 2-core VM, a quarter of a no-op
//! chain's time before the run clock read the counter through `quanta`; see
//! `crates/swarm/src/clock.rs`).
//! Cache misses and wake-ups are not counted either: `pipeline_execution` is the wall-time row.

// gungraun's macros generate a public module per benchmark and group, without docs.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use ::dagrs::{
    Action, DefaultNode, EnvVar, Graph, InChannels, Node, NodeTable, OutChannels, Output,
};
use gungraun::{library_benchmark, library_benchmark_group, main};
use hivekit_swarm::checkpoint::{Durable, MemoryStore};
use hivekit_swarm::{Pipeline, PipelineBuilder, RunOptions, StageContext, StageError};
use tokio::runtime::Runtime;

const STAGES: usize = 100;

fn current_thread() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
}

fn name(stage: usize) -> String {
    format!("stage-{stage}")
}

async fn noop(_: StageContext) -> Result<(), StageError> {
    Ok(())
}

/// A chain of `stages` no-op stages and a runtime, after one warm-up run.
fn hivekit_chain(stages: usize) -> (Runtime, Pipeline) {
    chain_of(stages, false)
}

/// A chain of `stages` no-op stages (each on a task of its own if `spawn`) and a runtime, after
/// one warm-up run.
fn chain_of(stages: usize, spawn: bool) -> (Runtime, Pipeline) {
    let mut builder = PipelineBuilder::with_capacity(stages);
    for stage in 0..stages {
        let after: Vec<String> = stage.checked_sub(1).map(name).into_iter().collect();
        let added = builder.stage(name(stage), noop).after(&after);
        builder = if spawn { added.spawn() } else { added }.into_builder();
    }
    let pipeline = builder.build().expect("a chain is a valid pipeline");
    let runtime = current_thread();
    drop(black_box(runtime.block_on(pipeline.run())));
    (runtime, pipeline)
}

#[library_benchmark]
#[bench::stages_100(hivekit_chain(STAGES))]
fn hivekit(input: (Runtime, Pipeline)) -> (Runtime, Pipeline) {
    let (runtime, pipeline) = input;
    drop(black_box(runtime.block_on(pipeline.run())));
    // Returned so that dropping the runtime and the pipeline is not counted.
    (runtime, pipeline)
}

#[library_benchmark]
#[bench::stages_100(chain_of(STAGES, true))]
fn hivekit_spawn(input: (Runtime, Pipeline)) -> (Runtime, Pipeline) {
    let (runtime, pipeline) = input;
    drop(black_box(runtime.block_on(pipeline.run())));
    (runtime, pipeline)
}

// The same chain seeded (the criterion rows' `hivekit-spawn-driven`): what a stage made ready by
// a task costs in a seeded run beyond the unseeded fleet's.
#[library_benchmark]
#[bench::stages_100(chain_of(STAGES, true))]
fn hivekit_spawn_driven(input: (Runtime, Pipeline)) -> (Runtime, Pipeline) {
    let (runtime, pipeline) = input;
    let options = RunOptions::default().with_seed(7);
    drop(black_box(runtime.block_on(pipeline.run_with(options))));
    (runtime, pipeline)
}

/// The tokio baseline's chain: a task per stage, a oneshot per edge, every task spawned at once.
async fn tokio_chain(stages: usize) {
    let mut previous: Option<tokio::sync::oneshot::Receiver<()>> = None;
    let mut tasks = Vec::with_capacity(stages);
    for _ in 0..stages {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let dependency = previous.replace(receiver);
        tasks.push(tokio::spawn(async move {
            if let Some(dependency) = dependency {
                dependency.await.expect("dependencies never fail");
            }
            let _ = sender.send(());
        }));
    }
    for task in tasks {
        task.await.expect("baseline stages do not panic");
    }
}

#[library_benchmark]
#[bench::stages_100(current_thread())]
fn tokio_baseline(runtime: Runtime) -> Runtime {
    runtime.block_on(tokio_chain(black_box(STAGES)));
    runtime
}

struct DagrsNoop;

#[::dagrs::async_trait::async_trait]
impl Action for DagrsNoop {
    async fn run(&self, _: &mut InChannels, _: &mut OutChannels, _: Arc<EnvVar>) -> Output {
        Output::empty()
    }
}

/// The same chain as a dagrs graph, and a runtime.
fn dagrs_chain(stages: usize) -> (Runtime, Graph) {
    let mut table = NodeTable::default();
    let nodes: Vec<DefaultNode> = (0..stages)
        .map(|stage| DefaultNode::with_action(name(stage), DagrsNoop, &mut table))
        .collect();
    let ids: Vec<_> = nodes.iter().map(Node::id).collect();
    let mut graph = Graph::new();
    for node in nodes {
        graph.add_node(node).expect("dagrs accepts the node");
    }
    for pair in ids.windows(2) {
        graph
            .add_edge(pair[0], [pair[1]])
            .expect("dagrs accepts the edge");
    }
    graph.set_env(EnvVar::new(table));
    (current_thread(), graph)
}

#[library_benchmark]
#[bench::stages_100(dagrs_chain(STAGES))]
fn dagrs(input: (Runtime, Graph)) -> (Runtime, Graph) {
    let (runtime, mut graph) = input;
    runtime.block_on(async {
        graph.async_start().await.expect("the dagrs graph runs");
    });
    (runtime, graph)
}

library_benchmark_group!(
    name = chain_run,
    benchmarks = [
        hivekit,
        dagrs,
        hivekit_spawn,
        hivekit_spawn_driven,
        tokio_baseline
    ]
);

/// The chain, a runtime and a durable handle on an empty in-memory store, after one warm-up run
/// (on another store).
fn durable_chain(stages: usize) -> (Runtime, Pipeline, Durable) {
    let (runtime, pipeline) = hivekit_chain(stages);
    let warm = Durable::new(MemoryStore::new());
    drop(black_box(runtime.block_on(warm.start(
        &pipeline,
        "warm-up",
        RunOptions::default(),
    ))));
    (runtime, pipeline, Durable::new(MemoryStore::new()))
}

#[library_benchmark]
#[bench::stages_100(durable_chain(STAGES))]
fn hivekit_memory(input: (Runtime, Pipeline, Durable)) -> (Runtime, Pipeline, Durable) {
    let (runtime, pipeline, durable) = input;
    let outcome = runtime.block_on(durable.start(&pipeline, "run", RunOptions::default()));
    drop(black_box(outcome.expect("the run starts")));
    (runtime, pipeline, durable)
}

library_benchmark_group!(name = checkpoint_run, benchmarks = [hivekit_memory]);

/// The random DAG of `pipeline_construction` as a user holds it before building: each stage's
/// name and the names of the stages it runs after.
fn random_stage_list(stages: usize) -> Vec<(String, Vec<String>)> {
    benches_common::dags::random(stages, 0.2, benches_common::workload::DEFAULT_SEED).stage_list()
}

/// A fan-in: `width` stages and one stage after all of them (its dependency list is the row a
/// duplicate check must not search per entry).
fn fan_in_list(width: usize) -> Vec<(String, Vec<String>)> {
    let mut list: Vec<(String, Vec<String>)> = (0..width).map(|s| (name(s), Vec::new())).collect();
    list.push(("sink".to_owned(), (0..width).map(name).collect()));
    list
}

#[library_benchmark]
#[bench::stages_100k(random_stage_list(100_000))]
#[bench::fan_in_10k(fan_in_list(10_000))]
fn hivekit_build(list: Vec<(String, Vec<String>)>) -> (Vec<(String, Vec<String>)>, Pipeline) {
    let mut builder = PipelineBuilder::with_capacity(list.len());
    for (name, after) in &list {
        builder = builder
            .stage(name.as_str(), noop)
            .after(after)
            .into_builder();
    }
    let pipeline = builder.build().expect("the shape is acyclic");
    // Returned so that dropping the list and the pipeline is not counted.
    (list, black_box(pipeline))
}

library_benchmark_group!(name = pipeline_build, benchmarks = [hivekit_build]);

/// A `1 -> width -> 1` fan of `.spawn()` stages and a runtime, after one warm-up run.
fn spawned_fan(width: usize) -> (Runtime, Pipeline) {
    let mut builder = PipelineBuilder::with_capacity(width + 2);
    builder = builder.stage("source", noop).spawn().into_builder();
    for stage in 0..width {
        builder = builder
            .stage(name(stage), noop)
            .after(["source"])
            .spawn()
            .into_builder();
    }
    let middle: Vec<String> = (0..width).map(name).collect();
    builder = builder
        .stage("sink", noop)
        .after(&middle)
        .spawn()
        .into_builder();
    let pipeline = builder.build().expect("a fan is a valid pipeline");
    let runtime = current_thread();
    drop(black_box(runtime.block_on(pipeline.run())));
    (runtime, pipeline)
}

// A seeded run launches the fan's stages from the run's driver; the tasks report through the
// fleet's notes, which the driver reads in bulk.
#[library_benchmark]
#[bench::stages_1k(spawned_fan(1_000))]
fn hivekit_spawn_seeded(input: (Runtime, Pipeline)) -> (Runtime, Pipeline) {
    let (runtime, pipeline) = input;
    let options = RunOptions::default().with_seed(7);
    drop(black_box(runtime.block_on(pipeline.run_with(options))));
    (runtime, pipeline)
}

// Unseeded, the same fan runs on the fleet: each task launches the dependents it releases.
#[library_benchmark]
#[bench::stages_1k(spawned_fan(1_000))]
fn hivekit_spawn_fan(input: (Runtime, Pipeline)) -> (Runtime, Pipeline) {
    let (runtime, pipeline) = input;
    drop(black_box(runtime.block_on(pipeline.run())));
    (runtime, pipeline)
}

/// The tokio baseline's `1 -> width -> 1` fan: a task per stage, a oneshot per edge, every task
/// spawned at once, each awaiting its dependencies' oneshots.
async fn tokio_fan(width: usize) {
    let mut from_source = Vec::with_capacity(width);
    let mut to_sink = Vec::with_capacity(width);
    let mut tasks = Vec::with_capacity(width + 2);
    let mut middle = Vec::with_capacity(width);
    for _ in 0..width {
        let (to_middle, middle_waits) = tokio::sync::oneshot::channel::<()>();
        let (done, sink_waits) = tokio::sync::oneshot::channel::<()>();
        from_source.push(to_middle);
        to_sink.push(sink_waits);
        middle.push((middle_waits, done));
    }
    tasks.push(tokio::spawn(async move {
        for sender in from_source {
            let _ = sender.send(());
        }
    }));
    for (dependency, done) in middle {
        tasks.push(tokio::spawn(async move {
            dependency.await.expect("dependencies never fail");
            let _ = done.send(());
        }));
    }
    tasks.push(tokio::spawn(async move {
        for dependency in to_sink {
            dependency.await.expect("dependencies never fail");
        }
    }));
    for task in tasks {
        task.await.expect("baseline stages do not panic");
    }
}

#[library_benchmark]
#[bench::stages_1k(current_thread())]
fn tokio_baseline_fan(runtime: Runtime) -> Runtime {
    runtime.block_on(tokio_fan(black_box(1_000)));
    runtime
}

library_benchmark_group!(
    name = fan_run,
    benchmarks = [hivekit_spawn_seeded, hivekit_spawn_fan, tokio_baseline_fan]
);

main!(
    library_benchmark_groups = chain_run,
    checkpoint_run,
    pipeline_build,
    fan_run
);
