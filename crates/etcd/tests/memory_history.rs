//! The history's depth against real etcd: a commit trims the entry that falls out of the window,
//! depth 0 keeps none, and a process whose next entry was trimmed reloads the whole state.

mod support;

use std::sync::Arc;
use std::time::Duration;

use etcd_client::GetOptions;
use hivekit_etcd::testing::EtcdCluster;
use hivekit_etcd::{EtcdMemory, Whole};
use hivekit_hive::{Committed, Memory, Snapshot};
use support::{add, commit, config, etcd, Ledger};

type LedgerMemory = EtcdMemory<Ledger, Whole>;

/// How many history keys etcd holds under the memory's prefix.
async fn stored_history_keys(memory: &LedgerMemory) -> i64 {
    let prefix = format!("{}history/", memory.config().prefix());
    let mut client = memory.client().clone();
    client
        .get(
            prefix,
            Some(GetOptions::new().with_prefix().with_count_only()),
        )
        .await
        .unwrap()
        .count()
}

/// Commits one change on top of what `memory` has seen, as decision `id`.
async fn commit_next(memory: &LedgerMemory, id: u64) -> Committed {
    let base = memory.snapshot().version();
    commit(memory, u128::from(id), base, &[add(id, id % 3, 1)], 1)
        .await
        .unwrap()
}

/// Waits until `memory` has seen `version`.
async fn seen(memory: &LedgerMemory, version: u64) -> Snapshot<Ledger> {
    support::caught_up(memory, version, Duration::from_secs(15)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_keeps_only_the_newest_depth_versions_however_many_are_committed() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "depth").history(5);
    let writer = LedgerMemory::open(config.clone(), Ledger::default())
        .await
        .unwrap();
    let follower = LedgerMemory::open(config.clone(), Ledger::default())
        .await
        .unwrap();
    for id in 1..=40 {
        commit_next(&writer, id).await;
        assert!(
            stored_history_keys(&writer).await <= 5,
            "after version {id}"
        );
    }
    assert_eq!(stored_history_keys(&writer).await, 5);
    let history = writer.history(1, u64::MAX - 1).await.unwrap();
    let versions: Vec<u64> = history.iter().map(|entry| entry.version).collect();
    assert_eq!(versions, [36, 37, 38, 39, 40], "the newest five, in order");

    let followed = seen(&follower, 40).await;
    assert_eq!((followed.version(), followed.applied), (40, 40));
    assert_eq!(*followed, *writer.snapshot());
    assert_eq!(
        follower.stats().reloads,
        0,
        "the watch delivered every version"
    );

    // A process opening with a shorter history trims the older entries at once.
    let shorter = LedgerMemory::open(config.history(2), Ledger::default())
        .await
        .unwrap();
    assert_eq!(stored_history_keys(&shorter).await, 2);
    assert_eq!(shorter.snapshot().applied, 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_of_depth_zero_stores_no_entry_and_other_processes_follow_through_the_head() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "depth-zero").history(0);
    let first = LedgerMemory::open(config.clone(), Ledger::default())
        .await
        .unwrap();
    let second = LedgerMemory::open(config, Ledger::default()).await.unwrap();
    for id in 1..=10 {
        commit_next(&first, id).await;
    }
    let followed = seen(&second, 10).await;
    assert_eq!((followed.version(), followed.applied), (10, 10));
    assert_eq!(
        second.stats().followed,
        10,
        "each version came from the head"
    );

    // Committers in both processes race: a commit that loses catches up through the head (or by
    // reloading the state) and goes on top; every change lands exactly once.
    let (first, second) = (Arc::new(first), Arc::new(second));
    let mut tasks = Vec::new();
    for committer in 0..4_u64 {
        let memory = Arc::clone(if committer % 2 == 0 { &first } else { &second });
        tasks.push(tokio::spawn(async move {
            for step in 0..10 {
                commit_next(&memory, 100 + committer * 100 + step).await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let state = seen(&first, 50).await;
    assert_eq!((state.version(), state.applied), (50, 50));
    assert_eq!(*seen(&second, 50).await, *state);
    assert_eq!(stored_history_keys(&first).await, 0);
    assert!(first.history(1, u64::MAX - 1).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_whose_next_entry_was_trimmed_reloads_the_whole_state_once() {
    let mut cluster = EtcdCluster::start(3).unwrap_or_else(|error| panic!("{error}"));
    let endpoints = cluster.endpoints();
    let prefix = support::unique_prefix("trimmed");
    let config_for =
        |endpoint: &str| support::config_under(vec![endpoint.to_string()], &prefix).history(3);
    let writer = LedgerMemory::open(config_for(&endpoints[0]), Ledger::default())
        .await
        .unwrap();
    let follower = LedgerMemory::open(config_for(&endpoints[2]), Ledger::default())
        .await
        .unwrap();
    commit_next(&writer, 1).await;
    seen(&follower, 1).await;

    // The follower's only member goes away; ten versions are committed and compacted without it,
    // so neither the watch nor the history (three entries) holds version 2 when it comes back.
    tokio::task::block_in_place(|| cluster.member_mut(2).unwrap().kill());
    for id in 2..=11 {
        commit_next(&writer, id).await;
    }
    support::compact_now(writer.client()).await;
    let kept = writer.history(1, u64::MAX - 1).await.unwrap();
    assert_eq!(kept.first().map(|entry| entry.version), Some(9));
    tokio::task::block_in_place(|| cluster.member_mut(2).unwrap().restart().unwrap());

    let caught_up = seen(&follower, 11).await;
    assert_eq!((caught_up.version(), caught_up.applied), (11, 11));
    assert_eq!(*caught_up, *writer.snapshot());
    assert_eq!(follower.stats().reloads, 1, "the follower said it reloaded");

    // It goes on following from the reloaded version.
    commit_next(&writer, 12).await;
    let next = seen(&follower, 12).await;
    assert_eq!((next.version(), next.applied), (12, 12));
}
