//! PriorityScheduler: smoke, single-thread ordering, capacity, anti-starvation bound and bad input.

use hivekit_lockfree::{
    Full, Priority, PriorityScheduler, SchedulerConfig, SchedulerError, SchedulingHint,
};

fn all_hints() -> Vec<SchedulingHint> {
    SchedulingHint::all().collect()
}

fn with_config(capacity: Option<usize>, max_bypass: Option<u32>) -> PriorityScheduler<u64> {
    PriorityScheduler::with_config(SchedulerConfig {
        capacity,
        max_bypass,
    })
    .expect("valid config")
}

#[test]
fn smoke() {
    let scheduler = PriorityScheduler::new();
    assert!(scheduler.is_empty());
    assert_eq!(scheduler.pop(), None);
    scheduler
        .push(SchedulingHint::default(), 1)
        .expect("unbounded");
    assert_eq!((scheduler.len(), scheduler.is_empty()), (1, false));
    assert_eq!(scheduler.pop(), Some(1));
    assert_eq!(scheduler.pop(), None);
    assert!(scheduler.is_empty());
}

#[test]
fn pops_by_sort_key_then_fifo() {
    let scheduler = PriorityScheduler::new();
    let hints = all_hints();
    // Three items per hint, pushed in a scrambled order.
    let mut pushed = Vec::new();
    for round in 0..3_u64 {
        for (index, hint) in hints.iter().enumerate().rev().step_by(1) {
            let item = round * 1_000 + index as u64;
            scheduler.push(*hint, item).expect("unbounded");
            pushed.push((hint.sort_key(), round, item));
        }
    }
    assert_eq!(scheduler.len(), 3 * hints.len());
    // Expected: highest key first, and within a key, push order (round).
    pushed.sort_by_key(|&(key, round, _)| (std::cmp::Reverse(key), round));
    let popped: Vec<u64> = std::iter::from_fn(|| scheduler.pop()).collect();
    let expected: Vec<u64> = pushed.into_iter().map(|(_, _, item)| item).collect();
    assert_eq!(popped, expected);
    assert!(scheduler.is_empty());
}

#[test]
fn depth_by_priority_counts_each_priority() {
    let scheduler = PriorityScheduler::new();
    for (index, hint) in all_hints().into_iter().enumerate() {
        for _ in 0..=hint.priority.index() {
            scheduler.push(hint, index).expect("unbounded");
        }
    }
    // 12 hints per priority, pushed (index + 1) times each.
    assert_eq!(scheduler.depth_by_priority(), [12, 24, 36, 48]);
    assert_eq!(scheduler.len(), 120);
    while scheduler.pop().is_some() {}
    assert_eq!(scheduler.depth_by_priority(), [0; 4]);
}

#[test]
fn capacity_is_never_exceeded_and_full_returns_the_item() {
    let scheduler = with_config(Some(3), None);
    for item in 0..3 {
        scheduler
            .push(SchedulingHint::default(), item)
            .expect("room");
    }
    let full: Full<u64> = scheduler
        .push(SchedulingHint::with_priority(Priority::Critical), 99)
        .expect_err("at capacity");
    assert_eq!(full.into_inner(), 99);
    assert_eq!(scheduler.len(), 3);
    assert_eq!(scheduler.pop(), Some(0));
    scheduler
        .push(SchedulingHint::with_priority(Priority::Critical), 42)
        .expect("room again");
    assert_eq!(scheduler.pop(), Some(42));
}

#[test]
fn zero_capacity_and_zero_bypass_are_refused() {
    let error = PriorityScheduler::<u8>::with_config(SchedulerConfig {
        capacity: Some(0),
        max_bypass: Some(4),
    })
    .expect_err("zero capacity");
    assert_eq!(error, SchedulerError::ZeroCapacity);
    let error = PriorityScheduler::<u8>::with_config(SchedulerConfig {
        capacity: Some(4),
        max_bypass: Some(0),
    })
    .expect_err("zero max_bypass");
    assert_eq!(error, SchedulerError::ZeroMaxBypass);
    assert!(PriorityScheduler::<u8>::with_config(SchedulerConfig::default()).is_ok());
}

#[test]
fn strict_order_without_anti_starvation() {
    let scheduler = with_config(None, None);
    for item in 0..10 {
        scheduler
            .push(SchedulingHint::with_priority(Priority::Low), item)
            .expect("unbounded");
    }
    for item in 100..200 {
        scheduler
            .push(SchedulingHint::with_priority(Priority::High), item)
            .expect("unbounded");
    }
    let popped: Vec<u64> = std::iter::from_fn(|| scheduler.pop()).collect();
    assert_eq!(&popped[..100], (100..200).collect::<Vec<_>>());
    assert_eq!(&popped[100..], (0..10).collect::<Vec<_>>());
}

/// With `max_bypass: Some(k)` and one consumer, the top lane is never served more than k times in a
/// row while a lower lane waits, and every waiting lane is served within (k + 1) * m pops (m lanes
/// waiting below the top). High lanes are refilled on every pop so they never run dry.
#[test]
fn starvation_bound_holds_with_one_consumer() {
    let keys: Vec<SchedulingHint> = all_hints().into_iter().step_by(5).collect();
    for k in [1_u32, 2, 5] {
        let scheduler = with_config(None, Some(k));
        for (lane, hint) in keys.iter().enumerate() {
            for _ in 0..50 {
                scheduler.push(*hint, lane as u64).expect("unbounded");
            }
        }
        let top = keys.len() as u64 - 1;
        let waiting_below_top = keys.len() - 1;
        let mut in_a_row = 0_u32;
        let mut last_served = vec![0_usize; keys.len()];
        for pop in 1..=2_000_usize {
            let lane = scheduler.pop().expect("never empty: refilled");
            // Refill the lane just served so every lane keeps waiting.
            scheduler
                .push(keys[lane as usize], lane)
                .expect("unbounded");
            if lane == top {
                in_a_row += 1;
                assert!(
                    in_a_row <= k,
                    "top lane served {in_a_row} times in a row, k = {k}"
                );
            } else {
                in_a_row = 0;
            }
            last_served[lane as usize] = pop;
            for (waiting, &served) in last_served.iter().enumerate() {
                let bound = (k as usize + 1) * waiting_below_top;
                assert!(
                    pop - served <= bound,
                    "lane {waiting} not served for {} pops (bound {bound}, k = {k})",
                    pop - served
                );
            }
        }
    }
}

#[test]
fn anti_starvation_keeps_every_item() {
    let scheduler = with_config(Some(1_000), Some(3));
    let hints = all_hints();
    for item in 0..960_u64 {
        scheduler
            .push(hints[item as usize % hints.len()], item)
            .expect("room");
    }
    let mut popped: Vec<u64> = std::iter::from_fn(|| scheduler.pop()).collect();
    popped.sort_unstable();
    assert_eq!(popped, (0..960).collect::<Vec<_>>());
}

#[test]
fn types_are_send_and_sync_and_debug() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PriorityScheduler<String>>();
    assert_send_sync::<Full<String>>();
    let scheduler = PriorityScheduler::<u8>::default();
    let debug = format!("{scheduler:?}");
    assert!(debug.starts_with("PriorityScheduler { len: 0"), "{debug}");
}
