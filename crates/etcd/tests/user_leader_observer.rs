//! `Election::observe` follows who leads, as etcd's `Observe` does, and `Leadership::proclaim`
//! changes the leader's value without a new election (etcd's `Proclaim`): every change is seen in
//! order when changes are apart, a watch compacted away or cut is made again, and a leadership
//! that lost its key cannot proclaim.

mod support;

use std::time::Duration;

use hivekit_etcd::{Election, EtcdError, LeaderObserver};
use support::{compact_now, config, etcd};

const TTL: Duration = Duration::from_secs(5);

/// The next change the observer reports, within a bound.
async fn next(observer: &mut LeaderObserver) -> Option<String> {
    tokio::time::timeout(Duration::from_secs(5), observer.changed())
        .await
        .expect("the observer saw the change within 5 s")
        .expect("etcd answered")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_sees_each_leader_and_each_proclamation_in_order() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "observe-order");
    let client = config.connect().await.unwrap();
    let election = Election::new(client.clone(), &config, "jobs").unwrap();
    let mut observer = election.observe().await.unwrap();
    assert_eq!(observer.leader(), None, "nobody campaigned yet");

    let mut first = election.campaign("a", TTL).await.unwrap();
    assert_eq!(next(&mut observer).await.as_deref(), Some("a"));
    assert_eq!(observer.leader(), Some("a"));

    first.proclaim("a, term 2").await.unwrap();
    assert_eq!(first.candidate(), "a, term 2");
    assert_eq!(next(&mut observer).await.as_deref(), Some("a, term 2"));
    assert_eq!(
        election.leader().await.unwrap().as_deref(),
        Some("a, term 2")
    );

    // A candidate queued behind the leader is no change of leader.
    let waiting = {
        let election = election.clone();
        tokio::spawn(async move { election.campaign("b", TTL).await })
    };
    let early = tokio::time::timeout(Duration::from_millis(300), observer.changed()).await;
    assert!(
        early.is_err(),
        "a waiting candidate was reported: {early:?}"
    );

    first.resign().await.unwrap();
    assert_eq!(next(&mut observer).await.as_deref(), Some("b"));
    let second = waiting.await.unwrap().unwrap();
    assert!(second.is_leader());

    drop(second);
    assert_eq!(next(&mut observer).await, None, "the last leader left");
    assert_eq!(observer.leader(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_goes_on_after_etcd_compacts_past_its_watch() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "observe-compacted");
    let client = config.connect().await.unwrap();
    let election = Election::new(client.clone(), &config, "jobs").unwrap();
    let leader = election.campaign("a", TTL).await.unwrap();
    let mut observer = election.observe().await.unwrap();
    assert_eq!(observer.leader(), Some("a"));

    // The observer's watch starts after its read; revisions pass and are compacted before it
    // watches (its first `changed`), so the watch is refused as compacted and made again.
    for round in 0..5 {
        client
            .clone()
            .put("unrelated", format!("{round}"), None)
            .await
            .unwrap();
    }
    compact_now(&client).await;
    leader.resign().await.unwrap();
    assert_eq!(next(&mut observer).await, None);
    let again = election.campaign("c", TTL).await.unwrap();
    assert_eq!(next(&mut observer).await.as_deref(), Some("c"));
    drop(again);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_goes_on_across_an_etcd_restart() {
    let mut server = etcd();
    let config = config(vec![server.endpoint()], "observe-restart");
    let client = config.connect().await.unwrap();
    let election = Election::new(client.clone(), &config, "jobs").unwrap();
    let leader = election.campaign("a", TTL).await.unwrap();
    let mut observer = election.observe().await.unwrap();
    let watching = tokio::spawn(async move {
        let change = observer.changed().await;
        (observer, change)
    });
    // Whether the observer watches before the restart or only after it, it sees what follows.
    tokio::task::block_in_place(|| server.restart()).unwrap();
    leader.resign().await.unwrap();
    let (mut observer, change) = tokio::time::timeout(Duration::from_secs(10), watching)
        .await
        .expect("the observer saw the resignation across the restart")
        .unwrap();
    assert_eq!(change.unwrap(), None);
    let next_leader = election.campaign("b", TTL).await.unwrap();
    assert_eq!(next(&mut observer).await.as_deref(), Some("b"));
    drop(next_leader);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leadership_whose_key_was_deleted_cannot_proclaim() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "observe-proclaim-lost");
    let client = config.connect().await.unwrap();
    let election = Election::new(client.clone(), &config, "jobs").unwrap();
    let mut leader = election.campaign("a", TTL).await.unwrap();
    client.clone().delete(leader.key(), None).await.unwrap();
    let refused = leader.proclaim("still me").await;
    assert!(
        matches!(refused, Err(EtcdError::LeaseLost { .. })),
        "{refused:?}"
    );
    assert_eq!(
        leader.candidate(),
        "a",
        "a refused proclamation changes nothing"
    );
    assert_eq!(election.leader().await.unwrap(), None);
}
