//! Ported from etcd's lease and session tests (tests/integration/clientv3/lease/lease_test.go:
//! `TestLeaseKeepAlive`, `TestLeaseTimeToLive`, `TestLeaseKeepAliveNotFound`,
//! `TestLeaseRenewLostQuorum`; clientv3/concurrency/session_test.go: `TestSessionTTLOptions`),
//! through `Membership` and `Leadership`, whose leases hivekit keeps alive.

mod support;

use std::time::{Duration, Instant};

use hivekit_etcd::testing::EtcdCluster;
use hivekit_etcd::{Client, Election, EtcdConfig, Membership};
use hivekit_hive::AgentId;
use support::{config, config_under, etcd, unique_prefix};

/// The lease a member's agent key is attached to.
async fn member_lease(client: &Client, config: &EtcdConfig, process: &str, agent: u64) -> i64 {
    let key = format!("{}members/{process}/{agent}", config.prefix());
    let response = client.clone().get(key, None).await.unwrap();
    response
        .kvs()
        .first()
        .expect("the agent is registered")
        .lease()
}

/// `(granted TTL, remaining TTL)` of `lease` as etcd reports them, in seconds.
async fn time_to_live(client: &Client, lease: i64) -> (i64, i64) {
    let response = client
        .clone()
        .lease_time_to_live(lease, None)
        .await
        .unwrap();
    (response.granted_ttl(), response.ttl())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_membership_lease_has_the_ttl_it_reports_and_is_kept_alive_past_it() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "peer-keepalive");
    let client = config.connect().await.unwrap();
    let membership = Membership::join(client.clone(), &config, "proc", Duration::from_secs(2))
        .await
        .unwrap();
    let ttl = membership.ttl();
    membership.register(AgentId(1), "scout").await.unwrap();
    let lease = member_lease(&client, &config, "proc", 1).await;
    let (granted, remaining) = time_to_live(&client, lease).await;
    assert_eq!(granted as u64, ttl.as_secs(), "ttl() is what etcd granted");
    assert!(
        remaining > 0 && remaining <= granted,
        "remaining {remaining}"
    );

    // Past its TTL, the lease never runs out: etcd keeps seeing renewals.
    let until = Instant::now() + ttl * 3 / 2;
    while Instant::now() < until {
        assert!(membership.is_alive());
        let (_, remaining) = time_to_live(&client, lease).await;
        assert!(remaining > 0, "etcd let the lease run out");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(Membership::list(&client, &config).await.unwrap().len(), 1);
    assert_eq!(member_lease(&client, &config, "proc", 1).await, lease);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_lease_ends_its_own_membership_and_the_others_on_the_client_live_on() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "peer-keepalive-not-found");
    let client = config.connect().await.unwrap();
    let ttl = Duration::from_secs(2);
    let mut members = Vec::new();
    for process in ["a", "b", "c"] {
        let membership = Membership::join(client.clone(), &config, process, ttl)
            .await
            .unwrap();
        membership.register(AgentId(1), process).await.unwrap();
        members.push(membership);
    }
    let election = Election::new(client.clone(), &config, "rounds").unwrap();
    let leadership = election.campaign("leader", ttl).await.unwrap();

    let revoked = member_lease(&client, &config, "b", 1).await;
    client.clone().lease_revoke(revoked).await.unwrap();
    tokio::time::timeout(ttl, members[1].lost())
        .await
        .expect("the revoked membership knew within a renewal");

    // The others are renewed on: still alive, listed and leading past a whole TTL.
    let until = Instant::now() + ttl + Duration::from_millis(500);
    while Instant::now() < until {
        assert!(members[0].is_alive() && members[2].is_alive());
        assert!(leadership.is_leader());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut listed: Vec<String> = Membership::list(&client, &config)
        .await
        .unwrap()
        .into_iter()
        .map(|member| member.process)
        .collect();
    listed.sort();
    assert_eq!(listed, ["a", "c"]);
    assert_eq!(election.leader().await.unwrap().as_deref(), Some("leader"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_membership_and_a_leadership_survive_a_lost_quorum_shorter_than_the_ttl() {
    let cluster = EtcdCluster::start(3).unwrap_or_else(|error| panic!("{error}"));
    let prefix = unique_prefix("peer-renew-lost-quorum");
    // Like the peer, the client talks to member 0 only; members 1 and 2 go away.
    let config = config_under(vec![cluster.endpoints()[0].clone()], &prefix);
    let client = config.connect().await.unwrap();
    let ttl = Duration::from_secs(3);
    let membership = Membership::join(client.clone(), &config, "proc", ttl)
        .await
        .unwrap();
    membership.register(AgentId(7), "kept").await.unwrap();
    let election = Election::new(client.clone(), &config, "rounds").unwrap();
    let leadership = election.campaign("leader", ttl).await.unwrap();

    cluster.members()[1].freeze();
    cluster.members()[2].freeze();
    let frozen = Instant::now();
    // Long enough for at least one renewal to fail (they go every third of the TTL).
    let outage = ttl * 2 / 5;
    let lost = tokio::time::timeout(outage, async {
        tokio::select! {
            () = membership.lost() => "membership",
            () = leadership.lost() => "leadership",
        }
    })
    .await;
    cluster.members()[1].thaw();
    cluster.members()[2].thaw();
    if let Ok(which) = lost {
        panic!(
            "the {which} was lost {:?} into the outage",
            frozen.elapsed()
        );
    }

    // Without a renewal after the thaw the lease would lapse by two thirds of a TTL after the
    // freeze; renewals go through again, so both are still alive a TTL after it.
    let until = frozen + ttl + Duration::from_millis(300);
    while Instant::now() < until {
        assert!(
            membership.is_alive() && leadership.is_leader(),
            "lost {:?} after the quorum came back",
            frozen.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let members = Membership::list(&client, &config).await.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].agent, 7);
    assert_eq!(election.leader().await.unwrap().as_deref(), Some("leader"));
}
