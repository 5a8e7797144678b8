//! A 3-member etcd cluster that loses its quorum (two members stopped): commits and reads fail typed
//! within their timeouts instead of hanging, the local snapshot stays readable, and once a quorum is
//! back the unknown commit resolves to what the history says and the next one lands, gapless.

mod support;

use std::time::{Duration, Instant};

use hivekit_etcd::testing::EtcdCluster;
use hivekit_etcd::{EtcdError, EtcdMemory, Whole};
use hivekit_hive::{Memory, MemoryError};
use support::{add, commit, config_under, Ledger};

type LedgerMemory = EtcdMemory<Ledger, Whole>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_quorum_commits_and_reads_fail_typed_in_time_and_resume_gapless_after() {
    let mut cluster = EtcdCluster::start(3).unwrap_or_else(|error| panic!("{error}"));
    let request = Duration::from_millis(500);
    let commit_timeout = Duration::from_secs(2);
    let config = config_under(cluster.endpoints(), &support::unique_prefix("quorum-lost"))
        .request_timeout(request)
        .commit_timeout(commit_timeout);
    let memory = LedgerMemory::open(config.clone(), Ledger::default())
        .await
        .unwrap();
    commit(&memory, 1, 0, &[add(1, 1, 1)], 1).await.unwrap();

    tokio::task::block_in_place(|| {
        cluster.member_mut(1).unwrap().kill();
        cluster.member_mut(2).unwrap().kill();
    });
    let started = Instant::now();
    let error = commit(&memory, 2, 1, &[add(2, 1, 1)], 1).await.unwrap_err();
    let waited = started.elapsed();
    assert!(
        waited < commit_timeout + Duration::from_secs(2),
        "the commit gave up after {waited:?}"
    );
    assert!(
        matches!(
            error,
            MemoryError::Unavailable { .. } | MemoryError::OutcomeUnknown { .. }
        ),
        "{error}"
    );
    let started = Instant::now();
    let read = tokio::time::timeout(Duration::from_secs(5), memory.history(1, 10))
        .await
        .expect("the read gave up by itself");
    assert!(
        started.elapsed() < request * 4,
        "read gave up after {:?}",
        started.elapsed()
    );
    let read_error = read.unwrap_err();
    assert!(
        matches!(
            read_error,
            EtcdError::Timeout { .. } | EtcdError::Client { .. }
        ),
        "{read_error}"
    );
    // What this process holds stays readable.
    let local = memory.snapshot();
    assert_eq!((local.version(), local.applied), (1, 1));

    tokio::task::block_in_place(|| cluster.member_mut(1).unwrap().restart().unwrap());
    let resolved = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match memory.resolve(2).await {
                Ok(resolved) => return resolved,
                // The restarted member may still be catching up with the leader.
                Err(error) => {
                    eprintln!("resolve: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    })
    .await
    .expect("resolved once a quorum is back");
    if !error.may_have_committed() {
        assert_eq!(resolved, None, "a commit said not to have landed did land");
    }
    let next = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let base = memory.snapshot().version();
            match commit(&memory, 3, base, &[add(3, 1, 1)], 1).await {
                Ok(committed) => return committed,
                Err(error) => {
                    eprintln!("commit: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    })
    .await
    .expect("a commit lands once a quorum is back");
    let history = memory.history(1, 10).await.unwrap();
    let landed: Vec<(u64, u64)> = history
        .iter()
        .map(|entry| (entry.version, entry.changes[0].proposal))
        .collect();
    match resolved {
        Some(version) => {
            assert_eq!(version, 2);
            assert_eq!(landed, [(1, 1), (2, 2), (3, 3)]);
            assert_eq!(next.version, 3);
        }
        None => {
            assert_eq!(landed, [(1, 1), (2, 3)]);
            assert_eq!(next.version, 2);
        }
    }
    assert_eq!(memory.snapshot().applied, next.version);
}
