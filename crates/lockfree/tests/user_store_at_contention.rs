//! `store_at` racing with `store`, `update` and readers, as a follower mirroring a shared memory
//! races the local writers: versions only grow for every reader, a `store_at` refused because the
//! cell got there first hands its value back, an accepted one is read at exactly its version, and
//! every value is dropped exactly once once the cell is gone.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use hivekit_lockfree::SnapshotCell;

/// A value that knows the version it was written for (0 for `store`/`update` values) and counts
/// its drops.
struct Tracked {
    target: u64,
    drops: Arc<AtomicUsize>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn store_at_racing_other_writers_keeps_versions_growing_and_drops_every_value_once() {
    const JUMPS: u64 = 300;
    const STORES: u64 = 600;
    let drops = Arc::new(AtomicUsize::new(0));
    let made = AtomicUsize::new(0);
    let tracked = |target: u64| {
        made.fetch_add(1, Ordering::SeqCst);
        Tracked {
            target,
            drops: Arc::clone(&drops),
        }
    };
    let cell = SnapshotCell::new(tracked(0));
    let done = AtomicBool::new(false);
    let start = Barrier::new(4);
    let (accepted, refused) = thread::scope(|scope| {
        let follower = scope.spawn(|| {
            start.wait();
            let (mut accepted, mut refused) = (0_u64, 0_u64);
            for jump in 1..=JUMPS {
                let target = jump * 7;
                match cell.store_at(target, tracked(target)) {
                    Ok(()) => accepted += 1,
                    Err(back) => {
                        assert_eq!(back.target, target, "the refused value comes back");
                        assert!(cell.version() >= target, "refused though the cell is older");
                        refused += 1;
                    }
                }
            }
            (accepted, refused)
        });
        let writers: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    start.wait();
                    for write in 0..STORES {
                        if write % 2 == 0 {
                            cell.store(tracked(0));
                        } else {
                            cell.update(|_| tracked(0));
                        }
                    }
                })
            })
            .collect();
        let reader = scope.spawn(|| {
            start.wait();
            let mut last = 0;
            let mut reads = 0_u64;
            while !done.load(Ordering::Acquire) {
                cell.read(|value, version| {
                    assert!(version >= last, "version went back: {last} -> {version}");
                    if value.target != 0 {
                        assert_eq!(value.target, version, "a store_at value at another version");
                    }
                    last = version;
                });
                reads += 1;
            }
            reads
        });
        let outcome = follower.join().unwrap();
        for writer in writers {
            writer.join().unwrap();
        }
        done.store(true, Ordering::Release);
        assert!(reader.join().unwrap() > 0);
        outcome
    });
    assert_eq!(accepted + refused, JUMPS);
    assert!(accepted > 0);
    // Every write installed one version, a store_at possibly skipping some: the cell is at least
    // as far as the writes and the last accepted jump.
    assert!(cell.version() >= 2 * STORES + accepted);
    drop(cell);
    let total = made.load(Ordering::SeqCst);
    for _ in 0..100_000 {
        if drops.load(Ordering::SeqCst) >= total {
            break;
        }
        crossbeam_epoch::pin().flush();
    }
    assert_eq!(
        drops.load(Ordering::SeqCst),
        total,
        "every value dropped exactly once"
    );
}
