//! The scheduler's lanes past their inline ring: with every item on two sort keys, each lane holds
//! far more items than its ring's 8 slots, so pushes spill into the overflow queue and pops move
//! between the ring and the overflow all the time. Every pushed item is popped exactly once,
//! per-producer FIFO order holds within a key (seen by each consumer), and after the run the
//! scheduler is empty and drops what a second run leaves in it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use hivekit_lockfree::{Priority, PriorityScheduler, SchedulingHint};

const PRODUCERS: usize = 3;
const CONSUMERS: usize = 3;
const ITEMS_PER_PRODUCER: usize = 30_000;

fn hint_for(item: usize) -> SchedulingHint {
    // Two keys, each lane deep: the overflow path, not the ring alone.
    SchedulingHint::with_priority(if item % 2 == 0 {
        Priority::Low
    } else {
        Priority::High
    })
}

#[test]
fn two_deep_lanes_pop_every_item_once_in_fifo_order_per_producer() {
    for _ in 0..3 {
        let scheduler = PriorityScheduler::new();
        let total = PRODUCERS * ITEMS_PER_PRODUCER;
        let seen: Vec<AtomicUsize> = (0..total).map(|_| AtomicUsize::new(0)).collect();
        let popped = AtomicUsize::new(0);
        let done = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let producers: Vec<_> = (0..PRODUCERS)
                .map(|producer| {
                    let scheduler = &scheduler;
                    scope.spawn(move || {
                        for index in 0..ITEMS_PER_PRODUCER {
                            let item = producer * ITEMS_PER_PRODUCER + index;
                            scheduler.push(hint_for(item), item).ok();
                        }
                    })
                })
                .collect();
            for _ in 0..CONSUMERS {
                scope.spawn(|| {
                    let mut last = [[None::<usize>; 2]; PRODUCERS];
                    loop {
                        match scheduler.pop() {
                            Some(item) => {
                                seen[item].fetch_add(1, Ordering::Relaxed);
                                popped.fetch_add(1, Ordering::Relaxed);
                                let slot = &mut last[item / ITEMS_PER_PRODUCER][item % 2];
                                if let Some(previous) = *slot {
                                    assert!(previous < item, "FIFO broken: {previous} then {item}");
                                }
                                *slot = Some(item);
                            }
                            None if done.load(Ordering::Acquire)
                                && popped.load(Ordering::Relaxed) == total =>
                            {
                                break
                            }
                            None => std::thread::yield_now(),
                        }
                    }
                });
            }
            for producer in producers {
                producer.join().expect("producer panicked");
            }
            done.store(true, Ordering::Release);
        });
        assert!(seen.iter().all(|count| count.load(Ordering::Relaxed) == 1));
        assert!(scheduler.is_empty());
        assert_eq!(scheduler.pop(), None);
    }
}

#[test]
fn a_deep_lane_is_fifo_and_counted_across_ring_and_overflow() {
    let scheduler = PriorityScheduler::new();
    let hint = SchedulingHint::default();
    // Fill past the ring, drain part, refill while the overflow still holds items, drain all.
    for item in 0..100 {
        scheduler.push(hint, item).ok();
    }
    assert_eq!(scheduler.len(), 100);
    for item in 0..50 {
        assert_eq!(scheduler.pop(), Some(item));
    }
    for item in 100..130 {
        scheduler.push(hint, item).ok();
    }
    assert_eq!(scheduler.len(), 80);
    assert_eq!(scheduler.depth_by_priority().iter().sum::<usize>(), 80);
    for item in 50..130 {
        assert_eq!(scheduler.pop(), Some(item));
    }
    assert_eq!(scheduler.pop(), None);
    // The ring reopens once the overflow is drained: a few items, then one more than the ring.
    for round in 0..3_usize {
        for item in 0..9 * round {
            scheduler.push(hint, item).ok();
        }
        for item in 0..9 * round {
            assert_eq!(scheduler.pop(), Some(item));
        }
        assert!(scheduler.is_empty());
    }
}

#[test]
fn items_left_in_ring_and_overflow_are_dropped_with_the_scheduler() {
    let marker = Arc::new(());
    let scheduler = PriorityScheduler::new();
    for _ in 0..20 {
        scheduler
            .push(SchedulingHint::default(), Arc::clone(&marker))
            .ok();
    }
    // Some out, so the ring's head is not at slot 0.
    for _ in 0..3 {
        drop(scheduler.pop());
    }
    assert_eq!(Arc::strong_count(&marker), 18);
    drop(scheduler);
    assert_eq!(Arc::strong_count(&marker), 1);
}
