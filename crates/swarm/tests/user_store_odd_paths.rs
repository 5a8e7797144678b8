//! Opening the on-disk store at paths that cannot hold it: typed errors naming the path.

use hivekit_swarm::checkpoint::{CheckpointStore, RedbStore, StoreError};

fn refused(path: &std::path::Path) {
    let opened = RedbStore::open(path);
    assert!(
        matches!(&opened, Err(StoreError::Open { path: at, .. }) if at == &path.display().to_string()),
        "{path:?}: {opened:?}"
    );
}

#[test]
fn a_missing_directory_a_directory_and_a_file_in_place_of_a_directory_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    refused(&dir.path().join("missing").join("runs.redb"));
    refused(dir.path());
    let file = dir.path().join("plain");
    std::fs::write(&file, b"not a directory").unwrap();
    refused(&file.join("runs.redb"));
    // Nothing was left behind beside the paths that failed.
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["plain"]);
}

#[test]
fn a_store_reopened_through_another_spelling_of_its_path_reads_the_same_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.redb");
    {
        let store = RedbStore::open(&path).unwrap();
        store.create_run("r", 1, b"h").unwrap();
    }
    let dotted = dir.path().join(".").join("runs.redb");
    let store = RedbStore::open(&dotted).unwrap();
    assert_eq!(store.load_run("r").unwrap().unwrap().header, b"h");
}
