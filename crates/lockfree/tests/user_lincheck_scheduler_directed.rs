//! Directed linearizability checks of `PriorityScheduler`: histories shaped (one popper, one
//! producer, one lane) so that a single observation proves that no sequential order of the
//! operations explains what the threads saw, so no search is needed and each test can run
//! hundreds of thousands of operations.
//!
//! The promises: `PriorityScheduler::pop` "`None` when empty: the scheduler held no item at some
//! moment during the call (linearizable, as crossbeam's queues)"; `push` "[`Full`] with the item
//! when the scheduler was built with a capacity and holds that many items"; the type docs "`pop`
//! returns the item with the highest `SchedulingHint::sort_key`, FIFO among items with equal keys".

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hivekit_lockfree::{PriorityScheduler, SchedulerConfig, SchedulingHint};

/// How long a test that hunts a race hammers the scheduler before it concludes that nothing went
/// wrong (each stops at the first violation).
const BUDGET: Duration = Duration::from_millis(2_500);

fn scheduler<T>(capacity: Option<usize>, max_bypass: Option<u32>) -> PriorityScheduler<T> {
    PriorityScheduler::with_config(SchedulerConfig {
        capacity,
        max_bypass,
    })
    .expect("valid config")
}

/// The hint whose sort key is `key`.
fn hint(key: u8) -> SchedulingHint {
    SchedulingHint::all()
        .find(|hint| hint.sort_key() == key)
        .expect("a key below 48")
}

/// Items of 16 KiB: moving one takes a while in a debug build, which widens the windows between
/// a push's reservation in the item count and its enqueue, and between a pop's claim of an item
/// and its release of the count.
type Big = [u64; 2048];

fn big(n: usize) -> Big {
    let mut item = [0_u64; 2048];
    item[0] = n as u64;
    item
}

/// Bounded to one item. `producers` threads only push; one thread pushes and then pops, over and
/// over, and is the only thread that pops. When its push returns `Full`, the scheduler held an
/// item at some moment during that push, and nobody else takes items: its next pop must find
/// one. After a push that succeeded, its own item is there. Either way `None` is not
/// linearizable.
fn lone_popper_after_its_push<T: Send>(make: impl Fn(usize) -> T + Sync, producers: usize) {
    let scheduler = scheduler::<T>(Some(1), None);
    let stop = AtomicBool::new(false);
    let deadline = Instant::now() + BUDGET;
    let make = &make;
    let (scheduler, stop) = (&scheduler, &stop);
    let violation = std::thread::scope(|scope| {
        for producer in 0..producers {
            scope.spawn(move || {
                let mut n = producer;
                while !stop.load(Ordering::Relaxed) {
                    let _ = scheduler.push(hint(20), make(n));
                    n += producers;
                }
            });
        }
        let popper = scope.spawn(move || {
            let mut rounds = 0_u64;
            let mut violation = None;
            while violation.is_none() && Instant::now() < deadline {
                let refused = scheduler.push(hint(20), make(usize::MAX)).is_err();
                if scheduler.pop().is_none() {
                    violation = Some(format!(
                        "after {rounds} rounds the only popper got None right after its push {}",
                        if refused {
                            "returned Full (an item was held, and nobody else pops)"
                        } else {
                            "succeeded"
                        }
                    ));
                }
                rounds += 1;
                // A pause of varying length after the pop lets a producer take the free slot
                // before this thread's next push (else this thread mostly refills it itself).
                for _ in 0..rounds % 64 {
                    std::hint::spin_loop();
                }
            }
            stop.store(true, Ordering::Relaxed);
            violation
        });
        popper.join().expect("popper")
    });
    if let Some(violation) = violation {
        panic!("{violation}");
    }
}

#[test]
fn the_only_popper_never_gets_none_after_its_push_returned_full() {
    lone_popper_after_its_push(|n| n, 2);
}

#[test]
fn the_only_popper_never_gets_none_after_full_with_large_items_and_three_producers() {
    lone_popper_after_its_push(big, 3);
}

/// Bounded to two items, one lane, one producer, two consumers. An item counts toward the capacity
/// from its push until its pop returns (see `SchedulerConfig::capacity`): once `returned` pops have
/// returned, at most `pushed - returned` items are held, and a push that starts then with fewer
/// than two held must not be refused.
fn refused_only_when_full<T: Send>(make: impl Fn(usize) -> T + Sync) {
    const CAPACITY: usize = 2;
    let scheduler = scheduler::<T>(Some(CAPACITY), None);
    let returned = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let deadline = Instant::now() + BUDGET;
    let (scheduler, returned, stop) = (&scheduler, &returned, &stop);
    let violation = std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if scheduler.pop().is_some() {
                        returned.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
        let producer = scope.spawn(|| {
            let mut pushed = 0_usize;
            let mut violation = None;
            while violation.is_none() && Instant::now() < deadline {
                let known = returned.load(Ordering::SeqCst);
                if scheduler.push(hint(20), make(pushed)).is_ok() {
                    pushed += 1;
                } else if pushed - known < CAPACITY {
                    violation = Some(format!(
                        "a push was refused as Full though at most {} of the {pushed} items \
                         pushed were held ({known} pops had returned; capacity {CAPACITY})",
                        pushed - known
                    ));
                }
            }
            stop.store(true, Ordering::Relaxed);
            violation
        });
        producer.join().expect("producer")
    });
    if let Some(violation) = violation {
        panic!("{violation}");
    }
}

#[test]
fn a_push_is_refused_only_when_capacity_items_are_held() {
    refused_only_when_full(|n| n);
}

#[test]
fn a_push_of_large_items_is_refused_only_when_capacity_items_are_held() {
    refused_only_when_full(big);
}

/// One producer pushes items alternately into the top lane (key 47, even items) and the bottom
/// lane (key 0, odd items), each push stamped on one clock when it returns; one consumer pops, each
/// pop stamped when it starts and when it returns. The order `pop` promises under concurrent
/// pushes: it never takes a lower key, or a later item of the same key, while an item whose push
/// returned before the pop began is queued (an item whose push completes while a pop runs may be
/// passed over by that pop: its lane's bit may be read before it is set). So when an earlier item
/// of a higher or equal key had been pushed before a later item's pop began and was popped only
/// after that pop returned, the order was broken. With one consumer this also exercises
/// `pop_slow`'s scan of the lanes (the consumer mostly finds the bitmap empty).
fn strict_order_for_pushes_returned_before_the_pop(capacity: Option<usize>) {
    const ITEMS: usize = 30_000;
    let scheduler = scheduler::<usize>(capacity, None);
    let clock = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let (scheduler, clock, stop) = (&scheduler, &clock, &stop);
    let (pushed, pops): (Vec<u64>, Vec<(usize, u64, u64)>) = std::thread::scope(|scope| {
        let consumer = scope.spawn(move || {
            let mut mine = Vec::new();
            loop {
                let finished = stop.load(Ordering::SeqCst);
                let invoke = clock.fetch_add(1, Ordering::SeqCst);
                let popped = scheduler.pop();
                let response = clock.fetch_add(1, Ordering::SeqCst);
                match popped {
                    Some(item) => mine.push((item, invoke, response)),
                    None if finished => break,
                    None => {}
                }
            }
            mine
        });
        let mut pushed = Vec::with_capacity(ITEMS);
        for item in 0..ITEMS {
            let key = if item % 2 == 0 { 47 } else { 0 };
            while scheduler.push(hint(key), item).is_err() {
                std::thread::yield_now();
            }
            pushed.push(clock.fetch_add(1, Ordering::SeqCst));
        }
        stop.store(true, Ordering::SeqCst);
        (pushed, consumer.join().expect("consumer"))
    });
    assert_eq!(pops.len(), ITEMS, "every item popped exactly once");
    let mut stamps = vec![None; ITEMS];
    for &(item, invoke, response) in &pops {
        assert!(stamps[item].is_none(), "item {item} popped twice");
        stamps[item] = Some((invoke, response));
    }
    let stamps: Vec<(u64, u64)> = stamps.into_iter().map(|s| s.expect("popped")).collect();
    // Per lane (0: the top lane, 1: the bottom one), the latest pop start among that lane's items
    // up to each index (items of the other lane carry the value on). The top lane outranks the
    // bottom one, and each lane is FIFO. Pushes return in index order, so the items pushed before
    // a pop began are a prefix of the indices.
    let mut latest = [vec![0_u64; ITEMS], vec![0_u64; ITEMS]];
    for (item, &(invoke, _)) in stamps.iter().enumerate() {
        for (lane, latest) in latest.iter_mut().enumerate() {
            let before = if item == 0 { 0 } else { latest[item - 1] };
            latest[item] = if item % 2 == lane {
                before.max(invoke)
            } else {
                before
            };
        }
    }
    for (item, &(invoke, response)) in stamps.iter().enumerate() {
        let lane = item % 2;
        let returned_before = pushed.partition_point(|&at| at < invoke).min(item);
        let Some(last) = returned_before.checked_sub(1) else {
            continue;
        };
        let outranking: &[Vec<u64>] = if lane == 0 { &latest[..1] } else { &latest[..] };
        for (other_lane, latest) in outranking.iter().enumerate() {
            assert!(
                latest[last] < response,
                "item {item} (key {}) was popped [{invoke}..{response}] while an earlier item of \
                 key {}, whose push returned before that pop began, stayed queued until its pop \
                 started at {}",
                if lane == 0 { 47 } else { 0 },
                if other_lane == 0 { 47 } else { 0 },
                latest[last],
            );
        }
    }
}

#[test]
fn a_lone_consumer_never_passes_over_a_higher_key_item_pushed_before_its_pop() {
    strict_order_for_pushes_returned_before_the_pop(None);
}

#[test]
fn a_lone_consumer_of_a_bounded_scheduler_keeps_that_order_too() {
    strict_order_for_pushes_returned_before_the_pop(Some(64));
}

/// crossbeam's `linearizable` shape without a bound and over many lanes: each thread pushes, then
/// pops (or drains one item), so when it pops its own push has returned and no thread holds more
/// than one unmatched item: at least one item is held throughout, and `None` is never
/// linearizable. `user_crossbeam_queue_linearizable_len.rs` covers the bounded shapes.
fn pushed_then_popped_never_none(max_bypass: Option<u32>, capacity: Option<usize>) {
    const THREADS: usize = 4;
    const ROUNDS: usize = 15_000;
    let scheduler = scheduler::<usize>(capacity, max_bypass);
    let hints: Vec<SchedulingHint> = SchedulingHint::all().collect();
    let empty = AtomicUsize::new(0);
    let over_capacity = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let (scheduler, hints, empty, over_capacity) =
                (&scheduler, &hints, &empty, &over_capacity);
            scope.spawn(move || {
                for round in 0..ROUNDS {
                    // A different lane almost every time, all 48 of them in use.
                    let hint = hints[(thread * 13 + round * 7) % hints.len()];
                    scheduler
                        .push(hint, thread * ROUNDS + round)
                        .expect("at most one item per thread is held");
                    if capacity.is_some_and(|capacity| scheduler.len() > capacity) {
                        over_capacity.fetch_add(1, Ordering::Relaxed);
                    }
                    let popped = if round % 3 == 0 {
                        scheduler.drain().next()
                    } else {
                        scheduler.pop()
                    };
                    if popped.is_none() {
                        empty.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let context = format!("max_bypass {max_bypass:?}, capacity {capacity:?}");
    assert_eq!(
        empty.load(Ordering::Relaxed),
        0,
        "{context}: a pop found nothing right after its own thread's push returned"
    );
    assert_eq!(
        over_capacity.load(Ordering::Relaxed),
        0,
        "{context}: len above capacity"
    );
    assert!(scheduler.is_empty(), "{context}");
    assert_eq!(scheduler.len(), 0, "{context}");
}

#[test]
fn a_thread_that_pushed_then_popped_never_gets_none_unbounded_strict() {
    pushed_then_popped_never_none(None, None);
}

#[test]
fn a_thread_that_pushed_then_popped_never_gets_none_unbounded_with_anti_starvation() {
    pushed_then_popped_never_none(Some(1), None);
}

#[test]
fn a_thread_that_pushed_then_popped_never_gets_none_with_room_to_spare_and_anti_starvation() {
    pushed_then_popped_never_none(Some(3), Some(6));
}
