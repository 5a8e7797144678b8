//! A whole aggregation round: n proposals submitted, conflicts resolved, accepted payloads merged.
//!
//! `commutative_aggregation`: no conflicts (every proposal is accepted and merged), parameter = n.
//! `conditional_aggregation`: 10 % or 50 % of the proposals in conflict groups (parameter like
//! `100k-10pct`), resolved by `Resolution::HighestPriority` so every implementation reaches the same
//! decision. Proposals have 4 keys (2 written, 2 read) from
//! `benches_common::proposals::proposal_specs` and a `(Sum<u64>, Max<u64>)` payload (a counter and
//! a high-water mark). Every function submits from the bench thread, so the rows compare the
//! aggregation itself; concurrent submission is measured on its own in `proposal_submission`.
//!
//! Functions: `hivekit` is an `Aggregator` finished with the default parallel threshold
//! (partitioned conflict detection on the rayon pool and a parallel merge above it);
//! `sequential` is the single-threaded loop a competent user would write by hand, as a user would
//! write it: the proposals pushed into a `Vec`, one presized `FxHashMap<key, summary>` pass that keeps per
//! key its best toucher (by the same winner rule), its member count and whether anyone writes it,
//! then one pass that rejects every proposal losing a contested key and folds the rest (no lock, no
//! `Vec` per key, no conflict report); `hivekit-sequential` is hivekit's own `Aggregator` with the
//! parallel threshold off, so the pair shows what the parallel path buys on this machine;
//! `mutex-vec` is the baseline a user would write first: one
//! `Mutex<(Vec<_>, HashSet<id>)>`, then a std `HashMap<key, Vec<index>>` index, the same winner
//! rule, and a sequential fold (up to 100k proposals, 10k in quick mode). 1M proposals run in full
//! mode only. The input is cloned outside the timing (`iter_batched`).
//!
//! `proposal_submission`: the cost of one `submit` while 1 or 2 threads (`1t`, `2t`) submit
//! without pause: `hivekit` (`Aggregator::submit`: a shard lock chosen by the id's block of 64
//! ids, a duplicate check in the shard, one atomic increment for the submission order; each thread
//! submits its own range of ids) against `mutex-vec` (one `Mutex<(Vec<_>, HashSet<id>)>`), the
//! measurement behind the aggregator's sharded design. `hivekit-interleaved-ids` submits ids
//! interleaved across the threads (as if drawn from one shared counter), so concurrent submits
//! fall in the same id block and shard: the case the shard choice by blocks does worst.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use benches_common::threads::time_threads;
use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
use hivekit_lockfree::{Aggregator, Proposal, ProposalId};

use crate::support::aggregation::{fold, proposals, round_on, sequential, Input, Outcome, Payload};

const COMMUTATIVE: &str = "commutative_aggregation";
const CONDITIONAL: &str = "conditional_aggregation";
const SUBMISSION: &str = "proposal_submission";

/// The baseline's submission target: every proposal and every id behind one lock.
type Locked<P> = Mutex<(Vec<Proposal<u64, P>>, HashSet<ProposalId>)>;

/// One implementation of a round.
type Round = fn(Input) -> Outcome;

fn hivekit(input: Input) -> Outcome {
    round_on(Aggregator::new(), input)
}

fn hivekit_sequential(input: Input) -> Outcome {
    round_on(Aggregator::with_parallel_threshold(usize::MAX), input)
}

/// The naive baseline: one lock for everything, std hashing, a `Vec` per key.
fn mutex_vec(input: Input) -> Outcome {
    let shared: Locked<Payload> = Mutex::new((Vec::new(), HashSet::new()));
    for proposal in input {
        let mut guard = shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (proposals, ids) = &mut *guard;
        assert!(ids.insert(proposal.id), "generated ids are distinct");
        proposals.push(proposal);
    }
    let (proposals, _) = shared
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut index: HashMap<u64, Vec<(usize, bool)>> = HashMap::new();
    for (position, proposal) in proposals.iter().enumerate() {
        for (key, writes) in proposal
            .writes
            .iter()
            .map(|key| (key, true))
            .chain(proposal.reads.iter().map(|key| (key, false)))
        {
            let touchers = index.entry(*key).or_default();
            match touchers.last_mut() {
                Some((last, last_writes)) if *last == position => *last_writes |= writes,
                _ => touchers.push((position, writes)),
            }
        }
    }
    let mut rejected = vec![false; proposals.len()];
    for touchers in index.values() {
        if touchers.len() < 2 || !touchers.iter().any(|(_, writes)| *writes) {
            continue;
        }
        let rank = |&(position, _): &(usize, bool)| {
            let proposal = &proposals[position];
            (std::cmp::Reverse(proposal.priority), proposal.id)
        };
        let Some(&best) = touchers.iter().min_by_key(|toucher| rank(toucher)) else {
            continue;
        };
        for &(position, writes) in touchers {
            if (best.1 && position != best.0) || (!best.1 && writes) {
                rejected[position] = true;
            }
        }
    }
    let survivors = proposals
        .into_iter()
        .zip(rejected)
        .filter(|(_, rejected)| !rejected)
        .map(|(proposal, _)| proposal);
    fold(survivors)
}

fn bench_round(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    parameter: &str,
    input: &Input,
) {
    // Every implementation must reach the same decision before any of them is timed.
    let (mut expected_ids, expected_merged) = hivekit_sequential(input.clone());
    expected_ids.sort_unstable();
    let (mut ids, merged) = hivekit(input.clone());
    ids.sort_unstable();
    assert_eq!(
        (&ids, &merged),
        (&expected_ids, &expected_merged),
        "hivekit disagrees at {parameter}"
    );
    assert_eq!(
        sequential(input.clone()),
        (expected_ids.clone(), expected_merged),
        "sequential disagrees at {parameter}"
    );
    // The baseline is slow (one lock, SipHash, a `Vec` per key): keep its largest inputs out of
    // quick runs.
    let small_enough = input.len()
        <= if benches_common::is_quick() {
            10_000
        } else {
            100_000
        };
    if small_enough {
        let baseline = mutex_vec(input.clone());
        assert_eq!(
            baseline,
            (expected_ids, expected_merged),
            "mutex-vec disagrees at {parameter}"
        );
    }
    group.throughput(Throughput::Elements(input.len() as u64));
    let mut functions: Vec<(&str, Round)> = vec![
        ("hivekit", hivekit),
        ("sequential", sequential),
        ("hivekit-sequential", hivekit_sequential),
    ];
    if small_enough {
        functions.push(("mutex-vec", mutex_vec));
    }
    for (function, run) in functions {
        group.bench_with_input(BenchmarkId::new(function, parameter), input, |b, input| {
            b.iter_batched(|| input.clone(), run, BatchSize::LargeInput);
        });
    }
}

/// From 1M proposals on (full mode), one iteration plus its input clone takes seconds: criterion's
/// minimum of 10 samples keeps a row to under a minute. Sizes come in ascending order, so the
/// setting only ever applies to the largest rows.
fn limit_samples(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>, n: usize) {
    if n >= 1_000_000 {
        group.sample_size(10);
    }
}

fn commutative_aggregation(c: &mut Criterion) {
    let sizes = benches_common::sizes(
        &[10, 10_000, 100_000],
        &[10, 1_000, 10_000, 100_000, 1_000_000],
    );
    let mut group = c.benchmark_group(COMMUTATIVE);
    for &n in sizes {
        limit_samples(&mut group, n);
        bench_round(
            &mut group,
            &benches_common::size_label(n),
            &proposals(n, 0.0),
        );
    }
    group.finish();
}

fn conditional_aggregation(c: &mut Criterion) {
    // No 1M rows: three designs x two conflict rates at 1M proposals took six of a full run's
    // minutes, and the commutative group already shows how the round scales to 1M.
    let sizes = benches_common::sizes(&[1_000, 100_000], &[1_000, 10_000, 100_000]);
    let mut group = c.benchmark_group(CONDITIONAL);
    for &n in sizes {
        for (rate, name) in [(0.1, "10pct"), (0.5, "50pct")] {
            bench_round(
                &mut group,
                &format!("{}-{name}", benches_common::size_label(n)),
                &proposals(n, rate),
            );
        }
    }
    group.finish();
}

fn proposal_submission(c: &mut Criterion) {
    let mut group = c.benchmark_group(SUBMISSION);
    group.throughput(Throughput::Elements(1));
    for threads in [1_usize, 2] {
        let parameter = format!("{threads}t");
        // Proposals without keys: building one does not allocate, so the submission is what is
        // timed. Ids are distinct across threads.
        let proposal = |thread: usize, iterations: u64, i: u64| {
            Proposal::<u64, u64>::new(thread as u64 * iterations + i, i)
        };
        group.bench_function(BenchmarkId::new("hivekit", &parameter), |b| {
            b.iter_custom(|iterations| {
                let aggregator = Aggregator::new();
                time_threads(threads, iterations, |thread, iterations| {
                    for i in 0..iterations {
                        let submitted = aggregator.submit(proposal(thread, iterations, i));
                        assert!(submitted.is_ok(), "ids are distinct");
                    }
                })
            });
        });
        // Ids drawn as if from one counter shared by the threads: both threads' ids fall in the
        // same id blocks at the same time, the worst case for the aggregator's shard choice.
        group.bench_function(
            BenchmarkId::new("hivekit-interleaved-ids", &parameter),
            |b| {
                b.iter_custom(|iterations| {
                    let aggregator = Aggregator::new();
                    time_threads(threads, iterations, |thread, iterations| {
                        for i in 0..iterations {
                            let id = i * threads as u64 + thread as u64;
                            let submitted = aggregator.submit(Proposal::<u64, u64>::new(id, i));
                            assert!(submitted.is_ok(), "ids are distinct");
                        }
                    })
                });
            },
        );
        group.bench_function(BenchmarkId::new("mutex-vec", &parameter), |b| {
            b.iter_custom(|iterations| {
                let shared: Locked<u64> = Mutex::new((Vec::new(), HashSet::new()));
                time_threads(threads, iterations, |thread, iterations| {
                    for i in 0..iterations {
                        let proposal = proposal(thread, iterations, i);
                        let mut guard = shared
                            .lock()
                            .unwrap_or_else(|poisoned| poisoned.into_inner());
                        let (proposals, ids) = &mut *guard;
                        assert!(ids.insert(proposal.id), "ids are distinct");
                        proposals.push(proposal);
                    }
                })
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = benches_common::criterion();
    targets = commutative_aggregation, conditional_aggregation, proposal_submission
}
criterion_main!(benches);
