//! Retention with `store_at`: a cell mirroring versions numbered elsewhere (every other version,
//! say) must keep no more replaced versions alive than one written with `store`. Its own binary,
//! so no other test keeps the epoch pinned. (qa5's case: the limbo was handed over only by the
//! write replacing a version ending a batch of 64, which a writer skipping versions may never
//! replace: every replaced version stayed alive.)

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
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
fn a_writer_alone_skipping_versions_with_store_at_keeps_at_most_63_replaced_versions() {
    const WRITES: usize = 200;
    let drops = Arc::new(AtomicUsize::new(0));
    let cell = SnapshotCell::new(Tracked(Arc::clone(&drops)));
    for write in 1..=WRITES as u64 {
        // Versions 2, 4, 6, ...: a follower that sees every other version of a shared memory.
        assert!(cell
            .store_at(2 * write, Tracked(Arc::clone(&drops)))
            .is_ok());
    }
    // As in snapshot_retention.rs, only the collector runs (no read of the cell): the documented
    // bound is at most 63 replaced versions left in the limbo.
    let at_least = WRITES - 63;
    let deadline = Instant::now() + Duration::from_secs(2);
    while drops.load(Ordering::SeqCst) < at_least && Instant::now() < deadline {
        crossbeam_epoch::pin().flush();
    }
    let dropped = drops.load(Ordering::SeqCst);
    assert!(
        dropped >= at_least,
        "{dropped} of {WRITES} replaced versions dropped; {} kept alive",
        WRITES - dropped
    );
    assert_eq!(cell.version(), 2 * WRITES as u64);
    drop(cell);
    // The rest go with the cell, or with the collector's next flushes.
    let deadline = Instant::now() + Duration::from_secs(2);
    while drops.load(Ordering::SeqCst) < WRITES + 1 && Instant::now() < deadline {
        crossbeam_epoch::pin().flush();
    }
    assert_eq!(
        drops.load(Ordering::SeqCst),
        WRITES + 1,
        "every value dropped once"
    );
}
