//! The concurrent producers-and-consumers harness of the scheduler's stress tests: every pushed
//! item popped exactly once, per-producer FIFO order within a sort key. Shared by the tests of the
//! scheduler (`scheduler_stress.rs`) and of the queue designs kept as bench rows
//! (`scheduler_bench_rows.rs`); included with `#[path]`, as those also include other support.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use hivekit_lockfree::{LatencyTier, Priority, ResourceCost, SchedulingHint};

pub(crate) const PRODUCERS: usize = 3;
pub(crate) const CONSUMERS: usize = 3;
pub(crate) const ITEMS_PER_PRODUCER: usize = 20_000;

/// A hint chosen from the item number, so all 48 lanes are used.
pub(crate) fn hint_for(item: usize) -> SchedulingHint {
    let priority = Priority::ALL[item % 4];
    let latency = LatencyTier::ALL[(item / 4) % 3];
    let cost = ResourceCost::ALL[(item / 12) % 4];
    SchedulingHint::new(priority, latency, cost)
}

/// Runs `PRODUCERS` threads pushing their items with `push` and `CONSUMERS` threads popping with
/// `pop` until every item is out; checks per-producer FIFO order within a sort key (`name` in the
/// message) and returns how many times each item was popped.
pub(crate) fn run_mpmc(
    name: &str,
    push: impl Fn(SchedulingHint, usize) + Sync,
    pop: impl Fn() -> Option<usize> + Sync,
) -> Vec<usize> {
    let total = PRODUCERS * ITEMS_PER_PRODUCER;
    let seen: Vec<AtomicUsize> = (0..total).map(|_| AtomicUsize::new(0)).collect();
    let popped = AtomicUsize::new(0);
    let producers_done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|producer| {
                let push = &push;
                scope.spawn(move || {
                    for index in 0..ITEMS_PER_PRODUCER {
                        let item = producer * ITEMS_PER_PRODUCER + index;
                        push(hint_for(item), item);
                    }
                })
            })
            .collect();
        for _ in 0..CONSUMERS {
            scope.spawn(|| {
                // Per (producer, lane): the last item popped, to check FIFO within a lane.
                let mut last = vec![None::<usize>; PRODUCERS * SchedulingHint::KEYS];
                loop {
                    match pop() {
                        Some(item) => {
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
