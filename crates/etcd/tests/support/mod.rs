//! A test state, commit helpers and etcd servers shared by the hivekit-etcd integration tests.
#![allow(dead_code, unreachable_pub)] // Each test binary uses a subset.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hivekit_etcd::testing::{EtcdCluster, EtcdServer};
use hivekit_etcd::{Client, EtcdConfig, KeyedState};
use hivekit_hive::{
    AcceptedChange, AgentId, CommitRequest, Committed, Memory, MemoryError, Proposal, ProposalId,
    ProposalOf, Snapshot, State,
};
use serde::{Deserialize, Serialize};

pub mod backup;
pub mod child;

/// Counters by key, and how many changes were applied.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    pub counters: BTreeMap<u64, i64>,
    pub applied: u64,
}

/// Adds `delta` to counter `key`; `id` names the change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Add {
    pub id: u64,
    pub key: u64,
    pub delta: i64,
}

impl State for Ledger {
    type Key = u64;
    type Change = Add;
    fn apply(&mut self, change: &Add) {
        *self.counters.entry(change.key).or_default() += change.delta;
        self.applied += 1;
    }
}

/// A keyed state: one etcd key per counter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counters(pub BTreeMap<u64, i64>);

impl State for Counters {
    type Key = u64;
    type Change = Add;
    fn apply(&mut self, change: &Add) {
        let entry = self.0.entry(change.key).or_default();
        *entry += change.delta;
        if *entry == 0 {
            self.0.remove(&change.key);
        }
    }
}

impl KeyedState for Counters {
    type Value = i64;
    fn entry(&self, key: &u64) -> Option<i64> {
        self.0.get(key).copied()
    }
    fn entries(&self) -> Vec<(u64, i64)> {
        self.0.iter().map(|(key, value)| (*key, *value)).collect()
    }
    fn from_entries(entries: Vec<(u64, i64)>) -> Self {
        Counters(entries.into_iter().collect())
    }
}

/// A document replaced whole by each change: its size is the change's size.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Doc {
    pub text: String,
    pub edits: u64,
}

impl State for Doc {
    type Key = u64;
    type Change = String;
    fn apply(&mut self, change: &String) {
        self.text.clone_from(change);
        self.edits += 1;
    }
}

/// A proposal replacing the document with `text`, named `id`.
pub fn replace(id: u64, text: String) -> ProposalOf<Doc> {
    Proposal::new(ProposalId(id), text).writes([0])
}

/// A proposal adding `delta` to `key`, named `id`.
pub fn add(id: u64, key: u64, delta: i64) -> ProposalOf<Ledger> {
    Proposal::new(ProposalId(id), Add { id, key, delta }).writes([key])
}

/// Commits `proposals` (each proposed by the agent of the same index in `proposers`) as decision
/// `decision_id` on top of `base`.
pub async fn commit<S, M>(
    memory: &M,
    decision_id: u128,
    base: u64,
    proposals: &[ProposalOf<S>],
    proposer: u64,
) -> Result<Committed, MemoryError>
where
    S: State,
    M: Memory<S>,
{
    let accepted: Vec<AcceptedChange<'_, S>> = proposals
        .iter()
        .map(|proposal| AcceptedChange {
            proposal,
            proposer: Some(AgentId(proposer)),
        })
        .collect();
    memory
        .commit(CommitRequest {
            decision_id,
            round: base + 1,
            base,
            accepted: &accepted,
        })
        .await
}

/// Waits, for `within` at most, until `memory` holds `version` or a newer one, and returns that
/// snapshot. The snapshot is carried forward: waiting for a version after a fresh `snapshot()`
/// would wait for one more if it landed in between.
pub async fn caught_up<S, M>(memory: &M, version: u64, within: Duration) -> Snapshot<S>
where
    S: State,
    M: Memory<S>,
{
    tokio::time::timeout(within, async {
        let mut snapshot = memory.snapshot();
        while snapshot.version() < version {
            snapshot = memory.changed(snapshot.version()).await.unwrap();
        }
        snapshot
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "stuck at version {} waiting for {version} ({within:?})",
            memory.snapshot().version()
        )
    })
}

/// etcd's current revision.
pub async fn current_revision(client: &Client) -> i64 {
    let response = client.clone().get("\0", None).await.unwrap();
    response.header().unwrap().revision()
}

/// Compacts etcd's history up to its current revision: a watch that starts before it is cancelled.
pub async fn compact_now(client: &Client) {
    let revision = current_revision(client).await;
    client.clone().compact(revision, None).await.unwrap();
}

/// A prefix no other test uses.
pub fn unique_prefix(test: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "/hivekit-test/{test}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A single etcd for one test; fails (never skips) when etcd is missing.
pub fn etcd() -> EtcdServer {
    match EtcdServer::start() {
        Ok(server) => server,
        Err(error) => panic!("{error}"),
    }
}

/// The index of the member that is the Raft leader now.
pub async fn leader_index(cluster: &EtcdCluster) -> usize {
    for (index, endpoint) in cluster.endpoints().iter().enumerate() {
        let mut client = EtcdConfig::new([endpoint.clone()], "/probe")
            .connect()
            .await
            .unwrap();
        let status = client.status().await.unwrap();
        if status.leader() == status.header().unwrap().member_id() {
            return index;
        }
    }
    panic!("the cluster has no leader");
}

/// A configuration for `endpoints` under a fresh prefix, with short timeouts for tests.
pub fn config(endpoints: Vec<String>, test: &str) -> EtcdConfig {
    config_under(endpoints, &unique_prefix(test)).commit_timeout(Duration::from_secs(10))
}

/// A configuration for `endpoints` under `prefix` (shared by processes or members of one test),
/// with short connect and request timeouts.
pub fn config_under(endpoints: Vec<String>, prefix: &str) -> EtcdConfig {
    EtcdConfig::new(endpoints, prefix)
        .connect_timeout(Duration::from_secs(2))
        .request_timeout(Duration::from_secs(2))
}
