//! A follower behind etcd's compaction reaches the newest version also when only the head carries
//! it: committed by a process that keeps no history (depth 0) beside processes that keep one
//! (processes of different depths share a prefix, `EtcdConfig::history`). Before, its catch-up found
//! the older versions' entries, installed them and never looked at the head, yet resumed its watch
//! after the revision it read: it stayed at version 3 of 4 until some later commit (found by qa6).

mod support;

use std::time::Duration;

use hivekit_etcd::testing::EtcdCluster;
use hivekit_etcd::{EtcdMemory, Whole};
use hivekit_hive::Memory;
use support::{add, commit, config_under, Ledger};

type LedgerMemory = EtcdMemory<Ledger, Whole>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_compaction_reaches_a_version_only_the_head_carries() {
    let mut cluster = EtcdCluster::start(3).unwrap_or_else(|error| panic!("{error}"));
    let endpoints = cluster.endpoints();
    let prefix = support::unique_prefix("head-only-after-compaction");
    let on = |member: usize, depth: usize| {
        config_under(vec![endpoints[member].clone()], &prefix).history(depth)
    };
    // The member cut off is not the Raft leader: the others go on without an election.
    let live = support::leader_index(&cluster).await;
    let cut = (live + 1) % endpoints.len();
    let keeper = LedgerMemory::open(on(live, 100), Ledger::default())
        .await
        .unwrap();
    let headless = LedgerMemory::open(on(live, 0), Ledger::default())
        .await
        .unwrap();
    let follower = LedgerMemory::open(on(cut, 100), Ledger::default())
        .await
        .unwrap();

    tokio::task::block_in_place(|| cluster.member_mut(cut).unwrap().kill());
    for id in 1..=3 {
        commit(&keeper, u128::from(id), id - 1, &[add(id, 1, 1)], 1)
            .await
            .unwrap();
    }
    // Version 4 has no history entry: its committer keeps none.
    let fourth = tokio::time::timeout(Duration::from_secs(5), async {
        let mut base = headless.snapshot().version();
        while base < 3 {
            base = headless.changed(base).await.unwrap().version();
        }
        commit(&headless, 4, 3, &[add(4, 1, 1)], 2).await.unwrap()
    })
    .await
    .expect("the headless process followed the keeper");
    assert_eq!(fourth.version, 4);
    support::compact_now(keeper.client()).await;
    tokio::task::block_in_place(|| cluster.member_mut(cut).unwrap().restart().unwrap());

    let reached = tokio::time::timeout(Duration::from_secs(10), async {
        let mut snapshot = follower.snapshot();
        while snapshot.version() < 4 {
            snapshot = follower.changed(snapshot.version()).await.unwrap();
        }
        snapshot
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "the follower stayed at version {} of 4 ({:?})",
            follower.version(),
            follower.stats()
        )
    });
    assert_eq!(reached.applied, 4);
    assert_eq!(*reached, *keeper.snapshot());
    assert_eq!(
        follower.stats().reloads,
        1,
        "the compaction is counted once"
    );
}
