//! A `SnapshotCell` dropped while its current value's `Drop` panics must still drop the replaced versions it holds (each value exactly once).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use hivekit_lockfree::SnapshotCell;

struct Value {
    drops: Arc<AtomicUsize>,
    bomb: bool,
}

impl Drop for Value {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
        if self.bomb && !std::thread::panicking() {
            panic!("a value whose Drop panics");
        }
    }
}

/// Runs `f` on a fresh thread (whose per-thread read counter has not ticked yet) and waits.
fn on_fresh_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("the test thread finished in time")
}

#[test]
fn without_a_panic_every_stored_value_is_dropped_once_when_the_cell_is_dropped() {
    let drops = Arc::new(AtomicUsize::new(0));
    let counted = on_fresh_thread({
        let drops = drops.clone();
        move || {
            let cell = SnapshotCell::new(Value {
                drops: drops.clone(),
                bomb: false,
            });
            // Stores only (no reads): the replaced versions wait in the cell's limbo.
            for _ in 0..10 {
                cell.store(Value {
                    drops: drops.clone(),
                    bomb: false,
                });
            }
            drop(cell);
            drops.load(Ordering::SeqCst)
        }
    });
    assert_eq!(counted, 11);
}

#[test]
fn a_current_value_whose_drop_panics_does_not_leak_the_replaced_versions() {
    let drops = Arc::new(AtomicUsize::new(0));
    let (unwound, counted) = on_fresh_thread({
        let drops = drops.clone();
        move || {
            let cell = SnapshotCell::new(Value {
                drops: drops.clone(),
                bomb: false,
            });
            for i in 0..10 {
                cell.store(Value {
                    drops: drops.clone(),
                    bomb: i == 9,
                });
            }
            let unwound = catch_unwind(AssertUnwindSafe(|| drop(cell))).is_err();
            (unwound, drops.load(Ordering::SeqCst))
        }
    });
    assert!(unwound, "the value's panic unwinds out of the cell's drop");
    assert_eq!(
        counted, 11,
        "the 10 replaced versions are dropped as well as the current one"
    );
}
