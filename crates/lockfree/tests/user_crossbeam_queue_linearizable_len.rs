//! crossbeam-queue's ArrayQueue/SegQueue tests not yet ported: `linearizable` (a thread that just
//! pushed always pops something when capacity equals the thread count), `len`/`len_empty_full`
//! (exact single-threaded, never above capacity under contention), run through `PriorityScheduler`.
//! (`stack_overflow` is in `user_crossbeam_queue_big_items_stack.rs`: it aborts its process.)

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use hivekit_lockfree::{Priority, PriorityScheduler, SchedulerConfig, SchedulingHint};

const DEADLINE: Duration = Duration::from_secs(20);

fn scheduler<T>(capacity: Option<usize>, max_bypass: Option<u32>) -> PriorityScheduler<T> {
    PriorityScheduler::with_config(SchedulerConfig {
        capacity,
        max_bypass,
    })
    .expect("valid config")
}

fn hints() -> Vec<SchedulingHint> {
    SchedulingHint::all().collect()
}

/// crossbeam's `linearizable`: capacity equals the number of threads and each thread pushes one item
/// and then pops one. At the moment of any pop, the popping thread's own push has returned and every
/// thread holds at most one outstanding item, so at least one completed push is not yet matched by
/// a pop: a linearizable queue never answers `None` (and never refuses a push: at most THREADS items
/// are ever in flight).
#[test]
fn a_thread_that_just_pushed_always_pops_something_when_capacity_equals_threads() {
    const THREADS: usize = 4;
    const COUNT: usize = 20_000;
    let all = hints();
    // Same lane for every thread, a lane per thread (spread over priorities), with and without aging.
    let layouts: [(&str, [usize; THREADS], Option<u32>); 4] = [
        ("one lane", [20; THREADS], None),
        ("a lane each", [0, 13, 30, 47], None),
        ("a lane each, aging", [0, 13, 30, 47], Some(1)),
        ("two lanes, aging", [5, 5, 40, 40], Some(2)),
    ];
    for (name, lanes, max_bypass) in layouts {
        let q = scheduler::<usize>(Some(THREADS), max_bypass);
        let empty_pops = AtomicUsize::new(0);
        let refused = AtomicUsize::new(0);
        let barrier = Barrier::new(THREADS);
        std::thread::scope(|scope| {
            for (t, lane) in lanes.into_iter().enumerate() {
                let (q, empty_pops, refused, barrier, all) =
                    (&q, &empty_pops, &refused, &barrier, &all);
                scope.spawn(move || {
                    barrier.wait();
                    for i in 0..COUNT {
                        if q.push(all[lane], t * COUNT + i).is_err() {
                            refused.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                        if q.pop().is_none() {
                            empty_pops.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                    }
                });
            }
        });
        assert_eq!(
            refused.load(Ordering::Relaxed),
            0,
            "{name}: a push was refused though at most {THREADS} items were ever held"
        );
        assert_eq!(
            empty_pops.load(Ordering::Relaxed),
            0,
            "{name}: a pop found nothing right after its own thread's push returned"
        );
        assert!(q.is_empty(), "{name}");
        assert_eq!(q.depth_by_priority(), [0; 4], "{name}");
    }
}

/// crossbeam's `len` and `len_empty_full`, single-threaded: `len`, `is_empty` and
/// `depth_by_priority` are exact after every push and pop, bounded or not, across refill cycles
/// that go past a lane's inline ring and wrap its positions.
#[test]
fn len_is_exact_after_every_push_and_pop_across_refill_cycles() {
    const CAP: usize = 1_000;
    const ITERS: usize = CAP / 20;
    let hint = SchedulingHint::with_priority(Priority::High);
    for capacity in [None, Some(CAP)] {
        let q = scheduler::<usize>(capacity, None);
        assert_eq!((q.len(), q.is_empty()), (0, true));
        for _ in 0..CAP / 10 {
            for i in 0..ITERS {
                q.push(hint, i).expect("room");
                assert_eq!(q.len(), i + 1, "{capacity:?}");
                assert!(!q.is_empty());
                assert_eq!(q.depth_by_priority(), [0, 0, i + 1, 0]);
            }
            for i in 0..ITERS {
                assert_eq!(q.pop(), Some(i), "{capacity:?}: FIFO within one key");
                assert_eq!(q.len(), ITERS - i - 1, "{capacity:?}");
            }
            assert!(q.is_empty());
        }
        for i in 0..CAP {
            q.push(hint, i).expect("room up to the capacity");
            assert_eq!(q.len(), i + 1);
        }
        if capacity.is_some() {
            // ArrayQueue's "is_full": the next push is refused and nothing changes.
            assert_eq!(q.push(hint, CAP).unwrap_err().into_inner(), CAP);
            assert_eq!(q.len(), CAP);
        }
        for i in 0..CAP {
            assert_eq!(q.pop(), Some(i));
        }
        assert_eq!((q.len(), q.is_empty(), q.pop()), (0, true, None));
    }
}

/// crossbeam's concurrent `len`: one producer, one consumer, FIFO on one key, and every `len` that
/// either side reads while they run is at most the capacity (bounded) or the number of items pushed
/// so far (the producer's own view, unbounded).
#[test]
fn len_never_exceeds_capacity_or_pushes_while_a_producer_and_a_consumer_run() {
    const COUNT: usize = 25_000;
    const CAP: usize = 1_000;
    let hint = SchedulingHint::default();
    for capacity in [Some(CAP), Some(3), None] {
        let q = scheduler::<usize>(capacity, None);
        let bound = capacity.unwrap_or(usize::MAX);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let start = Instant::now();
                for i in 0..COUNT {
                    let item = loop {
                        if let Some(item) = q.pop() {
                            break item;
                        }
                        assert!(start.elapsed() < DEADLINE, "item {i} never came");
                        std::hint::spin_loop();
                    };
                    assert_eq!(item, i, "{capacity:?}");
                    let len = q.len();
                    assert!(len <= bound, "{capacity:?}: len {len} above the capacity");
                    assert!(
                        len < COUNT - i,
                        "{capacity:?}: len {len} counts more than the {} items not yet popped",
                        COUNT - i - 1
                    );
                }
            });
            scope.spawn(|| {
                let start = Instant::now();
                for i in 0..COUNT {
                    let mut item = i;
                    while let Err(full) = q.push(hint, item) {
                        assert!(start.elapsed() < DEADLINE, "no room for {i}");
                        item = full.into_inner();
                        std::hint::spin_loop();
                    }
                    let len = q.len();
                    assert!(len <= bound, "{capacity:?}: len {len} above the capacity");
                    assert!(
                        len <= i + 1,
                        "{capacity:?}: len {len} after {} pushes",
                        i + 1
                    );
                }
            });
        });
        assert_eq!(q.len(), 0, "{capacity:?}");
        assert!(q.pop().is_none());
    }
}

/// With producers and consumers on all four priorities, a bounded scheduler's `len` and the sum
/// of `depth_by_priority` never exceed the capacity at any instant a third thread looks.
#[test]
fn an_observer_never_sees_more_than_capacity_items_under_mpmc() {
    const CAP: usize = 16;
    const PER_PRODUCER: usize = 20_000;
    let q = scheduler::<usize>(Some(CAP), Some(2));
    let done = AtomicBool::new(false);
    let popped = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for p in 0..2 {
            let q = &q;
            scope.spawn(move || {
                let start = Instant::now();
                for i in 0..PER_PRODUCER {
                    let hint = SchedulingHint::with_priority(Priority::ALL[(i + p) % 4]);
                    let mut item = i;
                    while let Err(full) = q.push(hint, item) {
                        assert!(start.elapsed() < DEADLINE, "no room");
                        item = full.into_inner();
                        std::thread::yield_now();
                    }
                }
            });
        }
        for _ in 0..2 {
            scope.spawn(|| {
                let start = Instant::now();
                while popped.load(Ordering::Relaxed) < 2 * PER_PRODUCER {
                    if q.pop().is_some() {
                        popped.fetch_add(1, Ordering::Relaxed);
                    } else {
                        assert!(start.elapsed() < DEADLINE, "items stranded");
                        std::thread::yield_now();
                    }
                }
            });
        }
        scope.spawn(|| {
            let mut looks = 0_u64;
            while !done.load(Ordering::Relaxed) {
                let len = q.len();
                assert!(len <= CAP, "len {len} above the capacity {CAP}");
                looks += 1;
                if popped.load(Ordering::Relaxed) == 2 * PER_PRODUCER {
                    done.store(true, Ordering::Relaxed);
                }
            }
            assert!(looks > 0);
        });
    });
    assert_eq!(popped.load(Ordering::Relaxed), 2 * PER_PRODUCER);
    assert_eq!((q.len(), q.depth_by_priority()), (0, [0; 4]));
}
