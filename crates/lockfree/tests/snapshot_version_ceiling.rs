//! A cell opened at the last version (`with_version(_, u64::MAX)`, a mirror of versions numbered
//! elsewhere) is read as usual, and a write panics naming the overflow instead of wrapping the
//! version to 0 under readers who expect it to grow (found by qa3).

use std::panic::{catch_unwind, AssertUnwindSafe};

use hivekit_lockfree::SnapshotCell;

fn overflow_message(write: impl FnOnce()) -> String {
    let panic = catch_unwind(AssertUnwindSafe(write)).expect_err("the write panicked");
    panic
        .downcast_ref::<&str>()
        .map(ToString::to_string)
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

#[test]
fn the_last_version_is_read_but_not_written() {
    let cell = SnapshotCell::with_version(7_u8, u64::MAX);
    assert_eq!(cell.read(|value, version| (*value, version)), (7, u64::MAX));
    for message in [
        overflow_message(|| {
            cell.store(1);
        }),
        overflow_message(|| {
            let _ = cell.commit(cell.stage(1));
        }),
        overflow_message(|| {
            cell.update(|value| value + 1);
        }),
    ] {
        assert!(message.contains("version overflow"), "{message}");
    }
    assert_eq!(cell.read(|value, version| (*value, version)), (7, u64::MAX));
}

#[test]
fn the_version_before_the_last_takes_one_write() {
    let cell = SnapshotCell::with_version(7_u8, u64::MAX - 1);
    assert_eq!(cell.store(8), u64::MAX);
    assert_eq!(*cell.load(), 8);
}
