//! Instruction counts of hivekit-lockfree's single-thread hot paths and their single-thread peers,
//! for `cargo xtask bench --instructions` (gungraun on Valgrind's callgrind).
//!
//! Counts are deterministic, so these rows are the regression gate and their ratios do not move with
//! the machine's load (docs/BENCHMARKS.md). Inputs are built in the `#[bench]` arguments, which
//! gungraun runs outside the measurement.
//!
//! - `snapshot_read/*/ops_1k`: 1000 reads of a `SnapshotCell` (`hivekit-read`; `hivekit-load`, an
//!   owned snapshot) against `ArcSwap::load`.
//! - `snapshot_write/*/ops_1k`: 1000 replacements (`hivekit-store`: `store`; `hivekit-commit`: `stage`
//!   then `commit`) against `ArcSwap::store`.
//! - `scheduler_push_pop/*/depth_1k`: 1000 push+pop pairs on a queue holding 1000 items, against a
//!   `BinaryHeap` and four `SegQueue` lanes (the same queues as the criterion suite).
//! - `conflict_detection/*/{n_1k,n_100k,skewed_1k,skewed_10k}`: `detect_conflicts` against the
//!   `FxHashMap` index, on the uniform and the skewed (history-like) workloads, counting the rayon
//!   pool's share of the larger rows too (`conflict_config`), not the input's drop. The 2 x 4,096-key
//!   width row is measured by the criterion suite only: its count moved 2.7% between two runs of the
//!   same commit, too much for a 2% gate.
//! - `aggregation_round/*/{n_10,n_1k_10pct,n_10k}`: a whole aggregation round (submit from
//!   this thread, `finish` with `HighestPriority`) below the parallel threshold, against the
//!   hand-written sequential loop of the criterion suite's `sequential` peer; the fixed cost per
//!   round shows at 10 proposals, the cost per proposal at 10k (no conflicts, the largest
//!   sequential round).
//! - `payload_merging/*/sum_100k`: `merge_all` over 100k `Sum<u64>` against the fold a user would
//!   write (`into_iter().reduce` with `Merge::merge`), the criterion suite's
//!   `proposal_merging/*/sum-100k` pair; the payloads' buffer is freed inside both.

// gungraun's macros generate a public module per benchmark and group, without docs.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use arc_swap::ArcSwap;
use gungraun::{
    library_benchmark, library_benchmark_group, main, Callgrind, LibraryBenchmarkConfig,
};
use hivekit_lockfree::{
    detect_conflicts, merge_all, Merge, Proposal, SchedulingHint, SnapshotCell, Sum,
};

mod support;

use crate::support::aggregation::{self, round_on, sequential, Input};
use crate::support::conflict_index::{proposals, skewed_proposals};
use crate::support::queues::{
    hints, pair, prefill, Hivekit, Queue, SegQueueFourLanes, StdBinaryHeap,
};

/// Operations per snapshot and scheduler row: enough that the call into the row is noise.
const OPS: u64 = 1_000;

/// The value shared in the snapshot rows, as in the criterion suite.
type Value = [u64; 8];

fn value(seed: u64) -> Value {
    std::array::from_fn(|index| seed + index as u64)
}

#[library_benchmark]
#[bench::ops_1k(SnapshotCell::new(value(0)))]
fn hivekit_read(cell: SnapshotCell<Value>) -> u64 {
    let mut sum = 0;
    for _ in 0..OPS {
        sum ^= black_box(&cell).read(|value, version| value[3] ^ version);
    }
    sum
}

#[library_benchmark]
#[bench::ops_1k(SnapshotCell::new(value(0)))]
fn hivekit_load(cell: SnapshotCell<Value>) -> u64 {
    let mut sum = 0;
    for _ in 0..OPS {
        sum ^= black_box(&cell).load().value()[3];
    }
    sum
}

#[library_benchmark]
#[bench::ops_1k(ArcSwap::from_pointee(value(0)))]
fn arc_swap_load(cell: ArcSwap<Value>) -> u64 {
    let mut sum = 0;
    for _ in 0..OPS {
        sum ^= black_box(&cell).load()[3];
    }
    sum
}

library_benchmark_group!(
    name = snapshot_read,
    benchmarks = [hivekit_read, hivekit_load, arc_swap_load]
);

#[library_benchmark]
#[bench::ops_1k(SnapshotCell::new(value(0)))]
fn hivekit_store(cell: SnapshotCell<Value>) -> u64 {
    let mut version = 0;
    for seed in 0..OPS {
        version = black_box(&cell).store(value(seed));
    }
    version
}

#[library_benchmark]
#[bench::ops_1k(SnapshotCell::new(value(0)))]
fn hivekit_commit(cell: SnapshotCell<Value>) -> u64 {
    let mut version = 0;
    for seed in 0..OPS {
        // Single thread: nothing commits in between, so every commit succeeds.
        version = cell.commit(cell.stage(value(seed))).unwrap_or(version);
    }
    version
}

#[library_benchmark]
#[bench::ops_1k(ArcSwap::from_pointee(value(0)))]
fn arc_swap_store(cell: ArcSwap<Value>) -> u64 {
    for seed in 0..OPS {
        black_box(&cell).store(Arc::new(value(seed)));
    }
    cell.load()[0]
}

library_benchmark_group!(
    name = snapshot_write,
    benchmarks = [hivekit_store, hivekit_commit, arc_swap_store]
);

/// A queue in its steady state at `depth` items, with the hint stream it was filled from.
fn filled<Q: Queue>(queue: Q, depth: usize) -> (Q, Vec<SchedulingHint>) {
    let hints = hints();
    prefill(&queue, &hints, depth);
    (queue, hints)
}

fn push_pop(queue: &dyn Queue, hints: &[SchedulingHint]) -> u64 {
    let mut sum = 0;
    for round in 0..OPS {
        sum ^= pair(black_box(queue), hints, round).unwrap_or_default();
    }
    sum
}

#[library_benchmark]
#[bench::depth_1k(filled(Hivekit::new(Some(8)), 1_000))]
fn hivekit_scheduler(input: (Hivekit, Vec<SchedulingHint>)) -> u64 {
    push_pop(&input.0, &input.1)
}

#[library_benchmark]
#[bench::depth_1k(filled(StdBinaryHeap::default(), 1_000))]
fn binaryheap(input: (StdBinaryHeap, Vec<SchedulingHint>)) -> u64 {
    push_pop(&input.0, &input.1)
}

#[library_benchmark]
#[bench::depth_1k(filled(SegQueueFourLanes::default(), 1_000))]
fn segqueue_4_lanes(input: (SegQueueFourLanes, Vec<SchedulingHint>)) -> u64 {
    push_pop(&input.0, &input.1)
}

library_benchmark_group!(
    name = scheduler_push_pop,
    benchmarks = [hivekit_scheduler, binaryheap, segqueue_4_lanes]
);

/// The conflict rows' callgrind options: besides the benchmark function, count the partitioned
/// scan's two steps, and the report's member lists when they are built in parallel, wherever they
/// run. From 65,536 key occurrences `detect_conflicts` routes and scans on the rayon pool (and from
/// 32,768 group members builds the groups' member lists there; from 16,384 proposals it reads
/// their key lists there too), and the default toggle (the benchmark function, on this thread)
/// left that work out of the count: the 100k and skewed rows counted only the calling thread's
/// part. The four functions are `#[inline(never)]` and run only on pool threads there (this
/// thread waits), and each reads one fixed run of proposals, routes one fixed chunk, scans one
/// fixed partition or lists one group's members, so the sum over threads does not depend on which
/// thread ran which job (the pool's own scheduling stays out). No row's input
/// falls in 16,384..65,535 occurrences, where both steps run on this thread inside the benchmark
/// function (a toggle there would switch counting off).
fn conflict_config() -> LibraryBenchmarkConfig {
    let mut config = LibraryBenchmarkConfig::default();
    config.tool(Callgrind::with_args([
        "--toggle-collect=hivekit_lockfree::conflict::read_key_lists*",
        "--toggle-collect=hivekit_lockfree::conflict::partition::route*",
        "--toggle-collect=hivekit_lockfree::conflict::partition::scan_partition*",
        "--toggle-collect=hivekit_lockfree::conflict::scan::group_members*",
    ]));
    config
}

// The input is handed back so that it is dropped outside the measured function: freeing 100k
// proposals' key lists was 69 % of the 100k row's count, none of it `detect_conflicts`'s.

#[library_benchmark(config = conflict_config())]
#[bench::n_1k(proposals(1_000))]
#[bench::n_100k(proposals(100_000))]
#[bench::skewed_1k(skewed_proposals(1_000))]
#[bench::skewed_10k(skewed_proposals(10_000))]
fn hivekit_detect(input: Vec<Proposal<u64, ()>>) -> (usize, Vec<Proposal<u64, ()>>) {
    let groups = detect_conflicts(black_box(&input)).map_or(0, |report| report.groups.len());
    (groups, input)
}

#[library_benchmark(config = conflict_config())]
#[bench::n_1k(proposals(1_000))]
#[bench::n_100k(proposals(100_000))]
#[bench::skewed_1k(skewed_proposals(1_000))]
#[bench::skewed_10k(skewed_proposals(10_000))]
fn fxhashmap_index(input: Vec<Proposal<u64, ()>>) -> (usize, Vec<Proposal<u64, ()>>) {
    let groups = crate::support::conflict_index::fxhashmap_index(black_box(&input))
        .groups
        .len();
    (groups, input)
}

library_benchmark_group!(
    name = conflict_detection,
    benchmarks = [hivekit_detect, fxhashmap_index]
);

/// The round's input, after one `Aggregator` was built: the shard count is computed once per
/// process (it reads cgroup files), so the first aggregator would count it and later ones not.
fn warmed(input: Input) -> Input {
    drop(hivekit_lockfree::Aggregator::<u64, aggregation::Payload>::new());
    input
}

#[library_benchmark]
#[bench::n_10(warmed(aggregation::proposals(10, 0.0)))]
#[bench::n_1k_10pct(warmed(aggregation::proposals(1_000, 0.1)))]
#[bench::n_10k(warmed(aggregation::proposals(10_000, 0.0)))]
fn hivekit_round(input: Input) -> usize {
    let (accepted, _) = round_on(hivekit_lockfree::Aggregator::new(), black_box(input));
    accepted.len()
}

#[library_benchmark]
#[bench::n_10(aggregation::proposals(10, 0.0))]
#[bench::n_1k_10pct(aggregation::proposals(1_000, 0.1))]
#[bench::n_10k(aggregation::proposals(10_000, 0.0))]
fn sequential_round(input: Input) -> usize {
    sequential(black_box(input)).0.len()
}

library_benchmark_group!(
    name = aggregation_round,
    benchmarks = [hivekit_round, sequential_round]
);

/// `n` counters, as in the criterion suite's `sum` rows.
fn sums(n: u64) -> Vec<Sum<u64>> {
    (0..n).map(Sum).collect()
}

#[library_benchmark]
#[bench::sum_100k(sums(100_000))]
fn hivekit_merge_all(payloads: Vec<Sum<u64>>) -> Option<Sum<u64>> {
    merge_all(black_box(payloads))
}

#[library_benchmark]
#[bench::sum_100k(sums(100_000))]
fn sequential_fold(payloads: Vec<Sum<u64>>) -> Option<Sum<u64>> {
    black_box(payloads)
        .into_iter()
        .reduce(|mut total, payload| {
            total.merge(payload);
            total
        })
}

library_benchmark_group!(
    name = payload_merging,
    benchmarks = [hivekit_merge_all, sequential_fold]
);

main!(
    library_benchmark_groups = snapshot_read,
    snapshot_write,
    scheduler_push_pop,
    conflict_detection,
    aggregation_round,
    payload_merging
);
