//! The queue designs kept as rows of `benches/scheduler.rs` that are not the scheduler itself
//! (`benches/support/queues.rs`): every pushed item is popped exactly once and per-producer FIFO
//! order holds within a sort key, under concurrent producers and consumers. The rows are compared
//! with the scheduler, so they must be correct queues; the stamped lanes (`hivekit-stamped-lanes`)
//! are a lane design of their own, with a pop that skips a slot whose value is not yet written.

#[path = "../benches/support/mod.rs"]
mod support;

use support::queues::{shared_queues, SyncQueue};

#[path = "support/mpmc.rs"]
mod mpmc;

use mpmc::run_mpmc;

/// Runs producers and consumers together on `queue`; returns how many times each item was popped.
fn run(name: &str, queue: &dyn SyncQueue) -> Vec<usize> {
    run_mpmc(
        name,
        |hint, item| queue.push(hint, item as u64),
        || queue.pop().map(|item| item as usize),
    )
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

/// The compact-lane probe rows (`hivekit-compact-lanes`) are left out: their FIFO order is exact
/// only between pushes that do not race (see `CompactLane` in `benches/support/queues.rs`), and the
/// harness asserts it; the scheduler's own compact lanes keep it exactly (`scheduler_lane_spill.rs`).
#[test]
fn segqueue_and_shared_ends_lanes_pop_every_item_exactly_once() {
    for _ in 0..5 {
        for (name, queue) in shared_queues() {
            if !(name.starts_with("hivekit-segqueue-lanes")
                || name == "hivekit-stamped-shared-ends")
            {
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

#[test]
fn compact_lanes_keep_fifo_across_the_spill_on_one_thread() {
    use hivekit_lockfree::SchedulingHint;
    for (name, queue) in shared_queues() {
        if !name.starts_with("hivekit-compact") {
            continue;
        }
        // Far past the inline ring: the overflow fills and drains while the ring refills.
        for item in 0..100 {
            queue.push(SchedulingHint::default(), item);
        }
        for item in 0..50 {
            assert_eq!(queue.pop(), Some(item), "{name}");
        }
        for item in 100..130 {
            queue.push(SchedulingHint::default(), item);
        }
        for item in 50..130 {
            assert_eq!(queue.pop(), Some(item), "{name}");
        }
        assert_eq!(queue.pop(), None, "{name}");
    }
}

/// Not a check but a measurement for the bench's module doc: in the `mpmc` rows' loop (pinned
/// threads, depth 1k, push-then-pop pairs), which item each pop takes: the one its own pair just
/// pushed, another of its own thread's, another thread's, or a prefill item. Run with
/// `cargo test --release -p hivekit-lockfree --test scheduler_bench_rows -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, printed; run it with --ignored --nocapture"]
fn where_the_popped_items_come_from() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use support::queues::{hints, pair, prefill};

    const PAIRS: u64 = 400_000;
    const STRIDE: u64 = 1 << 40;
    let hints = hints();
    for threads in [1, 2, 4] {
        for (name, queue) in shared_queues() {
            prefill(queue.as_ref(), &hints, 1_000);
            // [own pair, own thread, other thread, prefill]
            let counts: [AtomicU64; 4] = std::array::from_fn(|_| AtomicU64::new(0));
            benches_common::threads::time_threads(threads, PAIRS, |thread, iterations| {
                let base = (thread as u64 + 1) * STRIDE;
                let mut local = [0_u64; 4];
                for round in 0..iterations {
                    let item = base + round;
                    let source = match pair(queue.as_ref(), &hints, item) {
                        Some(popped) if popped == item => 0,
                        Some(popped) if popped / STRIDE == thread as u64 + 1 => 1,
                        Some(popped) if popped >= STRIDE => 2,
                        _ => 3,
                    };
                    local[source] += 1;
                }
                for (count, value) in counts.iter().zip(local) {
                    count.fetch_add(value, Ordering::Relaxed);
                }
            });
            let total = PAIRS * threads as u64;
            let percent: Vec<String> = counts
                .iter()
                .map(|count| {
                    format!(
                        "{:.1}%",
                        100.0 * count.load(Ordering::Relaxed) as f64 / total as f64
                    )
                })
                .collect();
            println!(
                "{threads}t {name}: own pair / own thread / other thread / prefill = {percent:?}"
            );
        }
    }
}

/// Not a check but a measurement: the `mpmc` rows' pair, timed one by one (`rdtsc`), split by what
/// its pop took: the item its own push just pushed, an item of a lower lane than that push's (a
/// forced pop), an older item of the push's own lane (the push queued behind a backlog), an item of
/// a higher lane pushed by the same thread (the cascade: an item a forced pop left behind) or by
/// another thread (or the prefill). Says which pops the extra time of anti-starvation goes to.
/// Run with `cargo test --release -p hivekit-lockfree --test scheduler_bench_rows -- --ignored --nocapture`.
#[cfg(target_arch = "x86_64")]
#[test]
#[ignore = "a measurement, printed; run it with --ignored --nocapture"]
fn where_the_pair_time_goes() {
    use std::arch::x86_64::_rdtsc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use support::queues::{hints, pair, prefill, STREAM};

    const PAIRS: u64 = 4_000_000;
    const STRIDE: u64 = 1 << 40;
    let hints = hints();
    let lane_of = |item: u64| usize::from(hints[item as usize & (STREAM - 1)].sort_key());
    for threads in [1, 2, 4] {
        for (name, queue) in shared_queues() {
            if !matches!(name, "hivekit" | "hivekit-strict" | "hivekit-unforced") {
                continue;
            }
            prefill(queue.as_ref(), &hints, 1_000);
            // [count, TSC cycles] per class (see `classes` below).
            let counts: [AtomicU64; 10] = std::array::from_fn(|_| AtomicU64::new(0));
            benches_common::threads::time_threads(threads, PAIRS, |thread, iterations| {
                let base = (thread as u64 + 1) * STRIDE;
                let mut local = [0_u64; 10];
                for round in 0..iterations {
                    let item = base + round;
                    // SAFETY: `rdtsc` has no preconditions on x86-64.
                    let start = unsafe { _rdtsc() };
                    let popped = pair(queue.as_ref(), &hints, item);
                    // SAFETY: as above.
                    let cycles = unsafe { _rdtsc() } - start;
                    let class = match popped {
                        Some(popped) if popped == item => 0,
                        Some(popped) if lane_of(popped) < lane_of(item) => 1,
                        Some(popped) if lane_of(popped) == lane_of(item) => 2,
                        Some(popped) if popped / STRIDE == thread as u64 + 1 => 3,
                        _ => 4,
                    };
                    // Drop preemptions (a time slice lost inside the pair).
                    if cycles < 200_000 {
                        local[2 * class] += 1;
                        local[2 * class + 1] += cycles;
                    }
                }
                for (count, value) in counts.iter().zip(local) {
                    count.fetch_add(value, Ordering::Relaxed);
                }
            });
            let total: u64 = (0..5)
                .map(|class| counts[2 * class].load(Ordering::Relaxed))
                .sum();
            let mut line = format!("{threads}t {name}:");
            let classes = [
                "own",
                "forced",
                "same-lane-older",
                "own-thread-higher",
                "other-higher",
            ];
            for (class, label) in classes.iter().enumerate() {
                let count = counts[2 * class].load(Ordering::Relaxed);
                let cycles = counts[2 * class + 1].load(Ordering::Relaxed);
                line += &format!(
                    " {label} {:.1}% x {:.0} cyc = {:.1} cyc/pair;",
                    100.0 * count as f64 / total as f64,
                    cycles as f64 / count.max(1) as f64,
                    cycles as f64 / total as f64
                );
            }
            println!("{line}");
        }
    }
}
