//! Ported from etcd's `TestElectionWait` and `TestElectionFailover`
//! (tests/integration/v3_election_test.go): on a three-member cluster, with every candidate and
//! observer talking to a different member, followers see each leader in turn, and a leader whose
//! session closes hands over to the waiting candidate, which an observer on a third member sees.
//! hivekit has no `Observe` stream: observers poll `Election::leader`.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_etcd::testing::EtcdCluster;
use hivekit_etcd::{Client, Election, EtcdConfig};
use parking_lot::Mutex;
use support::{config_under, unique_prefix};

const TTL: Duration = Duration::from_secs(10);

fn cluster() -> EtcdCluster {
    EtcdCluster::start(3).unwrap_or_else(|error| panic!("{error}"))
}

/// A client that talks to member `index` only.
async fn client_of(cluster: &EtcdCluster, prefix: &str, index: usize) -> (Client, EtcdConfig) {
    let config = config_under(vec![cluster.endpoints()[index].clone()], prefix);
    (config.connect().await.unwrap(), config)
}

/// What each observer saw: the distinct leaders, in the order it saw them.
type Seen = Arc<Mutex<Vec<Vec<String>>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn observers_on_every_member_see_each_leader_in_turn_and_never_two_at_once() {
    const LEADERS: usize = 3;
    const OBSERVERS: usize = 3;
    let cluster = cluster();
    let prefix = unique_prefix("peer-election-wait");
    let seen: Seen = Arc::new(Mutex::new(vec![Vec::new(); OBSERVERS]));
    let order = Arc::new(Mutex::new(Vec::new()));
    let holding = Arc::new(AtomicUsize::new(0));

    let mut observers = Vec::new();
    for observer in 0..OBSERVERS {
        let (client, config) = client_of(&cluster, &prefix, observer).await;
        let election = Election::new(client, &config, "rounds").unwrap();
        let seen = Arc::clone(&seen);
        observers.push(tokio::spawn(async move {
            while seen.lock()[observer].len() < LEADERS {
                if let Some(leader) = election.leader().await.unwrap() {
                    let mut seen = seen.lock();
                    if seen[observer].last() != Some(&leader) {
                        seen[observer].push(leader);
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }

    let mut leaders = Vec::new();
    for candidate in 0..LEADERS {
        // Each candidate on another member than the one before.
        let (client, config) = client_of(&cluster, &prefix, (candidate + 1) % 3).await;
        let election = Election::new(client, &config, "rounds").unwrap();
        let (seen, order, holding) = (Arc::clone(&seen), Arc::clone(&order), Arc::clone(&holding));
        leaders.push(tokio::spawn(async move {
            let value = format!("electval-{candidate}");
            let leadership = election.campaign(&value, TTL).await.unwrap();
            assert_eq!(holding.fetch_add(1, Ordering::SeqCst), 0, "two leaders");
            order.lock().push(value.clone());
            // Wait for every follower to see this leader, then let the next one take over.
            while !seen.lock().iter().all(|saw| saw.last() == Some(&value)) {
                assert!(leadership.is_leader());
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            holding.fetch_sub(1, Ordering::SeqCst);
            leadership.resign().await.unwrap();
        }));
    }

    tokio::time::timeout(Duration::from_secs(15), async {
        for task in leaders.into_iter().chain(observers) {
            task.await.unwrap();
        }
    })
    .await
    .expect("every leader was seen by every observer");
    let order = order.lock().clone();
    assert_eq!(order.len(), LEADERS);
    for saw in seen.lock().iter() {
        assert_eq!(saw, &order, "an observer saw another sequence of leaders");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_whose_session_closes_hands_over_to_the_candidate_on_another_member() {
    let cluster = cluster();
    let prefix = unique_prefix("peer-election-failover");
    let (c0, config0) = client_of(&cluster, &prefix, 0).await;
    let (c1, config1) = client_of(&cluster, &prefix, 1).await;
    let (c2, config2) = client_of(&cluster, &prefix, 2).await;
    let first = Election::new(c0, &config0, "test-election").unwrap();
    let next = Election::new(c1.clone(), &config1, "test-election").unwrap();
    let observer = Election::new(c2, &config2, "test-election").unwrap();

    let foo = first.campaign("foo", TTL).await.unwrap();
    assert_eq!(observer.leader().await.unwrap().as_deref(), Some("foo"));

    let bar = tokio::spawn(async move { next.campaign("bar", TTL).await });
    // Wait until "bar" stands (two candidacies) before the failover.
    let candidates = format!("{}election/test-election/", config1.prefix());
    tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            let standing = c1
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
    .expect("bar stood");
    assert_eq!(observer.leader().await.unwrap().as_deref(), Some("foo"));

    // The first leader's session closes (its leadership dropped): well before the TTL, the
    // observer on the third member sees "bar", and bar's campaign answers.
    drop(foo);
    tokio::time::timeout(Duration::from_secs(3), async {
        while observer.leader().await.unwrap().as_deref() != Some("bar") {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the observer saw bar elected well within the TTL");
    let bar = tokio::time::timeout(Duration::from_secs(3), bar)
        .await
        .expect("bar's campaign answered")
        .unwrap()
        .unwrap();
    assert!(bar.is_leader());
    assert_eq!(bar.candidate(), "bar");
}
