//! `SnapshotCell::swap` hands every replaced version back exactly once under contention (arc-swap's
//! `swap`), and `PriorityScheduler::drain` empties a scheduler in pop order, each item popped once
//! even while other threads push and pop.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use hivekit_lockfree::{
    Priority, PriorityScheduler, SchedulerConfig, SchedulingHint, SnapshotCell,
};

#[test]
fn concurrent_swaps_hand_back_every_value_once() {
    const THREADS: u64 = 4;
    const SWAPS: u64 = 5_000;
    let cell = SnapshotCell::new(u64::MAX);
    let returned = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let (cell, returned) = (&cell, &returned);
            scope.spawn(move || {
                let mut mine = Vec::with_capacity(SWAPS as usize);
                for i in 0..SWAPS {
                    let old = cell.swap(thread * SWAPS + i);
                    mine.push((*old, old.version()));
                }
                returned.lock().unwrap().extend(mine);
            });
        }
    });
    let mut returned = returned.into_inner().unwrap();
    returned.push((*cell.load(), cell.version()));
    let values: HashSet<u64> = returned.iter().map(|(value, _)| *value).collect();
    let versions: HashSet<u64> = returned.iter().map(|(_, version)| *version).collect();
    let written = THREADS * SWAPS + 1;
    assert_eq!(returned.len() as u64, written);
    assert_eq!(values.len() as u64, written, "a value came back twice");
    assert_eq!(versions.len() as u64, written, "a version came back twice");
    assert!(values.contains(&u64::MAX), "the initial value came back");
    assert_eq!(cell.version(), THREADS * SWAPS);
}

/// Counts its drops.
struct Counted(&'static AtomicUsize);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_swapped_out_value_lives_while_its_snapshot_does_and_is_dropped_once() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    let drops = &DROPS;
    let cell = SnapshotCell::new(Counted(drops));
    let old = cell.swap(Counted(drops));
    drop(cell);
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "only the current value went with the cell"
    );
    drop(old);
    assert_eq!(drops.load(Ordering::SeqCst), 2);
}

#[test]
fn drain_pops_in_priority_order_and_empties_a_bounded_scheduler() {
    let scheduler = PriorityScheduler::with_config(SchedulerConfig {
        capacity: Some(8),
        ..SchedulerConfig::default()
    })
    .unwrap();
    assert_eq!(scheduler.capacity(), Some(8));
    assert_eq!(PriorityScheduler::<u32>::new().capacity(), None);
    let order = [
        Priority::Low,
        Priority::High,
        Priority::Normal,
        Priority::Critical,
    ];
    for (item, priority) in order.iter().enumerate() {
        scheduler
            .push(SchedulingHint::from(*priority), item)
            .unwrap();
        scheduler.push((*priority).into(), item + 10).unwrap();
    }
    assert!(
        scheduler.push(Priority::Low.into(), 99).is_err(),
        "full at 8"
    );
    let drained: Vec<usize> = scheduler.drain().collect();
    assert_eq!(drained, [3, 13, 1, 11, 2, 12, 0, 10]);
    assert!(scheduler.is_empty());
    assert_eq!(scheduler.len(), 0);
    scheduler.push(Priority::Low.into(), 7).unwrap();
    assert_eq!(scheduler.drain().count(), 1, "usable again after a drain");
}

#[test]
fn drains_racing_pushers_and_poppers_take_each_item_once() {
    const PUSHERS: usize = 2;
    const ITEMS: usize = 20_000;
    let scheduler = PriorityScheduler::new();
    let pushed_all = AtomicUsize::new(0);
    let taken = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for pusher in 0..PUSHERS {
            let (scheduler, pushed_all) = (&scheduler, &pushed_all);
            scope.spawn(move || {
                for i in 0..ITEMS {
                    let priority = Priority::ALL[i % 4];
                    scheduler.push(priority.into(), pusher * ITEMS + i).unwrap();
                }
                pushed_all.fetch_add(1, Ordering::SeqCst);
            });
        }
        for _ in 0..2 {
            let (scheduler, pushed_all, taken) = (&scheduler, &pushed_all, &taken);
            scope.spawn(move || {
                let mut mine = Vec::new();
                loop {
                    let done = pushed_all.load(Ordering::SeqCst) == PUSHERS;
                    mine.extend(scheduler.drain());
                    if done {
                        // Everything was pushed before this last drain started.
                        mine.extend(scheduler.drain());
                        break;
                    }
                    std::thread::yield_now();
                }
                taken.lock().unwrap().extend(mine);
            });
        }
    });
    let mut taken = taken.into_inner().unwrap();
    assert_eq!(taken.len(), PUSHERS * ITEMS, "lost or duplicated items");
    taken.sort_unstable();
    taken.dedup();
    assert_eq!(taken.len(), PUSHERS * ITEMS, "an item was popped twice");
    assert!(scheduler.is_empty());
}
