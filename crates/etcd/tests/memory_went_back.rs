//! A process whose memory went back under it (the prefix wiped and the memory created again, as
//! after a restore from an older backup) gets a prompt typed error (`EtcdError::WentBack`) from
//! its commits and `changed`, and never reports a state etcd does not hold; opened again, it holds
//! what etcd holds. Before, its commits spun for the whole commit timeout (1,125 transactions in
//! 3 s) and its follower applied the new memory's entries on top of its old state (found by qa2).

mod support;

use std::time::{Duration, Instant};

use hivekit_etcd::{EtcdConfig, EtcdMemory, Whole};
use hivekit_hive::Memory;
use support::{add, commit, config, etcd, Ledger};

type LedgerMemory = EtcdMemory<Ledger, Whole>;

/// A memory that commits versions 1..=3, then is wiped and created again under it (as by a restore
/// from an older backup): the old handle, and a handle on the new memory at version 0.
async fn rolled_back(config: &EtcdConfig) -> (LedgerMemory, LedgerMemory) {
    let old = LedgerMemory::open(config.clone(), Ledger::default())
        .await
        .unwrap();
    for id in 1..=3_u64 {
        commit(&old, u128::from(id), id - 1, &[add(id, 1, 1)], 1)
            .await
            .unwrap();
    }
    let mut client = config.connect().await.unwrap();
    client
        .delete(
            config.prefix(),
            Some(etcd_client::DeleteOptions::new().with_prefix()),
        )
        .await
        .unwrap();
    let restored = LedgerMemory::open(config.clone(), Ledger::default())
        .await
        .unwrap();
    (old, restored)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_ahead_of_a_rolled_back_memory_gets_a_prompt_typed_error_not_a_timeout() {
    let server = etcd();
    let config =
        config(vec![server.endpoint()], "rolled-back").commit_timeout(Duration::from_secs(3));
    let (memory, restored) = rolled_back(&config).await;
    assert_eq!(restored.snapshot().version(), 0);

    let started = Instant::now();
    let outcome = tokio::time::timeout(
        Duration::from_secs(10),
        commit(&memory, 4, 3, &[add(4, 1, 1)], 1),
    )
    .await
    .expect("the commit answered");
    let took = started.elapsed();
    let stats = memory.stats();
    let error = outcome.expect_err("nothing to commit onto: the memory went back");
    assert!(
        !matches!(error, hivekit_hive::MemoryError::Unavailable { .. }),
        "etcd is up; the memory went back in time: {error}"
    );
    assert!(error.to_string().contains("went back"), "{error}");
    assert!(took < Duration::from_secs(1), "gave up after {took:?}");
    assert!(
        stats.conflicts < 50,
        "{} transactions sent in a loop",
        stats.conflicts
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_ahead_of_a_rolled_back_memory_never_reports_a_state_etcd_does_not_hold() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "diverge");
    let (old, restored) = rolled_back(&config).await;
    for id in 1..=4_u64 {
        commit(
            &restored,
            u128::from(100 + id),
            id - 1,
            &[add(100 + id, 2, 10)],
            1,
        )
        .await
        .unwrap();
    }
    // The old process never reports a version etcd does not hold: it knows the memory went back.
    let error = tokio::time::timeout(Duration::from_secs(3), old.changed(3))
        .await
        .expect("changed answered")
        .expect_err("no newer version comes to a memory that went back");
    assert!(error.to_string().contains("went back"), "{error}");
    assert_eq!(old.snapshot().version(), 3);
    let error = commit(&old, 200, 3, &[add(200, 1, 1)], 1)
        .await
        .expect_err("the old handle refuses to commit");
    assert!(error.to_string().contains("went back"), "{error}");
    // Opened again, it holds what etcd holds.
    let reopened = EtcdMemory::<Ledger, Whole>::open(config.clone(), Ledger::default())
        .await
        .unwrap();
    assert_eq!(reopened.snapshot().version(), 4);
    assert_eq!(reopened.snapshot().counters, restored.snapshot().counters);
}
