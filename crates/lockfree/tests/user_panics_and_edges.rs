//! User code that panics inside the lock-free types, and their smallest inputs: an `update` or a
//! `read` closure that panics leaves the cell as it was and usable; a panicking `Merge` leaves no
//! aggregate half made; an aggregator or a conflict check given nothing; a scheduler of capacity 1
//! under contention hands every refused item back.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};

use hivekit_lockfree::{
    detect_conflicts, Aggregator, Merge, Priority, PriorityScheduler, Proposal, Resolution,
    SchedulerConfig, SchedulingHint, SnapshotCell, Sum,
};

#[test]
fn an_update_closure_that_panics_leaves_the_cell_unchanged_and_usable() {
    let cell = SnapshotCell::new(vec![1_u32, 2, 3]);
    let held = cell.load();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        cell.update(|_| panic!("bad update"));
    }));
    assert!(outcome.is_err());
    assert_eq!(cell.version(), 0);
    assert_eq!(*cell.load(), [1, 2, 3]);
    assert_eq!(
        cell.update(|values| values.iter().map(|v| v * 2).collect()),
        1
    );
    assert_eq!(*cell.load(), [2, 4, 6]);
    assert_eq!(*held, [1, 2, 3], "a snapshot taken before keeps its value");
    assert_eq!(held.version(), 0);
}

#[test]
fn a_read_closure_that_panics_leaves_the_cell_readable_and_writable_from_every_thread() {
    let cell = SnapshotCell::new(String::from("start"));
    for _ in 0..100 {
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            cell.read(|_, _| panic!("bad read"));
        }));
        assert!(outcome.is_err());
    }
    std::thread::scope(|scope| {
        for thread in 0..4 {
            let cell = &cell;
            scope.spawn(move || {
                for step in 0..100 {
                    cell.update(|text| format!("{text}.{thread}{step}"));
                    cell.read(|text, version| assert!(!text.is_empty() && version > 0));
                }
            });
        }
    });
    assert_eq!(cell.version(), 400);
}

#[derive(Debug, Clone, PartialEq)]
struct Exploding(u32);

impl Merge for Exploding {
    fn merge(&mut self, other: Self) {
        assert!(other.0 != 13, "unlucky merge");
        self.0 += other.0;
    }
}

#[test]
fn an_aggregator_whose_merge_panics_unwinds_to_the_caller() {
    let aggregator = Aggregator::new();
    for id in 1..=20_u64 {
        aggregator
            .submit(Proposal::new(id, Exploding(id as u32)).writes([id]))
            .expect("distinct ids");
    }
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        aggregator.finish(Resolution::RejectAll)
    }));
    assert!(
        outcome.is_err(),
        "the merge of 13 panics and the panic reaches the caller"
    );
}

#[test]
fn an_aggregator_given_nothing_finishes_with_nothing() {
    let aggregator: Aggregator<&str, Sum<u64>> = Aggregator::new();
    assert!(aggregator.is_empty());
    let outcome = aggregator.finish(Resolution::HighestPriority);
    assert_eq!(outcome.merged, None);
    assert!(outcome.accepted.is_empty() && outcome.rejected.is_empty());
    let report = detect_conflicts::<&str, ()>(&[]).expect("no proposals is fine");
    assert!(report.groups.is_empty() && report.independent.is_empty());
}

#[test]
fn proposals_without_keys_never_conflict() {
    let proposals: Vec<Proposal<&str, ()>> = (1..=5).map(|id| Proposal::new(id, ())).collect();
    let report = detect_conflicts(&proposals).expect("valid");
    assert!(report.groups.is_empty());
    assert_eq!(report.independent.len(), 5);
}

#[test]
fn a_scheduler_of_capacity_one_under_contention_hands_every_refused_item_back() {
    let scheduler = PriorityScheduler::with_config(SchedulerConfig {
        capacity: Some(1),
        ..SchedulerConfig::default()
    })
    .expect("valid config");
    let refused = AtomicUsize::new(0);
    let popped = AtomicUsize::new(0);
    let per_thread = 2_000;
    std::thread::scope(|scope| {
        for thread in 0..3_usize {
            let (scheduler, refused, popped) = (&scheduler, &refused, &popped);
            scope.spawn(move || {
                for step in 0..per_thread {
                    let item = thread * per_thread + step;
                    let hint = SchedulingHint {
                        priority: Priority::High,
                        ..SchedulingHint::default()
                    };
                    match scheduler.push(hint, item) {
                        Ok(()) => {}
                        Err(full) => {
                            assert_eq!(full.into_inner(), item, "the refused item comes back");
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    if scheduler.pop().is_some() {
                        popped.fetch_add(1, Ordering::Relaxed);
                    }
                    assert!(scheduler.len() <= 1, "capacity 1 holds at most one item");
                }
            });
        }
    });
    while scheduler.pop().is_some() {
        popped.fetch_add(1, Ordering::Relaxed);
    }
    assert_eq!(
        popped.load(Ordering::Relaxed) + refused.load(Ordering::Relaxed),
        3 * per_thread,
        "every item is either popped once or handed back"
    );
    assert!(scheduler.is_empty());
}
