//! User-level checks of the lock-free crate as arc-swap/crossbeam users exercise it: snapshot
//! versions and drops, the scheduler's order, anti-starvation and exactly-once delivery, and
//! conflict detection on small hand-checked inputs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use hivekit_lockfree::{
    detect_conflicts, CommitError, ConflictKind, Priority, PriorityScheduler, Proposal,
    ProposalError, ProposalId, SchedulerConfig, SchedulingHint, SnapshotCell,
};

/// Counts its drops in a shared counter.
struct Counted(Arc<AtomicUsize>, u32);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_held_snapshot_stays_unchanged_across_many_stores_and_versions_grow_by_one() {
    let cell = SnapshotCell::new(0_u32);
    let held = cell.load();
    let mut last = 0;
    for value in 1..=1_000_u32 {
        let version = cell.store(value);
        assert_eq!(version, last + 1);
        last = version;
    }
    assert_eq!((*held.value(), held.version()), (0, 0));
    assert_eq!(
        cell.read(|value, version| (*value, version)),
        (1_000, 1_000)
    );
}

#[test]
fn a_commit_staged_on_a_stale_snapshot_conflicts_and_gives_the_value_back() {
    let cell = SnapshotCell::new(String::from("a"));
    let snapshot = cell.load();
    assert_eq!(cell.store("b".into()), 1);
    match cell.commit(snapshot.stage("c".into())) {
        Err(CommitError::Conflict {
            base,
            current,
            value,
        }) => assert_eq!((base, current, value.as_str()), (0, 1, "c")),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(*cell.load(), "b");
    let fresh = cell.load();
    assert_eq!(cell.commit(fresh.stage("d".into())).ok(), Some(2));
}

#[test]
fn every_value_is_dropped_exactly_once() {
    let drops = Arc::new(AtomicUsize::new(0));
    {
        let cell = SnapshotCell::new(Counted(drops.clone(), 0));
        let held = cell.load();
        for i in 1..=100 {
            cell.store(Counted(drops.clone(), i));
        }
        let refused = cell.commit(held.stage(Counted(drops.clone(), 999)));
        let value = refused.unwrap_err().into_value();
        assert_eq!(value.1, 999);
        drop(value);
        cell.update(|old| Counted(drops.clone(), old.1 + 1));
        assert_eq!(held.value().1, 0);
        drop(held);
    }
    // 1 initial + 100 stores + 1 refused + 1 update = 103 values, each dropped once (the cell
    // may defer reclamation, but dropping the cell frees everything it still holds).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while drops.load(Ordering::SeqCst) < 103 && std::time::Instant::now() < deadline {
        // Deferred reclamation runs on epoch advances: pin and flush by loading another cell.
        let other = SnapshotCell::new(0_u8);
        for _ in 0..64 {
            other.store(1);
        }
        std::thread::yield_now();
    }
    assert_eq!(drops.load(Ordering::SeqCst), 103);
}

fn hint(priority: Priority) -> SchedulingHint {
    SchedulingHint::with_priority(priority)
}

#[test]
fn scheduler_pops_by_priority_fifo_within_one() {
    let scheduler = PriorityScheduler::new();
    let order = [
        (Priority::Low, 1),
        (Priority::High, 2),
        (Priority::Normal, 3),
        (Priority::High, 4),
        (Priority::Critical, 5),
        (Priority::Low, 6),
    ];
    for (priority, item) in order {
        scheduler.push(hint(priority), item).unwrap();
    }
    assert_eq!(scheduler.len(), 6);
    assert!(!scheduler.is_empty());
    let popped: Vec<i32> = std::iter::from_fn(|| scheduler.pop()).collect();
    assert_eq!(popped, [5, 2, 4, 3, 1, 6]);
    assert!(scheduler.is_empty());
    assert_eq!(scheduler.len(), 0);
}

#[test]
fn anti_starvation_serves_a_waiting_lower_lane_after_max_bypass_pops() {
    let scheduler = PriorityScheduler::with_config(SchedulerConfig {
        capacity: None,
        max_bypass: Some(2),
    })
    .unwrap();
    for i in 0..6 {
        scheduler
            .push(hint(Priority::High), format!("h{i}"))
            .unwrap();
    }
    scheduler.push(hint(Priority::Low), "l0".into()).unwrap();
    scheduler.push(hint(Priority::Low), "l1".into()).unwrap();
    let popped: Vec<String> = std::iter::from_fn(|| scheduler.pop()).collect();
    assert_eq!(popped, ["h0", "h1", "l0", "h2", "h3", "l1", "h4", "h5"]);
}

#[test]
fn anti_starvation_walks_waiting_lanes_round_robin() {
    let scheduler = PriorityScheduler::with_config(SchedulerConfig {
        capacity: None,
        max_bypass: Some(1),
    })
    .unwrap();
    for i in 0..4 {
        scheduler
            .push(hint(Priority::Critical), format!("c{i}"))
            .unwrap();
    }
    for i in 0..2 {
        scheduler
            .push(hint(Priority::Normal), format!("n{i}"))
            .unwrap();
        scheduler
            .push(hint(Priority::Low), format!("l{i}"))
            .unwrap();
    }
    let popped: Vec<String> = std::iter::from_fn(|| scheduler.pop()).collect();
    // k = 1: top, forced (highest below the top: n0), top, forced (below n's lane: l0), top,
    // forced (wraps: n1), top(c3)... then only n/l remain.
    assert_eq!(popped, ["c0", "n0", "c1", "l0", "c2", "n1", "c3", "l1"]);
}

#[test]
fn a_bounded_scheduler_refuses_past_capacity_and_accepts_after_a_pop() {
    let scheduler = PriorityScheduler::with_config(SchedulerConfig {
        capacity: Some(2),
        max_bypass: None,
    })
    .unwrap();
    scheduler.push(hint(Priority::Low), 1).unwrap();
    scheduler.push(hint(Priority::Low), 2).unwrap();
    assert_eq!(
        scheduler
            .push(hint(Priority::Critical), 3)
            .unwrap_err()
            .into_inner(),
        3
    );
    assert_eq!(scheduler.len(), 2);
    assert_eq!(scheduler.pop(), Some(1));
    scheduler.push(hint(Priority::Critical), 3).unwrap();
    assert_eq!(scheduler.pop(), Some(3));
    assert_eq!(scheduler.pop(), Some(2));
    assert_eq!(scheduler.pop(), None);
}

#[test]
fn four_producers_and_four_consumers_see_every_item_exactly_once() {
    const PER_PRODUCER: usize = 2_000;
    let scheduler = PriorityScheduler::new();
    let seen = Mutex::new(vec![0_u8; 4 * PER_PRODUCER]);
    let produced = AtomicUsize::new(0);
    let taken = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for producer in 0..4 {
            let scheduler = &scheduler;
            let produced = &produced;
            scope.spawn(move || {
                for i in 0..PER_PRODUCER {
                    let item = producer * PER_PRODUCER + i;
                    scheduler
                        .push(SchedulingHint::all().nth(item % 48).unwrap(), item)
                        .unwrap();
                    produced.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        for _ in 0..4 {
            let (scheduler, seen, taken, produced) = (&scheduler, &seen, &taken, &produced);
            scope.spawn(move || {
                let mut mine = Vec::new();
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
                while taken.load(Ordering::SeqCst) < 4 * PER_PRODUCER {
                    assert!(std::time::Instant::now() < deadline, "consumers stuck");
                    match scheduler.pop() {
                        Some(item) => {
                            mine.push(item);
                            taken.fetch_add(1, Ordering::SeqCst);
                        }
                        None => {
                            let _ = produced.load(Ordering::SeqCst);
                            std::thread::yield_now();
                        }
                    }
                }
                let mut seen = seen.lock().unwrap();
                for item in mine {
                    seen[item] += 1;
                }
            });
        }
    });
    assert!(seen.into_inner().unwrap().iter().all(|&count| count == 1));
    assert!(scheduler.is_empty());
}

#[test]
fn conflict_detection_of_no_proposals_and_of_one_is_empty() {
    let none: [Proposal<&str, ()>; 0] = [];
    let report = detect_conflicts(&none).unwrap();
    assert!(report.is_conflict_free());
    assert!(report.independent.is_empty());

    let one = [Proposal::new(7, ()).reads(["k"]).writes(["k"])];
    let report = detect_conflicts(&one).unwrap();
    assert!(report.is_conflict_free(), "{report:?}");
    assert_eq!(report.independent, [ProposalId(7)]);
}

#[test]
fn a_key_read_and_written_by_one_proposal_counts_once_in_its_group() {
    let proposals = [
        Proposal::new(1, ()).reads(["k", "k"]).writes(["k"]),
        Proposal::new(2, ()).reads(["k"]),
    ];
    let report = detect_conflicts(&proposals).unwrap();
    assert_eq!(report.groups.len(), 1, "{report:?}");
    let group = &report.groups[0];
    assert_eq!(group.kind, ConflictKind::ReadWrite);
    assert_eq!(group.members, [ProposalId(1), ProposalId(2)]);
    assert_eq!(
        group.access.to_vec(),
        [
            hivekit_lockfree::Access::Write,
            hivekit_lockfree::Access::Read
        ]
    );
    assert!(report.independent.is_empty());
}

#[test]
fn duplicate_ids_are_a_typed_error_in_any_order() {
    let adjacent = [
        Proposal::new(1, ()).writes(["a"]),
        Proposal::new(1, ()).writes(["b"]),
    ];
    assert_eq!(
        detect_conflicts(&adjacent).unwrap_err(),
        ProposalError::DuplicateId(ProposalId(1))
    );
    let apart = [
        Proposal::new(3, ()).writes(["a"]),
        Proposal::new(1, ()).writes(["b"]),
        Proposal::new(3, ()).writes(["c"]),
    ];
    assert_eq!(
        detect_conflicts(&apart).unwrap_err(),
        ProposalError::DuplicateId(ProposalId(3))
    );
    let no_keys = [Proposal::<&str, ()>::new(5, ()), Proposal::new(5, ())];
    assert_eq!(
        detect_conflicts(&no_keys).unwrap_err(),
        ProposalError::DuplicateId(ProposalId(5))
    );
}

#[test]
fn readers_alone_never_conflict() {
    let proposals = [
        Proposal::new(1, ()).reads(["k"]),
        Proposal::new(2, ()).reads(["k"]),
        Proposal::new(3, ()).reads(["k"]),
    ];
    let report = detect_conflicts(&proposals).unwrap();
    assert!(report.is_conflict_free());
    assert_eq!(
        report.independent,
        [ProposalId(1), ProposalId(2), ProposalId(3)]
    );
}

#[test]
fn a_cell_at_the_last_version_refuses_or_stays_monotonic() {
    // A user mirroring versions numbered elsewhere may open at a huge version.
    let cell = SnapshotCell::with_version(0_u8, u64::MAX - 1);
    assert_eq!(cell.store(1), u64::MAX);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cell.store(2)));
    // Whatever it does at the end of the range, versions must never go back.
    if let Ok(version) = result {
        assert!(version > u64::MAX - 1, "version wrapped to {version}");
    }
    assert_eq!(cell.version(), u64::MAX);
}

#[test]
fn concurrent_readers_never_see_a_version_go_back_or_a_value_of_another_version() {
    // Every write keeps value == version, whichever write path it takes.
    let cell = SnapshotCell::new(0_u64);
    let writers_done = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for writer in 0..3 {
            let (cell, writers_done) = (&cell, &writers_done);
            scope.spawn(move || {
                for i in 0..1_000_u64 {
                    match (writer + i) % 3 {
                        0 => {
                            cell.update(|value| value + 1);
                        }
                        1 => {
                            let snapshot = cell.load();
                            let _ = cell.commit(snapshot.stage(snapshot.version() + 1));
                        }
                        _ => {
                            let version = cell.version();
                            let _ = cell.store_at(version + 2, version + 2);
                        }
                    }
                }
                writers_done.fetch_add(1, Ordering::SeqCst);
            });
        }
        for _ in 0..2 {
            let (cell, writers_done) = (&cell, &writers_done);
            scope.spawn(move || {
                let mut last = 0;
                while writers_done.load(Ordering::SeqCst) < 3 {
                    let (value, version) = cell.read(|value, version| (*value, version));
                    assert_eq!(value, version);
                    assert!(version >= last, "version went back: {last} then {version}");
                    last = version;
                    let snapshot = cell.load();
                    assert_eq!(*snapshot.value(), snapshot.version());
                    assert!(snapshot.version() >= last);
                }
            });
        }
    });
    assert!(cell.version() >= 2_000, "{}", cell.version());
    assert_eq!(*cell.load(), cell.version());
}

#[test]
fn items_left_in_a_dropped_scheduler_are_dropped_exactly_once() {
    for capacity in [None, Some(40)] {
        let drops = Arc::new(AtomicUsize::new(0));
        let scheduler = PriorityScheduler::with_config(SchedulerConfig {
            capacity,
            max_bypass: Some(2),
        })
        .unwrap();
        let hints: Vec<SchedulingHint> = SchedulingHint::all().collect();
        let mut refused = 0;
        // 100 items over 3 lanes: each lane spills past its inline slots.
        for i in 0..100_u32 {
            if let Err(full) =
                scheduler.push(hints[(i % 3) as usize * 7], Counted(drops.clone(), i))
            {
                refused += 1;
                drop(full.into_inner());
            }
        }
        assert_eq!(refused, if capacity.is_some() { 60 } else { 0 });
        let mut popped = 0;
        for _ in 0..30 {
            drop(scheduler.pop().unwrap());
            popped += 1;
        }
        assert_eq!(drops.load(Ordering::SeqCst), refused + popped);
        drop(scheduler);
        assert_eq!(drops.load(Ordering::SeqCst), 100, "capacity {capacity:?}");
    }
}
