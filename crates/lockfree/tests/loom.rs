//! Loom models of the lock-free protocols: the snapshot cell's compare-and-swap publication and the
//! scheduler's non-empty bitmap. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p hivekit-lockfree --release --test loom`.
//!
//! Under loom the crate's `loom` shim swaps in loom's atomics, `Arc` and `Mutex`, keeps retired
//! snapshot versions until the cell is dropped (crossbeam-epoch is not loom-aware) and makes each
//! scheduler lane's overflow a locked `VecDeque`, so what is explored is the lane's ring and state
//! word (2 slots under loom) and the protocol around the lanes.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;

use hivekit_lockfree::{
    CommitError, Priority, PriorityScheduler, SchedulerConfig, SchedulingHint, SnapshotCell,
};

fn model(body: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(body);
}

#[test]
fn commit_vs_commit_exactly_one_wins() {
    model(|| {
        let cell = Arc::new(SnapshotCell::new(0_u32));
        let staged_a = cell.stage(1);
        let staged_b = cell.stage(2);
        let other = Arc::clone(&cell);
        let racer = thread::spawn(move || other.commit(staged_b));
        let mine = cell.commit(staged_a);
        let theirs = racer.join().expect("committer panicked");
        match (mine, theirs) {
            (
                Ok(1),
                Err(CommitError::Conflict {
                    base: 0,
                    current: 1,
                    value: 2,
                }),
            ) => {
                assert_eq!(cell.read(|value, version| (*value, version)), (1, 1));
            }
            (
                Err(CommitError::Conflict {
                    base: 0,
                    current: 1,
                    value: 1,
                }),
                Ok(1),
            ) => {
                assert_eq!(cell.read(|value, version| (*value, version)), (2, 1));
            }
            other => panic!("exactly one commit must win: {other:?}"),
        }
    });
}

#[test]
fn commit_vs_read_sees_a_whole_version() {
    model(|| {
        let cell = Arc::new(SnapshotCell::new((0_u32, 0_u32)));
        let writer = {
            let cell = Arc::clone(&cell);
            thread::spawn(move || {
                let staged = cell.stage((1, 10));
                cell.commit(staged).expect("only writer");
            })
        };
        let (value, version) = cell.read(|value, version| (*value, version));
        assert!(
            matches!((value, version), ((0, 0), 0) | ((1, 10), 1)),
            "{value:?} at {version}"
        );
        let snapshot = cell.load();
        assert_eq!(
            (*snapshot, snapshot.version()),
            if snapshot.version() == 0 {
                ((0, 0), 0)
            } else {
                ((1, 10), 1)
            }
        );
        // Versions never go backwards for one reader.
        assert!(snapshot.version() >= version);
        writer.join().expect("writer panicked");
        assert_eq!(cell.version(), 1);
    });
}

#[test]
fn update_vs_update_loses_nothing() {
    model(|| {
        let cell = Arc::new(SnapshotCell::new(0_u32));
        let other = Arc::clone(&cell);
        let racer = thread::spawn(move || other.update(|count| count + 1));
        let mine = cell.update(|count| count + 1);
        let theirs = racer.join().expect("updater panicked");
        let mut versions = [mine, theirs];
        versions.sort_unstable();
        assert_eq!(versions, [1, 2]);
        assert_eq!(cell.read(|value, version| (*value, version)), (2, 2));
    });
}

#[test]
fn store_vs_update_numbers_versions_once() {
    model(|| {
        let cell = Arc::new(SnapshotCell::new(1_u32));
        let other = Arc::clone(&cell);
        let racer = thread::spawn(move || other.store(100));
        let mine = cell.update(|value| value * 2);
        let theirs = racer.join().expect("storer panicked");
        assert_ne!(mine, theirs);
        let final_value = *cell.load();
        // Either the update ran last (on 1 or 100) or the store did.
        assert!(matches!(final_value, 100 | 200), "{final_value}");
        assert_eq!(cell.version(), 2);
    });
}

/// A write putting the version it replaced in the limbo races a read handing the limbo over: every
/// replaced version is released exactly once (loom reports a leaked or doubly released `Arc`), and
/// the value read is always a whole version.
#[test]
fn store_vs_read_hands_each_replaced_version_over_once() {
    model(|| {
        let cell = Arc::new(SnapshotCell::new(0_u32));
        let other = Arc::clone(&cell);
        let writer = thread::spawn(move || {
            other.store(1);
            other.store(2);
        });
        let seen = cell.read(|value, version| (*value, version));
        assert_eq!(seen.0 as u64, seen.1);
        let snapshot = cell.load();
        assert_eq!(u64::from(*snapshot), snapshot.version());
        writer.join().expect("writer panicked");
        // No read after the writes: in the interleavings where the writer went last, the cell is
        // dropped with versions still in its limbo, and must release them itself.
    });
}

/// Two swaps race: each gets back a different version, the two returned plus the current one are
/// the three values written, and the returned snapshots outlive the cell (loom reports a leaked or
/// doubly released `Arc`).
#[test]
fn swap_vs_swap_hands_each_replaced_version_back_once() {
    model(|| {
        let cell = Arc::new(SnapshotCell::new(0_u32));
        let other = Arc::clone(&cell);
        let racer = thread::spawn(move || other.swap(2));
        let mine = cell.swap(1);
        let theirs = racer.join().expect("swapper panicked");
        assert_ne!(mine.version(), theirs.version());
        let current = *cell.load();
        let mut seen = [*mine, *theirs, current];
        seen.sort_unstable();
        assert_eq!(seen, [0, 1, 2]);
        assert_eq!(cell.version(), 2);
        drop(cell);
        // Still readable after the cell is gone: each snapshot holds its own reference.
        assert_eq!(*mine + *theirs + current, 3);
    });
}

fn low() -> SchedulingHint {
    SchedulingHint::with_priority(Priority::Low)
}

fn high() -> SchedulingHint {
    SchedulingHint::with_priority(Priority::High)
}

/// A push into a lane races a pop that empties the lane and clears its bit: the pushed item must not
/// be stranded behind a cleared bit. A stranded item would still be found by the empty-bitmap scan,
/// but only after the lower lane's item: so the drain order after the race detects it.
#[test]
fn scheduler_push_vs_pop_never_strands_an_item() {
    model(|| {
        let scheduler = Arc::new(PriorityScheduler::new());
        scheduler.push(high(), 1_u32).expect("unbounded");
        scheduler.push(low(), 9).expect("unbounded");
        let popper = {
            let scheduler = Arc::clone(&scheduler);
            thread::spawn(move || scheduler.pop())
        };
        let pusher = {
            let scheduler = Arc::clone(&scheduler);
            thread::spawn(move || scheduler.push(high(), 2).expect("unbounded"))
        };
        // FIFO in the high lane: the racing pop always takes 1.
        assert_eq!(popper.join().expect("popper panicked"), Some(1));
        pusher.join().expect("pusher panicked");
        let rest: Vec<u32> = std::iter::from_fn(|| scheduler.pop()).collect();
        assert_eq!(
            rest,
            [2, 9],
            "the high item must come out before the low one"
        );
        assert!(scheduler.is_empty());
    });
}

fn critical() -> SchedulingHint {
    SchedulingHint::with_priority(Priority::Critical)
}

/// A push at a higher priority races a pop that empties a lower lane and clears its bit. Whichever
/// item the pop takes, nothing is stranded and what is left drains in key order (critical, high,
/// low).
#[test]
fn scheduler_push_at_another_priority_vs_pop_never_strands_an_item() {
    model(|| {
        let scheduler = Arc::new(PriorityScheduler::new());
        scheduler.push(high(), 1_u32).expect("unbounded");
        scheduler.push(low(), 9).expect("unbounded");
        let popper = {
            let scheduler = Arc::clone(&scheduler);
            thread::spawn(move || scheduler.pop())
        };
        let pusher = {
            let scheduler = Arc::clone(&scheduler);
            thread::spawn(move || scheduler.push(critical(), 2).expect("unbounded"))
        };
        let taken = popper.join().expect("popper panicked");
        pusher.join().expect("pusher panicked");
        let rest: Vec<u32> = std::iter::from_fn(|| scheduler.pop()).collect();
        match taken {
            // The pop ran before the critical push was visible: it took the best item then.
            Some(1) => assert_eq!(rest, [2, 9], "critical, then low"),
            // The pop saw the critical push.
            Some(2) => assert_eq!(rest, [1, 9], "high, then low"),
            other => panic!("the pop must take the high or the critical item, took {other:?}"),
        }
        assert!(scheduler.is_empty());
    });
}

/// Two producers and a consumer on a scheduler of capacity 1: the capacity is never exceeded, a
/// refused push gets its item back, and every accepted item is popped exactly once.
#[test]
fn scheduler_tiny_capacity_push_vs_pop() {
    model(|| {
        let scheduler = Arc::new(
            PriorityScheduler::with_config(SchedulerConfig {
                capacity: Some(1),
                max_bypass: Some(1),
            })
            .expect("valid config"),
        );
        let producers: Vec<_> = [(high(), 1_u32), (low(), 2_u32)]
            .into_iter()
            .map(|(hint, item)| {
                let scheduler = Arc::clone(&scheduler);
                thread::spawn(move || match scheduler.push(hint, item) {
                    Ok(()) => Some(item),
                    Err(full) => {
                        assert_eq!(full.into_inner(), item, "the refused item comes back");
                        None
                    }
                })
            })
            .collect();
        let mut popped: Vec<u32> = scheduler.pop().into_iter().collect();
        assert!(scheduler.len() <= 1, "capacity exceeded");
        let mut accepted: Vec<u32> = producers
            .into_iter()
            .filter_map(|producer| producer.join().expect("producer panicked"))
            .collect();
        popped.extend(std::iter::from_fn(|| scheduler.pop()));
        popped.sort_unstable();
        accepted.sort_unstable();
        assert!(
            !accepted.is_empty(),
            "with capacity 1 at least one push is accepted"
        );
        assert_eq!(popped, accepted, "every accepted item popped exactly once");
        assert!(scheduler.is_empty());
    });
}

/// Two pops race over a lane with one item left and a lower lane: each item is taken exactly once,
/// and whatever the clears and restores of the bits did, what is left drains in key order.
#[test]
fn scheduler_pop_vs_pop_takes_each_item_once() {
    model(|| {
        let scheduler = Arc::new(PriorityScheduler::new());
        scheduler.push(high(), 1_u32).expect("unbounded");
        scheduler.push(low(), 7).expect("unbounded");
        scheduler.push(low(), 8).expect("unbounded");
        let other = {
            let scheduler = Arc::clone(&scheduler);
            thread::spawn(move || scheduler.pop())
        };
        let mine = scheduler.pop();
        let theirs = other.join().expect("popper panicked");
        let mut taken: Vec<u32> = mine.into_iter().chain(theirs).collect();
        taken.sort_unstable();
        // Two pops take the two best items: the high one and the oldest low one.
        assert_eq!(taken, [1, 7]);
        assert_eq!(scheduler.pop(), Some(8));
        assert_eq!(scheduler.pop(), None);
        assert!(scheduler.is_empty());
    });
}

/// The scheduler's lane past its inline ring (2 slots under loom): a push that must spill into the
/// overflow races a pop. The pop always takes the oldest item, and the rest drain in push order.
#[test]
fn scheduler_lane_spill_push_vs_pop_keeps_fifo() {
    model(|| {
        let scheduler = Arc::new(PriorityScheduler::new());
        scheduler.push(high(), 1_u32).expect("unbounded");
        scheduler.push(high(), 2).expect("unbounded");
        let popper = {
            let scheduler = Arc::clone(&scheduler);
            thread::spawn(move || scheduler.pop())
        };
        let pusher = {
            let scheduler = Arc::clone(&scheduler);
            thread::spawn(move || scheduler.push(high(), 3).expect("unbounded"))
        };
        assert_eq!(popper.join().expect("popper panicked"), Some(1));
        pusher.join().expect("pusher panicked");
        let rest: Vec<u32> = std::iter::from_fn(|| scheduler.pop()).collect();
        assert_eq!(rest, [2, 3]);
        assert!(scheduler.is_empty());
    });
}

/// The lane's ring is empty and its overflow holds the oldest item: a pop of the overflow races
/// pushes that may find the ring open again once the overflow drains. The racing pop takes the
/// overflow's item (the oldest throughout), and the pushed items drain after it in push order.
#[test]
fn scheduler_lane_overflow_pop_vs_ring_reopening_keeps_fifo() {
    model(|| {
        let scheduler = Arc::new(PriorityScheduler::new());
        for item in 1..=3_u32 {
            scheduler.push(high(), item).expect("unbounded");
        }
        // 1 and 2 filled the ring, 3 spilled: take the ring's two, so only the overflow holds one.
        assert_eq!(scheduler.pop(), Some(1));
        assert_eq!(scheduler.pop(), Some(2));
        let popper = {
            let scheduler = Arc::clone(&scheduler);
            thread::spawn(move || scheduler.pop())
        };
        let pusher = {
            let scheduler = Arc::clone(&scheduler);
            thread::spawn(move || {
                scheduler.push(high(), 4).expect("unbounded");
                scheduler.push(high(), 5).expect("unbounded");
            })
        };
        assert_eq!(popper.join().expect("popper panicked"), Some(3));
        pusher.join().expect("pusher panicked");
        let rest: Vec<u32> = std::iter::from_fn(|| scheduler.pop()).collect();
        assert_eq!(rest, [4, 5]);
        assert!(scheduler.is_empty());
    });
}

/// Two pops race over a lane whose ring holds one item and whose overflow holds the next, while a
/// push adds a third: each item is taken once, and a pop never takes a newer item while an older
/// one waits (whichever pop takes 2 or 3, 1 was taken by the other).
#[test]
fn scheduler_lane_two_pops_across_ring_and_overflow() {
    model(|| {
        let scheduler = Arc::new(PriorityScheduler::new());
        for item in 0..=2_u32 {
            scheduler.push(high(), item).expect("unbounded");
        }
        // Ring [0, 1], overflow [2]; take 0, so the ring holds 1 and the overflow 2.
        assert_eq!(scheduler.pop(), Some(0));
        let poppers: Vec<_> = (0..2)
            .map(|_| {
                let scheduler = Arc::clone(&scheduler);
                thread::spawn(move || scheduler.pop())
            })
            .collect();
        scheduler.push(high(), 3).expect("unbounded");
        let mut taken: Vec<u32> = poppers
            .into_iter()
            .filter_map(|popper| popper.join().expect("popper panicked"))
            .collect();
        taken.sort_unstable();
        assert_eq!(taken, [1, 2], "the two oldest, once each");
        let rest: Vec<u32> = std::iter::from_fn(|| scheduler.pop()).collect();
        assert_eq!(rest, [3]);
        assert!(scheduler.is_empty());
    });
}

/// A pop races the push of the only item into an empty lane's ring: it takes the item or finds the
/// scheduler empty, and when it takes it, the push's write of the slot is visible to the pop's read
/// (loom checks the slot cell; with a `Relaxed` written-stamp this model fails).
#[test]
fn scheduler_lane_ring_push_vs_pop_publishes_the_item() {
    model(|| {
        let scheduler = Arc::new(PriorityScheduler::new());
        let pusher = {
            let scheduler = Arc::clone(&scheduler);
            thread::spawn(move || scheduler.push(high(), 1_u32).expect("unbounded"))
        };
        let taken = scheduler.pop();
        pusher.join().expect("pusher panicked");
        let rest: Vec<u32> = std::iter::from_fn(|| scheduler.pop()).collect();
        match taken {
            Some(1) => assert!(rest.is_empty()),
            None => assert_eq!(rest, [1]),
            other => panic!("took {other:?}"),
        }
        assert!(scheduler.is_empty());
    });
}
