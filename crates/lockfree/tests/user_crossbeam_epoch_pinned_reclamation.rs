//! crossbeam-epoch's reclamation tests (`pin_holds_advance`, `pin_reentrant`, `count_drops`) and
//! arc-swap's `guard_drop_in_thread`, through `SnapshotCell`: a value borrowed by `read` is never
//! dropped while the closure runs, however many versions other threads write and reclaim
//! meanwhile; writes made from inside a `read` are reclaimed once it returns; nested reads are
//! fine; and every replaced value is dropped exactly once "once another thread has made a few
//! hundred reads" (the bound in `SnapshotCell`'s docs, crates/lockfree/src/snapshot/mod.rs).
//!
//! The tests run one at a time (a long `read` keeps the epoch pinned for every test in the binary).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use hivekit_lockfree::SnapshotCell;

fn lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

const DEADLINE: Duration = Duration::from_secs(20);
/// "A few hundred reads", generously (as `user_review_random_tick_reclaim_bound.rs` takes it).
const FEW_HUNDRED_READS: usize = 1_000;

/// One drop flag per value ever built (values built for attempts that lose a race are dropped too,
/// by the cell or by the caller), so "exactly once" is checked per value, not per version.
struct Flags {
    built: AtomicUsize,
    dropped: Vec<AtomicBool>,
}

impl Flags {
    fn new(most: usize) -> Arc<Self> {
        Arc::new(Self {
            built: AtomicUsize::new(0),
            dropped: (0..most).map(|_| AtomicBool::new(false)).collect(),
        })
    }

    fn built(&self) -> usize {
        self.built.load(Ordering::SeqCst)
    }

    fn dropped(&self) -> usize {
        self.dropped
            .iter()
            .filter(|f| f.load(Ordering::SeqCst))
            .count()
    }

    fn is_dropped(&self, id: usize) -> bool {
        self.dropped[id].load(Ordering::SeqCst)
    }
}

/// A value with a unique id and a text derived from it; marks its flag when dropped.
struct Tracked {
    id: usize,
    text: String,
    flags: Arc<Flags>,
}

impl Tracked {
    fn new(flags: &Arc<Flags>) -> Self {
        let id = flags.built.fetch_add(1, Ordering::SeqCst);
        assert!(
            id < flags.dropped.len(),
            "more values than the test planned"
        );
        Self {
            id,
            text: format!("value #{id}"),
            flags: Arc::clone(flags),
        }
    }

    /// Intact and not dropped.
    fn check(&self) {
        assert_eq!(self.text, format!("value #{}", self.id), "corrupted value");
        assert!(
            !self.flags.is_dropped(self.id),
            "value #{} was dropped while still reachable",
            self.id
        );
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let twice = self.flags.dropped[self.id].swap(true, Ordering::SeqCst);
        assert!(!twice, "value #{} dropped twice", self.id);
    }
}

fn wait_for(what: &str, condition: impl Fn() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::yield_now();
    }
}

/// Reads `cell` until every value built but the current one is dropped (up to a deadline), then
/// checks that at most `FEW_HUNDRED_READS` reads were needed. The backlog is drained either way, so
/// that a failure leaves no garbage queued ahead of the next test's (crossbeam-epoch's global
/// queue is one FIFO for the whole process).
fn reads_until_reclaimed(cell: &SnapshotCell<Tracked>, flags: &Flags) {
    let mut dropped_at_bound = None;
    let mut read = |value: &Tracked, reads: u64| {
        if reads == FEW_HUNDRED_READS as u64 {
            dropped_at_bound = Some(flags.dropped());
        }
        value.check();
    };
    let reads = reads_until_reclaimed_eventually(cell, flags, &mut read);
    assert!(
        reads <= FEW_HUNDRED_READS as u64,
        "{} of {} replaced values dropped after {FEW_HUNDRED_READS} reads of the idle cell (all of them after {reads})",
        dropped_at_bound.unwrap_or_default(),
        flags.built() - 1
    );
}

/// Reads `cell` until every value built but the current one is dropped, with no bound on the
/// reads (a deadline only): for checks of *eventual* reclamation.
fn reads_until_reclaimed_eventually(
    cell: &SnapshotCell<Tracked>,
    flags: &Flags,
    mut read: impl FnMut(&Tracked, u64),
) -> u64 {
    let start = Instant::now();
    let mut reads = 0;
    while flags.dropped() + 1 < flags.built() {
        assert!(
            start.elapsed() < DEADLINE,
            "{} of {} replaced values dropped after {reads} reads",
            flags.dropped(),
            flags.built() - 1
        );
        cell.read(|value, _| read(value, reads));
        reads += 1;
    }
    reads
}

/// crossbeam-epoch's `pin_holds_advance`, as a `SnapshotCell` user meets it: while one thread is
/// inside a long `read`, two writers replace the value thousands of times and another reader
/// reads thousands of times (handing the limbo over and collecting). The borrowed value stays
/// intact and undropped, and so does every value that landed after it (none can be freed while
/// the reader is pinned). Once the closure returns, every replaced value is dropped, exactly once
/// (how soon is the next test's subject).
#[test]
fn a_value_borrowed_by_a_long_read_outlives_thousands_of_writes_and_reclamations() {
    let _lock = lock();
    const WRITES_EACH: usize = 3_000;
    const WRITERS: usize = 2;
    let total = WRITERS * WRITES_EACH;
    let flags = Flags::new(20 * total);
    let cell = SnapshotCell::new(Tracked::new(&flags));
    // The id of the value that landed as each version.
    let landed: Vec<AtomicUsize> = (0..=total).map(|_| AtomicUsize::new(usize::MAX)).collect();
    let inside = AtomicBool::new(false);
    let writes_done = AtomicUsize::new(0);
    let reads_done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            cell.read(|value, version| {
                inside.store(true, Ordering::SeqCst);
                wait_for("the writers and the other reader", || {
                    writes_done.load(Ordering::SeqCst) == WRITERS
                        && reads_done.load(Ordering::SeqCst)
                });
                value.check();
                for later in &landed[version as usize + 1..] {
                    let id = later.load(Ordering::SeqCst);
                    assert!(
                        !flags.is_dropped(id),
                        "value #{id}, replaced while this reader was pinned, was freed"
                    );
                }
            });
        });
        wait_for("the long read to start", || inside.load(Ordering::SeqCst));
        for _ in 0..WRITERS {
            scope.spawn(|| {
                for _ in 0..WRITES_EACH {
                    let mut last_id = usize::MAX;
                    let version = cell.update(|_| {
                        let value = Tracked::new(&flags);
                        last_id = value.id;
                        value
                    });
                    landed[version as usize].store(last_id, Ordering::SeqCst);
                }
                writes_done.fetch_add(1, Ordering::SeqCst);
            });
        }
        scope.spawn(|| {
            while writes_done.load(Ordering::SeqCst) < WRITERS {
                cell.read(|value, _| value.check());
                cell.load().check();
            }
            for _ in 0..2 * FEW_HUNDRED_READS {
                cell.read(|value, _| value.check());
            }
            reads_done.store(true, Ordering::SeqCst);
        });
        reader.join().expect("the long reader");
    });
    assert_eq!(cell.version(), total as u64);
    reads_until_reclaimed_eventually(&cell, &flags, |value, _| value.check());
    assert_eq!(
        flags.dropped() + 1,
        flags.built(),
        "only the current value is left"
    );
    drop(cell);
    assert_eq!(flags.dropped(), flags.built());
}

/// crossbeam-epoch's `pin_reentrant` and "writes from a pinned thread": a thread writes a
/// thousand versions from inside its own `read` of the cell. The value it borrows stays intact,
/// nested reads see each new version, and once the outer `read` returns every replaced value is
/// dropped exactly once within a few hundred reads.
#[test]
fn writes_from_inside_a_read_are_reclaimed_once_it_returns() {
    let _lock = lock();
    const WRITES: usize = 1_000;
    let flags = Flags::new(WRITES + 1);
    let cell = SnapshotCell::new(Tracked::new(&flags));
    let kept = cell.read(|outer, _| {
        for v in 1..=WRITES {
            assert_eq!(cell.store(Tracked::new(&flags)), v as u64);
            cell.read(|inner, inner_version| {
                assert_eq!((inner.id, inner_version), (v, v as u64));
                inner.check();
                // Reentrant: a read inside a read inside a read.
                cell.read(|innermost, _| assert_eq!(innermost.id, v));
            });
            outer.check();
        }
        assert_eq!(
            flags.dropped(),
            0,
            "nothing replaced after this thread pinned can be freed yet"
        );
        // A snapshot taken while pinned outlives the pin.
        cell.load()
    });
    assert_eq!(kept.version(), WRITES as u64);
    reads_until_reclaimed(&cell, &flags);
    assert_eq!(flags.dropped(), WRITES);
    drop(cell);
    assert_eq!(
        flags.dropped(),
        WRITES,
        "the snapshot still holds the last value"
    );
    kept.check();
    drop(kept);
    assert_eq!(flags.dropped(), WRITES + 1);
}

/// The bound of `SnapshotCell`'s docs after a long read: "From the global queue a version is
/// dropped by the first collection (on every hand-over, and on every 128th pin of any thread)
/// after every thread pinned when it was handed over has unpinned. So a writer that goes idle
/// keeps [...] none once another thread has made a few hundred reads; only a reader that stays
/// pinned (a long read closure) or a live Snapshot delays it." One thread writes 6,400 versions
/// from inside one `read` (100 hand-overs, each a bag in crossbeam-epoch's global queue, none
/// freeable while it is pinned); once the `read` returns, nothing pins any more, yet a few hundred
/// reads do not drop them: each collection frees at most 8 bags (crossbeam-epoch's
/// `COLLECT_STEPS`), so the backlog drains at 8 bags per 128 pins (about 3,000 reads here, and
/// growing with the number of writes the long read saw).
#[test]
fn versions_backlogged_by_a_long_read_drain_at_the_documented_rate_after_it() {
    let _lock = lock();
    const WRITES: usize = 6_400;
    let flags = Flags::new(WRITES + 1);
    let cell = SnapshotCell::new(Tracked::new(&flags));
    cell.read(|outer, _| {
        for _ in 0..WRITES {
            cell.store(Tracked::new(&flags));
        }
        outer.check();
    });
    assert_eq!(flags.dropped(), 0, "all were replaced while pinned");
    // Once the long read is over, the backlog drains at about 512 versions per 128 reads (the
    // docs: "N of them take about N / 4 more reads"), plus the few hundred reads of an idle cell.
    let reads = reads_until_reclaimed_eventually(&cell, &flags, |value, _| value.check());
    let bound = (WRITES / 4 + FEW_HUNDRED_READS) as u64;
    assert!(
        reads <= bound,
        "the {WRITES} versions replaced during a long read took {reads} reads to drop (at most {bound})"
    );
    assert_eq!(flags.dropped(), WRITES);
    drop(cell);
    assert_eq!(flags.dropped(), WRITES + 1);
}

/// arc-swap's `guard_drop_in_thread`, adapted to deferred reclamation: thread A holds a snapshot,
/// thread B replaces the value and then reads a few hundred times (so the cell's own reference
/// is handed over and released). The value is not dropped while A holds it; when A drops its
/// snapshot, the value is dropped right then, exactly once.
#[test]
fn a_snapshot_dropped_in_its_thread_after_the_cell_let_go_drops_the_value_at_once() {
    let _lock = lock();
    for round in 0..50 {
        let flags = Flags::new(2);
        let cell = SnapshotCell::new(Tracked::new(&flags));
        let loaded = AtomicBool::new(false);
        let replaced = AtomicBool::new(false);
        let dropped_by_a = AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let held = cell.load();
                loaded.store(true, Ordering::SeqCst);
                wait_for("the replacement", || replaced.load(Ordering::SeqCst));
                held.check();
                drop(held);
                assert!(
                    flags.is_dropped(0),
                    "round {round}: the last holder dropped its snapshot but the value lives on"
                );
                dropped_by_a.store(true, Ordering::SeqCst);
            });
            scope.spawn(|| {
                wait_for("the load", || loaded.load(Ordering::SeqCst));
                cell.store(Tracked::new(&flags));
                for _ in 0..FEW_HUNDRED_READS {
                    cell.read(|value, _| value.check());
                }
                assert!(
                    !flags.is_dropped(0),
                    "round {round}: dropped while a snapshot holds it"
                );
                replaced.store(true, Ordering::SeqCst);
                wait_for("the holder's drop", || dropped_by_a.load(Ordering::SeqCst));
                assert_eq!(flags.dropped(), 1);
            });
        });
        drop(cell);
        assert_eq!(flags.dropped(), 2);
    }
}

/// crossbeam-epoch's `count_drops` under contention: four threads write through every write
/// method (store, update, commit, try_update) and then stay alive but idle; a fifth thread's few
/// hundred reads reclaim every replaced value (and the values of refused attempts are dropped
/// too), each exactly once, and the cell's drop drops the last.
#[test]
fn every_value_replaced_by_concurrent_writers_is_dropped_once_within_a_few_hundred_reads() {
    let _lock = lock();
    const THREADS: usize = 4;
    const WRITES_EACH: usize = 2_500;
    let total = THREADS * WRITES_EACH;
    let flags = Flags::new(40 * total);
    let cell = SnapshotCell::new(Tracked::new(&flags));
    let finished = AtomicUsize::new(0);
    let checked = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let (cell, flags, finished, checked) = (&cell, &flags, &finished, &checked);
            scope.spawn(move || {
                for i in 0..WRITES_EACH {
                    match (t + i) % 4 {
                        0 => {
                            cell.update(|_| Tracked::new(flags));
                        }
                        1 => loop {
                            let seen = cell.load();
                            seen.check();
                            // A refused value comes back and is dropped here.
                            if cell.commit(seen.stage(Tracked::new(flags))).is_ok() {
                                break;
                            }
                        },
                        2 => {
                            let outcome = cell.try_update(|current| {
                                current.check();
                                Ok::<_, ()>(Tracked::new(flags))
                            });
                            assert!(outcome.is_ok());
                        }
                        _ => {
                            cell.store(Tracked::new(flags));
                        }
                    }
                }
                finished.fetch_add(1, Ordering::SeqCst);
                // Alive but idle until the reclamation was checked.
                wait_for("the check", || checked.load(Ordering::SeqCst));
            });
        }
        scope.spawn(|| {
            wait_for("the writers", || finished.load(Ordering::SeqCst) == THREADS);
            assert_eq!(cell.version(), total as u64);
            reads_until_reclaimed(&cell, &flags);
            assert_eq!(
                flags.dropped() + 1,
                flags.built(),
                "exactly the values that are not current"
            );
            checked.store(true, Ordering::SeqCst);
        });
    });
    drop(cell);
    assert_eq!(flags.dropped(), flags.built());
}
