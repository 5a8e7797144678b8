//! Values whose `Drop` panics: every other value the structure holds must still be dropped exactly once (as `Vec` and `VecDeque` do).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hivekit_lockfree::{
    aggregate, Aggregator, Merge, Priority, PriorityScheduler, Proposal, Resolution,
    SchedulingHint, SnapshotCell,
};

/// Counts its drops; panics in `drop` when `bomb` is set (once: the counter still counts it).
struct Item {
    drops: Arc<AtomicUsize>,
    bomb: bool,
}

impl Drop for Item {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
        if self.bomb && !std::thread::panicking() {
            panic!("a user Drop that panics");
        }
    }
}

fn item(drops: &Arc<AtomicUsize>, bomb: bool) -> Item {
    Item {
        drops: drops.clone(),
        bomb,
    }
}

fn quiet<R>(f: impl FnOnce() -> R) -> std::thread::Result<R> {
    catch_unwind(AssertUnwindSafe(f))
}

#[test]
fn a_dropped_std_vec_drops_every_item_after_a_panicking_one() {
    // The reference behaviour the scheduler is compared with below.
    let drops = Arc::new(AtomicUsize::new(0));
    let items: Vec<Item> = (0..5).map(|i| item(&drops, i == 0)).collect();
    assert!(quiet(|| drop(items)).is_err());
    assert_eq!(drops.load(Ordering::SeqCst), 5);
}

#[test]
fn a_scheduler_dropped_with_a_panicking_item_in_a_lane_ring_drops_the_rest_of_that_lane() {
    let drops = Arc::new(AtomicUsize::new(0));
    let scheduler = PriorityScheduler::new();
    let hint = SchedulingHint::with_priority(Priority::Normal);
    // Five items in one lane (its inline ring holds eight): the oldest one panics when dropped.
    for i in 0..5 {
        scheduler.push(hint, item(&drops, i == 0)).ok().unwrap();
    }
    // And one in another lane.
    scheduler
        .push(
            SchedulingHint::with_priority(Priority::Low),
            item(&drops, false),
        )
        .ok()
        .unwrap();
    assert!(
        quiet(|| drop(scheduler)).is_err(),
        "the item's panic unwinds"
    );
    assert_eq!(
        drops.load(Ordering::SeqCst),
        6,
        "every item dropped once, the ones behind the panicking one included"
    );
}

#[test]
fn a_scheduler_dropped_with_a_panicking_item_in_a_spilled_lane_drops_the_rest() {
    let drops = Arc::new(AtomicUsize::new(0));
    let scheduler = PriorityScheduler::new();
    let hint = SchedulingHint::with_priority(Priority::High);
    // Twenty items in one lane: eight in the ring, twelve spilled; the first spilled one panics.
    for i in 0..20 {
        scheduler.push(hint, item(&drops, i == 8)).ok().unwrap();
    }
    assert!(
        quiet(|| drop(scheduler)).is_err(),
        "the item's panic unwinds"
    );
    assert_eq!(drops.load(Ordering::SeqCst), 20, "every item dropped once");
}

#[test]
fn a_popped_item_that_panics_on_drop_leaves_the_scheduler_consistent() {
    let drops = Arc::new(AtomicUsize::new(0));
    let scheduler = PriorityScheduler::new();
    let hint = SchedulingHint::with_priority(Priority::Critical);
    for i in 0..12 {
        scheduler.push(hint, item(&drops, i % 3 == 0)).ok().unwrap();
    }
    let mut panics = 0;
    for _ in 0..12 {
        if quiet(|| drop(scheduler.pop().expect("an item"))).is_err() {
            panics += 1;
        }
    }
    assert_eq!(panics, 4);
    assert!(scheduler.pop().is_none());
    assert_eq!(scheduler.len(), 0);
    assert_eq!(drops.load(Ordering::SeqCst), 12);
}

/// A payload that counts its drops and panics on the merge numbered `panic_at`.
struct Payload {
    drops: Arc<AtomicUsize>,
    merges: Arc<AtomicUsize>,
    panic_at: usize,
}

impl Drop for Payload {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

impl Merge for Payload {
    fn merge(&mut self, other: Self) {
        let n = self.merges.fetch_add(1, Ordering::SeqCst);
        if n == self.panic_at {
            panic!("a user Merge that panics");
        }
        drop(other);
    }
}

#[test]
fn a_panicking_merge_drops_every_payload_exactly_once() {
    for (threshold, count) in [(usize::MAX, 50_u64), (0, 50), (0, 3_000)] {
        let drops = Arc::new(AtomicUsize::new(0));
        let merges = Arc::new(AtomicUsize::new(0));
        let aggregator = Aggregator::with_parallel_threshold(threshold);
        for id in 0..count {
            let payload = Payload {
                drops: drops.clone(),
                merges: merges.clone(),
                panic_at: 7,
            };
            // Half of them conflict on one key, the others are independent.
            let key = if id % 2 == 0 { 0 } else { id };
            aggregator
                .submit(Proposal::new(id, payload).writes([key]))
                .unwrap();
        }
        assert!(quiet(|| aggregator.finish(Resolution::HighestPriority)).is_err());
        assert_eq!(
            drops.load(Ordering::SeqCst),
            count as usize,
            "threshold {threshold}, {count} proposals"
        );
    }
}

#[test]
fn aggregate_with_a_panicking_merge_drops_every_payload_exactly_once() {
    for count in [40_u64, 20_000] {
        let drops = Arc::new(AtomicUsize::new(0));
        let merges = Arc::new(AtomicUsize::new(0));
        let proposals: Vec<_> = (0..count)
            .map(|id| {
                Proposal::new(
                    id,
                    Payload {
                        drops: drops.clone(),
                        merges: merges.clone(),
                        panic_at: 11,
                    },
                )
                .writes([id % 1000])
            })
            .collect();
        assert!(quiet(|| aggregate(proposals, Resolution::FirstSubmitted)).is_err());
        assert_eq!(
            drops.load(Ordering::SeqCst),
            count as usize,
            "{count} proposals"
        );
    }
}

#[test]
fn a_cell_whose_update_closure_panics_drops_nothing_twice() {
    let drops = Arc::new(AtomicUsize::new(0));
    let cell = SnapshotCell::new(Arc::new(item(&drops, false)));
    let unwound = quiet(|| {
        cell.update(|_| -> Arc<Item> { panic!("update refuses") });
    });
    assert!(unwound.is_err());
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    drop(cell);
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "the current value is dropped with the cell"
    );
}
