//! A process cut off from etcd while its memory is wiped and created again (an operator's reset, a
//! restore) and etcd compacts the head's delete away learns that its memory went back when it
//! reconnects (`EtcdError::WentBack` from `changed` and `commit`), as `memory_went_back.rs` shows
//! for a live watch. Before, its catch-up read the new memory's history entries and installed them
//! onto its old state without looking at the head: it reported version 4 = {1: 3, 9: 100}, a state
//! no memory held, and its next commit wrote that mix to etcd for every process (found by qa6).

mod support;

use std::time::Duration;

use hivekit_etcd::testing::EtcdCluster;
use hivekit_etcd::{EtcdMemory, Whole};
use hivekit_hive::Memory;
use support::{add, commit, config_under, Ledger};

type LedgerMemory = EtcdMemory<Ledger, Whole>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_behind_compaction_never_applies_a_recreated_memorys_entries_to_its_old_state() {
    let mut cluster = EtcdCluster::start(3).unwrap_or_else(|error| panic!("{error}"));
    let endpoints = cluster.endpoints();
    let prefix = support::unique_prefix("recreated-behind-compaction");
    let on = |member: usize| config_under(vec![endpoints[member].clone()], &prefix);
    // The member cut off is not the leader: the others go on without an election.
    let live = support::leader_index(&cluster).await;
    let cut = (live + 1) % endpoints.len();
    let cut_off = LedgerMemory::open(on(cut), Ledger::default())
        .await
        .unwrap();
    {
        let old = LedgerMemory::open(on(live), Ledger::default())
            .await
            .unwrap();
        for id in 1..=3_u64 {
            commit(&old, u128::from(id), id - 1, &[add(id, 1, 1)], 1)
                .await
                .unwrap();
        }
    }
    tokio::time::timeout(Duration::from_secs(5), async {
        while cut_off.version() < 3 {
            cut_off.changed(cut_off.version()).await.unwrap();
        }
    })
    .await
    .expect("the process followed the first memory");

    // Cut off, the memory is wiped and created again with more versions than the old one had,
    // and etcd compacts: the head's delete is no longer replayed to a watch.
    tokio::task::block_in_place(|| cluster.member_mut(cut).unwrap().kill());
    let mut client = on(live).connect().await.unwrap();
    client
        .delete(
            prefix.clone(),
            Some(etcd_client::DeleteOptions::new().with_prefix()),
        )
        .await
        .unwrap();
    let recreated = LedgerMemory::open(on(live), Ledger::default())
        .await
        .unwrap();
    for id in 11..=15_u64 {
        commit(&recreated, u128::from(id), id - 11, &[add(id, 9, 100)], 2)
            .await
            .unwrap();
    }
    support::compact_now(&client).await;
    tokio::task::block_in_place(|| cluster.member_mut(cut).unwrap().restart().unwrap());

    let error = tokio::time::timeout(Duration::from_secs(10), cut_off.changed(3))
        .await
        .expect("changed answered")
        .expect_err("no newer version comes to a memory that went back");
    assert!(error.to_string().contains("went back"), "{error}");
    assert_eq!(cut_off.snapshot().version(), 3);
    assert_eq!(cut_off.snapshot().counters.get(&1), Some(&3));
    let error = commit(&cut_off, 99, 3, &[add(99, 1, 1)], 3)
        .await
        .expect_err("the cut-off handle refuses to commit");
    assert!(error.to_string().contains("went back"), "{error}");
    // etcd holds the recreated memory, untouched.
    let stored = LedgerMemory::open(on(live), Ledger::default())
        .await
        .unwrap();
    assert_eq!(stored.snapshot().version(), 5);
    assert_eq!(*stored.snapshot(), *recreated.snapshot());
}
