//! `SnapshotCell` callbacks that call the cell again: an `update` closure whose own nested write
//! lands first is called again on the newer value ("if another write lands first, `update` is
//! called again on the newer value, so no update is ever lost"); a watcher "runs on the writing
//! thread", and one that writes to its own cell gets every version exactly once; values are
//! dropped exactly once throughout.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::thread::ThreadId;

use hivekit_lockfree::SnapshotCell;

#[test]
fn an_update_whose_first_call_writes_the_cell_itself_is_retried_on_that_write() {
    let cell = SnapshotCell::new(1_u64);
    let mut calls = Vec::new();
    let version = cell.update(|value| {
        calls.push(*value);
        if calls.len() == 1 {
            // A write that lands between this call's read and its commit.
            assert_eq!(cell.store(100), 1);
        }
        value + 1
    });
    assert_eq!(calls, [1, 100], "called again on the newer value");
    assert_eq!(version, 2);
    assert_eq!(cell.read(|value, version| (*value, version)), (101, 2));
}

#[test]
fn a_try_update_that_refuses_after_its_own_nested_write_leaves_that_write_in_place() {
    let cell = SnapshotCell::new(5_u64);
    let mut calls = 0;
    let outcome = cell.try_update(|value| {
        calls += 1;
        if calls == 1 {
            cell.store(value * 10);
            Ok(value + 1)
        } else {
            Err(*value)
        }
    });
    assert_eq!(outcome, Err(50), "the first error of a retried call");
    assert_eq!(calls, 2);
    assert_eq!(cell.read(|value, version| (*value, version)), (50, 1));
}

#[test]
fn reads_and_loads_inside_an_update_see_the_value_being_updated() {
    let cell = SnapshotCell::new(vec![1_u32]);
    let version = cell.update(|value| {
        let read = cell.read(|inner, version| (inner.clone(), version));
        let loaded = cell.load();
        assert_eq!(read, (value.clone(), 0));
        assert_eq!((loaded.to_vec(), loaded.version()), (value.clone(), 0));
        [value.as_slice(), &[2]].concat()
    });
    assert_eq!(version, 1);
    assert_eq!(*cell.load(), [1, 2]);
}

#[test]
fn the_watcher_runs_on_the_thread_whose_write_landed() {
    type Calls = Arc<Mutex<Vec<(u64, ThreadId)>>>;
    let calls: Calls = Arc::default();
    let log = Arc::clone(&calls);
    let cell = SnapshotCell::with_watcher(0_u64, 0, move |version| {
        log.lock()
            .unwrap()
            .push((version, std::thread::current().id()));
    });
    let writers: Vec<(ThreadId, Vec<u64>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let versions = (0..200).map(|_| cell.update(|v| v + 1)).collect();
                    (std::thread::current().id(), versions)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let calls = calls.lock().unwrap();
    assert_eq!(calls.len(), 800);
    for (thread, versions) in &writers {
        for version in versions {
            let callers: Vec<ThreadId> = calls
                .iter()
                .filter(|(seen, _)| seen == version)
                .map(|(_, caller)| *caller)
                .collect();
            assert_eq!(
                callers,
                [*thread],
                "version {version}: the watcher ran on another thread than its writer"
            );
        }
    }
}

/// Counts its drops.
struct Tracked(Arc<AtomicUsize>);

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_watcher_that_writes_its_own_cell_sees_every_version_once_and_drops_each_value_once() {
    // The watcher follows every version below 200 that ends in 0 with a write of its own (from
    // inside the write that landed); 150 writes from outside.
    let drops = Arc::new(AtomicUsize::new(0));
    let seen: Arc<Mutex<Vec<u64>>> = Arc::default();
    let slot: Arc<OnceLock<Weak<SnapshotCell<Tracked>>>> = Arc::default();
    let (log, watcher_slot, watcher_drops) =
        (Arc::clone(&seen), Arc::clone(&slot), Arc::clone(&drops));
    let cell = Arc::new(SnapshotCell::with_watcher(
        Tracked(Arc::clone(&drops)),
        0,
        move |version| {
            log.lock().unwrap().push(version);
            if version % 10 == 0 && version < 200 {
                if let Some(cell) = watcher_slot.get().and_then(Weak::upgrade) {
                    let nested = cell.store(Tracked(Arc::clone(&watcher_drops)));
                    assert!(nested > version);
                }
            }
        },
    ));
    slot.set(Arc::downgrade(&cell)).unwrap();
    for _ in 1..=150 {
        cell.store(Tracked(Arc::clone(&drops)));
    }
    let version = cell.version();
    let seen = seen.lock().unwrap().clone();
    let distinct: BTreeSet<u64> = seen.iter().copied().collect();
    assert_eq!(seen.len(), distinct.len(), "a version was reported twice");
    assert_eq!(
        distinct,
        (1..=version).collect(),
        "a version was never reported"
    );
    let nested = (1..=version).filter(|v| v % 10 == 0 && *v < 200).count() as u64;
    assert_eq!(version, 150 + nested);

    // Every value ever stored is dropped exactly once: wait for the collector, boundedly.
    let stored = version as usize + 1;
    drop(cell);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while drops.load(Ordering::SeqCst) < stored && std::time::Instant::now() < deadline {
        crossbeam_epoch::pin().flush();
    }
    assert_eq!(drops.load(Ordering::SeqCst), stored);
}
