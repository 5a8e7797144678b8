//! Review of "a dropped lease (Membership/Leadership) is revoked from a thread of its own over a
//! new connection" (crates/etcd/src/lease.rs `impl Drop for KeptLease`). The docs promise:
//! "Dropping the membership revokes the lease in the background (from a thread of its own,
//! whatever runtime it is dropped on), so its agents go at once while the process lives on"
//! (crates/etcd/src/membership.rs:31-35) and "Dropping it stops renewing its lease and revokes it
//! in the background ..., handing leadership on while the process lives on"
//! (crates/etcd/src/election.rs:40-44). `Membership::join` and `Election::new` take the caller's
//! `Client`, which may carry credentials (`ConnectOptions::with_user`) on an etcd with auth
//! enabled. The revoke's new connection is made from the endpoints alone, without them.

mod support;

use std::time::Duration;

use etcd_client::ConnectOptions;
use hivekit_etcd::{Client, Election, Membership};
use hivekit_hive::AgentId;
use support::{config, etcd};

const USER: &str = "root";
const PASSWORD: &str = "review-pw";

/// Turns auth on (as `etcdctl user add root; etcdctl auth enable` does) and returns a client
/// logged in as root.
async fn with_auth(endpoint: &str) -> Client {
    let mut admin = Client::connect([endpoint], None).await.unwrap();
    admin.user_add(USER, PASSWORD, None).await.unwrap();
    let _ = admin.role_add("root").await;
    admin.user_grant_role(USER, "root").await.unwrap();
    admin.auth_enable().await.unwrap();
    Client::connect(
        [endpoint],
        Some(ConnectOptions::new().with_user(USER, PASSWORD)),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_membership_on_an_etcd_with_auth_takes_its_agents_away_at_once() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "revoke-auth-members");
    let client = with_auth(&server.endpoint()).await;
    let membership = Membership::join(client.clone(), &config, "proc", Duration::from_secs(30))
        .await
        .unwrap();
    membership.register(AgentId(1), "scout").await.unwrap();
    assert_eq!(Membership::list(&client, &config).await.unwrap().len(), 1);
    drop(membership);
    let gone = tokio::time::timeout(Duration::from_secs(4), async {
        while !Membership::list(&client, &config).await.unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        gone.is_ok(),
        "the dropped membership's agent is still listed 4 s later (its lease has a 30 s TTL): the \
         revoke was not made with the client's credentials"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_leadership_on_an_etcd_with_auth_hands_leadership_on_at_once() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "revoke-auth-leader");
    let client = with_auth(&server.endpoint()).await;
    let election = Election::new(client.clone(), &config, "rounds").unwrap();
    let leadership = election
        .campaign("proc", Duration::from_secs(30))
        .await
        .unwrap();
    assert!(election.leader().await.unwrap().is_some());
    drop(leadership);
    let gone = tokio::time::timeout(Duration::from_secs(4), async {
        while election.leader().await.unwrap().is_some() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        gone.is_ok(),
        "the dropped leadership still holds 4 s later (its lease has a 30 s TTL): the revoke was \
         not made with the client's credentials"
    );
}
