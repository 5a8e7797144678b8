//! EtcdMemory against one real etcd: commits, rebases, following, layouts and typed errors.

mod support;

use std::time::Duration;

use hivekit_etcd::{EtcdError, EtcdMemory, Keyed, Whole};
use hivekit_hive::{Committed, Memory, MemoryError, Proposal, ProposalId};
use support::{add, commit, config, etcd, Counters, Ledger};

type LedgerMemory = EtcdMemory<Ledger, Whole>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_creates_the_next_version_and_another_process_follows_it() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "follow");
    let first = LedgerMemory::open(config.clone(), Ledger::default())
        .await
        .unwrap();
    let second = LedgerMemory::open(config, Ledger::default()).await.unwrap();
    assert_eq!(first.snapshot().version(), 0);

    let committed = commit(&first, 1, 0, &[add(1, 7, 5)], 1).await.unwrap();
    assert_eq!(committed, Committed::new(1, false));
    assert_eq!(
        first.snapshot().counters[&7],
        5,
        "a commit is visible at once where it was made"
    );

    let followed = tokio::time::timeout(Duration::from_secs(5), second.changed(0))
        .await
        .expect("the follower saw the commit")
        .unwrap();
    assert_eq!((followed.version(), followed.counters[&7]), (1, 5));
    assert_eq!(second.stats().followed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_on_a_stale_version_is_rebased_onto_the_newest_and_applied_once() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "rebase");
    let first = LedgerMemory::open(config.clone(), Ledger::default())
        .await
        .unwrap();
    let second = LedgerMemory::open(config, Ledger::default()).await.unwrap();

    assert_eq!(
        commit(&first, 1, 0, &[add(1, 1, 1)], 1).await.unwrap(),
        Committed::new(1, false)
    );
    // The second process commits on version 0 although version 1 exists.
    let committed = commit(&second, 2, 0, &[add(2, 1, 10)], 2).await.unwrap();
    assert_eq!(committed, Committed::new(2, true));
    let state = second.snapshot();
    assert_eq!((state.counters[&1], state.applied), (11, 2));

    let history = second.history(1, 2).await.unwrap();
    let versions: Vec<u64> = history.iter().map(|entry| entry.version).collect();
    assert_eq!(versions, [1, 2]);
    assert!(!history[0].rebased && history[1].rebased);
    assert_eq!(history[1].changes[0].proposer, Some(2));
    assert_eq!(history[1].changes[0].change.delta, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_committers_produce_a_gapless_history_with_every_change_once() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "concurrent");
    let memory = std::sync::Arc::new(
        LedgerMemory::open(config.clone(), Ledger::default())
            .await
            .unwrap(),
    );
    let other = std::sync::Arc::new(
        LedgerMemory::open(config.clone(), Ledger::default())
            .await
            .unwrap(),
    );
    let mut tasks = Vec::new();
    for committer in 0..8_u64 {
        let memory = if committer % 2 == 0 {
            memory.clone()
        } else {
            other.clone()
        };
        tasks.push(tokio::spawn(async move {
            for step in 0..10_u64 {
                let id = committer * 100 + step;
                let base = memory.snapshot().version();
                commit(
                    &*memory,
                    u128::from(id),
                    base,
                    &[add(id, committer, 1)],
                    committer,
                )
                .await
                .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let history = memory.history(1, u64::MAX - 1).await.unwrap();
    assert_eq!(history.len(), 80);
    for (index, entry) in history.iter().enumerate() {
        assert_eq!(entry.version, index as u64 + 1, "versions are gapless");
    }
    let mut ids: Vec<u64> = history
        .iter()
        .flat_map(|e| e.changes.iter().map(|c| c.proposal))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 80, "every change exactly once");
    let reopened = LedgerMemory::open(config, Ledger::default()).await.unwrap();
    let state = reopened.snapshot();
    assert_eq!((state.version(), state.applied), (80, 80));
    assert!(state.counters.values().all(|&count| count == 10));
    assert!(
        memory.stats().conflicts + other.stats().conflicts > 0,
        "the committers contended"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_memory_writes_only_the_entries_a_commit_touched() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "keyed");
    let initial = Counters((0..100).map(|key| (key, 1)).collect());
    let memory = EtcdMemory::<Counters, Keyed>::open(config.clone(), initial)
        .await
        .unwrap();
    let mut client = memory.client().clone();
    let state_prefix = format!("{}state/", config.prefix());
    let revision_before = support::current_revision(&client).await;

    let proposal = Proposal::new(
        ProposalId(1),
        support::Add {
            id: 1,
            key: 5,
            delta: 41,
        },
    )
    .writes([5]);
    let removal = Proposal::new(
        ProposalId(2),
        support::Add {
            id: 2,
            key: 6,
            delta: -1,
        },
    )
    .writes([6]);
    commit(&memory, 1, 0, &[proposal, removal], 1)
        .await
        .unwrap();

    let changed = client
        .get(
            state_prefix.clone(),
            Some(
                etcd_client::GetOptions::new()
                    .with_prefix()
                    .with_min_mod_revision(revision_before + 1),
            ),
        )
        .await
        .unwrap();
    let keys: Vec<String> = changed
        .kvs()
        .iter()
        .map(|kv| kv.key_str().unwrap().to_string())
        .collect();
    assert_eq!(
        keys,
        [format!("{state_prefix}5")],
        "only the entry written was put"
    );
    let all = client
        .get(
            state_prefix,
            Some(
                etcd_client::GetOptions::new()
                    .with_prefix()
                    .with_count_only(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(all.count(), 99, "the entry that went to zero was deleted");

    let reopened = EtcdMemory::<Counters, Keyed>::open(config, Counters::default())
        .await
        .unwrap();
    let state = reopened.snapshot();
    assert_eq!(
        (state.version(), state.0[&5], state.0.get(&6)),
        (1, 42, None)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_already_committed_is_reported_with_its_version_and_not_applied_again() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "idempotent");
    let memory = LedgerMemory::open(config, Ledger::default()).await.unwrap();
    assert_eq!(
        commit(&memory, 9, 0, &[add(1, 1, 1)], 1).await.unwrap(),
        Committed::new(1, false)
    );
    // The same decision again, as a retry whose first answer was lost would send it.
    assert_eq!(
        commit(&memory, 9, 0, &[add(1, 1, 1)], 1).await.unwrap(),
        Committed::new(1, false)
    );
    assert_eq!(
        (memory.snapshot().version(), memory.snapshot().applied),
        (1, 1)
    );
    assert_eq!(memory.resolve(9).await.unwrap(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_decision_can_never_commit() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "fenced");
    let memory = LedgerMemory::open(config, Ledger::default()).await.unwrap();
    assert_eq!(memory.resolve(5).await.unwrap(), None);
    let error = commit(&memory, 5, 0, &[add(1, 1, 1)], 1).await.unwrap_err();
    assert!(error.to_string().contains("fenced off"), "{error}");
    assert_eq!(memory.snapshot().version(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_errors_name_foreign_data_corrupt_values_oversized_commits_and_wrong_layouts() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "errors");
    let mut client = config.connect().await.unwrap();

    client
        .put(format!("{}someone-else", config.prefix()), "x", None)
        .await
        .unwrap();
    let error = LedgerMemory::open(config.clone(), Ledger::default())
        .await
        .unwrap_err();
    assert!(matches!(error, EtcdError::NotAMemory { .. }), "{error}");
    assert!(
        error.to_string().contains("not a hivekit memory"),
        "{error}"
    );

    let config = support::config(vec![server.endpoint()], "errors-corrupt");
    drop(
        LedgerMemory::open(config.clone(), Ledger::default())
            .await
            .unwrap(),
    );
    let state_key = format!("{}state/value", config.prefix());
    client
        .put(state_key.clone(), "{not json", None)
        .await
        .unwrap();
    let error = LedgerMemory::open(config.clone(), Ledger::default())
        .await
        .unwrap_err();
    match &error {
        EtcdError::Corrupt { key, .. } => assert_eq!(*key, state_key),
        other => panic!("expected a corrupt value, got {other}"),
    }
    let error = EtcdMemory::<Counters, Keyed>::open(config, Counters::default())
        .await
        .unwrap_err();
    assert!(matches!(error, EtcdError::LayoutMismatch { .. }), "{error}");

    let config = support::config(vec![server.endpoint()], "errors-large");
    let memory = LedgerMemory::open(config, Ledger::default()).await.unwrap();
    let huge: Vec<_> = (0..200_000).map(|id| add(id, id, 1)).collect();
    let error = commit(&memory, 1, 0, &huge, 1).await.unwrap_err();
    assert!(
        matches!(
            error,
            MemoryError::TooLarge {
                limit: 1_572_864,
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(memory.snapshot().version(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_etcd_is_reported_within_the_connect_timeout() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = support::config(vec![format!("http://127.0.0.1:{port}")], "unreachable")
        .connect_timeout(Duration::from_millis(500));
    let started = std::time::Instant::now();
    let error = LedgerMemory::open(config, Ledger::default())
        .await
        .unwrap_err();
    assert!(matches!(error, EtcdError::Unreachable { .. }), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memories_opened_at_once_on_an_empty_prefix_all_open_the_one_memory_created() {
    // Regression: a process that found no marker, then the keys another had just created, took
    // them for foreign data.
    let server = etcd();
    let config = config(vec![server.endpoint()], "open-race");
    let opened = futures::future::join_all(
        (0..8).map(|_| LedgerMemory::open(config.clone(), Ledger::default())),
    )
    .await;
    for memory in opened {
        assert_eq!(memory.unwrap().snapshot().version(), 0);
    }
}
