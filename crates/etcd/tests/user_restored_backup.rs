//! etcd restored from an older backup of its data directory (an operator's disaster recovery): a
//! process that opens afterwards holds the backup's state and commits gaplessly on it, and a member
//! whose lease was granted after the backup learns promptly that it is gone (typed `LeaseLost`).
//! (A process that had committed past the backup is qa6's failing case
//! etcd_restored_backup_diverges.rs.)

mod support;

use std::time::Duration;

use hivekit_etcd::{EtcdError, EtcdMemory, Membership, Whole};
use hivekit_hive::{AgentId, Memory};
use support::{add, backup, commit, config, etcd, Ledger};

type LedgerMemory = EtcdMemory<Ledger, Whole>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restore_new_processes_hold_the_backup_and_later_leases_are_reported_lost() {
    let mut server = etcd();
    let config = config(vec![server.endpoint()], "restore")
        .request_timeout(Duration::from_millis(500))
        .commit_timeout(Duration::from_secs(3));
    {
        let memory = LedgerMemory::open(config.clone(), Ledger::default())
            .await
            .unwrap();
        for id in 1..=2_u64 {
            commit(&memory, u128::from(id), id - 1, &[add(id, 1, 1)], 1)
                .await
                .unwrap();
        }
    }
    let saved = tokio::task::block_in_place(|| backup::save(&mut server));
    let ttl = Duration::from_secs(3);
    let membership = Membership::join(config.connect().await.unwrap(), &config, "late", ttl)
        .await
        .unwrap();
    membership.register(AgentId(1), "worker").await.unwrap();
    {
        let memory = LedgerMemory::open(config.clone(), Ledger::default())
            .await
            .unwrap();
        commit(&memory, 3, 2, &[add(3, 1, 1)], 1).await.unwrap();
    }
    tokio::task::block_in_place(|| backup::restore(&mut server, &saved));

    let reopened = LedgerMemory::open(config.clone(), Ledger::default())
        .await
        .unwrap();
    let state = reopened.snapshot();
    assert_eq!((state.version(), state.applied), (2, 2));
    assert_eq!(state.counters.get(&1), Some(&2));
    let next = commit(&reopened, 13, 2, &[add(13, 1, 1)], 1).await.unwrap();
    assert_eq!(next.version, 3);
    let history = reopened.history(1, 10).await.unwrap();
    let landed: Vec<(u64, u64)> = history
        .iter()
        .map(|entry| (entry.version, entry.changes[0].proposal))
        .collect();
    assert_eq!(landed, [(1, 1), (2, 2), (3, 13)]);
    // The decision committed after the backup is not in the restored etcd.
    assert_eq!(reopened.resolve(3).await.unwrap(), None);

    // The lease granted after the backup does not exist any more: the member is told well within
    // its TTL, and refuses to register.
    tokio::time::timeout(ttl, membership.lost())
        .await
        .expect("the member learnt its lease is gone");
    let error = membership.register(AgentId(2), "again").await.unwrap_err();
    assert!(matches!(error, EtcdError::LeaseLost { .. }), "{error}");
    assert!(Membership::list(reopened.client(), &config)
        .await
        .unwrap()
        .is_empty());
}
