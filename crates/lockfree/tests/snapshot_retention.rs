//! How long replaced versions stay alive: a writer that goes idle must not keep them. Its own test
//! binary, so no other test keeps the epoch pinned.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use hivekit_lockfree::SnapshotCell;

/// Counts its drops.
struct Tracked(Arc<AtomicUsize>);

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn replaced_versions_are_not_kept_alive_by_an_idle_writer() {
    const WRITES: usize = 10;
    let drops = Arc::new(AtomicUsize::new(0));
    let cell = Arc::new(SnapshotCell::new(Tracked(Arc::clone(&drops))));
    let (written_tx, written_rx) = mpsc::channel();
    let (finish_tx, finish_rx) = mpsc::channel::<()>();
    let writer = {
        let (cell, drops) = (Arc::clone(&cell), Arc::clone(&drops));
        std::thread::spawn(move || {
            for _ in 0..WRITES {
                cell.store(Tracked(Arc::clone(&drops)));
            }
            written_tx.send(()).unwrap();
            // Idle, but alive (as a tokio worker after a burst of commits): its thread-local
            // state is not torn down, so nothing is flushed on exit.
            let _ = finish_rx.recv();
        })
    };
    written_rx.recv().unwrap();
    // This thread keeps reading; every replaced version must be dropped within a bounded number
    // of reads (the deadline only stops a failing test from spinning forever).
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut reads = 0_u64;
    while drops.load(Ordering::SeqCst) < WRITES && Instant::now() < deadline {
        cell.read(|_, version| assert_eq!(version, WRITES as u64));
        reads += 1;
    }
    let dropped = drops.load(Ordering::SeqCst);
    finish_tx.send(()).unwrap();
    writer.join().unwrap();
    assert_eq!(
        dropped, WRITES,
        "{dropped} of {WRITES} replaced versions dropped after {reads} reads"
    );
    // The current version is still alive.
    drop(cell);
}

#[test]
fn a_writer_alone_keeps_at_most_63_replaced_versions_in_its_limbo() {
    const WRITES: usize = 200;
    let drops = Arc::new(AtomicUsize::new(0));
    let cell = SnapshotCell::new(Tracked(Arc::clone(&drops)));
    for _ in 0..WRITES {
        cell.store(Tracked(Arc::clone(&drops)));
    }
    // Without a single read of the cell, only the collector runs (as other structures' pins would
    // run it); versions 0..=191 were handed over in batches of 64, the last 8 wait in the limbo.
    let handed_over = WRITES / 64 * 64;
    let deadline = Instant::now() + Duration::from_secs(10);
    while drops.load(Ordering::SeqCst) < handed_over && Instant::now() < deadline {
        crossbeam_epoch::pin().flush();
    }
    assert_eq!(drops.load(Ordering::SeqCst), handed_over);
    // Dropping the cell releases the limbo and the current version at once.
    drop(cell);
    assert_eq!(drops.load(Ordering::SeqCst), WRITES + 1);
}
