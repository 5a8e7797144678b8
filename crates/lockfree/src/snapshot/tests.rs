//! Unit tests of the snapshot cell and its handles.

use super::*;

#[test]
fn smoke() {
    let cell = SnapshotCell::new(1);
    assert_eq!(cell.version(), 0);
    assert_eq!(cell.store(2), 1);
    assert_eq!(cell.update(|value| value * 10), 2);
    assert_eq!(cell.read(|value, version| (*value, version)), (20, 2));
    let staged = cell.stage(7);
    assert_eq!(cell.commit(staged), Ok(3));
    assert_eq!(*cell.load(), 7);
}

#[test]
fn commit_error_names_both_versions() {
    let error = CommitError::Conflict {
        base: 3,
        current: 5,
        value: (),
    };
    assert_eq!(
        error.to_string(),
        "commit based on version 3 conflicts with current version 5"
    );
}

#[test]
fn debug_shows_version_and_value() {
    let cell = SnapshotCell::new("x");
    cell.store("y");
    assert_eq!(
        format!("{cell:?}"),
        r#"SnapshotCell { version: 1, value: "y" }"#
    );
    assert_eq!(
        format!("{:?}", cell.load()),
        r#"Snapshot { version: 1, value: "y" }"#
    );
}
