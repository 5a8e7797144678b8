//! Once the decision lease is gone from etcd (etcd restored from a backup, an operator's `etcdctl
//! lease revoke`), `resolve` grants a new one and settles the decision, as `commit` does; it failed
//! with "requested lease not found" on every call until a commit replaced the lease (found by qa2).

mod support;

use hivekit_etcd::{EtcdMemory, Whole};
use support::{add, commit, config, etcd, Ledger};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolve_and_commit_work_after_the_decision_lease_is_revoked() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "decision-lease-gone");
    let memory = EtcdMemory::<Ledger, Whole>::open(config.clone(), Ledger::default())
        .await
        .unwrap();
    commit(&memory, 1, 0, &[add(1, 1, 1)], 1).await.unwrap();
    let mut client = config.connect().await.unwrap();
    let key = format!("{}decisions/{:032x}", config.prefix(), 1);
    let lease = client.get(key, None).await.unwrap().kvs()[0].lease();
    assert_ne!(lease, 0, "decision keys live under a lease");
    client.lease_revoke(lease).await.unwrap();

    // A decision that never landed is fenced off, whatever happened to the old lease.
    assert_eq!(memory.resolve(77).await.unwrap(), None);
    let committed = commit(&memory, 2, 1, &[add(2, 1, 1)], 1).await.unwrap();
    assert_eq!(committed.version, 2);
    assert_eq!(memory.resolve(2).await.unwrap(), Some(2));
}
