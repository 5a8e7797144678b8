//! PriorityScheduler under concurrent producers and consumers: every pushed item is popped exactly
//! once, the capacity is never exceeded, and per-producer FIFO order holds within a sort key.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use hivekit_lockfree::{
    LatencyTier, Priority, PriorityScheduler, ResourceCost, SchedulerConfig, SchedulingHint,
};

#[path = "support/mpmc.rs"]
mod mpmc;

use mpmc::{hint_for, run_mpmc};

/// Runs producers and consumers together; returns how many times each item was popped.
fn run(scheduler: &PriorityScheduler<usize>, capacity: Option<usize>) -> Vec<usize> {
    run_mpmc(
        "the scheduler",
        |hint, item| {
            let mut pending = item;
            // A bounded scheduler may be full: retry with the item it gives back.
            while let Err(full) = scheduler.push(hint, pending) {
                pending = full.into_inner();
                std::thread::yield_now();
            }
            if let Some(capacity) = capacity {
                assert!(scheduler.len() <= capacity, "len above capacity");
            }
        },
        || scheduler.pop(),
    )
}

#[test]
fn every_item_popped_exactly_once_unbounded() {
    let scheduler = PriorityScheduler::new();
    let counts = run(&scheduler, None);
    assert!(
        counts.iter().all(|&count| count == 1),
        "an item was lost or duplicated"
    );
    assert!(scheduler.is_empty());
    assert_eq!(scheduler.pop(), None);
}

#[test]
fn every_item_popped_exactly_once_bounded_with_anti_starvation() {
    let capacity = 64;
    let scheduler = PriorityScheduler::with_config(SchedulerConfig {
        capacity: Some(capacity),
        max_bypass: Some(4),
    })
    .expect("valid config");
    let counts = run(&scheduler, Some(capacity));
    assert!(
        counts.iter().all(|&count| count == 1),
        "an item was lost or duplicated"
    );
    assert_eq!(
        (scheduler.len(), scheduler.depth_by_priority()),
        (0, [0; 4])
    );
}

/// After concurrent pushes finish, a single consumer drains every item in priority order: nothing is
/// stranded behind a cleared bit.
#[test]
fn nothing_stranded_after_racing_pushes_and_pops() {
    for _ in 0..20 {
        let scheduler = PriorityScheduler::new();
        std::thread::scope(|scope| {
            for producer in 0..2 {
                let scheduler = &scheduler;
                scope.spawn(move || {
                    for item in 0..500 {
                        scheduler.push(hint_for(item), producer * 500 + item).ok();
                    }
                });
            }
            // A consumer racing the producers, taking roughly half.
            scope.spawn(|| {
                let mut taken = 0;
                while taken < 500 {
                    if scheduler.pop().is_some() {
                        taken += 1;
                    } else {
                        std::thread::yield_now();
                    }
                }
            });
        });
        assert_eq!(scheduler.len(), 500);
        let rest: Vec<usize> = std::iter::from_fn(|| scheduler.pop()).collect();
        assert_eq!(rest.len(), 500, "items stranded");
        let keys: Vec<u8> = rest
            .iter()
            .map(|&item| hint_for(item % 500).sort_key())
            .collect();
        assert!(
            keys.windows(2).all(|pair| pair[0] >= pair[1]),
            "not in key order"
        );
    }
}

/// A low-priority item waits while producers keep the critical lane full: with one consumer and
/// `max_bypass: Some(k)`, it is served within k + 1 pops, however fast the producers are.
#[test]
fn starvation_bound_holds_under_concurrent_producers() {
    let critical = SchedulingHint::new(Priority::Critical, LatencyTier::Hot, ResourceCost::Minimal);
    let low = SchedulingHint::new(Priority::Low, LatencyTier::Cold, ResourceCost::Heavy);
    for max_bypass in [1_u32, 3, 16] {
        let scheduler = PriorityScheduler::with_config(SchedulerConfig {
            capacity: None,
            max_bypass: Some(max_bypass),
        })
        .expect("valid config");
        for item in 0..100 {
            scheduler.push(critical, item).expect("unbounded");
        }
        let stop = AtomicBool::new(false);
        std::thread::scope(|scope| {
            for _ in 0..2 {
                scope.spawn(|| {
                    // Bounded, so a slow consumer does not let the queue grow without limit.
                    for _ in 0..200_000 {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        scheduler.push(critical, 1).expect("unbounded");
                    }
                });
            }
            for round in 0..50 {
                scheduler.push(low, usize::MAX).expect("unbounded");
                let position = (1..)
                    .find(|_| scheduler.pop() == Some(usize::MAX))
                    .expect("the low item is popped eventually");
                assert!(
                    position <= max_bypass as usize + 1,
                    "round {round}: low item served at pop {position}, k = {max_bypass}"
                );
            }
            stop.store(true, Ordering::Relaxed);
        });
    }
}

/// The bench's pattern with each thread at its own priority plus one thread spread over all of
/// them: push-then-pop pairs on a queue kept at a steady depth. Every item
/// pushed is popped exactly once, by the pairs or by the final drain.
#[test]
fn push_pop_pairs_at_several_priorities_pop_every_item_exactly_once() {
    const THREADS: usize = 4;
    const PAIRS: usize = 20_000;
    const DEPTH: usize = 200;
    let scheduler = PriorityScheduler::with_config(SchedulerConfig {
        capacity: None,
        max_bypass: Some(8),
    })
    .expect("valid config");
    let total = DEPTH + THREADS * PAIRS;
    let seen: Vec<AtomicUsize> = (0..total).map(|_| AtomicUsize::new(0)).collect();
    for item in 0..DEPTH {
        scheduler.push(hint_for(item), item).ok();
    }
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let (scheduler, seen) = (&scheduler, &seen);
            scope.spawn(move || {
                for pair in 0..PAIRS {
                    let item = DEPTH + thread * PAIRS + pair;
                    let hint = if thread < 3 {
                        SchedulingHint::new(
                            Priority::ALL[thread + 1],
                            LatencyTier::ALL[pair % 3],
                            ResourceCost::ALL[pair % 4],
                        )
                    } else {
                        hint_for(pair)
                    };
                    scheduler.push(hint, item).ok();
                    // Never empty: each pair pushes before it pops, and the queue starts at DEPTH.
                    let popped = scheduler.pop().expect("a pair's pop found the queue empty");
                    seen[popped].fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    for item in std::iter::from_fn(|| scheduler.pop()) {
        seen[item].fetch_add(1, Ordering::Relaxed);
    }
    let wrong: Vec<(usize, usize)> = seen
        .iter()
        .map(|count| count.load(Ordering::Relaxed))
        .enumerate()
        .filter(|&(_, count)| count != 1)
        .collect();
    assert!(wrong.is_empty(), "items not popped exactly once: {wrong:?}");
    assert!(scheduler.is_empty());
}
