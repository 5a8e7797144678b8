//! A `Membership` or `Leadership` dropped outside a tokio runtime context (a plain thread, the end
//! of `main` after `block_on`) still revokes its lease at once, on the runtime it was granted on:
//! before, its agents stayed listed and its leadership held until the TTL ran out (found by qa2).

mod support;

use std::time::Duration;

use hivekit_etcd::{Election, Membership};
use hivekit_hive::AgentId;
use support::{config, etcd};

#[test]
fn a_membership_dropped_outside_its_runtime_still_revokes_its_lease_at_once() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "drop-outside");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let ttl = Duration::from_secs(10);
    let (membership, leadership, client) = runtime.block_on(async {
        let client = config.connect().await.unwrap();
        let membership = Membership::join(client.clone(), &config, "proc", ttl)
            .await
            .unwrap();
        membership.register(AgentId(1), "scout").await.unwrap();
        let election = Election::new(client.clone(), &config, "rounds").unwrap();
        let leadership = election.campaign("proc", ttl).await.unwrap();
        (membership, leadership, client)
    });
    // The owner goes away outside any runtime context (the end of `main`, a plain thread).
    std::thread::spawn(move || {
        drop(membership);
        drop(leadership);
    })
    .join()
    .unwrap();
    runtime.block_on(async {
        let election = Election::new(client.clone(), &config, "rounds").unwrap();
        tokio::time::timeout(Duration::from_secs(3), async {
            loop {
                let members = Membership::list(&client, &config).await.unwrap();
                if members.is_empty() && election.leader().await.unwrap().is_none() {
                    return;
                }
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the agents and the leadership went at once, not after the 10 s TTL");
    });
}
