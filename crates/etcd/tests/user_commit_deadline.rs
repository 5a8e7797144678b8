//! The commit timeout is "how long a commit may take in all" (EtcdConfig::commit_timeout). A user
//! who shortens it (1 s) and keeps the default request timeout (5 s) expects a commit against a
//! frozen etcd (SIGSTOP: a partition, a stalled disk) to give up after about 1 s, whatever the
//! commit happened to be doing: sending its transaction, or granting the lease its decision key
//! goes under (the first commit of a process, and again every quarter decision window).

mod support;

use std::time::{Duration, Instant};

use hivekit_etcd::{EtcdMemory, Whole};
use support::{add, commit, config, etcd, Ledger};

type LedgerMemory = EtcdMemory<Ledger, Whole>;

const COMMIT: Duration = Duration::from_secs(1);
const REQUEST: Duration = Duration::from_secs(5);
/// Scheduling slack on top of the commit timeout.
const SLACK: Duration = Duration::from_millis(1_500);

/// Thaws the server however the test ends, so that its helper can stop it.
struct Thaw<'a>(&'a hivekit_etcd::testing::EtcdServer);

impl Drop for Thaw<'_> {
    fn drop(&mut self) {
        self.0.thaw();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_that_sent_its_transaction_to_a_frozen_etcd_gives_up_within_the_commit_timeout() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "deadline-txn")
        .request_timeout(REQUEST)
        .commit_timeout(COMMIT);
    let memory = LedgerMemory::open(config, Ledger::default()).await.unwrap();
    // The decision lease is granted by this first commit and reused by the next.
    commit(&memory, 1, 0, &[add(1, 1, 1)], 1).await.unwrap();
    server.freeze();
    let _thaw = Thaw(&server);
    let started = Instant::now();
    let outcome = tokio::time::timeout(REQUEST * 3, commit(&memory, 2, 1, &[add(2, 1, 1)], 1))
        .await
        .expect("the commit answers");
    let took = started.elapsed();
    assert!(outcome.is_err());
    assert!(
        took < COMMIT + SLACK,
        "took {took:?}, commit timeout {COMMIT:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_commit_of_a_process_against_a_frozen_etcd_gives_up_within_the_commit_timeout() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "deadline-lease")
        .request_timeout(REQUEST)
        .commit_timeout(COMMIT);
    let memory = LedgerMemory::open(config, Ledger::default()).await.unwrap();
    server.freeze();
    let _thaw = Thaw(&server);
    let started = Instant::now();
    let outcome = tokio::time::timeout(REQUEST * 3, commit(&memory, 1, 0, &[add(1, 1, 1)], 1))
        .await
        .expect("the commit answers");
    let took = started.elapsed();
    let error = outcome.expect_err("etcd is frozen");
    assert!(
        took < COMMIT + SLACK,
        "a commit with a {COMMIT:?} commit timeout took {took:?} ({error}): the decision lease \
         grant waited the whole request timeout ({REQUEST:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_commit_of_a_process_while_etcd_is_down_gives_up_within_the_commit_timeout() {
    let mut server = etcd();
    let config = config(vec![server.endpoint()], "deadline-down")
        .request_timeout(REQUEST)
        .commit_timeout(COMMIT);
    let memory = LedgerMemory::open(config, Ledger::default()).await.unwrap();
    tokio::task::block_in_place(|| server.kill());
    let started = Instant::now();
    let outcome = tokio::time::timeout(REQUEST * 3, commit(&memory, 1, 0, &[add(1, 1, 1)], 1))
        .await
        .expect("the commit answers");
    let took = started.elapsed();
    let error = outcome.expect_err("etcd is down");
    assert!(!error.may_have_committed(), "{error}");
    assert!(
        took < COMMIT + SLACK,
        "a commit with a {COMMIT:?} commit timeout took {took:?} ({error})"
    );
}
