//! Joining, leaving, deregistering, resigning and campaigning while etcd is stopped or frozen: each answers with a typed error within the request timeout (no hang, no panic), and all works again once etcd is back.

mod support;

use std::time::{Duration, Instant};

use hivekit_etcd::{Election, EtcdError, Membership};
use hivekit_hive::AgentId;
use support::{config, etcd};

const REQUEST: Duration = Duration::from_millis(800);
const TTL: Duration = Duration::from_secs(10);

async fn bounded<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    let limit = REQUEST * 3;
    let started = Instant::now();
    tokio::time::timeout(limit, future)
        .await
        .unwrap_or_else(|_| panic!("{what} still waiting after {:?}", started.elapsed()))
}

fn typed(what: &str, error: &EtcdError) {
    assert!(
        matches!(
            error,
            EtcdError::Timeout { .. } | EtcdError::Client { .. } | EtcdError::Unreachable { .. }
        ),
        "{what}: {error:?}"
    );
}

async fn every_call_fails_typed_in_time(
    config: &hivekit_etcd::EtcdConfig,
    client: &hivekit_etcd::Client,
    membership: Membership,
    leader: hivekit_etcd::Leadership,
) {
    let joined = bounded(
        "join",
        Membership::join(client.clone(), config, "late", TTL),
    )
    .await;
    typed("join", &joined.unwrap_err());
    let deregistered = bounded("deregister", membership.deregister(AgentId(1))).await;
    typed("deregister", &deregistered.unwrap_err());
    let left = bounded("leave", membership.leave()).await;
    typed("leave", &left.unwrap_err());
    let resigned = bounded("resign", leader.resign()).await;
    typed("resign", &resigned.unwrap_err());
    let election = Election::new(client.clone(), config, "work").unwrap();
    let campaign = bounded("campaign", election.campaign("gamma", TTL)).await;
    typed("campaign", &campaign.unwrap_err());
}

async fn works_again(config: &hivekit_etcd::EtcdConfig) {
    let client = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(client) = config.connect().await {
                return client;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("etcd answers again");
    let membership = Membership::join(client.clone(), config, "after", TTL)
        .await
        .unwrap();
    membership.register(AgentId(7), "back").await.unwrap();
    assert!(Membership::list(&client, config)
        .await
        .unwrap()
        .iter()
        .any(|member| member.process == "after" && member.agent == 7));
    membership.leave().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_calls_with_etcd_stopped_fail_typed_within_the_request_timeout() {
    let mut server = etcd();
    let config = config(vec![server.endpoint()], "down-session").request_timeout(REQUEST);
    let client = config.connect().await.unwrap();
    let membership = Membership::join(client.clone(), &config, "proc", TTL)
        .await
        .unwrap();
    membership.register(AgentId(1), "scout").await.unwrap();
    let election = Election::new(client.clone(), &config, "work").unwrap();
    let leader = election.campaign("alpha", TTL).await.unwrap();

    tokio::task::block_in_place(|| server.kill());
    every_call_fails_typed_in_time(&config, &client, membership, leader).await;
    tokio::task::block_in_place(|| server.restart()).unwrap();
    works_again(&config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_calls_with_etcd_frozen_fail_typed_within_the_request_timeout() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "frozen-session").request_timeout(REQUEST);
    let client = config.connect().await.unwrap();
    let membership = Membership::join(client.clone(), &config, "proc", TTL)
        .await
        .unwrap();
    membership.register(AgentId(1), "scout").await.unwrap();
    let election = Election::new(client.clone(), &config, "work").unwrap();
    let leader = election.campaign("alpha", TTL).await.unwrap();

    server.freeze();
    every_call_fails_typed_in_time(&config, &client, membership, leader).await;
    server.thaw();
    works_again(&config).await;
}
