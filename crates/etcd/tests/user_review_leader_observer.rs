//! Review of 141b814 (`Election::observe`, `LeaderObserver::changed`, `Leadership::proclaim`):
//! an observer that is simply idle for longer than the request timeout before the leader changes,
//! an observer whose `changed()` is cancelled after its watch delivered a change, an observer
//! across a restart after a long wait, and proclaim racing resignation and expiry.

mod support;

use std::time::Duration;

use hivekit_etcd::{Election, EtcdError, LeaderObserver};
use support::{config, etcd};

const TTL: Duration = Duration::from_secs(5);
/// The request timeout of these tests' configs (short, so that an idle observer outlives it).
const REQUEST_TIMEOUT: Duration = Duration::from_millis(600);

/// A config whose request timeout is [`REQUEST_TIMEOUT`].
fn short_config(endpoint: String, test: &str) -> hivekit_etcd::EtcdConfig {
    config(vec![endpoint], test).request_timeout(REQUEST_TIMEOUT)
}

/// The next change, within a bound.
async fn next(
    observer: &mut LeaderObserver,
    within: Duration,
) -> Result<Option<String>, EtcdError> {
    tokio::time::timeout(within, observer.changed())
        .await
        .expect("changed() returned within the bound")
}

/// `changed()` is a wait for the next leader: it may wait for hours. The read that follows the
/// watch event is bounded by a deadline taken when `changed()` was *called*
/// (`Failing::new` at the top of `changed`), so once the observer has waited longer than the
/// request timeout, every change is reported as `Err(Timeout { "read leader" })` instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_idle_longer_than_the_request_timeout_reports_the_next_leader() {
    let server = etcd();
    let config = short_config(server.endpoint(), "review-observe-idle");
    let client = config.connect().await.unwrap();
    let election = Election::new(client.clone(), &config, "jobs").unwrap();
    let mut observer = election.observe().await.unwrap();
    let watching = tokio::spawn(async move {
        let change = tokio::time::timeout(Duration::from_secs(10), observer.changed()).await;
        (observer, change)
    });
    // Nothing happens for a while: an ordinary idle election (not a failure of etcd).
    tokio::time::sleep(REQUEST_TIMEOUT * 3).await;
    let leader = election.campaign("a", TTL).await.unwrap();
    let (observer, change) = watching.await.unwrap();
    let change = change.expect("changed() returned within 10 s");
    assert_eq!(
        change.as_ref().ok().cloned(),
        Some(Some("a".to_owned())),
        "an observer that waited {:?} (request timeout {REQUEST_TIMEOUT:?}) for the first leader \
         got {change:?}",
        REQUEST_TIMEOUT * 3
    );
    assert_eq!(observer.leader(), Some("a"));
    drop(leader);
}

/// The same after an etcd restart: `changed()` promises to make its watch again "for up to the
/// request timeout of failures in a row", but an observer that had been waiting longer than that
/// before the member went away gives up at the first failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_observer_rides_through_a_restart_within_the_request_timeout() {
    let mut server = etcd();
    // Long enough for a restart of a single member (about 1 s on loopback).
    let config = config(vec![server.endpoint()], "review-observe-idle-restart")
        .request_timeout(Duration::from_secs(4));
    let client = config.connect().await.unwrap();
    let election = Election::new(client.clone(), &config, "jobs").unwrap();
    let mut observer = election.observe().await.unwrap();
    let watching = tokio::spawn(async move {
        let change = tokio::time::timeout(Duration::from_secs(20), observer.changed()).await;
        (observer, change)
    });
    // An idle election, longer than the request timeout, then a restart of etcd.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let restarted = std::time::Instant::now();
    tokio::task::block_in_place(|| server.restart()).unwrap();
    let restart_took = restarted.elapsed();
    let leader = election.campaign("a", TTL).await.unwrap();
    let (_observer, change) = watching.await.unwrap();
    let change = change.expect("changed() returned within 20 s");
    assert!(
        restart_took < Duration::from_secs(3),
        "the restart took {restart_took:?}: the test needs it well within the request timeout"
    );
    assert_eq!(
        change.as_ref().ok().cloned(),
        Some(Some("a".to_owned())),
        "an observer idle for 4.5 s saw a restart of {restart_took:?} (request timeout 4 s) and \
         got {change:?}"
    );
    drop(leader);
}

/// `changed()` says "Cancel safe: a change is recorded only as it is returned". Cancelled after
/// its watch delivered an event and while its read of the leader was in flight (etcd frozen), the
/// event is gone from the kept watch and the read was never recorded: the next `changed()` waits
/// for a later event, and the observer never reports the leader that was elected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_cancelled_during_its_read_does_not_lose_the_change() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "review-observe-cancel")
        .request_timeout(Duration::from_secs(5));
    let client = config.connect().await.unwrap();
    let election = Election::new(client.clone(), &config, "jobs").unwrap();
    let mut observer = election.observe().await.unwrap();
    // A first `changed()` makes the watch (kept by the observer) and is cancelled while idle.
    let idle = tokio::time::timeout(Duration::from_millis(300), observer.changed()).await;
    assert!(idle.is_err(), "nothing changed yet: {idle:?}");

    let leader = election.campaign("a", TTL).await.unwrap();
    // The campaign's put is committed; a few round trips on the connection that carries the
    // observer's watch let etcd's watch dispatch put its event on the observer's side.
    for _ in 0..3 {
        client.clone().get("\0", None).await.unwrap();
    }
    server.freeze();
    // The event is read from the watch; the leader read then waits on the frozen etcd; the caller
    // gives up (a select with a timer, a shutdown signal...).
    let cut = tokio::time::timeout(Duration::from_millis(500), observer.changed()).await;
    server.thaw();
    assert!(cut.is_err(), "etcd was frozen: {cut:?}");
    assert_eq!(
        observer.leader(),
        None,
        "nothing was returned, nothing recorded"
    );

    let change = tokio::time::timeout(Duration::from_secs(3), observer.changed()).await;
    assert!(
        matches!(&change, Ok(Ok(Some(value))) if value == "a"),
        "the election has leader `a` ({:?}) but the observer, whose `changed()` was cancelled \
         once, reports {change:?} (leader() = {:?})",
        election.leader().await.unwrap(),
        observer.leader()
    );
    drop(leader);
}

/// Proclaim racing resign: a resigned leadership cannot proclaim (it is consumed), and a
/// leadership that is resigned from another handle (etcd's Resign with its key) is refused.
/// Proclaim racing expiry: once etcd expired the lease, proclaim fails with `LeaseLost` and does
/// not bring the key back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proclaim_after_the_lease_is_revoked_is_refused_and_writes_nothing() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "review-proclaim-revoked");
    let client = config.connect().await.unwrap();
    let election = Election::new(client.clone(), &config, "jobs").unwrap();
    let mut leader = election.campaign("a", TTL).await.unwrap();
    let mut observer = election.observe().await.unwrap();
    assert_eq!(observer.leader(), Some("a"));
    // The lease id is the key's last segment (hex).
    let key = leader.key();
    let lease = i64::from_str_radix(&key[key.rfind('/').unwrap() + 1..], 16).unwrap();
    client.clone().lease_revoke(lease).await.unwrap();
    let refused = leader.proclaim("b").await;
    assert!(
        matches!(refused, Err(EtcdError::LeaseLost { .. })),
        "{refused:?}"
    );
    assert_eq!(election.leader().await.unwrap(), None);
    assert_eq!(
        next(&mut observer, Duration::from_secs(5)).await.unwrap(),
        None
    );
    let kvs = client.clone().get(key.clone(), None).await.unwrap();
    assert!(kvs.kvs().is_empty(), "proclaim wrote the key back: {kvs:?}");
}

/// Many proclamations in a row by one leader, observed: the observer never reports a value the
/// leader did not hold last, never reports the same value twice in a row, and ends on the last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_of_a_proclamation_storm_ends_on_the_last_value_without_repeats() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "review-proclaim-storm");
    let client = config.connect().await.unwrap();
    let election = Election::new(client.clone(), &config, "jobs").unwrap();
    let mut leader = election.campaign("v0", TTL).await.unwrap();
    let mut observer = election.observe().await.unwrap();
    assert_eq!(observer.leader(), Some("v0"));
    let storm = tokio::spawn(async move {
        for round in 1..=50 {
            leader.proclaim(&format!("v{round}")).await.unwrap();
        }
        leader
    });
    let mut seen = vec!["v0".to_owned()];
    while seen.last().map(String::as_str) != Some("v50") {
        let value = next(&mut observer, Duration::from_secs(5))
            .await
            .unwrap()
            .expect("a leader all along");
        assert_ne!(
            seen.last(),
            Some(&value),
            "reported twice in a row: {seen:?}"
        );
        seen.push(value);
    }
    let numbers: Vec<u32> = seen
        .iter()
        .map(|value| value[1..].parse().unwrap())
        .collect();
    assert!(
        numbers.windows(2).all(|pair| pair[0] < pair[1]),
        "values went back: {numbers:?}"
    );
    let leader = storm.await.unwrap();
    assert_eq!(leader.candidate(), "v50");
    let quiet = tokio::time::timeout(Duration::from_millis(300), observer.changed()).await;
    assert!(
        quiet.is_err(),
        "a change reported after the last: {quiet:?}"
    );
}

/// Proclaiming right after the Raft leader of a 3-member cluster is killed: the proclamation (a
/// compare-and-put that can be sent again safely) goes through once the survivors elect a new
/// Raft leader (well under a second), as a campaign does, and the observer sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proclamation_right_after_the_raft_leader_is_killed_goes_through() {
    let mut cluster = match hivekit_etcd::testing::EtcdCluster::start(3) {
        Ok(cluster) => cluster,
        Err(error) => panic!("{error}"),
    };
    let config = config(cluster.endpoints(), "review-proclaim-failover")
        .request_timeout(Duration::from_secs(5));
    let client = config.connect().await.unwrap();
    let election = Election::new(client.clone(), &config, "jobs").unwrap();
    let mut leader = election
        .campaign("a", Duration::from_secs(10))
        .await
        .unwrap();
    let raft_leader = support::leader_index(&cluster).await;
    tokio::task::block_in_place(|| cluster.member_mut(raft_leader).unwrap().kill());
    let proclaimed = leader.proclaim("a, after the failover").await;
    assert!(
        proclaimed.is_ok(),
        "a proclamation during a failover of a 3-member cluster (request timeout 5 s): \
         {proclaimed:?}"
    );
    assert_eq!(
        election.leader().await.unwrap().as_deref(),
        Some("a, after the failover")
    );
}
