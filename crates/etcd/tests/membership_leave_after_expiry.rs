//! `Membership::leave()` after the lease expired (or was revoked by an operator) is `Ok`, as
//! `Leadership::resign()` is: what leaving promises, every agent of this process gone, holds
//! already. Before, it failed with a raw `EtcdError::Client` "revoke lease ... requested lease not
//! found" (found by qa6).
mod support;

use std::time::Duration;

use hivekit_etcd::{Election, Membership};
use hivekit_hive::AgentId;
use support::{config, etcd};

const TTL: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leave_and_resign_after_the_lease_expired_succeed() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "leave-after-lost")
        .request_timeout(Duration::from_millis(500));
    let client = config.connect().await.unwrap();
    let membership = Membership::join(client.clone(), &config, "gone", TTL)
        .await
        .unwrap();
    membership.register(AgentId(1), "worker").await.unwrap();
    let election = Election::new(client.clone(), &config, "rounds").unwrap();
    let leadership = election.campaign("gone", TTL).await.unwrap();

    server.freeze();
    let lost = tokio::time::timeout(TTL * 3, async {
        membership.lost().await;
        leadership.lost().await;
    })
    .await;
    server.thaw();
    lost.expect("both lost their lease in the freeze");
    tokio::time::timeout(Duration::from_secs(5), async {
        while !Membership::list(&client, &config).await.unwrap().is_empty()
            || election.leader().await.unwrap().is_some()
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("etcd expired the lease after the thaw");

    let left = membership.leave().await;
    let resigned = leadership.resign().await;
    assert!(
        left.is_ok() && resigned.is_ok(),
        "leave: {left:?}; resign: {resigned:?}"
    );
}
