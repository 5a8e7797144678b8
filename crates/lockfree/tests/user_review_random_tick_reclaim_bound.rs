//! Review of the pseudo-random per-thread `tick` (crates/lockfree/src/loom.rs), which now decides
//! on which reads a thread hands an idle cell's limbo to the collector. `SnapshotCell`'s doc
//! (crates/lockfree/src/snapshot/mod.rs) still promises a bound: "a writer that goes idle keeps at
//! most 63 replaced versions alive only while no thread uses the cell, and none once another
//! thread has made a few hundred reads". A hand-over on a random one read in 128 has no bound:
//! the chance that 640 reads (five times the period) all miss is e^-5, about 0.7%.
//!
//! These tests take "a few hundred" generously (1,000 reads) and check it trial after trial, with
//! a warm reader thread (one that has read before, as a tokio worker has). Own binary: no other
//! test keeps the epoch pinned.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use hivekit_lockfree::SnapshotCell;

struct Tracked(Arc<AtomicUsize>);

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

const WRITES: usize = 10;
/// "A few hundred reads", generously.
const FEW_HUNDRED: u64 = 1_000;
const TRIALS: usize = 2_000;

/// For each trial, a fresh cell written `WRITES` times by an idle (alive) writer thread, then
/// read by one warm reader thread until every replaced version is dropped: the reads it took.
fn reads_until_reclaimed() -> Vec<u64> {
    type Cell = Arc<SnapshotCell<Tracked>>;
    let (to_writer, writer_jobs) = mpsc::channel::<(Cell, Arc<AtomicUsize>, mpsc::Sender<()>)>();
    let writer = std::thread::spawn(move || {
        for (cell, drops, done) in writer_jobs {
            for _ in 0..WRITES {
                cell.store(Tracked(Arc::clone(&drops)));
            }
            done.send(()).unwrap();
            // Stays alive and idle until the next job.
        }
    });
    let reader = std::thread::spawn(move || {
        // Warm: this thread has read cells before the trials.
        let warm = SnapshotCell::new(0_u32);
        for _ in 0..1_000 {
            warm.read(|value, _| assert_eq!(*value, 0));
        }
        let mut needed = Vec::with_capacity(TRIALS);
        for _ in 0..TRIALS {
            let drops = Arc::new(AtomicUsize::new(0));
            let cell: Cell = Arc::new(SnapshotCell::new(Tracked(Arc::clone(&drops))));
            let (done, written) = mpsc::channel();
            to_writer
                .send((Arc::clone(&cell), Arc::clone(&drops), done))
                .unwrap();
            written.recv().unwrap();
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut reads = 0_u64;
            while drops.load(Ordering::SeqCst) < WRITES && Instant::now() < deadline {
                cell.read(|_, version| assert_eq!(version, WRITES as u64));
                reads += 1;
            }
            assert_eq!(drops.load(Ordering::SeqCst), WRITES, "never reclaimed");
            needed.push(reads);
        }
        drop(to_writer);
        needed
    });
    let needed = reader.join().unwrap();
    writer.join().unwrap();
    needed
}

#[test]
fn every_trial_reclaims_an_idle_cells_replaced_versions_within_a_few_hundred_reads() {
    let needed = reads_until_reclaimed();
    let mut sorted = needed.clone();
    sorted.sort_unstable();
    let over: Vec<u64> = needed
        .iter()
        .copied()
        .filter(|&reads| reads > FEW_HUNDRED)
        .collect();
    assert!(
        over.is_empty(),
        "{} of {TRIALS} trials needed more than {FEW_HUNDRED} reads (median {}, max {}): {over:?}",
        over.len(),
        sorted[sorted.len() / 2],
        sorted[sorted.len() - 1],
    );
}
