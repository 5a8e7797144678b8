//! Candidates waiting in `Election::campaign` behind a leader keep waiting, in their place, through
//! a failover of etcd's Raft leader (the cluster keeps its quorum), and are elected in turn when the
//! leader resigns. Before, a campaign whose request was cut ("transport error ... broken pipe", or
//! "etcdserver: leader changed") failed with a raw `EtcdError::Client` and revoked its lease, losing
//! its place (found by qa6); now it stands again with the same lease.

mod support;

use std::time::Duration;

use hivekit_etcd::testing::EtcdCluster;
use hivekit_etcd::Election;
use support::config_under;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candidates_waiting_through_a_raft_failover_keep_waiting_and_are_elected_in_turn() {
    let mut cluster = EtcdCluster::start(3).unwrap_or_else(|error| panic!("{error}"));
    let raft = support::leader_index(&cluster).await;
    let config = config_under(cluster.endpoints(), &support::unique_prefix("standby"));
    let ttl = Duration::from_secs(6);
    let election = Election::new(config.connect().await.unwrap(), &config, "rounds").unwrap();
    let leadership = election.campaign("driver", ttl).await.unwrap();
    let client = config.connect().await.unwrap();
    let candidates = format!("{}election/rounds/", config.prefix());
    let mut waiting = Vec::new();
    for index in 0..6 {
        let election = Election::new(config.connect().await.unwrap(), &config, "rounds").unwrap();
        waiting.push(tokio::spawn(async move {
            election.campaign(&format!("standby-{index}"), ttl).await
        }));
        tokio::time::timeout(Duration::from_secs(3), async {
            loop {
                let standing = client
                    .clone()
                    .get(
                        candidates.clone(),
                        Some(etcd_client::GetOptions::new().with_prefix()),
                    )
                    .await
                    .unwrap();
                if standing.kvs().len() == index + 2 {
                    return;
                }
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the candidate stood");
    }
    tokio::task::block_in_place(|| cluster.member_mut(raft).unwrap().kill());
    // Past a Raft election; well within the TTL.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let failed: Vec<String> = waiting
        .iter()
        .enumerate()
        .filter(|(_, campaign)| campaign.is_finished())
        .map(|(index, _)| format!("standby-{index}"))
        .collect();
    let mut errors = Vec::new();
    for campaign in waiting.iter_mut().filter(|campaign| campaign.is_finished()) {
        match campaign.await.unwrap() {
            Ok(leadership) => errors.push(format!("elected beside the leader: {leadership:?}")),
            Err(error) => errors.push(format!("{error}")),
        }
    }
    assert!(
        errors.is_empty(),
        "{failed:?} stopped waiting through the failover: {errors:#?}"
    );
    assert!(leadership.is_leader());
    leadership.resign().await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(5), waiting.remove(0))
        .await
        .expect("the first candidate was elected")
        .unwrap()
        .unwrap();
    assert_eq!(next.candidate(), "standby-0");
}
