//! SnapshotCell: smoke, single thread, contended and stress tests with counted invariants.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Barrier;

use hivekit_lockfree::{CommitError, Snapshot, SnapshotCell, Staged};

#[test]
fn smoke() {
    let cell = SnapshotCell::new(String::from("a"));
    assert_eq!(cell.version(), 0);
    assert_eq!(cell.store(String::from("b")), 1);
    assert_eq!(
        cell.read(|value, version| (value.clone(), version)),
        ("b".into(), 1)
    );
    let snapshot = cell.load();
    assert_eq!((snapshot.as_str(), snapshot.version()), ("b", 1));
}

#[test]
fn default_and_from_start_at_version_zero() {
    let cell: SnapshotCell<Vec<u8>> = SnapshotCell::default();
    assert_eq!((cell.version(), cell.load().len()), (0, 0));
    let cell = SnapshotCell::from(5_u8);
    assert_eq!((cell.version(), *cell.load()), (0, 5));
}

#[test]
fn single_thread_versions_count_every_write() {
    let cell = SnapshotCell::new(0_u64);
    let mut expected = 0;
    for round in 1..=100_u64 {
        expected += 1;
        let version = match round % 3 {
            0 => cell.store(round),
            1 => cell.update(|_| round),
            _ => cell
                .commit(cell.stage(round))
                .expect("no concurrent writer"),
        };
        assert_eq!(version, expected);
        assert_eq!(
            cell.read(|value, version| (*value, version)),
            (round, expected)
        );
    }
}

#[test]
fn stale_commit_gives_the_value_back() {
    let cell = SnapshotCell::new(vec![1]);
    let first = cell.stage(vec![2]);
    let second = cell.stage(vec![3]);
    assert_eq!(cell.commit(first), Ok(1));
    let error = cell.commit(second).expect_err("based on version 0, now 1");
    assert_eq!(
        error,
        CommitError::Conflict {
            base: 0,
            current: 1,
            value: vec![3]
        }
    );
    assert_eq!(error.into_value(), vec![3]);
    assert_eq!((cell.load().to_vec(), cell.version()), (vec![2], 1));
}

#[test]
fn commit_from_a_future_base_conflicts() {
    let cell = SnapshotCell::new(0);
    let error = cell
        .commit(Staged::new(7, 1))
        .expect_err("version 7 never existed");
    assert!(matches!(
        error,
        CommitError::Conflict {
            base: 7,
            current: 0,
            value: 1
        }
    ));
}

#[test]
fn snapshot_stage_detects_writes_after_the_snapshot() {
    let cell = SnapshotCell::new(10);
    let seen = cell.load();
    cell.store(11);
    let late = cell.stage(*seen + 1);
    assert!(cell.commit(seen.stage(*seen + 1)).is_err());
    assert_eq!(cell.commit(late), Ok(2));
}

#[test]
fn snapshots_keep_their_version() {
    let cell = SnapshotCell::new(vec![0_u32; 4]);
    let snapshots: Vec<Snapshot<Vec<u32>>> = (1..=50)
        .map(|round| {
            let snapshot = cell.load();
            cell.store(vec![round; 4]);
            snapshot
        })
        .collect();
    for (index, snapshot) in snapshots.iter().enumerate() {
        assert_eq!(snapshot.version(), index as u64);
        assert!(snapshot.iter().all(|&item| item == index as u32));
        let clone = snapshot.clone();
        assert!(Snapshot::ptr_eq(&clone, snapshot));
    }
}

#[test]
fn try_update_error_writes_nothing() {
    let cell = SnapshotCell::new(1_u8);
    assert_eq!(cell.try_update(|_| Err::<u8, _>("refused")), Err("refused"));
    assert_eq!(cell.version(), 0);
    assert_eq!(cell.try_update(|value| Ok::<_, ()>(value + 1)), Ok(1));
}

#[test]
fn types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<SnapshotCell<Vec<String>>>();
    assert_send_sync::<Snapshot<Vec<String>>>();
    assert_send_sync::<Staged<Vec<String>>>();
    assert_send_sync::<CommitError<Vec<String>>>();
}

/// N threads x M increments through `update`: the count and the version are exactly N x M.
#[test]
fn contended_update_loses_nothing() {
    const THREADS: u64 = 4;
    const UPDATES: u64 = 2_000;
    let cell = SnapshotCell::new(0_u64);
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                for _ in 0..UPDATES {
                    cell.update(|count| count + 1);
                }
            });
        }
    });
    assert_eq!(*cell.load(), THREADS * UPDATES);
    assert_eq!(cell.version(), THREADS * UPDATES);
}

/// Committers race with stage/commit retries: every successful commit gets a distinct version, and
/// the count of successes equals the final version.
#[test]
fn contended_commits_get_distinct_versions() {
    const THREADS: usize = 4;
    const COMMITS: usize = 500;
    let cell = SnapshotCell::new(0_u64);
    let conflicts = AtomicU64::new(0);
    let versions: Vec<Vec<u64>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::with_capacity(COMMITS);
                    while mine.len() < COMMITS {
                        let seen = cell.load();
                        match cell.commit(seen.stage(*seen + 1)) {
                            Ok(version) => mine.push(version),
                            Err(CommitError::Conflict { base, current, .. }) => {
                                assert!(current > base, "{current} must be newer than {base}");
                                conflicts.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("committer panicked"))
            .collect()
    });
    let mut all: Vec<u64> = versions.into_iter().flatten().collect();
    all.sort_unstable();
    let total = (THREADS * COMMITS) as u64;
    assert_eq!(all, (1..=total).collect::<Vec<_>>());
    // Each commit added one to the value it was based on, so the value counts the commits.
    assert_eq!((*cell.load(), cell.version()), (total, total));
}

/// Readers never see a torn value or a version going backwards while writers store.
#[test]
fn stress_readers_see_consistent_monotonic_versions() {
    const WRITES: u64 = 3_000;
    let cell = SnapshotCell::new((0_u64, 0_u64));
    let done = AtomicBool::new(false);
    let start = Barrier::new(4);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                start.wait();
                let mut last = 0;
                let mut reads = 0_u64;
                while !done.load(Ordering::Acquire) || reads == 0 {
                    // Each value is (version, version * 3): a torn read would break the relation.
                    let (version, pair) = cell.read(|pair, version| (version, *pair));
                    assert_eq!(pair, (version, version * 3));
                    assert!(
                        version >= last,
                        "version went back from {last} to {version}"
                    );
                    last = version;
                    let snapshot = cell.load();
                    assert_eq!(*snapshot, (snapshot.version(), snapshot.version() * 3));
                    reads += 1;
                }
            });
        }
        for writer in 0..2 {
            let cell = &cell;
            let start = &start;
            let done = &done;
            scope.spawn(move || {
                start.wait();
                for _ in 0..WRITES {
                    if writer == 0 {
                        cell.update(|&(version, _)| (version + 1, (version + 1) * 3));
                    } else {
                        // A store must know its version: use a commit loop instead.
                        loop {
                            let seen = cell.load();
                            let next = seen.version() + 1;
                            if cell.commit(seen.stage((next, next * 3))).is_ok() {
                                break;
                            }
                        }
                    }
                }
                done.store(true, Ordering::Release);
            });
        }
    });
    assert_eq!(cell.version(), 2 * WRITES);
}

/// Reads a cell when its thread's thread-locals are torn down, and reports what it saw.
struct ReadOnThreadExit {
    cell: std::sync::Arc<SnapshotCell<u64>>,
    seen: std::sync::mpsc::Sender<(u64, u64, u64)>,
}

impl Drop for ReadOnThreadExit {
    fn drop(&mut self) {
        let read = self.cell.read(|value, version| (*value, version));
        let loaded = *self.cell.load();
        let _ = self.seen.send((read.0, read.1, loaded));
    }
}

thread_local! {
    static READ_ON_EXIT: std::cell::RefCell<Option<ReadOnThreadExit>> =
        const { std::cell::RefCell::new(None) };
}

#[test]
fn reads_from_a_thread_local_destructor_after_the_pin_handle_is_gone_still_see_the_value() {
    // Thread-local destructors run in reverse order of registration: this thread-local is
    // registered before the cell's first read registers the epoch handle, so at thread exit the
    // handle is destroyed first and the destructor's reads take the fallback pin.
    let cell = std::sync::Arc::new(SnapshotCell::new(1_u64));
    let (seen, received) = std::sync::mpsc::channel();
    let worker_cell = std::sync::Arc::clone(&cell);
    std::thread::spawn(move || {
        READ_ON_EXIT.with(|slot| {
            *slot.borrow_mut() = Some(ReadOnThreadExit {
                cell: std::sync::Arc::clone(&worker_cell),
                seen,
            })
        });
        assert_eq!(worker_cell.store(7), 1);
        assert_eq!(worker_cell.read(|value, _| *value), 7);
    })
    .join()
    .expect("the worker thread does not panic");
    assert_eq!(received.recv().ok(), Some((7, 1, 7)));
}
