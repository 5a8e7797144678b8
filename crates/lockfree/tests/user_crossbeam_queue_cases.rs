//! crossbeam-queue's SegQueue/ArrayQueue tests (spsc order, mpmc counts, drops) ported to `PriorityScheduler`, single lane and across lanes, bounded and not.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hivekit_lockfree::{PriorityScheduler, SchedulerConfig, SchedulingHint};

const DEADLINE: Duration = Duration::from_secs(30);

fn hints() -> Vec<SchedulingHint> {
    SchedulingHint::all().collect()
}

fn scheduler<T>(capacity: Option<usize>, max_bypass: Option<u32>) -> PriorityScheduler<T> {
    PriorityScheduler::with_config(SchedulerConfig {
        capacity,
        max_bypass,
    })
    .expect("valid config")
}

/// Pushes, retrying while a bounded scheduler is full (with a deadline).
fn push_retrying<T>(scheduler: &PriorityScheduler<T>, hint: SchedulingHint, mut item: T) {
    let start = Instant::now();
    loop {
        match scheduler.push(hint, item) {
            Ok(()) => return,
            Err(full) => {
                assert!(
                    start.elapsed() < DEADLINE,
                    "push never found room (lost pop?)"
                );
                item = full.into_inner();
                std::thread::yield_now();
            }
        }
    }
}

/// Pops, spinning until an item comes (with a deadline).
fn pop_waiting<T>(scheduler: &PriorityScheduler<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(item) = scheduler.pop() {
            return item;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "an item was pushed but never popped (stranded)"
        );
        std::thread::yield_now();
    }
}

#[test]
fn spsc_one_lane_keeps_fifo_order() {
    const COUNT: usize = 20_000;
    for capacity in [None, Some(3), Some(50)] {
        let q = scheduler::<usize>(capacity, None);
        let hint = SchedulingHint::default();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for i in 0..COUNT {
                    assert_eq!(pop_waiting(&q), i, "capacity {capacity:?}");
                }
                assert!(q.pop().is_none());
            });
            scope.spawn(|| {
                for i in 0..COUNT {
                    push_retrying(&q, hint, i);
                }
            });
        });
        assert!(q.is_empty());
    }
}

#[test]
fn mpmc_every_value_popped_exactly_as_often_as_pushed() {
    const COUNT: usize = 5_000;
    const THREADS: usize = 4;
    let hints = hints();
    for (capacity, max_bypass) in [(None, None), (Some(7), Some(1)), (None, Some(3))] {
        let q = scheduler::<usize>(capacity, max_bypass);
        let seen: Vec<AtomicUsize> = (0..COUNT).map(|_| AtomicUsize::new(0)).collect();
        std::thread::scope(|scope| {
            for _ in 0..THREADS {
                scope.spawn(|| {
                    for _ in 0..COUNT {
                        let n = pop_waiting(&q);
                        seen[n].fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
            for t in 0..THREADS {
                let hints = &hints;
                let q = &q;
                scope.spawn(move || {
                    for i in 0..COUNT {
                        push_retrying(q, hints[(i * 7 + t) % hints.len()], i);
                    }
                });
            }
        });
        for (value, count) in seen.iter().enumerate() {
            assert_eq!(
                count.load(Ordering::SeqCst),
                THREADS,
                "value {value}, config {capacity:?}/{max_bypass:?}"
            );
        }
        assert!(q.pop().is_none());
        assert_eq!(q.len(), 0);
        assert_eq!(q.depth_by_priority(), [0; 4]);
    }
}

struct DropCounter(Arc<AtomicUsize>);

impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn drops() {
    let hints = hints();
    let mut seed = 0x2545_F491_4F6C_DD1D_u64;
    let mut random = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    for run in 0..40 {
        let steps = random(5_000);
        let additional = random(300);
        let lanes = [1, 2, 48][run % 3];
        let capacity = if run % 4 == 3 { Some(16) } else { None };
        let drops = Arc::new(AtomicUsize::new(0));
        let q = scheduler::<DropCounter>(capacity, if run % 2 == 0 { Some(2) } else { None });
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for _ in 0..steps {
                    drop(pop_waiting(&q));
                }
            });
            scope.spawn(|| {
                for i in 0..steps {
                    push_retrying(&q, hints[(i * 5) % lanes], DropCounter(drops.clone()));
                }
            });
        });
        let mut refused = 0;
        for i in 0..additional {
            if let Err(full) = q.push(hints[(i * 3) % lanes], DropCounter(drops.clone())) {
                drop(full.into_inner());
                refused += 1;
            }
        }
        assert_eq!(drops.load(Ordering::SeqCst), steps + refused, "run {run}");
        assert_eq!(q.len(), additional - refused, "run {run}");
        drop(q);
        assert_eq!(
            drops.load(Ordering::SeqCst),
            steps + additional,
            "run {run}"
        );
    }
}
