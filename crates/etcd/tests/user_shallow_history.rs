//! Several handles (as separate processes would hold them) committing at once to one memory whose
//! history is shallow (depth 0 or 1), so that every lost race is settled by the head or by reloading
//! the whole state: no lost update, versions gapless, every handle converges to the same state.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use hivekit_etcd::{EtcdMemory, Keyed, Layout, Whole};
use hivekit_hive::{Memory, Proposal, ProposalId, ProposalOf, State};
use serde::de::DeserializeOwned;
use serde::Serialize;
use support::{add, commit, config, etcd, Add, Counters, Ledger};

/// Runs `handles` handles committing `each` increments at once at history `depth`; returns the
/// final snapshot's per-key counts as seen by every handle (and checks them).
async fn race<S, L>(
    depth: usize,
    layout: &str,
    initial: S,
    proposal: fn(u64, u64) -> ProposalOf<S>,
    count: fn(&S, u64) -> i64,
) where
    S: State + Clone + Send + Sync + 'static + std::fmt::Debug,
    S::Change: Serialize + DeserializeOwned,
    L: Layout<S>,
{
    let server = etcd();
    let config = config(
        vec![server.endpoint()],
        &format!("shallow-{layout}-{depth}"),
    )
    .history(depth)
    .commit_timeout(Duration::from_secs(15));
    let handles = 4_u64;
    let each = 15_u64;
    let total = handles * each;
    let mut memories = Vec::new();
    for _ in 0..handles {
        memories.push(Arc::new(
            EtcdMemory::<S, L>::open(config.clone(), initial.clone())
                .await
                .unwrap(),
        ));
    }
    let watcher = EtcdMemory::<S, L>::open(config.clone(), initial.clone())
        .await
        .unwrap();
    let tasks: Vec<_> = memories
        .iter()
        .enumerate()
        .map(|(index, memory)| {
            let memory = Arc::clone(memory);
            let index = index as u64;
            tokio::spawn(async move {
                let mut versions = Vec::new();
                for step in 0..each {
                    let id = (index + 1) * 1_000 + step;
                    let base = memory.snapshot().version();
                    let committed = commit(
                        &*memory,
                        u128::from(id),
                        base,
                        &[proposal(id, index)],
                        index,
                    )
                    .await
                    .unwrap_or_else(|error| panic!("commit {id} failed: {error}"));
                    versions.push(committed.version);
                }
                versions
            })
        })
        .collect();
    let mut all = BTreeSet::new();
    for task in tasks {
        let versions = tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("the committers finished")
            .unwrap();
        for version in versions {
            assert!(all.insert(version), "version {version} reported twice");
        }
    }
    assert_eq!(all, (1..=total).collect(), "one version per commit, no gap");
    let everyone = memories.iter().map(|memory| &**memory).chain([&watcher]);
    for (index, memory) in everyone.enumerate() {
        let snapshot = support::caught_up(memory, total, Duration::from_secs(10)).await;
        assert_eq!(snapshot.version(), total, "handle {index}");
        for key in 0..handles {
            assert_eq!(
                count(&snapshot, key),
                each as i64,
                "handle {index} key {key}: {:?}",
                &*snapshot
            );
        }
    }
    // A process opened afterwards loads the same state.
    let late = EtcdMemory::<S, L>::open(config.clone(), initial.clone())
        .await
        .unwrap();
    assert_eq!(late.version(), total);
    for key in 0..handles {
        assert_eq!(count(&late.snapshot(), key), each as i64);
    }
    let history = late.history(0, u64::MAX - 1).await.unwrap();
    let expected: Vec<u64> = (total + 1 - depth.min(total as usize) as u64..=total).collect();
    assert_eq!(
        history
            .iter()
            .map(|entry| entry.version)
            .collect::<Vec<_>>(),
        expected,
        "the history holds the newest {depth} versions"
    );
}

fn ledger_add(id: u64, key: u64) -> ProposalOf<Ledger> {
    add(id, key, 1)
}

fn ledger_count(state: &Ledger, key: u64) -> i64 {
    state.counters.get(&key).copied().unwrap_or(0)
}

fn counter_add(id: u64, key: u64) -> ProposalOf<Counters> {
    Proposal::new(ProposalId(id), Add { id, key, delta: 1 }).writes([key])
}

fn counter_count(state: &Counters, key: u64) -> i64 {
    state.0.get(&key).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn whole_memory_without_history_loses_no_update_under_contention() {
    race::<Ledger, Whole>(0, "whole", Ledger::default(), ledger_add, ledger_count).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn whole_memory_with_a_history_of_one_loses_no_update_under_contention() {
    race::<Ledger, Whole>(1, "whole", Ledger::default(), ledger_add, ledger_count).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keyed_memory_without_history_loses_no_update_under_contention() {
    race::<Counters, Keyed>(0, "keyed", Counters::default(), counter_add, counter_count).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keyed_memory_with_a_history_of_one_loses_no_update_under_contention() {
    race::<Counters, Keyed>(1, "keyed", Counters::default(), counter_add, counter_count).await;
}
