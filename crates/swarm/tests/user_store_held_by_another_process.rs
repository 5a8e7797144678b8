//! A store file held by another process (LangGraph's "store opened twice"): opening it is a
//! typed error at once, not a wait; once the holder closes it, it opens.

mod support;

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use hivekit_swarm::checkpoint::{CheckpointStore, RedbStore, StoreError};
use support::crash::{child, child_role};

const MODE: &str = "HIVEKIT_TEST_HELD_MODE";
const DIR: &str = "HIVEKIT_TEST_HELD_DIR";

/// The child: tries to open the store and prints what happened.
#[test]
fn child_process_entry_point() {
    let Some((_mode, dir)) = child_role(MODE, DIR) else {
        return;
    };
    match RedbStore::open(dir.join("runs.redb")) {
        Ok(store) => println!(
            "OUTCOME opened {}",
            store.load_run("r").ok().flatten().is_some()
        ),
        Err(StoreError::Open { .. }) => println!("OUTCOME refused"),
        Err(other) => println!("OUTCOME other {other}"),
    }
}

/// Runs the child on `dir` and returns its outcome line, failing if it takes over ten seconds.
fn open_in_a_child(dir: &Path) -> String {
    let output = child(MODE, "open", DIR, dir)
        .spawn()
        .expect("the child starts");
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(output.wait_with_output());
    });
    let output = receiver
        .recv_timeout(Duration::from_secs(10))
        .expect("the child ended: opening a held store does not wait")
        .expect("the child ran");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| {
            line.split_once("OUTCOME ")
                .map(|(_, outcome)| outcome.to_owned())
        })
        .expect("the child printed its outcome")
}

#[test]
fn a_store_held_by_another_process_is_refused_at_once_and_opens_once_released() {
    let dir = support::crash::scratch();
    let store = RedbStore::open(dir.path().join("runs.redb")).expect("opened");
    store.create_run("r", 1, b"header").unwrap();
    assert_eq!(open_in_a_child(dir.path()), "refused");
    drop(store);
    assert_eq!(open_in_a_child(dir.path()), "opened true");
}
