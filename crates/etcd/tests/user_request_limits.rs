//! States and commits right at etcd's request limit (`--max-request-bytes`, 1.5 MiB by default).
//!
//! The documented contract: sizes are checked before sending; a transaction etcd would refuse as
//! too large is `TooLarge { bytes, limit }` (for `open`: "the marker, head and state together"),
//! and a `TooLarge` says how many bytes the transaction has, over the limit.

mod support;

use std::time::Duration;

use hivekit_etcd::{EtcdError, EtcdMemory, Whole, DEFAULT_MAX_REQUEST_BYTES};
use hivekit_hive::{Memory, MemoryError};
use support::{commit, config, etcd, replace, Doc};

type DocMemory = EtcdMemory<Doc, Whole>;

/// A document whose whole state (`state/value`) plus the 16 bytes counted per operation is exactly
/// `target` bytes under `prefix`.
fn doc_of_estimate(prefix: &str, target: usize) -> Doc {
    let key = format!("{prefix}state/value");
    let empty = serde_json::to_vec(&Doc::default()).unwrap().len();
    let text_len = target - key.len() - 16 - empty;
    let doc = Doc {
        text: "x".repeat(text_len),
        edits: 0,
    };
    assert_eq!(
        key.len() + serde_json::to_vec(&doc).unwrap().len() + 16,
        target
    );
    doc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_initial_state_at_the_request_limit_opens_or_is_a_typed_too_large() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "initial-at-limit");
    let prefix = config.prefix().to_string();
    // The state alone is just under the limit: with the marker and the head beside it the
    // transaction is over it.
    let initial = doc_of_estimate(&prefix, DEFAULT_MAX_REQUEST_BYTES - 8);
    let opened = tokio::time::timeout(
        Duration::from_secs(15),
        DocMemory::open(config.clone(), initial.clone()),
    )
    .await
    .expect("open answers in time");
    match opened {
        Ok(memory) => assert_eq!(memory.snapshot().text.len(), initial.text.len()),
        Err(EtcdError::TooLarge { bytes, limit }) => {
            assert_eq!(limit, DEFAULT_MAX_REQUEST_BYTES);
            assert!(
                bytes > limit,
                "TooLarge of {bytes} bytes under the limit {limit}"
            );
        }
        Err(other) => panic!(
            "the documented outcome is TooLarge (marker, head and state together), got: {other:?}"
        ),
    }
    // Whatever happened, the prefix is usable: nothing half written.
    let small = DocMemory::open(config, Doc::default()).await.unwrap();
    let _ = small.snapshot();
}

/// Commits documents of decreasing size to find the largest one the size check lets through;
/// every `TooLarge` must say it is over the limit, and the largest document that passes the check
/// must commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_too_large_commit_is_over_the_limit_and_the_largest_accepted_one_commits() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "commit-at-limit");
    let memory = DocMemory::open(config.clone(), Doc::default())
        .await
        .unwrap();
    let largest = largest_committed_document(&memory).await;
    assert!(
        largest >= 600 * 1024,
        "largest committed document: {largest} bytes"
    );
}

/// The same at a long (but ordinary) prefix: the keys travel in the compares and the reads of the
/// transaction too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_a_long_prefix_every_too_large_commit_is_over_the_limit() {
    let server = etcd();
    let long = format!("/tenants/{}/hive", "t".repeat(1_000));
    let config = support::config_under(vec![server.endpoint()], &long)
        .commit_timeout(Duration::from_secs(10));
    let memory = DocMemory::open(config.clone(), Doc::default())
        .await
        .unwrap();
    largest_committed_document(&memory).await;
}

/// Bisects between 600 KiB (commits: the document travels twice, as state and history entry,
/// about half the limit each) and 800 KiB (refused) for the largest document `memory` commits,
/// failing if a `TooLarge` reports a transaction under the limit or a commit fails otherwise.
async fn largest_committed_document(memory: &DocMemory) -> usize {
    let mut low = 600 * 1024;
    let mut high = 800 * 1024;
    let mut decision = 1_u128;
    while high - low > 1 {
        let middle = (low + high) / 2;
        let base = memory.snapshot().version();
        decision += 1;
        let outcome = tokio::time::timeout(
            Duration::from_secs(15),
            commit(
                memory,
                decision,
                base,
                &[replace(decision as u64, "y".repeat(middle))],
                1,
            ),
        )
        .await
        .expect("commit answers in time");
        match outcome {
            Ok(_) => low = middle,
            Err(MemoryError::TooLarge { bytes, limit }) => {
                assert!(
                    bytes > limit,
                    "a document of {middle} bytes passed the size check but etcd refused it: \
                     TooLarge {{ bytes: {bytes}, limit: {limit} }} reports a transaction under \
                     the limit"
                );
                high = middle;
            }
            Err(other) => panic!("document of {middle} bytes: {other:?}"),
        }
    }
    low
}

/// `open` with a configuration claiming a higher `--max-txn-ops` than the cluster has: the
/// transaction creating the memory is refused by etcd for its operations, which commits report as
/// the typed `TooManyOperations` (memory_txn_ops_misconfigured.rs); `open` documents the same
/// error for an initial state that does not fit in one transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_initial_state_over_the_clusters_txn_op_limit_is_a_typed_error_even_when_misconfigured()
{
    use hivekit_etcd::Keyed;
    use support::Counters;

    let server = etcd();
    let config = config(vec![server.endpoint()], "initial-misconfigured-ops").max_txn_ops(1000);
    let initial = Counters((0..200_u64).map(|key| (key, 1_i64)).collect());
    let opened = tokio::time::timeout(
        Duration::from_secs(15),
        EtcdMemory::<Counters, Keyed>::open(config.clone(), initial),
    )
    .await
    .expect("open answers in time");
    match opened {
        Err(EtcdError::TooManyOperations { operations, .. }) => assert_eq!(operations, 202),
        Err(other) => panic!("expected TooManyOperations, got: {other:?}"),
        Ok(_) => panic!("etcd's default limit is 128 operations per transaction"),
    }
}
