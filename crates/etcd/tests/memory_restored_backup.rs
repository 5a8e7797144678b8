//! A process ahead of an etcd restored from an older backup of its data directory (disaster
//! recovery) learns that its memory went back (`EtcdError::WentBack`), though a real restore keeps
//! the head's create revision (what `memory_went_back.rs`'s wiped prefix changes): each head names
//! the decision of the version before it, and the process checks that chain against the decision of
//! its own version. Before (found by qa6), the process installed the restored branch's version 6 on
//! its lost version 5 (the restored branch commits at the same revisions again), reported a state
//! etcd never held and its next commit wrote it to etcd; alone, its commit sent conflicting
//! transactions in a loop for the whole commit timeout.

mod support;

use std::time::Duration;

use hivekit_etcd::testing::EtcdServer;
use hivekit_etcd::{EtcdConfig, EtcdMemory, Whole};
use hivekit_hive::Memory;
use support::{add, backup, commit, config, etcd, Ledger};

type LedgerMemory = EtcdMemory<Ledger, Whole>;

/// A process that commits versions 1 and 2, then (after etcd's data directory is saved) 3 to 5,
/// before etcd is restored from the saved copy, which holds version 2.
async fn ahead_of_a_restored_backup() -> (EtcdServer, EtcdConfig, LedgerMemory) {
    let mut server = etcd();
    let config = config(vec![server.endpoint()], "restored-backup")
        .request_timeout(Duration::from_millis(500))
        .commit_timeout(Duration::from_secs(3));
    let ahead = LedgerMemory::open(config.clone(), Ledger::default())
        .await
        .unwrap();
    for id in 1..=2_u64 {
        commit(&ahead, u128::from(id), id - 1, &[add(id, 1, 1)], 1)
            .await
            .unwrap();
    }
    let saved = tokio::task::block_in_place(|| backup::save(&mut server));
    for id in 3..=5_u64 {
        let committed = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match commit(&ahead, u128::from(id), id - 1, &[add(id, 1, 1)], 1).await {
                    Ok(committed) => return committed,
                    Err(error) => eprintln!("commit {id} after the restart: {error}"),
                }
            }
        })
        .await
        .expect("commits go on after the restart");
        assert_eq!(committed.version, id);
    }
    // The backup comes back: etcd holds version 2 again.
    tokio::task::block_in_place(|| backup::restore(&mut server, &saved));
    (server, config, ahead)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_ahead_of_a_restored_backup_never_reports_or_commits_a_state_etcd_never_held() {
    let (_server, config, ahead) = ahead_of_a_restored_backup().await;
    let other = LedgerMemory::open(config.clone(), Ledger::default())
        .await
        .unwrap();
    assert_eq!(other.version(), 2, "etcd holds the backup's version");
    for id in 13..=16_u64 {
        commit(&other, u128::from(id), id - 10, &[add(id, 9, 100)], 2)
            .await
            .unwrap();
    }
    let held = other.snapshot();
    assert_eq!(held.version(), 6);

    // The process ahead never reports a version of the restored branch on top of its own.
    let error = tokio::time::timeout(Duration::from_secs(5), ahead.changed(5))
        .await
        .expect("changed answered")
        .expect_err("no newer version comes to a memory that went back");
    assert!(error.to_string().contains("went back"), "{error}");
    assert_eq!(ahead.snapshot().version(), 5);
    let error = commit(&ahead, 99, 5, &[add(99, 1, 1)], 1)
        .await
        .expect_err("the process ahead refuses to commit");
    assert!(error.to_string().contains("went back"), "{error}");
    // etcd holds the restored branch, untouched.
    let stored = LedgerMemory::open(config, Ledger::default()).await.unwrap();
    assert_eq!(stored.snapshot().version(), 6);
    assert_eq!(*stored.snapshot(), *held);
}

/// With no other process committing after the restore, the process ahead commits on its lost
/// version 5: its catch-up finds the head older than its version and fails at once (it sent 782
/// conflicting transactions in 3 s, then said Unavailable).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_ahead_of_a_restored_backup_gets_a_prompt_typed_error_not_a_spin() {
    let (_server, _config, ahead) = ahead_of_a_restored_backup().await;
    let conflicts_before = ahead.stats().conflicts;
    let started = std::time::Instant::now();
    let outcome = tokio::time::timeout(
        Duration::from_secs(10),
        commit(&ahead, 99, 5, &[add(99, 1, 1)], 1),
    )
    .await
    .expect("the commit gave up by itself");
    let took = started.elapsed();
    let conflicts = ahead.stats().conflicts - conflicts_before;
    eprintln!("outcome {outcome:?} after {took:?}, {conflicts} conflicting transactions");
    assert!(
        took < Duration::from_secs(1) && conflicts < 10,
        "{outcome:?} after {took:?} and {conflicts} conflicting transactions"
    );
    let error = outcome.unwrap_err();
    assert!(error.to_string().contains("went back"), "{error}");
}
