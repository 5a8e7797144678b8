//! Leases when etcd freezes (SIGSTOP, as a stalled disk or a partition would) past their TTL: the
//! member and the leader are told they lost their lease, refuse to act on it, are gone once etcd
//! thaws, and a process can join and campaign again; a freeze shorter than the TTL loses nothing.

mod support;

use std::time::{Duration, Instant};

use hivekit_etcd::testing::EtcdServer;
use hivekit_etcd::{Election, EtcdError, Membership};
use hivekit_hive::AgentId;
use support::{config, etcd};

const TTL: Duration = Duration::from_secs(2);

/// Thaws etcd when dropped, so that a failing assertion does not leave it frozen.
struct Thaw<'a>(&'a EtcdServer);

impl Drop for Thaw<'_> {
    fn drop(&mut self) {
        self.0.thaw();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_freeze_past_the_ttl_ends_membership_and_leadership_and_both_can_start_again() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "frozen-past-ttl")
        .request_timeout(Duration::from_millis(500));
    let client = config.connect().await.unwrap();
    let membership = Membership::join(client.clone(), &config, "sleeper", TTL)
        .await
        .unwrap();
    membership.register(AgentId(1), "worker").await.unwrap();
    let election = Election::new(client.clone(), &config, "rounds").unwrap();
    let leadership = election.campaign("sleeper", TTL).await.unwrap();

    let thaw = Thaw(&server);
    server.freeze();
    let frozen = Instant::now();
    tokio::time::timeout(TTL + Duration::from_secs(1), async {
        membership.lost().await;
        leadership.lost().await;
    })
    .await
    .unwrap_or_else(|_| panic!("still alive {:?} into the freeze", frozen.elapsed()));
    assert!(!membership.is_alive());
    assert!(!leadership.is_leader());
    // Sure it is lost, it does not even ask the frozen etcd.
    let error = tokio::time::timeout(
        Duration::from_millis(200),
        membership.register(AgentId(2), "late"),
    )
    .await
    .expect("a lost membership refuses at once")
    .unwrap_err();
    assert!(matches!(error, EtcdError::LeaseLost { .. }), "{error}");
    drop(thaw);

    // Once etcd runs again it expires the leases the process stopped renewing.
    let gone = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let members = Membership::list(&client, &config).await.unwrap();
            let leader = election.leader().await.unwrap();
            if members.is_empty() && leader.is_none() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        gone.is_ok(),
        "the lost lease's keys stayed: {:?}, leader {:?}",
        Membership::list(&client, &config).await,
        election.leader().await
    );
    // The lost handle still refuses; a new one joins and campaigns.
    assert!(membership.register(AgentId(3), "again").await.is_err());
    let rejoined = Membership::join(client.clone(), &config, "sleeper", TTL)
        .await
        .unwrap();
    rejoined.register(AgentId(1), "worker").await.unwrap();
    let members = rejoined.members().await.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(
        (members[0].process.as_str(), members[0].agent),
        ("sleeper", 1)
    );
    let again = tokio::time::timeout(Duration::from_secs(3), election.campaign("woken", TTL))
        .await
        .expect("elected at once: nobody else stands")
        .unwrap();
    assert!(again.is_leader());
    assert_eq!(election.leader().await.unwrap().as_deref(), Some("woken"));
    // Dropping the old handles revokes nothing of the new ones.
    drop(membership);
    drop(leadership);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rejoined.members().await.unwrap().len(), 1);
    assert!(again.is_leader());
    assert_eq!(election.leader().await.unwrap().as_deref(), Some("woken"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_freeze_shorter_than_the_ttl_keeps_membership_and_leadership() {
    let server = etcd();
    let ttl = Duration::from_secs(3);
    let config =
        config(vec![server.endpoint()], "frozen-short").request_timeout(Duration::from_millis(500));
    let client = config.connect().await.unwrap();
    let membership = Membership::join(client.clone(), &config, "napper", ttl)
        .await
        .unwrap();
    membership.register(AgentId(1), "worker").await.unwrap();
    let election = Election::new(client.clone(), &config, "rounds").unwrap();
    let leadership = election.campaign("napper", ttl).await.unwrap();

    {
        let _thaw = Thaw(&server);
        server.freeze();
        // A freeze of a third of the TTL: at most one renewal goes unanswered.
        let napped = tokio::time::timeout(ttl / 3, async {
            tokio::select! {
                () = membership.lost() => "membership",
                () = leadership.lost() => "leadership",
            }
        })
        .await;
        assert!(
            napped.is_err(),
            "{} lost during a short freeze",
            napped.unwrap()
        );
    }
    // A full TTL after the thaw: renewals resumed.
    let lost = tokio::time::timeout(ttl + Duration::from_millis(500), async {
        tokio::select! {
            () = membership.lost() => "membership",
            () = leadership.lost() => "leadership",
        }
    })
    .await;
    assert!(lost.is_err(), "{} lost after a short freeze", lost.unwrap());
    assert!(membership.is_alive() && leadership.is_leader());
    assert_eq!(membership.members().await.unwrap().len(), 1);
    assert_eq!(election.leader().await.unwrap().as_deref(), Some("napper"));
}
