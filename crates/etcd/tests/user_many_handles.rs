//! Several independent clients (as separate processes would be) committing to one memory at once:
//! no lost update, versions gapless, every handle installs every version exactly once and in order
//! (what it committed plus what it followed), and all end on the same state.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use hivekit_etcd::{EtcdMemory, Whole};
use hivekit_hive::Memory;
use support::{add, commit, config, etcd, Ledger};

type LedgerMemory = EtcdMemory<Ledger, Whole>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_clients_committing_at_once_each_install_every_version_once_and_agree() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "many-handles");
    let handles = 4_u64;
    let each = 12_u64;
    let total = handles * each;
    let mut memories = Vec::new();
    for _ in 0..handles {
        memories.push(Arc::new(
            LedgerMemory::open(config.clone(), Ledger::default())
                .await
                .unwrap(),
        ));
    }
    // A reader that never commits, and a memory it watches version by version.
    let watcher = LedgerMemory::open(config.clone(), Ledger::default())
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
                    let committed =
                        commit(&*memory, u128::from(id), base, &[add(id, index, 1)], index)
                            .await
                            .unwrap();
                    versions.push(committed.version);
                }
                versions
            })
        })
        .collect();
    let mut all = BTreeSet::new();
    for task in tasks {
        let versions = tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("the committers finished")
            .unwrap();
        assert!(
            versions.windows(2).all(|pair| pair[0] < pair[1]),
            "one client's versions increase: {versions:?}"
        );
        for version in versions {
            assert!(all.insert(version), "version {version} reported twice");
        }
    }
    assert_eq!(all, (1..=total).collect(), "one version per commit, no gap");

    let everyone = memories.iter().map(|memory| &**memory).chain([&watcher]);
    for (index, memory) in everyone.enumerate() {
        let snapshot = support::caught_up(memory, total, Duration::from_secs(5)).await;
        assert_eq!(snapshot.applied, total, "handle {index}");
        for key in 0..handles {
            assert_eq!(
                snapshot.counters.get(&key),
                Some(&(each as i64)),
                "handle {index}"
            );
        }
        let stats = memory.stats();
        assert_eq!(stats.reloads, 0, "handle {index}: {stats:?}");
        // Installed one at a time, each exactly once: its own commits and the others'.
        assert_eq!(
            stats.commits + stats.followed,
            total,
            "handle {index}: {stats:?}"
        );
    }
    let history = watcher.history(1, total).await.unwrap();
    let mut proposals = BTreeSet::new();
    for (index, entry) in history.iter().enumerate() {
        assert_eq!(entry.version, index as u64 + 1);
        assert!(proposals.insert(entry.changes[0].proposal));
        assert_eq!(
            entry.decision_id,
            format!("{:032x}", u128::from(entry.changes[0].proposal))
        );
    }
    assert_eq!(proposals.len() as u64, total);
}
