//! Membership under leases and leader election, against a real etcd.

mod support;

use std::time::{Duration, Instant};

use hivekit_etcd::{Election, Membership};
use hivekit_hive::AgentId;
use support::{config, etcd};

const TTL: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_process_sees_the_agents_of_every_process_and_leaving_removes_them_at_once() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "members");
    let first = Membership::join(config.connect().await.unwrap(), &config, "alpha", TTL)
        .await
        .unwrap();
    let second = Membership::join(config.connect().await.unwrap(), &config, "beta", TTL)
        .await
        .unwrap();
    for agent in 0..3 {
        first.register(AgentId(agent), "scout").await.unwrap();
    }
    second.register(AgentId(7), "worker").await.unwrap();

    let members = second.members().await.unwrap();
    let seen: Vec<(String, u64)> = members
        .iter()
        .map(|m| (m.process.clone(), m.agent))
        .collect();
    assert_eq!(
        seen,
        [
            ("alpha".into(), 0),
            ("alpha".into(), 1),
            ("alpha".into(), 2),
            ("beta".into(), 7)
        ]
    );
    first.deregister(AgentId(1)).await.unwrap();
    first.leave().await.unwrap();
    let members = second.members().await.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(
        (members[0].process.as_str(), members[0].info.as_str()),
        ("beta", "worker")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_name_with_a_slash_is_refused() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "names");
    let error = Membership::join(config.connect().await.unwrap(), &config, "a/b", TTL)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("invalid name `a/b`"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_at_a_time_and_the_next_candidate_takes_over_when_it_resigns() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "election");
    let election = Election::new(config.connect().await.unwrap(), &config, "rounds").unwrap();
    let first = election.campaign("alpha", TTL).await.unwrap();
    assert!(first.is_leader());
    assert_eq!(election.leader().await.unwrap().as_deref(), Some("alpha"));

    let contender = Election::new(config.connect().await.unwrap(), &config, "rounds").unwrap();
    let mut second = tokio::spawn(async move { contender.campaign("beta", TTL).await });
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut second)
            .await
            .is_err(),
        "a second candidate is not elected while the first leads"
    );
    first.resign().await.unwrap();
    let second = tokio::time::timeout(Duration::from_secs(5), second)
        .await
        .expect("the second candidate was elected")
        .unwrap()
        .unwrap();
    assert!(second.is_leader());
    assert_eq!(election.leader().await.unwrap().as_deref(), Some("beta"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_stops_renewing_is_replaced_within_the_ttl() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "leader-dies");
    // The leader lives on a runtime of its own, shut down as if its process were killed: its
    // renewals stop and nothing revokes its lease.
    let doomed = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let leadership = {
        let config = config.clone();
        doomed
            .spawn(async move {
                let election =
                    Election::new(config.connect().await.unwrap(), &config, "rounds").unwrap();
                election.campaign("doomed", TTL).await.unwrap()
            })
            .await
            .unwrap()
    };
    let election = Election::new(config.connect().await.unwrap(), &config, "rounds").unwrap();
    let successor = tokio::spawn(async move { election.campaign("successor", TTL).await });
    tokio::task::block_in_place(|| doomed.shutdown_background());
    let died = Instant::now();
    std::mem::forget(leadership);

    let elected = tokio::time::timeout(TTL + Duration::from_secs(1), successor)
        .await
        .unwrap_or_else(|_| panic!("no successor {:?} after the leader died", died.elapsed()))
        .unwrap()
        .unwrap();
    assert!(elected.is_leader());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_etcd_knows_it_lost_leadership_within_the_ttl() {
    let mut server = etcd();
    let config = config(vec![server.endpoint()], "cut-off");
    let election = Election::new(config.connect().await.unwrap(), &config, "rounds").unwrap();
    let leadership = election.campaign("alone", TTL).await.unwrap();
    tokio::task::block_in_place(|| server.kill());
    let cut_off = Instant::now();
    tokio::time::timeout(TTL + Duration::from_millis(500), leadership.lost())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "still thought it led {:?} after etcd went",
                cut_off.elapsed()
            )
        });
    assert!(!leadership.is_leader());
}
