//! What a user of membership and elections hits: a member whose lease expires, a leader that
//! drops its leadership or resigns, asking for the leader when there is none, names etcd would
//! misread.

mod support;

use std::time::{Duration, Instant};

use hivekit_etcd::{Election, EtcdError, Membership};
use hivekit_hive::AgentId;
use support::{config, etcd};

const TTL: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_process_stops_renewing_drops_out_within_the_ttl() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "member-expires");
    // The doomed process lives on a runtime of its own, shut down as if the process were killed:
    // its renewals stop and nothing revokes its lease.
    let doomed = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let membership = {
        let config = config.clone();
        doomed
            .spawn(async move {
                let client = config.connect().await.unwrap();
                let membership = Membership::join(client, &config, "doomed", TTL)
                    .await
                    .unwrap();
                membership.register(AgentId(1), "scout").await.unwrap();
                membership.register(AgentId(2), "scout").await.unwrap();
                membership
            })
            .await
            .unwrap()
    };
    let survivor = Membership::join(config.connect().await.unwrap(), &config, "survivor", TTL)
        .await
        .unwrap();
    survivor.register(AgentId(9), "worker").await.unwrap();
    assert_eq!(survivor.members().await.unwrap().len(), 3);

    tokio::task::block_in_place(|| doomed.shutdown_background());
    let died = Instant::now();
    std::mem::forget(membership);
    let client = config.connect().await.unwrap();
    let revision = support::current_revision(&client).await;
    let mut watch = client
        .watch_client()
        .watch(
            format!("{}members/doomed/", config.prefix()),
            Some(
                etcd_client::WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(revision),
            ),
        )
        .await
        .unwrap();
    let mut deleted = 0;
    tokio::time::timeout(TTL + Duration::from_secs(2), async {
        while deleted < 2 {
            let message = watch.message().await.unwrap().unwrap();
            deleted += message
                .events()
                .iter()
                .filter(|event| event.event_type() == etcd_client::EventType::Delete)
                .count();
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{deleted} of 2 agents gone {:?} after", died.elapsed()));
    let members: Vec<_> = survivor
        .members()
        .await
        .unwrap()
        .into_iter()
        .map(|member| (member.process, member.agent))
        .collect();
    assert_eq!(members, [("survivor".to_string(), 9)]);
    assert!(survivor.is_alive());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_cut_off_from_etcd_knows_it_within_the_ttl_and_refuses_to_register() {
    let mut server = etcd();
    let config = config(vec![server.endpoint()], "member-cut-off");
    let membership = Membership::join(config.connect().await.unwrap(), &config, "alone", TTL)
        .await
        .unwrap();
    membership.register(AgentId(1), "scout").await.unwrap();
    assert!(membership.is_alive());
    assert_eq!(membership.ttl(), TTL);

    tokio::task::block_in_place(|| server.kill());
    let cut_off = Instant::now();
    tokio::time::timeout(TTL + Duration::from_millis(500), membership.lost())
        .await
        .unwrap_or_else(|_| panic!("still alive {:?} after etcd went", cut_off.elapsed()));
    assert!(!membership.is_alive());
    let started = Instant::now();
    let error = membership
        .register(AgentId(2), "late")
        .await
        .expect_err("a lost member cannot register");
    assert!(matches!(error, EtcdError::LeaseLost { .. }), "{error}");
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "refused without asking etcd"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ttl_under_a_second_is_rounded_up_not_refused_or_zero() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "short-ttl");
    let membership = Membership::join(
        config.connect().await.unwrap(),
        &config,
        "quick",
        Duration::from_millis(10),
    )
    .await
    .unwrap();
    assert_eq!(membership.ttl(), Duration::from_secs(1));
    membership.register(AgentId(1), "scout").await.unwrap();
    assert!(membership.is_alive());
    assert_eq!(membership.members().await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registering_an_agent_twice_updates_it_and_deregistering_an_unknown_one_is_fine() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "re-register");
    let membership = Membership::join(config.connect().await.unwrap(), &config, "proc", TTL)
        .await
        .unwrap();
    membership.register(AgentId(1), "old").await.unwrap();
    membership
        .register(AgentId(1), "new ünïcødé")
        .await
        .unwrap();
    membership.deregister(AgentId(42)).await.unwrap();
    let members = membership.members().await.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(
        (members[0].agent, members[0].info.as_str()),
        (1, "new ünïcødé")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_leader_is_reported_as_none_before_any_campaign_and_after_the_leader_resigns() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "no-leader");
    let election = Election::new(config.connect().await.unwrap(), &config, "rounds").unwrap();
    assert_eq!(election.leader().await.unwrap(), None);
    let leadership = election.campaign("alpha", TTL).await.unwrap();
    assert_eq!(election.leader().await.unwrap().as_deref(), Some("alpha"));
    leadership.resign().await.unwrap();
    assert_eq!(election.leader().await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_leadership_hands_it_on_at_once_not_after_the_ttl() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "drop-leader");
    let ttl = Duration::from_secs(10);
    let election = Election::new(config.connect().await.unwrap(), &config, "rounds").unwrap();
    let first = election.campaign("alpha", ttl).await.unwrap();
    let contender = election.clone();
    let second = tokio::spawn(async move { contender.campaign("beta", ttl).await });
    // The second candidate's campaign is pending behind the first; wait until etcd shows it.
    wait_for_candidates(&config, "rounds", 2).await;
    drop(first);
    let dropped = Instant::now();
    let second = tokio::time::timeout(Duration::from_secs(3), second)
        .await
        .unwrap_or_else(|_| panic!("not handed on {:?} after the drop", dropped.elapsed()))
        .unwrap()
        .unwrap();
    assert!(second.is_leader());
    assert_eq!(election.leader().await.unwrap().as_deref(), Some("beta"));
}

/// Waits until `count` candidates stand in election `name` under `config`'s prefix.
async fn wait_for_candidates(config: &hivekit_etcd::EtcdConfig, name: &str, count: usize) {
    let client = config.connect().await.unwrap();
    let election_prefix = format!("{}election/{name}/", config.prefix());
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let candidates = client
                .clone()
                .get(
                    election_prefix.clone(),
                    Some(etcd_client::GetOptions::new().with_prefix()),
                )
                .await
                .unwrap();
            if candidates.kvs().len() == count {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{count} candidates never stood"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_campaign_withdraws_and_the_next_candidate_is_elected_after_the_leader() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "cancelled-campaign");
    let ttl = Duration::from_secs(10);
    let election = Election::new(config.connect().await.unwrap(), &config, "rounds").unwrap();
    let first = election.campaign("alpha", ttl).await.unwrap();
    let quitter = election.clone();
    let quitting = tokio::spawn(async move { quitter.campaign("beta", ttl).await });
    wait_for_candidates(&config, "rounds", 2).await;
    quitting.abort();
    assert!(quitting.await.unwrap_err().is_cancelled());
    wait_for_candidates(&config, "rounds", 1).await;
    let patient = election.clone();
    let third = tokio::spawn(async move { patient.campaign("gamma", ttl).await });
    wait_for_candidates(&config, "rounds", 2).await;
    first.resign().await.unwrap();
    let third = tokio::time::timeout(Duration::from_secs(3), third)
        .await
        .expect("the candidate after the withdrawn one was elected at once")
        .unwrap()
        .unwrap();
    assert!(third.is_leader());
    assert_eq!(election.leader().await.unwrap().as_deref(), Some("gamma"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn election_and_process_names_etcd_would_misread_are_refused() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "bad-names");
    let client = config.connect().await.unwrap();
    for name in ["", "a/b", "/"] {
        let error = Election::new(client.clone(), &config, name).unwrap_err();
        assert!(
            matches!(error, EtcdError::InvalidName { .. }),
            "{name:?}: {error}"
        );
        let error = Membership::join(client.clone(), &config, name, TTL)
            .await
            .unwrap_err();
        assert!(
            matches!(error, EtcdError::InvalidName { .. }),
            "{name:?}: {error}"
        );
    }
    // A unicode name is a plain key segment.
    let election = Election::new(client.clone(), &config, "élection-🐝").unwrap();
    let leadership = election.campaign("reine 🐝", TTL).await.unwrap();
    assert_eq!(
        election.leader().await.unwrap().as_deref(),
        Some("reine 🐝")
    );
    drop(leadership);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_restarted_under_the_same_name_keeps_its_agents_when_the_old_lease_expires() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "restarted");
    // The old incarnation dies without revoking: its runtime stops, its lease runs out later.
    let old_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let old = {
        let config = config.clone();
        old_runtime
            .spawn(async move {
                let client = config.connect().await.unwrap();
                let old = Membership::join(client, &config, "proc", TTL)
                    .await
                    .unwrap();
                for agent in [1, 3] {
                    old.register(AgentId(agent), "old").await.unwrap();
                }
                old
            })
            .await
            .unwrap()
    };
    tokio::task::block_in_place(|| old_runtime.shutdown_background());
    std::mem::forget(old);

    let client = config.connect().await.unwrap();
    let revision = support::current_revision(&client).await;
    let new = Membership::join(client.clone(), &config, "proc", TTL)
        .await
        .unwrap();
    for agent in [1, 2] {
        new.register(AgentId(agent), "new").await.unwrap();
    }
    // Wait for the old lease to expire: agent 3, registered only by the old incarnation, goes.
    let mut watch = client
        .watch_client()
        .watch(
            format!("{}members/proc/3", config.prefix()),
            Some(etcd_client::WatchOptions::new().with_start_revision(revision)),
        )
        .await
        .unwrap();
    tokio::time::timeout(TTL + Duration::from_secs(2), async {
        loop {
            let message = watch.message().await.unwrap().unwrap();
            if message
                .events()
                .iter()
                .any(|event| event.event_type() == etcd_client::EventType::Delete)
            {
                return;
            }
        }
    })
    .await
    .expect("the old lease expired");
    let members: Vec<(u64, String)> = new
        .members()
        .await
        .unwrap()
        .into_iter()
        .map(|member| (member.agent, member.info))
        .collect();
    assert_eq!(members, [(1, "new".to_string()), (2, "new".to_string())]);
    assert!(new.is_alive());
}
