//! A hive leader (an `Election` leadership) whose client knows every member of a 3-member etcd
//! cluster keeps its leadership through the loss of the Raft leader, with a TTL longer than etcd's
//! own leader election: `lost` does not fire, it stays the reported leader and its agents stay
//! listed. (A candidate waiting meanwhile is another matter: see qa6's failing case
//! etcd_waiting_campaign_fails_on_raft_failover.rs.)

mod support;

use std::time::Duration;

use hivekit_etcd::testing::EtcdCluster;
use hivekit_etcd::{Election, EtcdConfig, Membership};
use hivekit_hive::AgentId;
use support::config_under;

/// The index of the member that is the Raft leader now.
async fn raft_leader(cluster: &EtcdCluster) -> usize {
    for (index, endpoint) in cluster.endpoints().iter().enumerate() {
        let mut client = EtcdConfig::new([endpoint.clone()], "/probe")
            .connect()
            .await
            .unwrap();
        let status = client.status().await.unwrap();
        if status.leader() == status.header().unwrap().member_id() {
            return index;
        }
    }
    panic!("the cluster has no leader");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_reaching_every_member_keeps_its_leadership_through_a_raft_failover() {
    let mut cluster = EtcdCluster::start(3).unwrap_or_else(|error| panic!("{error}"));
    let raft = raft_leader(&cluster).await;
    let mut endpoints = cluster.endpoints();
    // The Raft leader first, so that the clients use it until it goes.
    endpoints.swap(0, raft);
    let config = config_under(endpoints, &support::unique_prefix("leader-survives"));
    let ttl = Duration::from_secs(6);
    let election = Election::new(config.connect().await.unwrap(), &config, "rounds").unwrap();
    let leadership = election.campaign("driver", ttl).await.unwrap();
    let membership = Membership::join(config.connect().await.unwrap(), &config, "driver", ttl)
        .await
        .unwrap();
    membership.register(AgentId(1), "driver").await.unwrap();
    tokio::task::block_in_place(|| cluster.member_mut(raft).unwrap().kill());
    // Longer than a Raft election and several renewals; shorter than the TTL.
    let held = tokio::time::timeout(Duration::from_secs(4), async {
        tokio::select! {
            () = leadership.lost() => "leadership lost",
            () = membership.lost() => "membership lost",
        }
    })
    .await;
    assert!(held.is_err(), "{} through a Raft failover", held.unwrap());
    assert!(leadership.is_leader() && membership.is_alive());
    let leader = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match election.leader().await {
                Ok(leader) => return leader,
                Err(error) => {
                    eprintln!("leader: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    })
    .await
    .expect("the leader is readable after the failover");
    assert_eq!(leader.as_deref(), Some("driver"));
    assert_eq!(membership.members().await.unwrap().len(), 1);
    leadership.resign().await.unwrap();
    assert_eq!(election.leader().await.unwrap(), None);
}
