//! SnapshotCell against the usual ways to share a read-mostly value between threads.
//!
//! `snapshot_reads`: the cost of one read of the current value with 1 reader (`1r`), 2 readers at
//! once (`2r`), and 1 reader beside a thread that stores new values without pause (`1r1w`). `hivekit`
//! is `SnapshotCell::read` (epoch pin, no reference count, a borrowing read), `hivekit-load` is
//! `SnapshotCell::load` (an owned snapshot: one reference count increment and decrement). Readers
//! are where shared state is hot in a hive (every agent reads the collective memory every round), so
//! this is the number that matters; allocations per read are recorded for `1r`.
//!
//! `snapshot_writes`: one `store`, one `commit` (stage on the current version, then compare-and-swap)
//! and one `update` (read-copy-update), single thread, `hivekit` against `arc-swap` (`store`,
//! `compare_and_swap`, `rcu`): writers pay for reclamation, and this shows how much.
//!
//! Peers, each what a competent user would write first for the same read or write:
//!
//! - `arc-swap`: `ArcSwap::load` (a guard) to read; `store(Arc::new(..))`, `compare_and_swap` and
//!   `rcu` to write: the crate's documented calls, written as a user would.
//! - `arc-swap-full`: `ArcSwap::load_full`, an owned `Arc` (the peer of `hivekit-load`), written as
//!   a user would.
//! - `parking-lot-rwlock-borrow`: `parking_lot::RwLock<T>`, the field read in place under the read
//!   guard and the value replaced under the write guard: the peer of `hivekit`'s borrowing read,
//!   written as a user would.
//! - `parking-lot-rwlock`, `std-rwlock`: `RwLock<Arc<T>>` read, the `Arc` cloned, unlocked: what a
//!   user writes to hold an owned snapshot (across an await), the peer of `hivekit-load`, written as
//!   a user would.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use benches_common::threads::time_threads;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hivekit_lockfree::SnapshotCell;

benches_common::install_counting_allocator!();

/// A small value, big enough that copying it would show.
type Value = [u64; 8];

const READS: &str = "snapshot_reads";
const WRITES: &str = "snapshot_writes";

fn value(seed: u64) -> Value {
    std::array::from_fn(|index| seed + index as u64)
}

/// One way to share a `Value`: read it (returning something derived so it is not optimised away)
/// and replace it.
trait Shared: Sync {
    fn read(&self) -> u64;
    fn store(&self, next: Value);
}

/// `SnapshotCell::read`.
struct HivekitRead(SnapshotCell<Value>);
/// `SnapshotCell::load`.
struct HivekitLoad(SnapshotCell<Value>);
/// `ArcSwap::load`.
struct ArcSwapLoad(ArcSwap<Value>);
/// `ArcSwap::load_full`.
struct ArcSwapFull(ArcSwap<Value>);
/// `parking_lot::RwLock<Arc<Value>>`: read, clone, unlock.
struct ParkingLotRwLock(parking_lot::RwLock<Arc<Value>>);
/// `parking_lot::RwLock<Value>`: read in place under the lock, no clone.
struct ParkingLotRwLockBorrow(parking_lot::RwLock<Value>);
/// `std::sync::RwLock<Arc<Value>>`: read, clone, unlock.
struct StdRwLock(std::sync::RwLock<Arc<Value>>);

impl Shared for HivekitRead {
    fn read(&self) -> u64 {
        self.0.read(|value, version| value[3] ^ version)
    }
    fn store(&self, next: Value) {
        self.0.store(next);
    }
}

impl Shared for HivekitLoad {
    fn read(&self) -> u64 {
        let snapshot = self.0.load();
        snapshot[3] ^ snapshot.version()
    }
    fn store(&self, next: Value) {
        self.0.store(next);
    }
}

impl Shared for ArcSwapLoad {
    fn read(&self) -> u64 {
        self.0.load()[3]
    }
    fn store(&self, next: Value) {
        self.0.store(Arc::new(next));
    }
}

impl Shared for ArcSwapFull {
    fn read(&self) -> u64 {
        self.0.load_full()[3]
    }
    fn store(&self, next: Value) {
        self.0.store(Arc::new(next));
    }
}

impl Shared for ParkingLotRwLock {
    fn read(&self) -> u64 {
        let value = Arc::clone(&self.0.read());
        value[3]
    }
    fn store(&self, next: Value) {
        *self.0.write() = Arc::new(next);
    }
}

impl Shared for ParkingLotRwLockBorrow {
    fn read(&self) -> u64 {
        self.0.read()[3]
    }
    fn store(&self, next: Value) {
        *self.0.write() = next;
    }
}

impl Shared for StdRwLock {
    fn read(&self) -> u64 {
        let value = match self.0.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        };
        value[3]
    }
    fn store(&self, next: Value) {
        match self.0.write() {
            Ok(mut guard) => *guard = Arc::new(next),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(next),
        }
    }
}

fn implementations() -> Vec<(&'static str, Box<dyn Shared>)> {
    vec![
        (
            "hivekit",
            Box::new(HivekitRead(SnapshotCell::new(value(0)))),
        ),
        (
            "hivekit-load",
            Box::new(HivekitLoad(SnapshotCell::new(value(0)))),
        ),
        (
            "arc-swap",
            Box::new(ArcSwapLoad(ArcSwap::from_pointee(value(0)))),
        ),
        (
            "arc-swap-full",
            Box::new(ArcSwapFull(ArcSwap::from_pointee(value(0)))),
        ),
        (
            "parking-lot-rwlock",
            Box::new(ParkingLotRwLock(parking_lot::RwLock::new(Arc::new(value(
                0,
            ))))),
        ),
        (
            "parking-lot-rwlock-borrow",
            Box::new(ParkingLotRwLockBorrow(parking_lot::RwLock::new(value(0)))),
        ),
        (
            "std-rwlock",
            Box::new(StdRwLock(std::sync::RwLock::new(Arc::new(value(0))))),
        ),
    ]
}

/// `readers` threads each read `iterations` times; with `writer`, one more thread stores until the
/// readers are done. Returns the wall time of the readers.
fn timed_reads(shared: &dyn Shared, readers: usize, writer: bool, iterations: u64) -> Duration {
    let done = AtomicBool::new(false);
    let threads = readers + usize::from(writer);
    time_threads(threads, iterations, |thread, iterations| {
        if thread < readers {
            for _ in 0..iterations {
                std::hint::black_box(shared.read());
            }
            done.store(true, Ordering::Relaxed);
        } else {
            let mut round = 0;
            while !done.load(Ordering::Relaxed) {
                round += 1;
                shared.store(value(round));
            }
        }
    })
}

fn snapshot_reads(c: &mut Criterion) {
    let mut group = c.benchmark_group(READS);
    group.throughput(Throughput::Elements(1));
    for (function, shared) in implementations() {
        let shared = shared.as_ref();
        // Warm up outside the measurement: the first read on a thread registers it with
        // crossbeam-epoch (or arc-swap's debt list), a one-off allocation, not a per-read one.
        for _ in 0..1_000 {
            std::hint::black_box(shared.read());
        }
        group.bench_function(BenchmarkId::new(function, "1r"), |b| {
            benches_common::iter_with_allocations(b, (READS, function, "1r"), || shared.read())
        });
        for (parameter, readers, writer) in [("2r", 2, false), ("1r1w", 1, true)] {
            group.bench_function(BenchmarkId::new(function, parameter), |b| {
                b.iter_custom(|iterations| timed_reads(shared, readers, writer, iterations))
            });
        }
    }
    group.finish();
}

fn snapshot_writes(c: &mut Criterion) {
    let mut group = c.benchmark_group(WRITES);
    group.throughput(Throughput::Elements(1));

    let cell = SnapshotCell::new(value(0));
    let swap = ArcSwap::from_pointee(value(0));
    let mut round = 0_u64;

    group.bench_function(BenchmarkId::new("hivekit", "store"), |b| {
        benches_common::iter_with_allocations(b, (WRITES, "hivekit", "store"), || {
            round += 1;
            cell.store(value(round))
        })
    });
    group.bench_function(BenchmarkId::new("arc-swap", "store"), |b| {
        benches_common::iter_with_allocations(b, (WRITES, "arc-swap", "store"), || {
            round += 1;
            swap.store(Arc::new(value(round)))
        })
    });

    group.bench_function(BenchmarkId::new("hivekit", "commit"), |b| {
        benches_common::iter_with_allocations(b, (WRITES, "hivekit", "commit"), || {
            round += 1;
            cell.commit(cell.stage(value(round))).is_ok()
        })
    });
    group.bench_function(BenchmarkId::new("arc-swap", "commit"), |b| {
        benches_common::iter_with_allocations(b, (WRITES, "arc-swap", "commit"), || {
            round += 1;
            let current = swap.load();
            let previous = swap.compare_and_swap(&*current, Arc::new(value(round)));
            Arc::ptr_eq(&*previous, &*current)
        })
    });

    group.bench_function(BenchmarkId::new("hivekit", "update"), |b| {
        benches_common::iter_with_allocations(b, (WRITES, "hivekit", "update"), || {
            cell.update(|current| value(current[0] + 1))
        })
    });
    group.bench_function(BenchmarkId::new("arc-swap", "update"), |b| {
        benches_common::iter_with_allocations(b, (WRITES, "arc-swap", "update"), || {
            swap.rcu(|current| value(current[0] + 1))
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = benches_common::criterion();
    targets = snapshot_reads, snapshot_writes
}
criterion_main!(benches);
