//! etcd compacting its revision history under a memory: reads, opens, commits and `resolve` that
//! only need the current keys go on; a live follower is not disturbed; a follower whose resume
//! point was compacted while the history was also trimmed reloads the whole state (both layouts).

mod support;

use std::time::Duration;

use hivekit_etcd::testing::EtcdCluster;
use hivekit_etcd::{EtcdMemory, Keyed, Whole};
use hivekit_hive::{Memory, Snapshot, State};
use serde::de::DeserializeOwned;
use serde::Serialize;
use support::{commit, config, config_under, etcd, Add, Counters, Ledger};

type LedgerMemory = EtcdMemory<Ledger, Whole>;
type CountersMemory = EtcdMemory<Counters, Keyed>;

/// Commits decisions `ids` one after another on top of what `memory` holds, adding one to key 1.
async fn commit_all<S, M>(memory: &M, ids: std::ops::RangeInclusive<u64>)
where
    S: State<Change = Add, Key = u64>,
    M: Memory<S>,
{
    for id in ids {
        let base = memory.snapshot().version();
        let proposal = hivekit_hive::Proposal::new(
            hivekit_hive::ProposalId(id),
            Add {
                id,
                key: id % 3,
                delta: 1,
            },
        )
        .writes([id % 3]);
        commit(memory, u128::from(id), base, &[proposal], 1)
            .await
            .unwrap();
    }
}

/// Waits (bounded) until `memory` holds `version`.
async fn reach<S, L>(memory: &EtcdMemory<S, L>, version: u64) -> Snapshot<S>
where
    S: State,
    S::Change: Serialize + DeserializeOwned,
    L: hivekit_etcd::Layout<S>,
{
    support::caught_up(memory, version, Duration::from_secs(15)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_open_commit_and_resolve_go_on_after_etcd_compacts_and_a_live_follower_is_untouched(
) {
    let server = etcd();
    let config = config(vec![server.endpoint()], "compacted-reads");
    let writer = LedgerMemory::open(config.clone(), Ledger::default())
        .await
        .unwrap();
    let follower = LedgerMemory::open(config.clone(), Ledger::default())
        .await
        .unwrap();
    commit_all(&writer, 1..=5).await;
    assert_eq!(reach(&follower, 5).await.applied, 5);
    support::compact_now(writer.client()).await;

    // Every entry is a current key: compaction removes none of them.
    let history = writer.history(1, 100).await.unwrap();
    let versions: Vec<u64> = history.iter().map(|entry| entry.version).collect();
    assert_eq!(versions, [1, 2, 3, 4, 5]);
    let proposals: Vec<u64> = history
        .iter()
        .map(|entry| entry.changes[0].proposal)
        .collect();
    assert_eq!(proposals, [1, 2, 3, 4, 5]);

    // A process opening after the compaction loads the state and commits on it.
    let late = LedgerMemory::open(config.clone(), Ledger::default())
        .await
        .unwrap();
    assert_eq!((late.version(), late.snapshot().applied), (5, 5));
    commit_all(&late, 6..=6).await;
    // The live watches were not cancelled: both follow the next version without reloading.
    for memory in [&writer, &follower] {
        let snapshot = reach(memory, 6).await;
        assert_eq!(*snapshot, *late.snapshot());
        assert_eq!(memory.stats().reloads, 0, "{:?}", memory.stats());
    }
    assert_eq!(follower.stats().followed, 6);
    // Decision keys are current keys too.
    assert_eq!(writer.resolve(3).await.unwrap(), Some(3));
    assert_eq!(follower.resolve(6).await.unwrap(), Some(6));
    assert_eq!(late.resolve(77).await.unwrap(), None);
    // A commit after `resolve` fenced decision 77 off still lands at the next version.
    commit_all(&writer, 7..=7).await;
    assert_eq!(reach(&late, 7).await.applied, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_compaction_whose_next_entries_were_trimmed_reloads_either_layout() {
    let mut cluster = EtcdCluster::start(3).unwrap_or_else(|error| panic!("{error}"));
    let endpoints = cluster.endpoints();
    let whole_prefix = support::unique_prefix("compacted-trimmed-whole");
    let keyed_prefix = support::unique_prefix("compacted-trimmed-keyed");
    let on = |member: usize, prefix: &str, depth: usize| {
        config_under(vec![endpoints[member].clone()], prefix).history(depth)
    };
    let whole_writer = LedgerMemory::open(on(0, &whole_prefix, 2), Ledger::default())
        .await
        .unwrap();
    let whole_follower = LedgerMemory::open(on(2, &whole_prefix, 2), Ledger::default())
        .await
        .unwrap();
    // Depth 0: the head alone carries each version to the followers.
    let keyed_writer = CountersMemory::open(on(0, &keyed_prefix, 0), Counters::default())
        .await
        .unwrap();
    let keyed_follower = CountersMemory::open(on(2, &keyed_prefix, 0), Counters::default())
        .await
        .unwrap();
    commit_all(&whole_writer, 1..=2).await;
    commit_all(&keyed_writer, 1..=2).await;
    reach(&whole_follower, 2).await;
    reach(&keyed_follower, 2).await;

    // The followers' member goes; versions 3..=9 land, the history keeps only 8 and 9 (none for
    // the keyed memory), and etcd compacts every revision the followers would resume from.
    tokio::task::block_in_place(|| cluster.member_mut(2).unwrap().kill());
    commit_all(&whole_writer, 3..=9).await;
    commit_all(&keyed_writer, 3..=9).await;
    support::compact_now(whole_writer.client()).await;
    tokio::task::block_in_place(|| cluster.member_mut(2).unwrap().restart().unwrap());

    let whole = reach(&whole_follower, 9).await;
    assert_eq!(*whole, *whole_writer.snapshot());
    assert_eq!(whole.applied, 9);
    let keyed = reach(&keyed_follower, 9).await;
    assert_eq!(*keyed, *keyed_writer.snapshot());
    assert_eq!(keyed.0, [(0, 3), (1, 3), (2, 3)].into_iter().collect());
    for stats in [whole_follower.stats(), keyed_follower.stats()] {
        assert_eq!(stats.reloads, 1, "{stats:?}");
        assert_eq!(stats.commits, 0, "{stats:?}");
    }
    // The reloaded followers commit on top of what they loaded.
    commit_all(&whole_follower, 10..=10).await;
    commit_all(&keyed_follower, 10..=10).await;
    assert_eq!(reach(&whole_writer, 10).await.applied, 10);
    assert_eq!(reach(&keyed_writer, 10).await.0.get(&1), Some(&4));
}
