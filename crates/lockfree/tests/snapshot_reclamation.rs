//! SnapshotCell memory reclamation: every value is dropped exactly once, after the cell and all
//! snapshots of it are gone. Its own test binary, so no other test keeps the epoch pinned.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hivekit_lockfree::SnapshotCell;

/// Counts its drops in a shared table, one slot per value, so a double drop is caught.
struct Tracked {
    id: usize,
    drops: Arc<Vec<AtomicUsize>>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.drops[self.id].fetch_add(1, Ordering::SeqCst);
    }
}

/// Runs crossbeam-epoch's collection until `done` holds (deferred drops run a little later).
fn collect_until(done: impl Fn() -> bool) {
    for _ in 0..100_000 {
        if done() {
            return;
        }
        crossbeam_epoch::pin().flush();
    }
}

fn dropped(drops: &[AtomicUsize]) -> Vec<usize> {
    drops
        .iter()
        .map(|count| count.load(Ordering::SeqCst))
        .collect()
}

#[test]
fn every_value_is_dropped_exactly_once() {
    const THREADS: usize = 4;
    const WRITES: usize = 250;
    // Every failed attempt of `update` drops the value it built and builds a new one; a failure is
    // caused by another thread's success, so there are at most (THREADS - 1) per write.
    let capacity = 1 + THREADS * WRITES * THREADS;
    let drops: Arc<Vec<AtomicUsize>> =
        Arc::new((0..capacity).map(|_| AtomicUsize::new(0)).collect());
    let created = AtomicUsize::new(0);
    let tracked = || Tracked {
        id: created.fetch_add(1, Ordering::SeqCst),
        drops: Arc::clone(&drops),
    };
    let cell = SnapshotCell::new(tracked());
    let kept = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let cell = &cell;
                let tracked = &tracked;
                scope.spawn(move || {
                    let mut kept = Vec::new();
                    for write in 0..WRITES {
                        match write % 3 {
                            0 => {
                                cell.store(tracked());
                            }
                            1 => {
                                cell.update(|_| tracked());
                            }
                            _ => {
                                let mut value = tracked();
                                loop {
                                    match cell.commit(cell.stage(value)) {
                                        Ok(_) => break,
                                        Err(conflict) => value = conflict.into_value(),
                                    }
                                }
                            }
                        }
                        if write % 50 == 0 {
                            kept.push(cell.load());
                        }
                    }
                    kept
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().expect("writer panicked"))
            .collect::<Vec<_>>()
    });
    let total = created.load(Ordering::SeqCst);
    // The current value and every kept snapshot are still alive.
    let current_id = cell.read(|value, _| value.id);
    collect_until(|| {
        let counts = dropped(&drops);
        counts.iter().sum::<usize>() >= total - 1 - kept.len()
    });
    for snapshot in &kept {
        assert_eq!(
            drops[snapshot.id].load(Ordering::SeqCst),
            0,
            "kept snapshot dropped"
        );
    }
    assert_eq!(
        drops[current_id].load(Ordering::SeqCst),
        0,
        "current value dropped"
    );
    drop(cell);
    drop(kept);
    collect_until(|| dropped(&drops)[..total].iter().all(|&count| count >= 1));
    let counts = dropped(&drops);
    assert_eq!(
        counts[..total],
        vec![1; total],
        "each value dropped exactly once"
    );
    assert!(counts[total..].iter().all(|&count| count == 0));
}
