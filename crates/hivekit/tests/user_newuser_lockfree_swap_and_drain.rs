//! A new user's shared work board, written from the README and the rustdoc only: a
//! `SnapshotCell` whose current batch is taken whole with `swap` (every batch handed back once,
//! with the version it had), and a bounded `PriorityScheduler` filled with hints made from a bare
//! `Priority` (`Priority::High.into()`), whose `capacity` says its bound and whose `drain` empties
//! it at shutdown.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};

use hivekit::lockfree::{
    LatencyTier, Priority, PriorityScheduler, ResourceCost, SchedulerConfig, SchedulingHint,
    SnapshotCell,
};

#[test]
fn swap_hands_back_the_batch_it_replaced_with_its_version() {
    let board = SnapshotCell::new(vec!["triage"]);
    let taken = board.swap(vec!["review", "merge"]);
    assert_eq!((taken.as_slice(), taken.version()), (&["triage"][..], 0));
    assert_eq!(board.version(), taken.version() + 1);
    // A reader holding an older snapshot keeps it after a swap.
    let held = board.load();
    let again = board.swap(Vec::new());
    assert_eq!(*again, *held);
    assert_eq!(again.version(), held.version());
    assert_eq!(board.read(|batch, version| (batch.len(), version)), (0, 2));
    // `swap` and `store` number versions alike: no gap between them.
    assert_eq!(board.store(vec!["ship"]), 3);
    assert_eq!(board.swap(vec![]).version(), 3);
}

#[test]
fn concurrent_swaps_hand_every_batch_back_exactly_once() {
    const THREADS: u64 = 4;
    const SWAPS: u64 = 2_000;
    let board = SnapshotCell::new(u64::MAX);
    let handed: Vec<Vec<(u64, u64)>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|thread| {
                let board = &board;
                scope.spawn(move || {
                    (0..SWAPS)
                        .map(|swap| {
                            let old = board.swap(thread * SWAPS + swap);
                            (*old, old.version())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().expect("no panic"))
            .collect()
    });
    let handed: Vec<(u64, u64)> = handed.into_iter().flatten().collect();
    let total = THREADS * SWAPS;
    assert_eq!(handed.len() as u64, total);
    let versions: BTreeSet<u64> = handed.iter().map(|&(_, version)| version).collect();
    assert_eq!(
        versions,
        (0..total).collect(),
        "each version handed back once"
    );
    let mut values: Vec<u64> = handed.iter().map(|&(value, _)| value).collect();
    values.push(*board.load());
    values.sort_unstable();
    let mut expected: Vec<u64> = (0..total).collect();
    expected.push(u64::MAX);
    assert_eq!(
        values, expected,
        "every value written back once or still current"
    );
    assert_eq!(board.version(), total);
}

#[test]
fn a_bare_priority_is_a_hint_with_default_latency_and_cost() {
    let hint: SchedulingHint = Priority::High.into();
    assert_eq!(hint, SchedulingHint::with_priority(Priority::High));
    assert_eq!(hint.priority, Priority::High);
    assert_eq!(hint.latency, LatencyTier::default());
    assert_eq!(hint.cost, ResourceCost::default());
    assert_eq!(
        SchedulingHint::from(Priority::default()),
        SchedulingHint::default()
    );
}

#[test]
fn a_bounded_queue_says_its_capacity_and_drains_in_priority_order() {
    let queue = PriorityScheduler::with_config(SchedulerConfig {
        capacity: Some(4),
        ..SchedulerConfig::default()
    })
    .expect("a valid config");
    assert_eq!(queue.capacity(), Some(4));
    assert_eq!(PriorityScheduler::<()>::new().capacity(), None);

    queue.push(Priority::Low.into(), "sweep").expect("room");
    queue.push(Priority::Critical.into(), "page").expect("room");
    queue.push(Priority::Normal.into(), "review").expect("room");
    queue
        .push(Priority::Critical.into(), "page again")
        .expect("room");
    let full = queue
        .push(Priority::High.into(), "overflow")
        .expect_err("the fifth item is over capacity");
    assert_eq!(full.into_inner(), "overflow");
    assert_eq!(queue.len(), queue.capacity().expect("bounded"));

    let left: Vec<&str> = queue.drain().collect();
    assert_eq!(left, ["page", "page again", "review", "sweep"]);
    assert!(queue.is_empty());
    assert_eq!(
        queue.drain().count(),
        0,
        "draining an empty queue yields nothing"
    );
    queue
        .push(Priority::High.into(), "after")
        .expect("room again after a drain");
    assert_eq!(queue.pop(), Some("after"));
}

#[test]
fn drains_racing_pushers_take_each_item_once() {
    const PUSHERS: u64 = 3;
    const ITEMS: u64 = 3_000;
    let queue = PriorityScheduler::new();
    let done = AtomicBool::new(false);
    let drained: Vec<u64> = std::thread::scope(|scope| {
        let pushers: Vec<_> = (0..PUSHERS)
            .map(|pusher| {
                let queue = &queue;
                scope.spawn(move || {
                    for item in 0..ITEMS {
                        let priority = Priority::ALL[(item % Priority::ALL.len() as u64) as usize];
                        queue
                            .push(priority.into(), pusher * ITEMS + item)
                            .expect("unbounded");
                    }
                })
            })
            .collect();
        let drainer = {
            let (queue, done) = (&queue, &done);
            scope.spawn(move || {
                let mut got = Vec::new();
                while !done.load(Ordering::Acquire) {
                    got.extend(queue.drain());
                    std::thread::yield_now();
                }
                got.extend(queue.drain());
                got
            })
        };
        for pusher in pushers {
            pusher.join().expect("no panic");
        }
        done.store(true, Ordering::Release);
        drainer.join().expect("no panic")
    });
    let mut sorted = drained.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..PUSHERS * ITEMS).collect::<Vec<_>>());
    assert!(queue.is_empty());
}
