//! PriorityScheduler against the usual priority queues, on the same seeded hint stream.
//!
//! `priority_scheduling`: one push followed by one pop (a pair) at a steady depth of `10`, `1k` and
//! `100k` items on one thread, and the same pair on 2 and 4 threads at once sharing one queue kept
//! at depth 1k (`mpmc-2t`, `mpmc-4t`). `hivekit` orders by the full 48-value sort key, FIFO within a
//! key, with anti-starvation on (`max_bypass: Some(8)`); `hivekit-strict` is the same without
//! anti-starvation, to show what fairness costs. Peers: `binaryheap` (std `BinaryHeap` in a
//! `RefCell`, one thread only), `mutex-binaryheap` (`parking_lot::Mutex<BinaryHeap>`),
//! `segqueue-4-lanes` (four bare crossbeam `SegQueue`s, one per priority: no finer key, no FIFO
//! guarantee across lanes, no bitmap, no counts), `crossbeam-skiplist` (`SkipMap` keyed by
//! (key, sequence)) and `hivekit-sharded-heap`, the design the lane scheduler was chosen over (four
//! locked binary heaps, pop takes the best of their tops). Allocations per pair are recorded for the
//! single-thread rows.
//!
//! `scheduler_queue_depth`: how the pair cost of `hivekit` (and `mutex-binaryheap`) changes with depth
//! from 0 to 1M, and what `len` (`hivekit-len`) and `depth_by_priority` (`hivekit-depth-by-priority`)
//! cost at those depths: the lane design should be flat where a heap grows with log(depth).
//!
//! `scheduling_hint_sorting`: sorting 100 to 5k hints by `sort_key()` (`hivekit`, one byte compare)
//! against sorting by the (priority, latency, cost) comparison it encodes (`tuple-compare`).

mod support;

use std::cell::RefCell;
use std::cmp::{Ordering as CmpOrdering, Reverse};
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use benches_common::hints::hint_stream;
use benches_common::threads::time_threads;
use benches_common::workload::DEFAULT_SEED;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use crossbeam_queue::SegQueue;
use crossbeam_skiplist::SkipMap;
use hivekit_lockfree::{PriorityScheduler, SchedulerConfig, SchedulingHint};
use parking_lot::Mutex;

use crate::support::to_hint;

benches_common::install_counting_allocator!();

const SCHEDULING: &str = "priority_scheduling";
const DEPTH: &str = "scheduler_queue_depth";
const SORTING: &str = "scheduling_hint_sorting";

/// Hints cycled through by every operation (a power of two, indexed with a mask).
const STREAM: usize = 4_096;

fn hints() -> Vec<SchedulingHint> {
    hint_stream(STREAM, DEFAULT_SEED)
        .into_iter()
        .map(to_hint)
        .collect()
}

/// A priority queue of `u64` items under test.
trait Queue {
    fn push(&self, hint: SchedulingHint, item: u64);
    fn pop(&self) -> Option<u64>;
}

struct Hivekit(PriorityScheduler<u64>);

impl Hivekit {
    fn new(max_bypass: Option<u32>) -> Self {
        let config = SchedulerConfig {
            capacity: None,
            max_bypass,
        };
        match PriorityScheduler::with_config(config) {
            Ok(scheduler) => Self(scheduler),
            Err(error) => panic!("bench config refused: {error}"),
        }
    }
}

impl Queue for Hivekit {
    fn push(&self, hint: SchedulingHint, item: u64) {
        // Unbounded: never full.
        let _ = self.0.push(hint, item);
    }
    fn pop(&self) -> Option<u64> {
        self.0.pop()
    }
}

/// Heap entry: highest key first, then lowest sequence (FIFO).
type Entry = (u8, Reverse<u64>, u64);

#[derive(Default)]
struct StdBinaryHeap {
    heap: RefCell<BinaryHeap<Entry>>,
    sequence: RefCell<u64>,
}

impl Queue for StdBinaryHeap {
    fn push(&self, hint: SchedulingHint, item: u64) {
        let mut sequence = self.sequence.borrow_mut();
        *sequence += 1;
        self.heap
            .borrow_mut()
            .push((hint.sort_key(), Reverse(*sequence), item));
    }
    fn pop(&self) -> Option<u64> {
        self.heap.borrow_mut().pop().map(|(_, _, item)| item)
    }
}

#[derive(Default)]
struct MutexBinaryHeap(Mutex<(BinaryHeap<Entry>, u64)>);

impl Queue for MutexBinaryHeap {
    fn push(&self, hint: SchedulingHint, item: u64) {
        let mut guard = self.0.lock();
        let (heap, sequence) = &mut *guard;
        *sequence += 1;
        heap.push((hint.sort_key(), Reverse(*sequence), item));
    }
    fn pop(&self) -> Option<u64> {
        self.0.lock().0.pop().map(|(_, _, item)| item)
    }
}

#[derive(Default)]
struct SegQueueFourLanes([SegQueue<u64>; 4]);

impl Queue for SegQueueFourLanes {
    fn push(&self, hint: SchedulingHint, item: u64) {
        self.0[hint.priority.index()].push(item);
    }
    fn pop(&self) -> Option<u64> {
        self.0.iter().rev().find_map(SegQueue::pop)
    }
}

#[derive(Default)]
struct SkipList {
    map: SkipMap<(Reverse<u8>, u64), u64>,
    sequence: AtomicU64,
}

impl Queue for SkipList {
    fn push(&self, hint: SchedulingHint, item: u64) {
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        self.map.insert((Reverse(hint.sort_key()), sequence), item);
    }
    fn pop(&self) -> Option<u64> {
        self.map.pop_front().map(|entry| *entry.value())
    }
}

/// The design the lane scheduler was measured against: four locked heaps with a shared sequence;
/// push goes to a shard chosen round-robin, pop peeks every shard's top and takes the best.
#[derive(Default)]
struct ShardedHeap {
    shards: [Mutex<BinaryHeap<Entry>>; 4],
    sequence: AtomicU64,
    next_shard: AtomicUsize,
}

impl Queue for ShardedHeap {
    fn push(&self, hint: SchedulingHint, item: u64) {
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        let shard = self.next_shard.fetch_add(1, Ordering::Relaxed) % self.shards.len();
        self.shards[shard]
            .lock()
            .push((hint.sort_key(), Reverse(sequence), item));
    }
    fn pop(&self) -> Option<u64> {
        loop {
            let best = self
                .shards
                .iter()
                .enumerate()
                .filter_map(|(index, shard)| shard.lock().peek().map(|top| (top.0, top.1, index)))
                .max()?;
            // Take the best top if it is still there; otherwise another pop won it: look again.
            let mut shard = self.shards[best.2].lock();
            if shard.peek().map(|top| (top.0, top.1)) == Some((best.0, best.1)) {
                return shard.pop().map(|(_, _, item)| item);
            }
        }
    }
}

/// A queue the multi-thread rows can share.
trait SyncQueue: Queue + Sync {}
impl<T: Queue + Sync> SyncQueue for T {}

/// Fresh, empty instances of every queue that can be shared between threads.
fn shared_queues() -> Vec<(&'static str, Box<dyn SyncQueue>)> {
    vec![
        ("hivekit", Box::new(Hivekit::new(Some(8)))),
        ("hivekit-strict", Box::new(Hivekit::new(None))),
        ("mutex-binaryheap", Box::<MutexBinaryHeap>::default()),
        ("segqueue-4-lanes", Box::<SegQueueFourLanes>::default()),
        ("crossbeam-skiplist", Box::<SkipList>::default()),
        ("hivekit-sharded-heap", Box::<ShardedHeap>::default()),
    ]
}

/// The shared queues plus the single-thread `BinaryHeap`.
fn single_thread_queues() -> Vec<(&'static str, Box<dyn Queue>)> {
    let mut all: Vec<(&'static str, Box<dyn Queue>)> = shared_queues()
        .into_iter()
        .map(|(function, queue)| (function, queue as Box<dyn Queue>))
        .collect();
    all.insert(1, ("binaryheap", Box::<StdBinaryHeap>::default()));
    all
}

/// Fills `queue` to `depth` items, then runs one push and pop per hint of the stream, so every lane
/// and node pool has been touched: the measured pairs see the steady state, not first allocations.
fn prefill(queue: &dyn Queue, hints: &[SchedulingHint], depth: usize) {
    for item in 0..depth {
        queue.push(hints[item % STREAM], item as u64);
    }
    for round in 0..STREAM as u64 {
        std::hint::black_box(pair(queue, hints, round));
    }
}

/// One push then one pop, cycling through the hint stream.
#[inline]
fn pair(queue: &dyn Queue, hints: &[SchedulingHint], round: u64) -> Option<u64> {
    queue.push(hints[round as usize & (STREAM - 1)], round);
    queue.pop()
}

fn priority_scheduling(c: &mut Criterion) {
    let hints = hints();
    let mut group = c.benchmark_group(SCHEDULING);
    group.throughput(Throughput::Elements(1));
    for (parameter, depth) in [("10", 10), ("1k", 1_000), ("100k", 100_000)] {
        for (function, queue) in single_thread_queues() {
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
