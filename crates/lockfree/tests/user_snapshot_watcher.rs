//! `SnapshotCell::with_watcher`: called once per landed write with its version, never for a refused one, after the version is visible.

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use hivekit_lockfree::{SnapshotCell, Staged};

type Seen = Arc<Mutex<Vec<u64>>>;

fn watched(value: u64, version: u64) -> (SnapshotCell<u64>, Seen) {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let cell = SnapshotCell::with_watcher(value, version, move |v| log.lock().unwrap().push(v));
    (cell, seen)
}

#[test]
fn every_write_method_calls_the_watcher_once_with_the_new_version() {
    let (cell, seen) = watched(0, 10);
    assert_eq!(cell.store(1), 11);
    assert_eq!(cell.update(|v| v + 1), 12);
    assert_eq!(cell.try_update(|v| Ok::<_, ()>(v + 1)), Ok(13));
    assert_eq!(cell.commit(cell.stage(7)).ok(), Some(14));
    let snapshot = cell.load();
    assert_eq!(cell.commit(snapshot.stage(8)).ok(), Some(15));
    assert_eq!(cell.store_at(40, 9), Ok(()));
    assert_eq!(cell.store(10), 41);
    assert_eq!(*seen.lock().unwrap(), [11, 12, 13, 14, 15, 40, 41]);
}

#[test]
fn refused_writes_do_not_call_the_watcher() {
    let (cell, seen) = watched(0, 0);
    let stale = cell.stage(1);
    cell.store(2);
    assert!(cell.commit(stale).is_err());
    assert!(cell.commit(Staged::new(99, 3)).is_err());
    assert_eq!(cell.try_update(|_| Err::<u64, _>("no")), Err("no"));
    assert_eq!(cell.store_at(1, 4), Err(4));
    assert_eq!(cell.store_at(0, 4), Err(4));
    assert_eq!(*seen.lock().unwrap(), [1]);
    assert_eq!(cell.version(), 1);
}

#[test]
fn concurrent_writers_call_the_watcher_once_per_version() {
    let (cell, seen) = watched(0, 0);
    let threads = 4;
    let writes = 500;
    std::thread::scope(|scope| {
        for t in 0..threads {
            let cell = &cell;
            scope.spawn(move || {
                for i in 0..writes {
                    match (t + i) % 3 {
                        0 => {
                            cell.store(1);
                        }
                        1 => {
                            cell.update(|v| v + 1);
                        }
                        _ => loop {
                            let snapshot = cell.load();
                            if cell.commit(snapshot.stage(*snapshot + 1)).is_ok() {
                                break;
                            }
                        },
                    }
                }
            });
        }
    });
    let total = (threads * writes) as u64;
    assert_eq!(cell.version(), total);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len() as u64, total, "one call per landed write");
    let distinct: BTreeSet<u64> = seen.iter().copied().collect();
    assert_eq!(distinct, (1..=total).collect::<BTreeSet<u64>>());
}

#[test]
fn the_watcher_runs_once_the_new_version_is_visible_to_readers() {
    let slot: Arc<OnceLock<Weak<SnapshotCell<u64>>>> = Arc::default();
    let behind = Arc::new(AtomicBool::new(false));
    let (watcher_slot, watcher_behind) = (slot.clone(), behind.clone());
    let cell = Arc::new(SnapshotCell::with_watcher(0_u64, 0, move |version| {
        if let Some(cell) = watcher_slot.get().and_then(Weak::upgrade) {
            let (value, seen) = cell.read(|value, seen| (*value, seen));
            if seen < version || (seen == version && value != version) {
                watcher_behind.store(true, Ordering::SeqCst);
            }
        }
    }));
    slot.set(Arc::downgrade(&cell)).unwrap();
    for v in 1..=200 {
        cell.store(v);
    }
    assert!(
        !behind.load(Ordering::SeqCst),
        "a watcher saw its version before readers could"
    );
}

#[test]
fn a_panicking_watcher_unwinds_after_the_write_landed_and_the_cell_stays_usable() {
    let cell = SnapshotCell::with_watcher(0_u64, 0, |version| {
        if version == 2 {
            panic!("watcher refuses version 2");
        }
    });
    assert_eq!(cell.store(1), 1);
    assert!(catch_unwind(AssertUnwindSafe(|| cell.store(2))).is_err());
    assert_eq!(
        cell.read(|v, version| (*v, version)),
        (2, 2),
        "the write landed"
    );
    assert_eq!(cell.update(|v| v + 1), 3);
    let snapshot = cell.load();
    assert_eq!(cell.commit(snapshot.stage(10)), Ok(4));
    assert_eq!(*cell.load(), 10);
}
