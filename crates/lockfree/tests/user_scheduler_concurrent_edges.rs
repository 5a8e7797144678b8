//! Concurrent edges: Arc across 8 threads dropped with items inside, capacity-edge races, quiescent counts, per-producer FIFO with aging, zero-sized and 4 KiB items.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use hivekit_lockfree::{
    LatencyTier, Priority, PriorityScheduler, ResourceCost, SchedulerConfig, SchedulingHint,
};

const THREADS: usize = 8;

/// Runs `f` on a thread and fails if it does not finish within `secs` seconds.
fn bounded<R: Send + 'static>(secs: u64, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let _ = tx.send(result);
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(Ok(r)) => r,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("did not finish within {secs} s (hang or livelock)"),
    }
}

fn hint_of(n: usize) -> SchedulingHint {
    SchedulingHint::new(
        Priority::ALL[n % 4],
        LatencyTier::ALL[(n / 4) % 3],
        ResourceCost::ALL[(n / 12) % 4],
    )
}

fn config(capacity: Option<usize>, max_bypass: Option<u32>) -> SchedulerConfig {
    SchedulerConfig {
        capacity,
        max_bypass,
    }
}

/// An item that counts its drops by id.
struct Tracked {
    id: usize,
    drops: Arc<Vec<AtomicUsize>>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.drops[self.id].fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn shared_by_arc_across_8_threads_then_dropped_with_items_inside_drops_each_item_once() {
    for (capacity, max_bypass) in [
        (None, None),
        (Some(300), Some(1)),
        (None, Some(u32::MAX)),
        (Some(usize::MAX), Some(2)),
    ] {
        bounded(30, move || {
            const PER: usize = 600;
            let drops: Arc<Vec<AtomicUsize>> =
                Arc::new((0..THREADS * PER).map(|_| AtomicUsize::new(0)).collect());
            let scheduler = Arc::new(
                PriorityScheduler::<Tracked>::with_config(config(capacity, max_bypass)).unwrap(),
            );
            let barrier = Arc::new(Barrier::new(THREADS));
            let handles: Vec<_> = (0..THREADS)
                .map(|t| {
                    let scheduler = Arc::clone(&scheduler);
                    let drops = Arc::clone(&drops);
                    let barrier = Arc::clone(&barrier);
                    std::thread::spawn(move || {
                        barrier.wait();
                        let mut refused = 0;
                        for i in 0..PER {
                            let id = t * PER + i;
                            let item = Tracked {
                                id,
                                drops: Arc::clone(&drops),
                            };
                            match scheduler.push(hint_of(id), item) {
                                Ok(()) => {}
                                Err(full) => {
                                    let back = full.into_inner();
                                    assert_eq!(back.id, id, "Full gave back another item");
                                    refused += 1;
                                    // dropped here: counted once
                                }
                            }
                            if i % 3 == 0 {
                                drop(scheduler.pop()); // popped items dropped here
                            }
                        }
                        refused
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
            let left = scheduler.len();
            assert_eq!(scheduler.depth_by_priority().iter().sum::<usize>(), left);
            assert_eq!(scheduler.is_empty(), left == 0);
            if let Some(c) = capacity {
                assert!(left <= c, "len {left} above capacity {c}");
            }
            let dropped_before: usize = drops.iter().map(|d| d.load(Ordering::SeqCst)).sum();
            assert_eq!(
                dropped_before + left,
                THREADS * PER,
                "items lost or duplicated"
            );
            drop(scheduler); // the last Arc: the items inside are dropped now
            for (id, d) in drops.iter().enumerate() {
                assert_eq!(
                    d.load(Ordering::SeqCst),
                    1,
                    "item {id} dropped {} times ({capacity:?}, {max_bypass:?})",
                    d.load(Ordering::SeqCst)
                );
            }
        });
    }
}

#[test]
fn pushes_racing_pops_at_the_capacity_edge_lose_nothing() {
    for capacity in [1, 2, 7, 9] {
        for max_bypass in [None, Some(1), Some(u32::MAX - 1)] {
            bounded(30, move || {
                const PRODUCERS: usize = 4;
                const PER: usize = 1_500;
                let scheduler =
                    PriorityScheduler::<usize>::with_config(config(Some(capacity), max_bypass))
                        .unwrap();
                let popped: Vec<AtomicUsize> =
                    (0..PRODUCERS * PER).map(|_| AtomicUsize::new(0)).collect();
                let total = AtomicUsize::new(0);
                std::thread::scope(|s| {
                    for p in 0..PRODUCERS {
                        let scheduler = &scheduler;
                        s.spawn(move || {
                            for i in 0..PER {
                                let mut item = p * PER + i;
                                let mut spins = 0_u64;
                                loop {
                                    match scheduler.push(hint_of(item % 5), item) {
                                        Ok(()) => break,
                                        Err(full) => {
                                            let back = full.into_inner();
                                            assert_eq!(back, item, "Full gave back another item");
                                            item = back;
                                            spins += 1;
                                            assert!(spins < 50_000_000, "never accepted");
                                            std::thread::yield_now();
                                        }
                                    }
                                }
                            }
                        });
                    }
                    for _ in 0..4 {
                        let (scheduler, popped, total) = (&scheduler, &popped, &total);
                        s.spawn(move || {
                            let mut spins = 0_u64;
                            while total.load(Ordering::SeqCst) < PRODUCERS * PER {
                                match scheduler.pop() {
                                    Some(item) => {
                                        popped[item].fetch_add(1, Ordering::SeqCst);
                                        total.fetch_add(1, Ordering::SeqCst);
                                    }
                                    None => {
                                        spins += 1;
                                        assert!(spins < 50_000_000, "items never arrived");
                                        std::thread::yield_now();
                                    }
                                }
                            }
                        });
                    }
                });
                for (item, count) in popped.iter().enumerate() {
                    assert_eq!(
                        count.load(Ordering::SeqCst),
                        1,
                        "item {item}, capacity {capacity}, max_bypass {max_bypass:?}"
                    );
                }
                assert_eq!(scheduler.len(), 0);
                assert!(scheduler.is_empty());
                assert_eq!(scheduler.depth_by_priority(), [0; 4]);
                assert_eq!(scheduler.pop(), None);
            });
        }
    }
}

#[test]
fn counts_are_exact_and_consistent_at_every_quiescent_point() {
    for (capacity, max_bypass) in [(None, None), (Some(5_000), Some(3)), (None, Some(1))] {
        bounded(30, move || {
            const ROUNDS: usize = 20;
            let scheduler = Arc::new(
                PriorityScheduler::<usize>::with_config(config(capacity, max_bypass)).unwrap(),
            );
            let barrier = Arc::new(Barrier::new(THREADS + 1));
            let handles: Vec<_> = (0..THREADS)
                .map(|t| {
                    let (scheduler, barrier) = (Arc::clone(&scheduler), Arc::clone(&barrier));
                    std::thread::spawn(move || {
                        for round in 0..ROUNDS {
                            // Phase 1: thread t pushes 10 + t items (keys by id), pops 3.
                            for i in 0..10 + t {
                                scheduler.push(hint_of(t * 7 + i + round), i).unwrap();
                            }
                            for _ in 0..3 {
                                assert!(scheduler.pop().is_some());
                            }
                            barrier.wait();
                            barrier.wait(); // main checks
                                            // Phase 2: pop about half of what is left.
                            for _ in 0..(10 + t - 3) / 2 {
                                scheduler.pop();
                            }
                            barrier.wait();
                            barrier.wait();
                            while scheduler.pop().is_some() {}
                            barrier.wait();
                            barrier.wait();
                        }
                    })
                })
                .collect();
            let pushed_per_round: usize = (0..THREADS).map(|t| 10 + t).sum();
            for round in 0..ROUNDS {
                barrier.wait();
                let len = scheduler.len();
                assert_eq!(len, pushed_per_round - 3 * THREADS, "round {round} phase 1");
                assert_eq!(scheduler.depth_by_priority().iter().sum::<usize>(), len);
                assert!(!scheduler.is_empty());
                barrier.wait();
                barrier.wait();
                let len = scheduler.len();
                assert_eq!(scheduler.depth_by_priority().iter().sum::<usize>(), len);
                assert_eq!(scheduler.is_empty(), len == 0);
                barrier.wait();
                barrier.wait();
                assert_eq!(scheduler.len(), 0, "round {round}: drained");
                assert!(scheduler.is_empty());
                assert_eq!(scheduler.depth_by_priority(), [0; 4]);
                barrier.wait();
            }
            for h in handles {
                h.join().unwrap();
            }
        });
    }
}

#[test]
fn fifo_per_producer_within_a_key_under_concurrent_pops_with_any_bypass_setting() {
    for max_bypass in [None, Some(1), Some(2), Some(u32::MAX - 1), Some(u32::MAX)] {
        bounded(30, move || {
            const PRODUCERS: usize = 3;
            const CONSUMERS: usize = 3;
            const PER: usize = 3_000;
            let scheduler =
                PriorityScheduler::<(usize, usize)>::with_config(config(None, max_bypass)).unwrap();
            let seen = AtomicUsize::new(0);
            std::thread::scope(|s| {
                for p in 0..PRODUCERS {
                    let scheduler = &scheduler;
                    s.spawn(move || {
                        for i in 0..PER {
                            // Three keys per producer; the sequence number orders within each.
                            scheduler.push(hint_of(p * 3 + i % 3), (p, i)).unwrap();
                        }
                    });
                }
                for _ in 0..CONSUMERS {
                    let (scheduler, seen) = (&scheduler, &seen);
                    s.spawn(move || {
                        // Last sequence number seen per (producer, key offset).
                        let mut last = [[None::<usize>; 3]; PRODUCERS];
                        let mut spins = 0_u64;
                        while seen.load(Ordering::SeqCst) < PRODUCERS * PER {
                            let Some((p, i)) = scheduler.pop() else {
                                spins += 1;
                                assert!(spins < 50_000_000, "items never arrived");
                                std::thread::yield_now();
                                continue;
                            };
                            seen.fetch_add(1, Ordering::SeqCst);
                            let slot = &mut last[p][i % 3];
                            if let Some(prev) = *slot {
                                assert!(
                                    prev < i,
                                    "producer {p} key {}: {i} popped after {prev} ({max_bypass:?})",
                                    hint_of(p * 3 + i % 3).sort_key()
                                );
                            }
                            *slot = Some(i);
                        }
                    });
                }
            });
            assert_eq!(seen.load(Ordering::SeqCst), PRODUCERS * PER);
            assert!(scheduler.is_empty());
            assert_eq!(scheduler.pop(), None);
        });
    }
}

static ZST_DROPS: AtomicUsize = AtomicUsize::new(0);

/// Zero-sized, counted when dropped.
struct Zst;

impl Drop for Zst {
    fn drop(&mut self) {
        ZST_DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn zero_sized_items_are_counted_popped_and_dropped_exactly() {
    assert_eq!(std::mem::size_of::<Zst>(), 0);
    bounded(30, || {
        const PER: usize = 2_000;
        let scheduler = Arc::new(
            PriorityScheduler::<Zst>::with_config(config(Some(3 * PER), Some(1))).unwrap(),
        );
        let popped = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for t in 0..4 {
                let (scheduler, popped) = (&scheduler, &popped);
                s.spawn(move || {
                    for i in 0..PER {
                        scheduler.push(hint_of(t + i % 2), Zst).unwrap();
                        if i % 2 == 0 && scheduler.pop().is_some() {
                            popped.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                });
            }
        });
        let popped = popped.load(Ordering::SeqCst);
        assert_eq!(ZST_DROPS.load(Ordering::SeqCst), popped);
        assert_eq!(scheduler.len(), 4 * PER - popped);
        assert_eq!(
            scheduler.depth_by_priority().iter().sum::<usize>(),
            4 * PER - popped
        );
        // Pop a few, leave the rest to the drop.
        for _ in 0..10 {
            assert!(scheduler.pop().is_some());
        }
        drop(scheduler);
        assert_eq!(ZST_DROPS.load(Ordering::SeqCst), 4 * PER);
    });
}

#[test]
fn four_kib_items_arrive_intact_exactly_once() {
    bounded(30, || {
        const PRODUCERS: usize = 4;
        const PER: usize = 500;
        type Big = [u64; 512];
        let scheduler =
            PriorityScheduler::<Box<Big>>::with_config(config(Some(64), Some(2))).unwrap();
        let counts: Vec<AtomicUsize> = (0..PRODUCERS * PER).map(|_| AtomicUsize::new(0)).collect();
        let total = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for p in 0..PRODUCERS {
                let scheduler = &scheduler;
                s.spawn(move || {
                    for i in 0..PER {
                        let id = (p * PER + i) as u64;
                        let mut item = Box::new([id; 512]);
                        while let Err(full) = scheduler.push(hint_of(i % 3), item) {
                            item = full.into_inner();
                            assert_eq!(item[0], id);
                            std::thread::yield_now();
                        }
                    }
                });
            }
            for _ in 0..2 {
                let (scheduler, counts, total) = (&scheduler, &counts, &total);
                s.spawn(move || {
                    while total.load(Ordering::SeqCst) < PRODUCERS * PER {
                        if let Some(item) = scheduler.pop() {
                            let id = item[0];
                            assert!(item.iter().all(|&w| w == id), "torn 4 KiB item {id}");
                            counts[id as usize].fetch_add(1, Ordering::SeqCst);
                            total.fetch_add(1, Ordering::SeqCst);
                        } else {
                            std::thread::yield_now();
                        }
                    }
                });
            }
        });
        assert!(counts.iter().all(|c| c.load(Ordering::SeqCst) == 1));
        assert!(scheduler.is_empty());
    });
}

#[test]
fn four_kib_inline_items_keep_fifo_and_drop_when_left_inside() {
    // The items themselves are 4 KiB (not boxed): they live in the lane rings and the overflow.
    bounded(30, || {
        let scheduler =
            PriorityScheduler::<[u32; 1024]>::with_config(config(None, Some(1))).unwrap();
        let hint = SchedulingHint::with_priority(Priority::High);
        for i in 0..40_u32 {
            scheduler.push(hint, [i; 1024]).unwrap();
        }
        for i in 0..20_u32 {
            let item = scheduler.pop().expect("an item");
            assert!(
                item.iter().all(|&w| w == i),
                "FIFO broken or item torn at {i}"
            );
        }
        assert_eq!(scheduler.len(), 20);
        assert_eq!(scheduler.depth_by_priority()[Priority::High.index()], 20);
        drop(scheduler);
    });
}
