//! `Duration::MAX` as an etcd request or commit timeout means no limit, as it does for the hive's
//! timeouts and deadlines (it panicked with "overflow when adding duration to instant" on the first
//! request: found by qa2).

mod support;

use std::time::Duration;

use hivekit_etcd::{EtcdMemory, Membership, Whole};
use hivekit_hive::AgentId;
use support::{add, commit, config, etcd, Ledger};

type LedgerMemory = EtcdMemory<Ledger, Whole>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_timeout_of_duration_max_means_no_timeout() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "request-max").request_timeout(Duration::MAX);
    let memory = tokio::time::timeout(
        Duration::from_secs(10),
        LedgerMemory::open(config.clone(), Ledger::default()),
    )
    .await
    .expect("open answered")
    .unwrap();
    let committed = commit(&memory, 1, 0, &[add(1, 1, 1)], 1).await.unwrap();
    assert_eq!(committed.version, 1);
    assert_eq!(memory.history(1, 1).await.unwrap().len(), 1);
    let membership = Membership::join(
        memory.client().clone(),
        &config,
        "proc",
        Duration::from_secs(2),
    )
    .await
    .unwrap();
    membership.register(AgentId(1), "scout").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_timeout_and_decision_window_of_duration_max_mean_no_limit() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "commit-max")
        .commit_timeout(Duration::MAX)
        .decision_window(Duration::MAX);
    let memory = LedgerMemory::open(config, Ledger::default()).await.unwrap();
    let committed = tokio::time::timeout(
        Duration::from_secs(10),
        commit(&memory, 1, 0, &[add(1, 1, 1)], 1),
    )
    .await
    .expect("the commit answered")
    .unwrap();
    assert_eq!(committed.version, 1);
}
