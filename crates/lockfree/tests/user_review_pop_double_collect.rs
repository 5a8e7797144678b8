//! Review of `PriorityScheduler::pop`'s double collect (scheduler.rs `pop_slow`, `Scan`): `None`
//! only when the scheduler was empty at one moment of the call, unbounded (where no `len`
//! counter answers first) and with lanes that spill past their ring; no allocation on an idle
//! consumer's empty pop; an idle consumer's pop ends while other threads churn; `drain` ends and
//! takes each item once, leaving the bounded `len` at zero.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Barrier};
use std::time::Duration;

use hivekit_lockfree::{PriorityScheduler, SchedulerConfig, SchedulingHint};

/// A bound that a correct run never nears (a failure, not a hang, when exceeded).
const DEADLINE: Duration = Duration::from_secs(30);

/// Counts the allocations made by threads that asked to be counted.
struct Counting;

thread_local! {
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; counting touches no allocation.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTED.try_with(Cell::get).unwrap_or(false) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The allocations `f` makes on this thread.
fn allocations_of(f: impl FnOnce()) -> usize {
    COUNTED.with(|counted| counted.set(true));
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    f();
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    COUNTED.with(|counted| counted.set(false));
    after - before
}

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

const CONFIGS: [(Option<usize>, Option<u32>); 4] = [
    (None, None),
    (None, Some(1)),
    (Some(1 << 20), None),
    (Some(1 << 20), Some(2)),
];

/// Each thread pushes a burst of `burst` items into its lanes and then pops `burst` times. Before
/// each of its pops the thread has pushed more than it popped, and so has every other thread at
/// every moment, so the scheduler is never empty while one of these pops runs: a linearizable
/// `pop` never answers `None`. Unbounded, `pop_slow`'s double collect is what decides; bursts past
/// the ring's 8 slots put the items in the lanes' overflow.
#[test]
fn a_thread_that_pushed_more_than_it_popped_never_pops_none() {
    const THREADS: usize = 4;
    const ITEMS: usize = 12_000;
    let all = hints();
    let layouts: [(&str, [usize; THREADS]); 3] = [
        ("one lane", [20; THREADS]),
        ("a lane each", [0, 13, 30, 47]),
        ("two lanes far apart", [5, 5, 40, 40]),
    ];
    for (capacity, max_bypass) in CONFIGS {
        for (name, lanes) in layouts {
            for burst in [1, 3, 12] {
                let q = scheduler::<usize>(capacity, max_bypass);
                let empty_pops = AtomicUsize::new(0);
                let barrier = Barrier::new(THREADS);
                std::thread::scope(|scope| {
                    for (t, lane) in lanes.into_iter().enumerate() {
                        let (q, empty_pops, barrier, all) = (&q, &empty_pops, &barrier, &all);
                        scope.spawn(move || {
                            barrier.wait();
                            for round in 0..ITEMS / burst {
                                for i in 0..burst {
                                    // A second lane per thread, so that its pops also cross lanes.
                                    let key = if i % 2 == 0 { lane } else { 47 - lane };
                                    q.push(all[key], (t << 32) | (round * burst + i))
                                        .expect("far below capacity");
                                }
                                for _ in 0..burst {
                                    if q.pop().is_none() {
                                        empty_pops.fetch_add(1, Ordering::Relaxed);
                                    }
                                }
                            }
                        });
                    }
                });
                assert_eq!(
                    empty_pops.load(Ordering::Relaxed),
                    0,
                    "{name}, burst {burst}, capacity {capacity:?}, max_bypass {max_bypass:?}: \
                     a pop answered None while the popping thread's own items were queued"
                );
                assert_eq!((q.len(), q.is_empty(), q.pop()), (0, true, None));
            }
        }
    }
}

/// An idle consumer's pop on an empty scheduler (the double collect of the 48 lanes) allocates
/// nothing, also after lanes spilled into their overflow and were emptied again.
#[test]
fn popping_an_empty_scheduler_allocates_nothing() {
    let all = hints();
    for (capacity, max_bypass) in CONFIGS {
        let q = scheduler::<u64>(capacity, max_bypass);
        assert_eq!(q.pop(), None);
        let fresh = allocations_of(|| {
            for _ in 0..10_000 {
                assert_eq!(q.pop(), None);
            }
        });
        assert_eq!(
            fresh, 0,
            "{capacity:?} {max_bypass:?}: empty pops allocated"
        );
        // Spill every lane past its ring, then empty it.
        for hint in &all {
            for i in 0..40 {
                q.push(*hint, i).unwrap();
            }
        }
        assert_eq!(q.drain().count(), 40 * all.len());
        let used = allocations_of(|| {
            for _ in 0..10_000 {
                assert_eq!(q.pop(), None);
            }
        });
        assert_eq!(used, 0, "{capacity:?} {max_bypass:?}: empty pops allocated");
    }
}

/// One thread churns push-then-pop pairs (every pair changes a lane's state word, so a consumer's
/// double collect may keep reading a change); an idle consumer's pops must still end. Each pop
/// of the consumer returns (an item or `None`) while the churn goes on; a consumer stuck in
/// `pop` fails the test after `DEADLINE` (the churn is then stopped, so the test ends).
#[test]
fn an_idle_consumers_pops_end_while_another_thread_churns_one_lane() {
    const POPS: usize = 2_000;
    let all = hints();
    for (capacity, max_bypass) in CONFIGS {
        let q = scheduler::<usize>(capacity, max_bypass);
        let stop = AtomicBool::new(false);
        let (done, finished) = mpsc::channel();
        let (q, stop, all) = (&q, &stop, &all);
        std::thread::scope(|scope| {
            let churn = scope.spawn(move || {
                let mut i = 0_usize;
                while !stop.load(Ordering::Relaxed) {
                    q.push(all[(i % 2) * 40 + 3], i).unwrap();
                    let _ = q.pop();
                    i += 1;
                }
            });
            scope.spawn(move || {
                for _ in 0..POPS {
                    let _ = q.pop();
                }
                done.send(()).unwrap();
            });
            let ended = finished.recv_timeout(DEADLINE).is_ok();
            stop.store(true, Ordering::Relaxed);
            churn.join().unwrap();
            assert!(
                ended,
                "{capacity:?} {max_bypass:?}: an idle consumer's {POPS} pops did not end within \
                 {DEADLINE:?} while one thread churned push/pop pairs"
            );
        });
        q.drain().for_each(drop);
        assert!(q.is_empty());
    }
}

/// Producers push distinct items on every lane (spilling past the rings) while two threads drain
/// and one pops: once the producers are done every drain ends, each item is taken exactly once,
/// and the bounded `len` is back to zero.
#[test]
fn drains_beside_producers_end_and_take_every_item_once() {
    const PRODUCERS: usize = 2;
    const PER_PRODUCER: usize = 20_000;
    let all = hints();
    for (capacity, max_bypass) in CONFIGS {
        let q = scheduler::<usize>(capacity, max_bypass);
        let producing = AtomicUsize::new(PRODUCERS);
        let (q, producing, all) = (&q, &producing, &all);
        let taken: Vec<usize> = std::thread::scope(|scope| {
            for p in 0..PRODUCERS {
                scope.spawn(move || {
                    for i in 0..PER_PRODUCER {
                        let item = p * PER_PRODUCER + i;
                        q.push(all[(item * 7) % all.len()], item).unwrap();
                    }
                    producing.fetch_sub(1, Ordering::Release);
                });
            }
            let takers: Vec<_> = (0..3)
                .map(|taker| {
                    scope.spawn(move || {
                        let mut mine = Vec::new();
                        loop {
                            let last_pass = producing.load(Ordering::Acquire) == 0;
                            if taker == 0 {
                                mine.extend(q.pop());
                            } else {
                                mine.extend(q.drain());
                            }
                            if last_pass && q.is_empty() {
                                return mine;
                            }
                        }
                    })
                })
                .collect();
            takers
                .into_iter()
                .flat_map(|taker| taker.join().unwrap())
                .collect()
        });
        assert_eq!(taken.len(), PRODUCERS * PER_PRODUCER, "{capacity:?}");
        let distinct: HashSet<usize> = taken.iter().copied().collect();
        assert_eq!(distinct.len(), taken.len(), "an item was taken twice");
        assert_eq!((q.len(), q.is_empty(), q.pop()), (0, true, None));
    }
}
