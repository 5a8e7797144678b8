//! A user `Hash` that panics inside `Aggregator::finish`/`aggregate`, or a payload whose `Drop` panics: every payload is still dropped exactly once.

use std::hash::{Hash, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hivekit_lockfree::{aggregate, Aggregator, Merge, Proposal, Resolution};

/// A key whose `Hash` panics on the call numbered `panic_at` of its shared counter.
#[derive(Clone)]
struct Key {
    value: u64,
    calls: Arc<AtomicUsize>,
    panic_at: usize,
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}
impl Eq for Key {}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        if self.calls.fetch_add(1, Ordering::SeqCst) == self.panic_at {
            panic!("a user Hash that panics");
        }
        self.value.hash(state);
    }
}

/// Counts drops; merging adds nothing. Panics in `drop` when `bomb` (and not already unwinding).
struct Payload {
    drops: Arc<AtomicUsize>,
    bomb: bool,
}

impl Drop for Payload {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
        if self.bomb && !std::thread::panicking() {
            panic!("a payload Drop that panics");
        }
    }
}

impl Merge for Payload {
    fn merge(&mut self, other: Self) {
        drop(other);
    }
}

fn proposals(
    count: u64,
    drops: &Arc<AtomicUsize>,
    calls: &Arc<AtomicUsize>,
    panic_at: usize,
    bomb: Option<u64>,
) -> Vec<Proposal<Key, Payload>> {
    (0..count)
        .map(|id| {
            let key = |value| Key {
                value,
                calls: calls.clone(),
                panic_at,
            };
            Proposal::new(
                id,
                Payload {
                    drops: drops.clone(),
                    bomb: bomb == Some(id),
                },
            )
            // Every fourth proposal shares key 0 with the others: conflicts, so the full scan runs.
            .writes([key(if id % 4 == 0 { 0 } else { id })])
            .reads([key(id + 1_000_000)])
        })
        .collect()
}

#[test]
fn a_hash_that_panics_inside_finish_drops_every_payload_once() {
    for (threshold, count) in [
        (usize::MAX, 40_u64),
        (0, 40),
        (0, 20_000),
        (usize::MAX, 20_000),
    ] {
        let drops = Arc::new(AtomicUsize::new(0));
        let calls = Arc::new(AtomicUsize::new(0));
        let aggregator = Aggregator::with_parallel_threshold(threshold);
        for proposal in proposals(count, &drops, &calls, (count as usize) / 2, None) {
            aggregator.submit(proposal).unwrap();
        }
        let unwound = catch_unwind(AssertUnwindSafe(|| {
            aggregator.finish(Resolution::HighestPriority)
        }));
        assert!(
            unwound.is_err(),
            "the Hash panic unwinds ({threshold}, {count})"
        );
        assert_eq!(
            drops.load(Ordering::SeqCst),
            count as usize,
            "threshold {threshold}, {count} proposals"
        );
    }
}

#[test]
fn a_hash_that_panics_inside_aggregate_drops_every_payload_once() {
    for count in [40_u64, 20_000] {
        let drops = Arc::new(AtomicUsize::new(0));
        let calls = Arc::new(AtomicUsize::new(0));
        let input = proposals(count, &drops, &calls, count as usize, None);
        let unwound = catch_unwind(AssertUnwindSafe(|| {
            aggregate(input, Resolution::FirstSubmitted)
        }));
        assert!(unwound.is_err());
        assert_eq!(
            drops.load(Ordering::SeqCst),
            count as usize,
            "{count} proposals"
        );
    }
}

#[test]
fn a_rejected_payload_whose_drop_panics_does_not_leak_the_others() {
    for threshold in [usize::MAX, 0] {
        let drops = Arc::new(AtomicUsize::new(0));
        let calls = Arc::new(AtomicUsize::new(0));
        let aggregator = Aggregator::with_parallel_threshold(threshold);
        // Proposal 4 writes key 0, as 0, 8, 12, .. do, and loses to 0 (FirstSubmitted): its payload is dropped inside finish.
        for proposal in proposals(100, &drops, &calls, usize::MAX, Some(4)) {
            aggregator.submit(proposal).unwrap();
        }
        let unwound = catch_unwind(AssertUnwindSafe(|| {
            aggregator.finish(Resolution::FirstSubmitted)
        }));
        if let Ok(outcome) = unwound {
            drop(outcome);
        }
        assert_eq!(drops.load(Ordering::SeqCst), 100, "threshold {threshold}");
    }
}
