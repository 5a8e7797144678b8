//! Conflict detection and payload merging, the two halves of resolving a round of proposals.
//!
//! `conflict_detection`: find every conflict group among n proposals of 4 keys (2 written, 2 read;
//! 10 % of them in conflict, from `benches_common::proposals::proposal_specs`), producing the full
//! `ConflictReport` (groups in first-appearance order, independent ids). `hivekit` is
//! `detect_conflicts` (one pass, pre-sized map of borrowed keys to dense slots, no allocation per
//! key); `fxhashmap-index` is the straightforward one-pass index a competent user would write first
//! (`FxHashMap<&key, Vec<(index, writes)>>`, then a scan of the map and a `sort_by_cached_key` of the
//! contested keys into first-appearance order, each group's position found once); `pairwise`
//! compares every pair of proposals, the quadratic approach hash-based detection replaces (n <= 1k,
//! and 10k in full mode only). Every implementation's report is checked against `hivekit`'s before
//! timing.
//!
//! `conflict_detection_skewed`: the same two on `benches_common::skewed`'s history-like workload
//! (heavy-tailed key popularity and proposal width, up to 4,096 keys; almost every proposal in a
//! group, hot groups of thousands of members), with `u64` keys and with path-like `String` keys.
//! `conflict_detection_width`: two proposals writing the same k keys (throughput in key
//! occurrences, so the time per occurrence is read across k); the peer's first-appearance sort is
//! quadratic in the width there (each of the k groups searches a k-key list), so it runs up to
//! k = 16,384 only.
//!
//! `proposal_merging`: merge n accepted payloads into one with `Merge`: `Sum<u64>` (a counter),
//! `BTreeSet<u64>` (8 values each, a tag set) and `BTreeMap<u64, Sum<u64>>` (8 counters each).
//! `sequential` is the fold on one thread a user would write by hand (`into_iter().reduce` with
//! `Merge::merge`), `rayon` is hivekit's parallel path forced on (`merge_all_with_threshold(_, 0)`),
//! `hivekit` is `merge_all`, which folds plain data (no drop glue) under `PLAIN_MERGE_BYTES` on the
//! calling thread without timing anything (every `sum` row), and otherwise from
//! `PARALLEL_MERGE_THRESHOLD` payloads up times a probe of `MERGE_PROBE` merges and goes parallel
//! only when the rest would take longer than `PARALLEL_MERGE_WORK` (a second probe confirming);
//! the `sum` rows around the threshold are where that was measured.

use std::collections::{BTreeMap, BTreeSet};
use std::hint::black_box;

use benches_common::proposals::payload_values;
use benches_common::workload::DEFAULT_SEED;
use criterion::{criterion_group, BatchSize, BenchmarkId, Criterion, Throughput};
use hivekit_lockfree::{
    detect_conflicts, merge_all, merge_all_with_threshold, ConflictReport, Merge, Proposal, Sum,
};
use rustc_hash::FxHashMap;

use crate::support::conflict_index::{
    fxhashmap_index, into_report, proposals, same_keys_proposals, skewed_path_proposals,
    skewed_proposals,
};

mod support;

benches_common::install_counting_allocator!();

const DETECTION: &str = "conflict_detection";
const SKEWED: &str = "conflict_detection_skewed";
const WIDTH: &str = "conflict_detection_width";
const MERGING: &str = "proposal_merging";

/// Every pair of proposals compared key by key.
fn pairwise(proposals: &[Proposal<u64, ()>]) -> ConflictReport<u64> {
    let mut contested: FxHashMap<u64, Vec<(u32, bool)>> = FxHashMap::default();
    let mut note = |key: u64, index: usize, writes: bool| {
        let touchers = contested.entry(key).or_default();
        if !touchers.iter().any(|(seen, _)| *seen == index as u32) {
            touchers.push((index as u32, writes));
        }
    };
    for (i, a) in proposals.iter().enumerate() {
        for (j, b) in proposals.iter().enumerate().skip(i + 1) {
            for key in &a.writes {
                if b.writes.contains(key) || b.reads.contains(key) {
                    note(*key, i, true);
                    note(*key, j, b.writes.contains(key));
                }
            }
            for key in &b.writes {
                if a.reads.contains(key) && !a.writes.contains(key) {
                    note(*key, i, false);
                    note(*key, j, true);
                }
            }
        }
    }
    let groups = contested
        .into_iter()
        .map(|(key, mut touchers)| {
            touchers.sort_unstable();
            (key, touchers)
        })
        .collect();
    into_report(proposals, groups)
}

/// A conflict detector under test.
type Detector<K> = fn(&[Proposal<K, ()>]) -> ConflictReport<K>;

/// Benches `hivekit` and `fxhashmap-index` on `input` in `group` as `parameter` (checking first
/// that both give the same report), with allocation counts up to 10k proposals.
fn bench_detectors<K: std::hash::Hash + Eq + Clone + Sync + std::fmt::Debug>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    parameter: &str,
    input: &[Proposal<K, ()>],
    with_peer: bool,
) {
    let expected = detect_conflicts(input).expect("generated ids are distinct");
    let count_allocations = input.len() <= 10_000;
    let mut functions: Vec<(&str, Detector<K>)> = vec![("hivekit", |input| {
        detect_conflicts(input).expect("generated ids are distinct")
    })];
    if with_peer {
        assert!(
            fxhashmap_index(input) == expected,
            "fxhashmap-index disagrees at {name}/{parameter}"
        );
        functions.push(("fxhashmap-index", fxhashmap_index::<K>));
    }
    for (function, detect) in functions {
        group.bench_with_input(BenchmarkId::new(function, parameter), input, |b, input| {
            if count_allocations {
                benches_common::iter_with_allocations(b, (name, function, parameter), || {
                    detect(black_box(input))
                });
            } else {
                b.iter(|| detect(black_box(input)));
            }
        });
    }
}

fn conflict_detection_skewed(c: &mut Criterion) {
    let mut group = c.benchmark_group(SKEWED);
    for &n in &[1_000, 10_000, 100_000] {
        let label = benches_common::size_label(n);
        let input = skewed_proposals(n);
        let occurrences: usize = input.iter().map(|p| p.writes.len() + p.reads.len()).sum();
        group.throughput(Throughput::Elements(occurrences as u64));
        bench_detectors(&mut group, SKEWED, &format!("u64-{label}"), &input, true);
        drop(input);
        let input = skewed_path_proposals(n);
        bench_detectors(&mut group, SKEWED, &format!("str-{label}"), &input, true);
    }
    group.finish();
}

fn conflict_detection_width(c: &mut Criterion) {
    let mut group = c.benchmark_group(WIDTH);
    let widths = benches_common::sizes(
        &[16, 1_024, 16_384, 65_536],
        &[16, 256, 1_024, 4_096, 16_384, 65_536],
    );
    for &width in widths {
        let input = same_keys_proposals(width);
        group.throughput(Throughput::Elements(2 * width as u64));
        bench_detectors(
            &mut group,
            WIDTH,
            &format!("2x{width}"),
            &input,
            width <= 16_384,
        );
    }
    group.finish();
}

fn conflict_detection(c: &mut Criterion) {
    let sizes = benches_common::sizes(
        &[100, 1_000, 10_000, 100_000],
        &[100, 1_000, 10_000, 100_000],
    );
    let pairwise_max = if benches_common::is_quick() {
        1_000
    } else {
        10_000
    };
    let mut group = c.benchmark_group(DETECTION);
    for &n in sizes {
        let input = proposals(n);
        let expected = detect_conflicts(&input).expect("generated ids are distinct");
        assert_eq!(
            fxhashmap_index(&input),
            expected,
            "fxhashmap-index disagrees at {n}"
        );
        if n <= 1_000 {
            assert_eq!(pairwise(&input), expected, "pairwise disagrees at {n}");
        }
        let parameter = benches_common::size_label(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(
            BenchmarkId::new("hivekit", &parameter),
            &input,
            |b, input| {
                if n <= 10_000 {
                    benches_common::iter_with_allocations(
                        b,
                        (DETECTION, "hivekit", &parameter),
                        || detect_conflicts(black_box(input)),
                    );
                } else {
                    b.iter(|| detect_conflicts(black_box(input)));
                }
            },
        );
        group.bench_with_input(
            BenchmarkId::new("fxhashmap-index", &parameter),
            &input,
            |b, input| {
                if n <= 10_000 {
                    benches_common::iter_with_allocations(
                        b,
                        (DETECTION, "fxhashmap-index", &parameter),
                        || fxhashmap_index(black_box(input)),
                    );
                } else {
                    b.iter(|| fxhashmap_index(black_box(input)));
                }
            },
        );
    }
    // Quadratic: run last and, beyond 1k proposals (full mode only), with criterion's minimum
    // sample count, so that one 10k row costs seconds rather than minutes.
    for &n in sizes.iter().filter(|&&n| n <= pairwise_max) {
        let input = proposals(n);
        if n > 1_000 {
            group.sample_size(10);
        }
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(
            BenchmarkId::new("pairwise", benches_common::size_label(n)),
            &input,
            |b, input| {
                b.iter(|| pairwise(black_box(input)));
            },
        );
    }
    group.finish();
}

/// Benches `sequential`, `hivekit` and (when `with_rayon`) `rayon` merging of `payloads`.
fn bench_merge<P: Merge + Send + Clone>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    parameter: &str,
    payloads: &[P],
    with_rayon: bool,
) {
    group.throughput(Throughput::Elements(payloads.len() as u64));
    // The hand-written fold a user would write.
    group.bench_with_input(
        BenchmarkId::new("sequential", parameter),
        payloads,
        |b, payloads| {
            b.iter_batched(
                || payloads.to_vec(),
                |payloads| {
                    payloads.into_iter().reduce(|mut total, payload| {
                        total.merge(payload);
                        total
                    })
                },
                BatchSize::LargeInput,
            );
        },
    );
    if with_rayon {
        group.bench_with_input(
            BenchmarkId::new("rayon", parameter),
            payloads,
            |b, payloads| {
                b.iter_batched(
                    || payloads.to_vec(),
                    |payloads| merge_all_with_threshold(payloads, 0),
                    BatchSize::LargeInput,
                );
            },
        );
    }
    group.bench_with_input(
        BenchmarkId::new("hivekit", parameter),
        payloads,
        |b, payloads| {
            b.iter_batched(|| payloads.to_vec(), merge_all, BatchSize::LargeInput);
        },
    );
}

fn proposal_merging(c: &mut Criterion) {
    let mut group = c.benchmark_group(MERGING);
    let sum_sizes = benches_common::sizes(&[1_000, 100_000], &[1_000, 4_000, 16_000, 100_000]);
    for &n in sum_sizes {
        let payloads: Vec<Sum<u64>> = (0..n as u64).map(Sum).collect();
        bench_merge(
            &mut group,
            &format!("sum-{}", benches_common::size_label(n)),
            &payloads,
            true,
        );
    }
    let set_sizes = benches_common::sizes(&[10_000], &[1_000, 10_000, 100_000]);
    for &n in set_sizes {
        let values = payload_values(n, 8, 4_096, DEFAULT_SEED);
        let sets: Vec<BTreeSet<u64>> = values.iter().map(|v| v.iter().copied().collect()).collect();
        bench_merge(
            &mut group,
            &format!("btreeset-{}", benches_common::size_label(n)),
            &sets,
            true,
        );
        let maps: Vec<BTreeMap<u64, Sum<u64>>> = values
            .iter()
            .map(|v| v.iter().map(|&value| (value, Sum(1))).collect())
            .collect();
        bench_merge(
            &mut group,
            &format!("btreemap-{}", benches_common::size_label(n)),
            &maps,
            false,
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = benches_common::criterion();
    targets = conflict_detection, conflict_detection_skewed, conflict_detection_width, proposal_merging
}
/// `HIVEKIT_FAULT_PROBE=1 cargo bench -p hivekit-lockfree --bench conflict`: instead of the
/// suite, prints the minor page faults per `detect_conflicts` call (the process's `minflt`, as
/// `getrusage(RUSAGE_SELF).ru_minflt`, from `/proc/self/stat`) on the rows whose slow rounds were
/// page faults, each after a few uncounted calls, twice round (a row's faults depend on what ran
/// before it). The calls run on the main thread with this suite's allocator, as the timed rows do.
///
/// Any other value than `1` probes only the rows whose name holds it (`HIVEKIT_FAULT_PROBE=2x`).
fn fault_probe(only: &str) {
    /// The process's minor faults and user and system CPU time (in clock ticks) so far.
    fn minor_faults() -> Option<[u64; 3]> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // After the command name's closing parenthesis: state (field 3) ... minflt (field 10),
        // utime (14), stime (15).
        let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
        let field = |index: usize| fields.get(index)?.parse().ok();
        Some([field(7)?, field(11)?, field(12)?])
    }
    let probe = |row: &str, input: &dyn Fn() -> usize| {
        if only != "1" && !row.contains(only) {
            return;
        }
        const CALLS: u64 = 200;
        for _ in 0..5 {
            black_box(input());
        }
        let before = minor_faults();
        for _ in 0..CALLS {
            black_box(input());
        }
        match (before, minor_faults()) {
            // Clock ticks are 10 ms on Linux: CPU time per call in ms is ticks * 10 / CALLS.
            (Some(before), Some(after)) => println!(
                "{row}: {:.1} minor page faults per call, CPU {:.2} ms user + {:.2} ms system per call",
                (after[0] - before[0]) as f64 / CALLS as f64,
                (after[1] - before[1]) as f64 * 10.0 / CALLS as f64,
                (after[2] - before[2]) as f64 * 10.0 / CALLS as f64,
            ),
            _ => println!("{row}: no /proc/self/stat here"),
        }
    };
    fn groups<K: std::hash::Hash + Eq + Clone + Sync>(input: &[Proposal<K, ()>]) -> usize {
        detect_conflicts(black_box(input)).map_or(0, |report| report.groups.len())
    }
    let uniform = proposals(100_000);
    let skewed_10k = skewed_proposals(10_000);
    let skewed_100k = skewed_proposals(100_000);
    let skewed_str = skewed_path_proposals(10_000);
    let width = same_keys_proposals(65_536);
    for round in 1..=2 {
        println!("round {round}");
        probe("conflict_detection/hivekit/100k", &|| groups(&uniform));
        probe("conflict_detection_skewed/hivekit/u64-10k", &|| {
            groups(&skewed_10k)
        });
        probe("conflict_detection_skewed/hivekit/str-10k", &|| {
            groups(&skewed_str)
        });
        probe("conflict_detection_skewed/hivekit/u64-100k", &|| {
            groups(&skewed_100k)
        });
        probe("conflict_detection_width/hivekit/2x65536", &|| {
            groups(&width)
        });
    }
}

fn main() {
    if let Ok(only) = std::env::var("HIVEKIT_FAULT_PROBE") {
        fault_probe(&only);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
