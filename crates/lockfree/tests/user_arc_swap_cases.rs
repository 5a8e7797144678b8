//! arc-swap's own tests (publish/observe, load-hold across stores, cas, drops) ported to `SnapshotCell`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use hivekit_lockfree::{CommitError, Snapshot, SnapshotCell, Staged};

#[test]
fn ptr_eq_means_same_version_of_the_same_cell() {
    let cell = SnapshotCell::new(1);
    let (a, b) = (cell.load(), cell.load());
    assert!(Snapshot::ptr_eq(&a, &b));
    assert!(Snapshot::ptr_eq(&a, &a.clone()));
    cell.store(1);
    let c = cell.load();
    assert!(
        !Snapshot::ptr_eq(&a, &c),
        "equal values of different versions are not ptr_eq"
    );
    let other = SnapshotCell::new(1);
    assert!(!Snapshot::ptr_eq(&a, &other.load()));
}

#[test]
fn publish_and_observe_monotonic_values() {
    // arc-swap's `publish` test: one writer stores increasing values, readers never see one go back,
    // and every value a reader sees matches its version.
    const WRITES: u64 = 3_000;
    let cell = SnapshotCell::new(0_u64);
    let barrier = Barrier::new(4);
    std::thread::scope(|scope| {
        for _ in 0..3 {
            scope.spawn(|| {
                barrier.wait();
                let mut last = 0;
                loop {
                    let snapshot = cell.load();
                    assert_eq!(*snapshot, snapshot.version());
                    assert!(*snapshot >= last, "went back from {last} to {}", *snapshot);
                    last = *snapshot;
                    let (value, version) = cell.read(|v, version| (*v, version));
                    assert_eq!(value, version);
                    assert!(value >= last);
                    if last == WRITES {
                        break;
                    }
                }
            });
        }
        barrier.wait();
        for v in 1..=WRITES {
            assert_eq!(cell.store(v), v);
        }
    });
}

#[test]
fn compare_and_swap_semantics() {
    let cell = SnapshotCell::new(String::from("a"));
    let seen = cell.load();
    // Succeeds once on the seen version.
    assert_eq!(cell.commit(seen.stage("b".into())), Ok(1));
    // A second commit on the same (now stale) base fails and hands the value back untouched.
    match cell.commit(seen.stage("c".into())) {
        Err(CommitError::Conflict {
            base: 0,
            current: 1,
            value,
        }) => assert_eq!(value, "c"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    // A hand-built stage on the current version succeeds.
    assert_eq!(cell.commit(Staged::new(1, "d".into())), Ok(2));
    assert_eq!(*cell.load(), "d");
    let error = cell.commit(Staged::new(0, "e".into())).unwrap_err();
    assert_eq!(
        error.to_string(),
        "commit based on version 0 conflicts with current version 2"
    );
    assert_eq!(error.into_value(), "e");
}

#[test]
fn only_one_of_many_racing_commits_on_one_base_wins() {
    for _ in 0..200 {
        let cell = SnapshotCell::new(0_u32);
        let barrier = Barrier::new(4);
        let wins = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for t in 1..=4_u32 {
                let (cell, barrier, wins) = (&cell, &barrier, &wins);
                scope.spawn(move || {
                    let staged = cell.stage(t);
                    barrier.wait();
                    match cell.commit(staged) {
                        Ok(version) => {
                            assert_eq!(version, 1);
                            wins.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(CommitError::Conflict {
                            base,
                            current,
                            value,
                        }) => {
                            assert_eq!((base, current, value), (0, 1, t));
                        }
                    }
                });
            }
        });
        assert_eq!(wins.load(Ordering::SeqCst), 1);
        assert_eq!(cell.version(), 1);
    }
}

struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn snapshots_outlive_the_cell_and_drop_their_value_once() {
    let drops = Arc::new(AtomicUsize::new(0));
    let cell = SnapshotCell::new(Counted(drops.clone()));
    let first = cell.load();
    cell.store(Counted(drops.clone()));
    let second = cell.load();
    let second_clone = second.clone();
    drop(cell);
    assert_eq!(
        drops.load(Ordering::SeqCst),
        0,
        "both versions are held by snapshots"
    );
    for _ in 0..1_000 {
        crossbeam_epoch::pin().flush();
    }
    assert_eq!(
        drops.load(Ordering::SeqCst),
        0,
        "still held by snapshots after collection"
    );
    let handle = std::thread::spawn(move || drop(second));
    handle.join().unwrap();
    assert_eq!(
        drops.load(Ordering::SeqCst),
        0,
        "a clone still holds the second version"
    );
    drop(second_clone);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    drop(first);
    // The replaced first version may wait for crossbeam-epoch (documented deferred reclamation).
    for _ in 0..100_000 {
        if drops.load(Ordering::SeqCst) >= 2 {
            break;
        }
        crossbeam_epoch::pin().flush();
    }
    assert_eq!(drops.load(Ordering::SeqCst), 2);
}
