//! The decision keys against real etcd: written under a lease that outlives the decision window,
//! deleted by etcd once it has passed (so they stay bounded however many commits are made), a
//! resent commit inside the window lands once, and `resolve` after the window still finds a
//! decision the history holds.

mod support;

use std::time::Duration;

use etcd_client::{EventType, GetOptions, WatchOptions};
use hivekit_etcd::{EtcdError, EtcdMemory, Whole};
use hivekit_hive::{Committed, Memory};
use support::{add, commit, config, current_revision, etcd, Ledger};

type LedgerMemory = EtcdMemory<Ledger, Whole>;

/// The decision keys etcd holds under the memory's prefix: (key, lease).
async fn decision_keys(memory: &LedgerMemory) -> Vec<(String, i64)> {
    let prefix = format!("{}decisions/", memory.config().prefix());
    let mut client = memory.client().clone();
    let response = client
        .get(prefix, Some(GetOptions::new().with_prefix()))
        .await
        .unwrap();
    response
        .kvs()
        .iter()
        .map(|pair| (pair.key_str().unwrap().to_owned(), pair.lease()))
        .collect()
}

/// Waits (on an etcd watch from `revision`, at most 20 s) until etcd has deleted the decision
/// keys of `ids` under `memory`'s prefix.
async fn decision_keys_deleted(memory: &LedgerMemory, revision: i64, ids: &[u128]) {
    let prefix = format!("{}decisions/", memory.config().prefix());
    let mut waiting: Vec<String> = ids.iter().map(|id| format!("{prefix}{id:032x}")).collect();
    let mut client = memory.client().clone();
    let mut stream = client
        .watch(
            prefix,
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(revision),
            ),
        )
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(20), async {
        while !waiting.is_empty() {
            let response = stream
                .message()
                .await
                .unwrap()
                .expect("the watch stays open");
            for event in response.events() {
                if event.event_type() == EventType::Delete {
                    let key = event.kv().and_then(|pair| pair.key_str().ok());
                    waiting.retain(|waited| Some(waited.as_str()) != key);
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("etcd did not delete {waiting:?} within 20 s"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_key_lives_under_a_lease_that_outlives_the_decision_window() {
    let server = etcd();
    let window = Duration::from_secs(60);
    let config = config(vec![server.endpoint()], "leased").decision_window(window);
    let memory = LedgerMemory::open(config, Ledger::default()).await.unwrap();
    for id in 1..=3_u64 {
        commit(&memory, u128::from(id), id - 1, &[add(1, 1, 1)], 1)
            .await
            .unwrap();
    }
    assert_eq!(memory.resolve(99).await.unwrap(), None, "fenced");
    let keys = decision_keys(&memory).await;
    assert_eq!(keys.len(), 4, "three decisions and one fence: {keys:?}");
    let lease = keys[0].1;
    assert!(lease != 0, "{keys:?}");
    assert!(
        keys.iter().all(|(_, other)| *other == lease),
        "the commits of one quarter window share a lease, fences included: {keys:?}"
    );
    let mut leases = memory.client().lease_client();
    let remaining = leases.time_to_live(lease, None).await.unwrap().ttl();
    assert!(
        remaining >= window.as_secs() as i64,
        "{remaining} s left, the window is {window:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decision_keys_expire_after_the_window_yet_a_resend_inside_it_lands_once() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "expire")
        .commit_timeout(Duration::from_secs(1))
        .decision_window(Duration::from_secs(1));
    let memory = LedgerMemory::open(config, Ledger::default()).await.unwrap();
    let revision = current_revision(memory.client()).await;
    for id in 1..=10_u64 {
        commit(&memory, u128::from(id), id - 1, &[add(id, 1, 1)], 1)
            .await
            .unwrap();
    }
    // Decision 10 again, as a retry whose first answer was lost would send it: inside the window.
    assert_eq!(
        commit(&memory, 10, 9, &[add(10, 1, 1)], 1).await.unwrap(),
        Committed::new(10, false)
    );
    assert_eq!(
        (memory.snapshot().version(), memory.snapshot().applied),
        (10, 10),
        "the resend landed nothing"
    );
    assert_eq!(decision_keys(&memory).await.len(), 10);

    decision_keys_deleted(&memory, revision, &(1..=10).collect::<Vec<_>>()).await;
    assert!(decision_keys(&memory).await.is_empty());
    assert_eq!(
        memory.history(1, 10).await.unwrap().len(),
        10,
        "the history keeps its own window"
    );
    assert_eq!(
        commit(&memory, 11, 10, &[add(11, 1, 1)], 1).await.unwrap(),
        Committed::new(11, false),
        "a commit after the keys expired grants a new lease"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolve_after_the_window_finds_a_landed_decision_in_the_history_and_fences_the_rest() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "late-resolve")
        .commit_timeout(Duration::from_secs(1))
        .decision_window(Duration::from_secs(1))
        .history(1);
    let memory = LedgerMemory::open(config.clone(), Ledger::default())
        .await
        .unwrap();
    let revision = current_revision(memory.client()).await;
    for id in 1..=3_u64 {
        commit(&memory, u128::from(id), id - 1, &[add(id, 1, 1)], 1)
            .await
            .unwrap();
    }
    decision_keys_deleted(&memory, revision, &[1, 2, 3]).await;

    assert_eq!(
        memory.resolve(3).await.unwrap(),
        Some(3),
        "the newest decision, from the head and the one-version history"
    );
    assert_eq!(
        memory.resolve(3).await.unwrap(),
        Some(3),
        "the key says so again"
    );
    assert_eq!(
        memory.resolve(1).await.unwrap(),
        None,
        "version 1 is no longer in a one-version history: reported not committed"
    );
    let committed = commit(&memory, 77, 3, &[add(77, 1, 1)], 1).await;
    assert_eq!(committed.unwrap(), Committed::new(4, false));
    assert_eq!(memory.resolve(77).await.unwrap(), Some(4));

    let deep = LedgerMemory::open(config.history(10), Ledger::default())
        .await
        .unwrap();
    let revision = current_revision(deep.client()).await;
    for id in 5..=6_u64 {
        commit(&deep, u128::from(id), id - 1, &[add(id, 1, 1)], 1)
            .await
            .unwrap();
    }
    decision_keys_deleted(&deep, revision, &[5, 6]).await;
    assert_eq!(
        deep.resolve(5).await.unwrap(),
        Some(5),
        "an older version, from the history"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_window_shorter_than_the_commit_timeout_is_refused() {
    let config = config(vec!["http://127.0.0.1:1".to_owned()], "short-window")
        .commit_timeout(Duration::from_secs(10))
        .decision_window(Duration::from_secs(9));
    let error = LedgerMemory::open(config, Ledger::default())
        .await
        .unwrap_err();
    assert!(
        matches!(error, EtcdError::DecisionWindowTooShort { window, commit_timeout }
            if window == Duration::from_secs(9) && commit_timeout == Duration::from_secs(10)),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "decision window 9s is shorter than the commit timeout 10s: a resent commit could land twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_a_memory_from_before_decision_keys_expired_attaches_its_old_keys_to_a_lease() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "old-keys");
    let memory = LedgerMemory::open(config.clone(), Ledger::default())
        .await
        .unwrap();
    commit(&memory, 1, 0, &[add(1, 1, 1)], 1).await.unwrap();
    // What a version before this one left: a marker without `decisions`, and keys without a lease.
    let prefix = config.prefix().to_owned();
    let mut client = memory.client().clone();
    client
        .put(
            format!("{prefix}meta"),
            r#"{"format":"hivekit-memory","format_version":1,"layout":"whole"}"#,
            None,
        )
        .await
        .unwrap();
    for id in [0xa_u128, 0xb] {
        client
            .put(format!("{prefix}decisions/{id:032x}"), "7", None)
            .await
            .unwrap();
    }
    assert_eq!(
        decision_keys(&memory)
            .await
            .iter()
            .filter(|(_, lease)| *lease == 0)
            .count(),
        2
    );

    let reopened = LedgerMemory::open(config.clone(), Ledger::default())
        .await
        .unwrap();
    let keys = decision_keys(&reopened).await;
    assert_eq!(keys.len(), 3);
    assert!(keys.iter().all(|(_, lease)| *lease != 0), "{keys:?}");
    assert_eq!(
        reopened.resolve(0xa).await.unwrap(),
        Some(7),
        "the old keys keep their values"
    );
    let marker = client.get(format!("{prefix}meta"), None).await.unwrap();
    let marker = marker.kvs()[0].value_str().unwrap().to_owned();
    assert!(marker.contains(r#""decisions":"leased""#), "{marker}");
}

/// Regression: the first commit of a process grants the decision lease, and a grant that timed out
/// (the cluster busy electing a leader after a member went away, as in `memory_cluster.rs`) failed
/// the commit at once, where the transaction itself is retried until the commit's deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_lease_grant_that_times_out_is_retried_until_the_commit_deadline() {
    let server = etcd();
    // Requests time out after 2 s; the commit may take 10 s in all.
    let config = config(vec![server.endpoint()], "grant-retried");
    let memory = std::sync::Arc::new(LedgerMemory::open(config, Ledger::default()).await.unwrap());
    assert!(decision_keys(&memory).await.is_empty(), "no commit yet");
    // The server stops answering before the first commit asks for a lease, and answers again
    // after the grant's request has timed out but well inside the commit's deadline.
    server.freeze();
    let committing = tokio::spawn({
        let memory = std::sync::Arc::clone(&memory);
        async move { commit(&*memory, 1, 0, &[add(1, 1, 1)], 1).await }
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    server.thaw();

    let committed = committing.await.unwrap().unwrap();
    assert_eq!(committed.version, 1);
    let keys = decision_keys(&memory).await;
    assert_eq!(keys.len(), 1);
    assert_ne!(keys[0].1, 0, "the key is under a lease");
}
