//! The queue designs kept as rows of `benches/scheduler.rs` that are not the scheduler itself
//! (`benches/support/queues.rs`): every pushed item is popped exactly once and per-producer FIFO
//! order holds within a sort key, under concurrent producers and consumers. The rows are compared
//! with the scheduler, so they must be correct queues; the stamped lanes (`hivekit-stamped-lanes`)
//! are a lane design of their own, with a pop that skips a slot whose value is not yet written.

#[path = "../benches/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use hivekit_lockfree::{LatencyTier, Priority, ResourceCost, SchedulingHint};

use support::queues::{shared_queues, SyncQueue};

const PRODUCERS: usize = 3;
const CONSUMERS: usize = 3;
const ITEMS_PER_PRODUCER: usize = 20_000;

/// A hint chosen from the item number, so all 48 lanes are used.
fn hint_for(item: usize) -> SchedulingHint {
    let priority = Priority::ALL[item % 4];
    let latency = LatencyTier::ALL[(item / 4) % 3];
    let cost = ResourceCost::ALL[(item / 12) % 4];
    SchedulingHint::new(priority, latency, cost)
}

/// Runs producers and consumers together on `queue`; returns how many times each item was popped.
fn run(name: &str, queue: &dyn SyncQueue) -> Vec<u64> {
    let total = PRODUCERS * ITEMS_PER_PRODUCER;
    let seen: Vec<AtomicU64> = (0..total).map(|_| AtomicU64::new(0)).collect();
    let popped = AtomicUsize::new(0);
    let producers_done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|producer| {
                scope.spawn(move || {
                    for index in 0..ITEMS_PER_PRODUCER {
                        let item = producer * ITEMS_PER_PRODUCER + index;
                        queue.push(hint_for(item), item as u64);
                    }
                })
            })
            .collect();
        for _ in 0..CONSUMERS {
            scope.spawn(|| {
                // Per (producer, lane): the last item popped, to check FIFO within a lane.
                let mut last = vec![None::<usize>; PRODUCERS * SchedulingHint::KEYS];
                loop {
                    match queue.pop() {
                        Some(item) => {
                            let item = item as usize;
                            seen[item].fetch_add(1, Ordering::Relaxed);
                            popped.fetch_add(1, Ordering::Relaxed);
                            let producer = item / ITEMS_PER_PRODUCER;
                            let lane = usize::from(hint_for(item).sort_key());
                            let slot = &mut last[producer * SchedulingHint::KEYS + lane];
                            if let Some(previous) = *slot {
                                assert!(previous < item, "{name}: FIFO broken in lane {lane}");
                            }
                            *slot = Some(item);
                        }
                        None if producers_done.load(Ordering::Acquire)
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
        producers_done.store(true, Ordering::Release);
    });
    seen.iter()
        .map(|count| count.load(Ordering::Relaxed))
        .collect()
}

#[test]
fn stamped_lanes_pop_every_item_exactly_once_in_fifo_order_within_a_key() {
    // A few rounds, each on fresh queues, for more interleavings.
    for _ in 0..5 {
        for (name, queue) in shared_queues() {
            if !name.starts_with("hivekit-stamped-lanes") {
                continue;
            }
            let counts = run(name, queue.as_ref());
            assert!(
                counts.iter().all(|&count| count == 1),
                "{name}: an item was lost or duplicated"
            );
            assert_eq!(queue.pop(), None, "{name}: an item left behind");
        }
    }
}
