//! Ported from etcd's `TestElectionObserveCompacted` and `TestElectionSessionRecampaign`
//! (tests/integration/v3_election_test.go): the leader is still reported, and the queue still moves,
//! after etcd compacted past the leader's key; and campaigning again from the leader's own election
//! handle does not deadlock. hivekit has no `Proclaim` and campaigns each time with a new lease, so
//! the second campaign is a second candidate that queues behind the first (never a second leader)
//! and is elected once the first resigns.

mod support;

use std::time::Duration;

use hivekit_etcd::Election;
use support::{compact_now, config, etcd};

const TTL: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_is_reported_and_the_queue_moves_after_etcd_compacts_past_its_key() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "peer-observe-compacted");
    let client = config.connect().await.unwrap();
    let election = Election::new(client.clone(), &config, "test-elect").unwrap();
    let abc = election.campaign("abc", TTL).await.unwrap();

    client.clone().put("foo", "bar", None).await.unwrap();
    compact_now(&client).await;
    assert_eq!(election.leader().await.unwrap().as_deref(), Some("abc"));
    assert!(abc.is_leader());

    // A candidate that waits while etcd compacts again is elected when the leader resigns.
    let waiting = {
        let election = election.clone();
        tokio::spawn(async move { election.campaign("def", TTL).await })
    };
    let candidates = format!("{}election/test-elect/", config.prefix());
    tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            let standing = client
                .clone()
                .get(
                    candidates.clone(),
                    Some(etcd_client::GetOptions::new().with_prefix()),
                )
                .await
                .unwrap()
                .kvs()
                .len();
            if standing == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("def stood");
    for _ in 0..3 {
        client.clone().put("foo", "baz", None).await.unwrap();
    }
    compact_now(&client).await;
    assert!(abc.is_leader());
    abc.resign().await.unwrap();
    let def = tokio::time::timeout(Duration::from_secs(3), waiting)
        .await
        .expect("the waiting candidate was elected")
        .unwrap()
        .unwrap();
    assert!(def.is_leader());
    assert_eq!(election.leader().await.unwrap().as_deref(), Some("def"));

    // A leader's loss is still noticed after a compaction.
    compact_now(&client).await;
    let key = def.key();
    client.clone().delete(key, None).await.unwrap();
    tokio::time::timeout(Duration::from_secs(2), def.lost())
        .await
        .expect("the leader noticed its key went after a compaction");
    assert!(!def.is_leader());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaigning_again_from_the_leaders_handle_queues_behind_it_and_never_deadlocks() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "peer-recampaign");
    let election = Election::new(config.connect().await.unwrap(), &config, "test-elect").unwrap();
    let abc = election.campaign("abc", TTL).await.unwrap();
    let again = {
        let election = election.clone();
        tokio::spawn(async move { election.campaign("def", TTL).await })
    };
    // Not a second leader beside the first.
    let mut again = again;
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut again)
            .await
            .is_err(),
        "a second campaign was elected while the first leads"
    );
    assert!(abc.is_leader());
    assert_eq!(election.leader().await.unwrap().as_deref(), Some("abc"));

    abc.resign().await.unwrap();
    let def = tokio::time::timeout(Duration::from_secs(3), again)
        .await
        .expect("the second campaign was elected once the first resigned")
        .unwrap()
        .unwrap();
    assert!(def.is_leader());
    assert_eq!(election.leader().await.unwrap().as_deref(), Some("def"));
}
