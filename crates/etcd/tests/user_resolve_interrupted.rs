//! `EtcdMemory::resolve` after the decision window, interrupted by a slow etcd.
//!
//! Documented: after the window the decision's key may have expired, and then "the history entries
//! still held (and the head) are searched for the decision"; on error "etcd cannot be reached; then
//! nothing is settled". A user whose first `resolve` times out (a network blip, a tight request
//! timeout) calls it again and must get the same answer as if the first had not run: the version
//! the decision created, since its history entry is still held.

mod support;

use std::time::Duration;

use hivekit_etcd::{EtcdMemory, Whole};
use hivekit_hive::Memory;
use support::{commit, config, etcd, replace, Doc};

type DocMemory = EtcdMemory<Doc, Whole>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolve_that_failed_midway_does_not_turn_a_landed_decision_into_never_landed() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "resolve-interrupted").history(1_000);
    let memory = DocMemory::open(config.clone(), Doc::default())
        .await
        .unwrap();
    // The decision in question: version 1.
    let decision = 7_u128;
    let landed = commit(&memory, decision, 0, &[replace(1, "first".into())], 1)
        .await
        .unwrap();
    assert_eq!(landed.version, 1);
    commit_large_versions(&memory).await;
    let mut client = memory.client().clone();
    let key = format!("{}decisions/{decision:032x}", config.prefix());

    // Past the window: the decision key has expired (its lease ended).
    let expire = |mut client: hivekit_etcd::Client, key: String| async move {
        let found = client.get(key.clone(), None).await.unwrap();
        if let Some(pair) = found.kvs().first() {
            if pair.lease() != 0 {
                client.lease_revoke(pair.lease()).await.unwrap();
            } else {
                client.delete(key, None).await.unwrap();
            }
        }
    };
    expire(client.clone(), key.clone()).await;
    assert!(client
        .get(key.clone(), None)
        .await
        .unwrap()
        .kvs()
        .is_empty());
    assert_eq!(
        memory.resolve(decision).await.unwrap(),
        Some(1),
        "control: a resolve after the window finds the decision in the history"
    );

    // Now the same, with a resolve cut short by its request timeout partway.
    let mut interrupted = false;
    for micros in [
        300_u64, 600, 1_000, 1_500, 2_000, 3_000, 5_000, 8_000, 12_000,
    ] {
        expire(client.clone(), key.clone()).await;
        let hasty = DocMemory::open(
            config
                .clone()
                .request_timeout(Duration::from_micros(micros)),
            Doc::default(),
        )
        .await;
        // Opening itself may time out at the tightest settings: try the next one.
        let Ok(hasty) = hasty else { continue };
        let outcome = hasty.resolve(decision).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let stored = client.get(key.clone(), None).await.unwrap();
        let fenced = stored
            .kvs()
            .first()
            .is_some_and(|pair| pair.value() == b"fenced");
        if outcome.is_err() && fenced {
            interrupted = true;
            break;
        }
    }
    if !interrupted {
        // Every hasty resolve failed before its fence or finished (timing differs between
        // machines): leave what one interrupted between its fence and its search leaves, the
        // expired key fenced.
        expire(client.clone(), key.clone()).await;
        client.put(key.clone(), "fenced", None).await.unwrap();
    }
    let answer = tokio::time::timeout(Duration::from_secs(10), memory.resolve(decision))
        .await
        .expect("resolve answers")
        .unwrap();
    assert_eq!(
        answer,
        Some(1),
        "decision {decision} created version 1, whose history entry etcd still holds, but a \
         resolve that failed midway left its key fenced and now it is reported never landed"
    );
}

/// Two processes resolving the same decision at once after the window (both saw its commit end
/// unknown, or one retries while the other still runs): both must get the same, true answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_resolves_at_once_after_the_window_agree_that_a_landed_decision_landed() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "resolve-concurrent").history(1_000);
    let memory = DocMemory::open(config.clone(), Doc::default())
        .await
        .unwrap();
    let decision = 9_u128;
    commit(&memory, decision, 0, &[replace(1, "first".into())], 1)
        .await
        .unwrap();
    commit_large_versions(&memory).await;
    let other = DocMemory::open(config.clone(), Doc::default())
        .await
        .unwrap();
    let mut client = memory.client().clone();
    let key = format!("{}decisions/{decision:032x}", config.prefix());
    for round in 0..5 {
        // The window passed: the decision key expired.
        let found = client.get(key.clone(), None).await.unwrap();
        if let Some(pair) = found.kvs().first() {
            if pair.lease() != 0 {
                client.lease_revoke(pair.lease()).await.unwrap();
            } else {
                client.delete(key.clone(), None).await.unwrap();
            }
        }
        let (first, second) = tokio::time::timeout(
            Duration::from_secs(10),
            futures::future::join(memory.resolve(decision), async {
                // Just after the first one's fence.
                tokio::time::sleep(Duration::from_micros(500)).await;
                other.resolve(decision).await
            }),
        )
        .await
        .expect("both resolves answer");
        assert_eq!(
            (first.unwrap(), second.unwrap()),
            (Some(1), Some(1)),
            "round {round}: two resolves of one landed decision disagree"
        );
    }
}

/// Commits 150 versions of 12 KiB each after the decision in question (decisions 100..250), all
/// still held by a history of depth 1,000.
async fn commit_large_versions(memory: &DocMemory) {
    let big = "b".repeat(12 * 1024);
    for id in 100..250_u64 {
        let base = memory.snapshot().version();
        commit(memory, u128::from(id), base, &[replace(id, big.clone())], 1)
            .await
            .unwrap();
    }
}
