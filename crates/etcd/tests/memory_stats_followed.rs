//! `EtcdMemoryStats::followed` counts versions committed elsewhere only: the follower often
//! installs this process's own new version before its commit hears back (etcd notifies watchers
//! first), and counted it as followed (found by qa2).

mod support;

use std::time::Duration;

use hivekit_etcd::{EtcdMemory, Whole};
use hivekit_hive::Memory;
use support::{add, commit, config, etcd, Ledger};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_writer_follows_nothing() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "stats");
    let memory = EtcdMemory::<Ledger, Whole>::open(config.clone(), Ledger::default())
        .await
        .unwrap();
    for id in 1..=5_u64 {
        commit(&memory, u128::from(id), id - 1, &[add(id, 1, 1)], 1)
            .await
            .unwrap();
    }
    // A second handle that sees version 5 proves etcd has sent every watch event of the five
    // commits; the writer's own follower has had them at the same time.
    let witness = EtcdMemory::<Ledger, Whole>::open(config, Ledger::default())
        .await
        .unwrap();
    assert_eq!(witness.snapshot().version(), 5);
    let _ = tokio::time::timeout(Duration::from_millis(200), memory.changed(5)).await;
    let stats = memory.stats();
    assert_eq!((stats.commits, stats.followed), (5, 0), "{stats:?}");
}
