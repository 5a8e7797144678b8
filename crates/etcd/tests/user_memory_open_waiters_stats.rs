//! `EtcdMemory` promises not pinned elsewhere: a cancelled `open` leaves at most an initialized,
//! empty memory; every task waiting in `changed` wakes for one version committed elsewhere; the
//! stats count exactly what the process did; a decision committed by a handle since dropped is
//! resolved from another; a history of `usize::MAX` keeps every version past the default depth, and
//! an open with the default depth then trims to it.
//!
//! Promises (crates/etcd/src/memory.rs, config.rs): `open` "# Cancel safety: a cancelled open leaves
//! at most an initialized, empty memory", "otherwise `initial` is ignored", "History entries older
//! than the configured depth are trimmed"; `EtcdMemoryStats` field docs; `resolve`; `history`
//! "`usize::MAX` keeps every version".

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::GetOptions;
use hivekit_etcd::{EtcdMemory, EtcdMemoryStats, Whole, DEFAULT_HISTORY};
use hivekit_hive::Memory;
use support::{add, caught_up, commit, config, etcd, unique_prefix, Ledger};

type LedgerMemory = EtcdMemory<Ledger, Whole>;

/// How many keys etcd holds under `prefix`.
async fn keys_under(client: &etcd_client::Client, prefix: &str) -> i64 {
    client
        .clone()
        .get(
            prefix,
            Some(GetOptions::new().with_prefix().with_count_only()),
        )
        .await
        .unwrap()
        .count()
}

/// A ledger that says which open created it.
fn marked(step: u64) -> Ledger {
    Ledger {
        counters: BTreeMap::from([(step, 1)]),
        applied: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_cancelled_at_any_point_leaves_nothing_or_an_initialized_empty_memory() {
    let server = etcd();
    let probe = support::config_under(vec![server.endpoint()], "/probe");
    let client = probe.connect().await.unwrap();
    // How long a whole open takes here: the sweep cancels from at once to past that.
    let started = std::time::Instant::now();
    let scratch = support::config_under(vec![server.endpoint()], &unique_prefix("open-timing"));
    drop(
        LedgerMemory::open(scratch, Ledger::default())
            .await
            .unwrap(),
    );
    let whole_open = started.elapsed();
    let (mut nothing, mut created) = (0, 0);
    for step in 1..=50_u64 {
        let config = support::config_under(
            vec![server.endpoint()],
            &unique_prefix(&format!("cancelled-open-{step}")),
        );
        let delay = whole_open * (step as u32) / 40;
        if let Ok(opened) =
            tokio::time::timeout(delay, LedgerMemory::open(config.clone(), marked(step))).await
        {
            drop(opened.unwrap());
        }
        // The marker, the head and the state, or nothing: never a part of them.
        let stored = keys_under(&client, config.prefix()).await;
        assert!(
            stored == 0 || stored == 3,
            "step {step}: {stored} keys under the prefix"
        );
        let reopened = tokio::time::timeout(
            Duration::from_secs(5),
            LedgerMemory::open(config.clone(), Ledger::default()),
        )
        .await
        .expect("the reopen answered")
        .unwrap_or_else(|error| panic!("step {step}: the prefix cannot be opened again: {error}"));
        let state = reopened.snapshot();
        assert_eq!(state.version(), 0, "step {step}: empty, at version 0");
        // Decided by what the reopen found, not by the keys counted before it: a cancelled open
        // whose transaction was already sent may still land after the count (etcd applies it
        // whole, or not at all).
        if *state == marked(step) {
            created += 1;
        } else {
            nothing += 1;
            assert_eq!(
                *state,
                Ledger::default(),
                "step {step}: nothing, or the cancelled open's initial state, whole"
            );
        }
        assert!(reopened.history(0, u64::MAX - 1).await.unwrap().is_empty());
    }
    assert!(
        nothing > 0 && created > 0,
        "the sweep cancelled before and after creation ({nothing} before, {created} after)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_task_waiting_in_changed_wakes_for_one_version_committed_elsewhere() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "many-waiters");
    let writer = LedgerMemory::open(config.clone(), Ledger::default())
        .await
        .unwrap();
    let watcher = Arc::new(
        LedgerMemory::open(config.clone(), Ledger::default())
            .await
            .unwrap(),
    );
    for version in 1..=3_u64 {
        let mut waiters = Vec::new();
        for _ in 0..64 {
            let watcher = Arc::clone(&watcher);
            waiters.push(tokio::spawn(
                async move { watcher.changed(version - 1).await },
            ));
        }
        // Some of them are parked by now; others start after the commit: both must return.
        tokio::task::yield_now().await;
        commit(
            &writer,
            u128::from(version),
            version - 1,
            &[add(version, 1, 1)],
            1,
        )
        .await
        .unwrap();
        for waiter in waiters {
            let snapshot = tokio::time::timeout(Duration::from_secs(5), waiter)
                .await
                .expect("every waiter woke for the new version")
                .unwrap()
                .unwrap();
            assert_eq!(snapshot.version(), version);
            assert_eq!(snapshot.applied, version);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stats_count_exactly_the_commits_rebases_and_followed_versions_of_each_process() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "exact-stats");
    let first = LedgerMemory::open(config.clone(), Ledger::default())
        .await
        .unwrap();
    let second = LedgerMemory::open(config.clone(), Ledger::default())
        .await
        .unwrap();
    assert_eq!(first.stats(), EtcdMemoryStats::default());
    for version in 1..=3_u64 {
        commit(
            &first,
            u128::from(version),
            version - 1,
            &[add(version, 1, 1)],
            1,
        )
        .await
        .unwrap();
    }
    // Counted before the waiters wake: seen at once by whoever saw the version.
    caught_up(&second, 3, Duration::from_secs(5)).await;
    let mut expected = EtcdMemoryStats::default();
    expected.followed = 3;
    assert_eq!(second.stats(), expected);

    // A round that read version 0 commits after three others: applied on top of them.
    let committed = commit(&second, 40, 0, &[add(40, 2, 1)], 2).await.unwrap();
    assert_eq!((committed.version, committed.rebased), (4, true));
    expected.commits = 1;
    expected.rebased = 1;
    assert_eq!(
        second.stats(),
        expected,
        "its follower had installed version 3: no transaction lost"
    );

    caught_up(&first, 4, Duration::from_secs(5)).await;
    let mut expected = EtcdMemoryStats::default();
    expected.commits = 3;
    expected.followed = 1;
    assert_eq!(first.stats(), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_committed_by_a_handle_since_dropped_is_resolved_from_another() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "resolve-elsewhere");
    let id = u128::MAX - 5;
    {
        let committer = LedgerMemory::open(config.clone(), Ledger::default())
            .await
            .unwrap();
        commit(&committer, 1, 0, &[add(1, 1, 1)], 1).await.unwrap();
        let committed = commit(&committer, id, 1, &[add(2, 1, 1)], 1).await.unwrap();
        assert_eq!(committed.version, 2);
    }
    let other = LedgerMemory::open(config.clone(), Ledger::default())
        .await
        .unwrap();
    assert_eq!(other.resolve(id).await.unwrap(), Some(2));
    assert_eq!(other.resolve(1).await.unwrap(), Some(1));
    assert_eq!(other.resolve(0).await.unwrap(), None, "never committed");
    assert_eq!(
        other.resolve(0).await.unwrap(),
        None,
        "settled for good: the same answer again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_of_usize_max_keeps_every_version_and_a_default_open_trims_it_to_the_default() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "keep-all").history(usize::MAX);
    let memory = LedgerMemory::open(config.clone(), Ledger::default())
        .await
        .unwrap();
    let versions = DEFAULT_HISTORY as u64 + 20;
    for version in 1..=versions {
        commit(
            &memory,
            u128::from(version),
            version - 1,
            &[add(version, 1, 1)],
            1,
        )
        .await
        .unwrap();
    }
    let kept: Vec<u64> = memory
        .history(0, u64::MAX - 1)
        .await
        .unwrap()
        .iter()
        .map(|entry| entry.version)
        .collect();
    assert_eq!(kept, (1..=versions).collect::<Vec<_>>(), "every version");

    // Reopening with the same depth trims nothing.
    drop(
        LedgerMemory::open(config.clone(), Ledger::default())
            .await
            .unwrap(),
    );
    assert_eq!(
        memory.history(0, versions).await.unwrap().len() as u64,
        versions
    );

    // Opening with the default depth trims to the newest DEFAULT_HISTORY at once.
    let defaulted = LedgerMemory::open(config.history(DEFAULT_HISTORY), Ledger::default())
        .await
        .unwrap();
    let kept: Vec<u64> = defaulted
        .history(0, versions)
        .await
        .unwrap()
        .iter()
        .map(|entry| entry.version)
        .collect();
    assert_eq!(kept, (21..=versions).collect::<Vec<_>>());
    assert_eq!(defaulted.snapshot().applied, versions);
}
