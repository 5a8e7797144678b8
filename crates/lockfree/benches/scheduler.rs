//! PriorityScheduler against the usual priority queues, on the same seeded hint stream.
//!
//! `priority_scheduling`: one push followed by one pop (a pair) at a steady depth of `10`, `1k` and
//! `100k` items on one thread, and the same pair on 2 and 4 threads at once sharing one queue kept
//! at depth 1k (`mpmc-2t`, `mpmc-4t`). `hivekit` orders by the full 48-value sort key, FIFO within
//! a key, with anti-starvation on (`max_bypass: Some(8)`); `hivekit-strict` is the same without
//! anti-starvation, to show what fairness costs; `hivekit-sharded-heap` is the design the lane
//! scheduler was chosen over (four locked binary heaps, pop takes the best of their tops), and
//! `hivekit-fenced-set` another design kept as a row: `hivekit-strict`'s lanes and bitmap, but a
//! push writes the bitmap only when its bit reads clear, after a `SeqCst` fence (the protocol the
//! scheduler used before its always-set one; under load from parallel builds it measured about
//! 1.15x slower than `hivekit-strict` at `mpmc-2t` and on one thread, and no better at `mpmc-4t`:
//! the fence costs more than the shared write it skips). `hivekit-priority-words` is a third: the
//! bitmap split into one word per priority on its own cache line, so that pushes at different
//! priorities write different lines (measured slower on one thread and no better at 2 or 4 threads,
//! under load: a pop reads all four lines, so the sharing comes back on the read side).
//! `shared-word-floor` is not a queue: only the bitmap's two read-modify-writes per pair on one
//! shared word (see `support/queues.rs`), the floor that any design with one shared summary word
//! pays on top of its lanes at `mpmc-2t` and `mpmc-4t`.
//!
//! `hivekit-unforced` is `hivekit` with `max_bypass: Some(u32::MAX - 1)`: the anti-starvation
//! bookkeeping on every pop (a per-thread stripe on its own cache line, plain loads and stores, no
//! read-modify-write, no scan) without the forced pops themselves, to tell the two costs apart.
//!
//! Where anti-starvation's extra time goes at `mpmc` (a one-off probe, `where_the_pair_time_goes`,
//! in `tests/scheduler_bench_rows.rs` at commit 7c4190c, removed since: timings do not belong in
//! the tests; each pair timed by `rdtsc`, 2.6 GHz TSC, split by what its pop took; 4M pairs per
//! thread, several runs under load 2-4.5). `hivekit`'s pops: 65% its own pair's item, 10.3% a
//! forced pop (a lower lane), 20-22% an item of its own thread from a higher lane (the cascade: the
//! item a forced pop left behind), 2.8% an older item of the pushed lane, and 0.2-2.5% another
//! thread's item from a higher lane (at most 0.1% for `hivekit-strict`). A forced pop costs
//! 1.6-1.7x an own pair on 1, 2 and 4 threads (71 against 42 cycles on one thread, 88-165 against
//! 52-100 at 2t, 234 against 146 at 4t): it serves a backlog lane, whose oldest item sits in the
//! overflow `SegQueue` (registration, `SegQueue` pop and leave: three read-modify-writes where a
//! ring pop takes one) on lines every thread's forced pops and spills share. The cascade pops cost
//! no more than own pairs (50 against 42 cycles on one thread, 54-77 against 52-100 at 2t): the
//! item left behind is on a line the same thread wrote. A pop that takes another thread's item from
//! a higher lane costs 1,100-1,250 cycles, in every row (strict too): the lane's line, the bitmap's
//! and the owner's next attempt all cross cores. The items forced pops leave behind are the queue's
//! highest, so another thread's pop must take them when they are; that and the forced pops'
//! overflow traffic are most of the gap to `hivekit-strict`, and both follow from the documented
//! order, not from how it is kept. The rest is the per-pop bookkeeping, 7.8 instructions per pair
//! cheaper since its stripes became a fixed array behind one `Option`
//! (`scheduler_push_pop/hivekit-scheduler/depth_1k`: 284,368 -> 276,571 per 1,000 pairs).
//!
//! `hivekit-stamped-lanes` (and `hivekit-stamped-lanes-strict`, without anti-starvation) tries a
//! lane for the stalls of the `mpmc` rows: `hivekit`'s bitmap and per-thread anti-starvation over
//! stamped rings (Vyukov's bounded queue, one per key), whose pop claims a slot only once its stamp
//! says the value is written and otherwise tries the lanes below. A crossbeam `SegQueue` pop claims
//! the head slot first and then waits for its value, so a pop that meets a push in flight in its
//! lane waits for it, and if that pusher is descheduled the popper spins and then calls
//! `sched_yield` until it runs again. At `mpmc-2t` between 0 and 10% of pops met such a slot
//! (counted in the stamped rows, varying from one queue instance to the next, with or without
//! anti-starvation). Counted under load, over runs of 2.4M to 6M pairs per thread: 1,300-55,000
//! `sched_yield` calls inside `SegQueue::pop` for `hivekit` at 2 threads (0-12,500 for
//! `hivekit-strict`, up to 5,700 for `segqueue-4-lanes`), about 52,000 at 4 threads (5,700
//! strict, 15,400 lanes), and 0-2 for the stamped rows. A ring has a stall of its own, rarer: a
//! push waits for the pop a lap behind it that claimed its slot and has not released it (one
//! `--quick` run of `hivekit-stamped-lanes/mpmc-4t` made 68 and another 430 `sched_yield` calls,
//! against 21,477 and 4 for `hivekit`; with 2,048 slots per key instead of 8,192 it made 2,960
//! against 923). Under load (3.7 to 6 on 2 cores) the stamped rows' medians were no better than
//! `hivekit`'s: the quiet full runs will tell whether the stalls are what costs there. On one
//! thread they are cheaper: callgrind over 100k pairs at depth 1k (through the bench's `Queue`
//! trait) counted 150 instructions per pair for `hivekit-stamped-lanes` and 140 for its strict row,
//! against 273 for `hivekit`, 254 for `hivekit-strict` and 274 for `hivekit-unforced` (so on one
//! thread anti-starvation costs 19 instructions per pair, all of them its bookkeeping).
//! The rings are bounded (8,192 items per key), so these rows skip the 100k depth; see
//! `support/queues.rs` for why they are a bench row and not a scheduler.
//!
//! The lanes: `hivekit` and `hivekit-strict` run the scheduler's compact lanes
//! (`src/scheduler/lane.rs`: a state word with head, tail, spill count and overflow pops in flight,
//! and an 8-slot stamped ring, on one 128-byte line; an overflow `SegQueue` past it). Why: in these
//! rows 97% of pops take the item their own pair just pushed, on 1, 2 and 4 threads, for
//! `hivekit-strict` and the heap alike (65% for `hivekit`, whose forced pops take a lower lane's
//! item; 34% take another of their own thread's items, 1-2% another thread's; counted by a one-off
//! probe, `where_the_popped_items_come_from` in `tests/scheduler_bench_rows.rs` at commit dc66d75).
//! So almost every push lands in a sparse lane above the backlog and the next pop takes it back
//! out: with `SegQueue` lanes that pair touched the lane's padded tail, its padded head and its
//! block (three or four lines, each last written by whichever core used the lane last), with a
//! compact lane one line. Probed first as bench rows over the stamped rows' scheduler
//! (`hivekit-compact-lanes`, `-strict`: a 6-slot ring and its counters on one line, an overflow
//! `SegQueue`; FIFO not exact between racing pushes, so a probe only) beside
//! `hivekit-stamped-shared-ends` (the stamped rings with head and tail sharing one line, slots
//! elsewhere). Four alternating `--quick` runs under load 6.2-6.5 on 2 cores, medians: at `mpmc-2t`
//! the compact rows 100 ns (`max_bypass` 8) and 75 ns (strict) against 127 and 105 for the
//! `SegQueue` scheduler and 195 for the heap; at `mpmc-4t` 144 and 151 against 222 and 184 (heap
//! 394); at 1k on one thread 27 and 23.5 against 31.5 and 30; the shared-ends rings were no better
//! than the padded ones (2t 100-146 ns, 4t 173-253). The scheduler's own version keeps exact FIFO
//! (an overflow pop registers in the state word, which keeps pushes out of the ring while it is in
//! flight) and waits where `SegQueue` waits (a pop for a reserved, unwritten slot). Its first
//! version also let a push wait for a slow pop of the ring's lap before: under load that stalled
//! every thread behind a descheduled one (`mpmc-4t` 507-998 ns against 172-224 for the `SegQueue`
//! lanes); a push now checks the slot first and spills instead. A/B against main's binary, four
//! alternating `--quick` runs under load 7.4-11, medians (main -> compact lanes): `hivekit` 1k 32.8
//! -> 25.5 ns, 10 32.8 -> 24.1, 100k 34.2 -> 29.6, `mpmc-2t` 110 -> 85, `mpmc-4t` 218 -> 200;
//! `hivekit-strict` 1k 29.8 -> 24.6, `mpmc-2t` 106 -> 89, `mpmc-4t` 158 -> 130; the heap, unchanged
//! code, 78/78 at 1k, 235/222 at `mpmc-2t`, 392/387 at `mpmc-4t`. Under such load the heap's lock
//! holder is often descheduled and it loses to every lane design; whether the lanes now pass it on
//! a quiet machine (the quiet run before them: heap 123 ns at `mpmc-2t`, 228 at `mpmc-4t`, against
//! 164 and 280 for `hivekit`) the next quiet full run will tell. `hivekit-segqueue-lanes` (and
//! `-strict`) keep the design they replaced as rows: the same bitmap and anti-starvation over bare
//! `SegQueue` lanes (the stamped rows' scheduler, its per-thread aging in a thread-local rather
//! than the scheduler's stripes). In one binary, four `--quick` runs under load 3.0-4.3, medians:
//! `hivekit` 76 ns at `mpmc-2t` and 184 at `mpmc-4t` against 117 and 230 for
//! `hivekit-segqueue-lanes`; `hivekit-strict` 92 and 140 against 115 and 174; the four bare lanes
//! 87 and 155, the heap 198 and 393; at 1k on one thread 25.5 against 27.8. In
//! `scheduler_queue_depth` (two A/B runs, load 5) no depth got slower, and `len` and
//! `depth_by_priority` got cheaper (one load of a lane's state word per non-empty lane: at 100k 6-8
//! ns against 15-16 for `len`).
//!
//! The `mpmc-2t` budget: [`time_threads`] reports the time of one pair per thread, so perfect
//! scaling leaves a 2-thread pair as slow as a 1-thread pair, never faster. Its threads are pinned
//! to distinct CPUs (see `benches_common::threads`): before they were, these rows were bimodal
//! (seven full runs up to 6dee00f: `hivekit` 43.7-155 ns, `hivekit-strict` 39.4-149 ns, the heap
//! 127-216 ns), and the fast mode was the two threads running one after the other on one vCPU:
//! exactly twice the one-thread pair (42.2 and 38.4 ns against 20.8 and 19.4 ns in the quiet run
//! of 2e16992), no contention at all. Pinned, every run measures the pair while both threads run.
//! Allocations per pair are recorded for the single-thread rows.
//!
//! `scheduler_queue_depth`: how the pair cost of `hivekit` (and `mutex-binaryheap`) changes with
//! depth from 0 to 1M, and what `len` (`hivekit-len`) and `depth_by_priority`
//! (`hivekit-depth-by-priority`) cost at those depths: the lane design should be flat where a heap
//! grows with log(depth).
//!
//! `scheduling_hint_sorting`: sorting 100 to 5k hints by `sort_key()` (`hivekit`, one byte compare)
//! against sorting by the (priority, latency, cost) comparison it encodes (`tuple-compare`).
//!
//! Peers (in `support/queues.rs`), each what a competent user would write first for a priority
//! queue of (sort key, FIFO sequence) entries:
//!
//! - `binaryheap`: std `BinaryHeap` and its sequence counter in one `RefCell`, one thread only;
//!   written as a user would.
//! - `mutex-binaryheap`: the heap and counter in one `parking_lot::Mutex`, one lock per push or
//!   pop; written as a user would.
//! - `segqueue-4-lanes`: four bare crossbeam `SegQueue`s, one per priority, pop scanning from the
//!   highest (no finer key, no FIFO across lanes, no counts: the floor, not a full peer); written as
//!   a user would.
//! - `segqueue-48-lanes`: one bare `SegQueue` per sort key (48), pop scanning from the highest:
//!   the floor of the full-key order `hivekit` keeps (no summary word, no FIFO across lanes, no
//!   counts). Measured while both threads run (pinned), the 48-key order is what costs at
//!   `mpmc-2t`: a probe at depth 1k put `hivekit` at 30-36 ns a pair on hints of 4 keys (priority
//!   only) against the 4 lanes' 33-42 ns, and at 71-216 ns (mostly about 158) on the stream's 48
//!   keys, against 205-217 ns for 48 bare lanes: the highest non-empty lane changes from pair to
//!   pair, so each pair moves other lanes' lines between the cores.
//! - `crossbeam-skiplist`: a `SkipMap` keyed by (key, sequence), `pop_front` to pop; written as a
//!   user would.
//! - `tuple-compare`: `sort_by` with the (priority, latency, cost) comparison; written as a user
//!   would.

use std::cmp::{Ordering as CmpOrdering, Reverse};

use benches_common::hints::hint_stream;
use benches_common::threads::time_threads;
use benches_common::workload::DEFAULT_SEED;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use hivekit_lockfree::SchedulingHint;

use crate::support::queues::{
    fits_depth, hints, pair, prefill, shared_queues, single_thread_queues, to_hint, Hivekit,
    MutexBinaryHeap,
};

mod support;

benches_common::install_counting_allocator!();

const SCHEDULING: &str = "priority_scheduling";
const DEPTH: &str = "scheduler_queue_depth";
const SORTING: &str = "scheduling_hint_sorting";

fn priority_scheduling(c: &mut Criterion) {
    let hints = hints();
    let mut group = c.benchmark_group(SCHEDULING);
    group.throughput(Throughput::Elements(1));
    for (parameter, depth) in [("10", 10), ("1k", 1_000), ("100k", 100_000)] {
        for (function, queue) in single_thread_queues() {
            if !fits_depth(function, depth) {
                continue;
            }
            prefill(queue.as_ref(), &hints, depth);
            let mut round = 0_u64;
            group.bench_function(BenchmarkId::new(function, parameter), |b| {
                benches_common::iter_with_allocations(b, (SCHEDULING, function, parameter), || {
                    round += 1;
                    pair(queue.as_ref(), &hints, round)
                })
            });
        }
    }
    for (parameter, threads) in [("mpmc-2t", 2), ("mpmc-4t", 4)] {
        for (function, queue) in shared_queues() {
            prefill(queue.as_ref(), &hints, 1_000);
            group.bench_function(BenchmarkId::new(function, parameter), |b| {
                b.iter_custom(|iterations| {
                    time_threads(threads, iterations, |thread, iterations| {
                        let offset = thread as u64 * 1_000_003;
                        for round in 0..iterations {
                            std::hint::black_box(pair(queue.as_ref(), &hints, offset + round));
                        }
                    })
                })
            });
        }
    }
    group.finish();
}

fn scheduler_queue_depth(c: &mut Criterion) {
    let hints = hints();
    let mut group = c.benchmark_group(DEPTH);
    group.throughput(Throughput::Elements(1));
    let depths: &[usize] = benches_common::sizes(
        &[0, 100, 10_000, 100_000],
        &[0, 100, 10_000, 100_000, 1_000_000],
    );
    for &depth in depths {
        let hivekit = Hivekit::new(Some(8));
        prefill(&hivekit, &hints, depth);
        let mut round = 0_u64;
        group.bench_function(BenchmarkId::new("hivekit", depth), |b| {
            b.iter(|| {
                round += 1;
                pair(&hivekit, &hints, round)
            })
        });
        group.bench_function(BenchmarkId::new("hivekit-len", depth), |b| {
            b.iter(|| hivekit.0.len())
        });
        group.bench_function(BenchmarkId::new("hivekit-depth-by-priority", depth), |b| {
            b.iter(|| hivekit.0.depth_by_priority())
        });
        drop(hivekit);
        let heap = MutexBinaryHeap::default();
        prefill(&heap, &hints, depth);
        group.bench_function(BenchmarkId::new("mutex-binaryheap", depth), |b| {
            b.iter(|| {
                round += 1;
                pair(&heap, &hints, round)
            })
        });
    }
    group.finish();
}

fn compare_tuples(left: &SchedulingHint, right: &SchedulingHint) -> CmpOrdering {
    // Larger runs first: higher priority, then hotter (smaller tier), then cheaper (smaller cost).
    right
        .priority
        .cmp(&left.priority)
        .then(left.latency.cmp(&right.latency))
        .then(left.cost.cmp(&right.cost))
}

fn scheduling_hint_sorting(c: &mut Criterion) {
    let mut group = c.benchmark_group(SORTING);
    for count in [100, 1_000, 5_000] {
        let input: Vec<SchedulingHint> = hint_stream(count, DEFAULT_SEED)
            .into_iter()
            .map(to_hint)
            .collect();
        group.throughput(Throughput::Elements(count as u64));
        group.bench_with_input(BenchmarkId::new("hivekit", count), &input, |b, input| {
            b.iter_batched_ref(
                || input.clone(),
                |hints| hints.sort_by_key(|hint| Reverse(hint.sort_key())),
                BatchSize::SmallInput,
            )
        });
        group.bench_with_input(
            BenchmarkId::new("tuple-compare", count),
            &input,
            |b, input| {
                b.iter_batched_ref(
                    || input.clone(),
                    |hints| hints.sort_by(compare_tuples),
                    BatchSize::SmallInput,
                )
            },
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = benches_common::criterion();
    targets = priority_scheduling, scheduler_queue_depth, scheduling_hint_sorting
}
criterion_main!(benches);
