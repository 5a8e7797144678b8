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
