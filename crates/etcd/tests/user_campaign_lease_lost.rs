//! A candidate waiting behind a leader when etcd freezes past the TTL: its campaign ends with a typed
//! `LeaseLost` within the TTL (not a hang), its candidacy is gone once etcd thaws, and a new
//! campaign is elected.

mod support;

use std::time::{Duration, Instant};

use hivekit_etcd::{Election, EtcdError};
use support::{config, etcd};

const TTL: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_candidate_whose_lease_is_lost_gets_a_typed_error_and_leaves_the_queue() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "campaign-lease-lost")
        .request_timeout(Duration::from_millis(500));
    let election = Election::new(config.connect().await.unwrap(), &config, "rounds").unwrap();
    let leader = election.campaign("leader", TTL).await.unwrap();
    let waiting = {
        let election = Election::new(config.connect().await.unwrap(), &config, "rounds").unwrap();
        tokio::spawn(async move { election.campaign("waiting", TTL).await })
    };
    let client = config.connect().await.unwrap();
    let candidates = |client: etcd_client::Client| {
        let prefix = format!("{}election/rounds/", config.prefix());
        async move {
            client
                .clone()
                .get(prefix, Some(etcd_client::GetOptions::new().with_prefix()))
                .await
                .unwrap()
                .kvs()
                .len()
        }
    };
    tokio::time::timeout(Duration::from_secs(3), async {
        while candidates(client.clone()).await < 2 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the second candidate stood");

    server.freeze();
    let frozen = Instant::now();
    let outcome = tokio::time::timeout(TTL * 3, waiting).await;
    server.thaw();
    let outcome = outcome
        .unwrap_or_else(|_| panic!("the campaign still waited {:?} in", frozen.elapsed()))
        .unwrap();
    let error = outcome.unwrap_err();
    assert!(matches!(error, EtcdError::LeaseLost { .. }), "{error}");
    tokio::time::timeout(TTL, leader.lost())
        .await
        .expect("the leader knew too");

    // Once etcd thaws, neither candidacy stays; a new candidate is elected at once.
    tokio::time::timeout(Duration::from_secs(5), async {
        while candidates(client.clone()).await > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the lost candidacies went");
    let next = tokio::time::timeout(Duration::from_secs(3), election.campaign("next", TTL))
        .await
        .expect("elected at once")
        .unwrap();
    assert!(next.is_leader());
    assert_eq!(election.leader().await.unwrap().as_deref(), Some("next"));
}
