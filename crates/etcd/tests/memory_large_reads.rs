//! Reads larger than gRPC's default 4 MiB message limit: a memory whose every commit was accepted
//! (each under etcd's 1.5 MiB request limit) is read back whole: a history range, a keyed memory
//! opened by a second process, and a follower catching up on 14 commits of 400 KiB at once. They
//! failed with `OutOfRange` (and the follower retried its watch for ever) before the clients lifted
//! the limit (crates/etcd/src/clients.rs): found by qa2.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use hivekit_etcd::{EtcdMemory, Keyed, KeyedState, Whole};
use hivekit_hive::{Memory, Proposal, ProposalId, ProposalOf, State};
use support::{commit, config, etcd, replace, Doc};

/// Blobs by slot, one etcd key per slot.
#[derive(Debug, Clone, Default, PartialEq)]
struct Blobs(BTreeMap<u64, String>);

impl State for Blobs {
    type Key = u64;
    type Change = (u64, String);
    fn apply(&mut self, (slot, blob): &(u64, String)) {
        self.0.insert(*slot, blob.clone());
    }
}

impl KeyedState for Blobs {
    type Value = String;
    fn entry(&self, key: &u64) -> Option<String> {
        self.0.get(key).cloned()
    }
    fn entries(&self) -> Vec<(u64, String)> {
        self.0
            .iter()
            .map(|(key, value)| (*key, value.clone()))
            .collect()
    }
    fn from_entries(entries: Vec<(u64, String)>) -> Self {
        Blobs(entries.into_iter().collect())
    }
}

const BLOB: usize = 400 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_of_many_large_commits_reads_back_whole_and_in_order() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "large-history");
    let memory = EtcdMemory::<Doc, Whole>::open(config, Doc::default())
        .await
        .unwrap();
    // 14 commits of 400 KiB: each ~800 KiB (state and entry), the history ~5.6 MiB.
    for id in 1..=14_u64 {
        let text = char::from(b'a' + id as u8).to_string().repeat(BLOB);
        let proposal = replace(id, text);
        commit(&memory, u128::from(id), id - 1, &[proposal], 1)
            .await
            .unwrap();
    }
    let history = tokio::time::timeout(Duration::from_secs(10), memory.history(1, 14))
        .await
        .expect("history answered")
        .expect("a history within the depth reads back");
    let versions: Vec<u64> = history.iter().map(|entry| entry.version).collect();
    assert_eq!(versions, (1..=14).collect::<Vec<_>>());
    assert!(history
        .iter()
        .all(|entry| entry.changes.len() == 1 && entry.changes[0].change.len() == BLOB));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_state_larger_than_one_message_opens_in_another_process() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "large-keyed");
    let writer = EtcdMemory::<Blobs, Keyed>::open(config.clone(), Blobs::default())
        .await
        .unwrap();
    // 14 slots of 400 KiB, one commit each: ~5.6 MiB of state, every commit ~800 KiB.
    for slot in 0..14_u64 {
        let blob = char::from(b'a' + slot as u8).to_string().repeat(BLOB);
        let proposal: ProposalOf<Blobs> =
            Proposal::new(ProposalId(slot), (slot, blob)).writes([slot]);
        commit(&writer, u128::from(slot + 1), slot, &[proposal], 1)
            .await
            .unwrap();
    }
    assert_eq!(writer.snapshot().version(), 14);

    let joined = tokio::time::timeout(
        Duration::from_secs(10),
        EtcdMemory::<Blobs, Keyed>::open(config, Blobs::default()),
    )
    .await
    .expect("open answered")
    .expect("a second process opens the memory the first built");
    assert_eq!(joined.snapshot().version(), 14);
    assert_eq!(joined.snapshot().0, writer.snapshot().0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_cut_off_while_large_commits_landed_catches_up_when_it_reconnects() {
    let mut cluster = hivekit_etcd::testing::EtcdCluster::start(3).unwrap();
    let endpoints = cluster.endpoints();
    let prefix = support::unique_prefix("large-follow");
    let config_for = |endpoint: &str| support::config_under(vec![endpoint.to_string()], &prefix);
    let writer = EtcdMemory::<Doc, Whole>::open(config_for(&endpoints[0]), Doc::default())
        .await
        .unwrap();
    let follower = EtcdMemory::<Doc, Whole>::open(config_for(&endpoints[2]), Doc::default())
        .await
        .unwrap();
    // The follower's only member goes away while 14 commits of 400 KiB land (no compaction).
    tokio::task::block_in_place(|| cluster.member_mut(2).unwrap().kill());
    for id in 1..=14_u64 {
        let text = char::from(b'a' + id as u8).to_string().repeat(BLOB);
        let proposal = replace(id, text);
        commit(&writer, u128::from(id), id - 1, &[proposal], 1)
            .await
            .unwrap();
    }
    tokio::task::block_in_place(|| cluster.member_mut(2).unwrap().restart().unwrap());
    let caught_up = tokio::time::timeout(Duration::from_secs(15), async {
        let mut snapshot = follower.snapshot();
        while snapshot.version() < 14 {
            snapshot = follower.changed(snapshot.version()).await.unwrap();
        }
        snapshot
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "the follower is stuck at version {} of 14 ({:?})",
            follower.snapshot().version(),
            follower.stats()
        )
    });
    assert_eq!(caught_up.edits, 14);
}
