//! Memberships, leaderships, campaigns and memories leave no task running on the caller's runtime once dropped, resigned, left or cancelled (counted with tokio's runtime metrics).

mod support;

use std::time::Duration;

use hivekit_etcd::{Election, EtcdMemory, Membership};
use hivekit_hive::AgentId;
use support::{config, etcd, Ledger};

const TTL: Duration = Duration::from_secs(2);

fn alive() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Waits (bounded: a dropped lease's revoke may take its 2 s) until the runtime runs `baseline`
/// tasks again.
async fn back_to(baseline: usize, after: &str) {
    let settled = tokio::time::timeout(Duration::from_secs(5), async {
        while alive() > baseline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        settled.is_ok(),
        "after {after}: {} tasks still alive, {baseline} before",
        alive()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_left_resigned_and_cancelled_handles_leave_no_task_behind() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "leaks");
    let client = config.connect().await.unwrap();
    // Warm the client up (its connection tasks exist from here on).
    Membership::list(&client, &config).await.unwrap();
    let baseline = alive();

    for round in 0..3 {
        let membership = Membership::join(client.clone(), &config, "proc", TTL)
            .await
            .unwrap();
        membership.register(AgentId(1), "scout").await.unwrap();
        assert!(
            alive() > baseline,
            "a membership renews its lease in a task"
        );
        if round % 2 == 0 {
            drop(membership);
            back_to(baseline, "dropping a membership").await;
        } else {
            membership.leave().await.unwrap();
            back_to(baseline, "leaving").await;
        }
    }

    let election = Election::new(client.clone(), &config, "work").unwrap();
    let leader = election.campaign("alpha", TTL).await.unwrap();
    drop(leader);
    back_to(baseline, "dropping a leadership").await;

    let leader = election.campaign("alpha", TTL).await.unwrap();
    leader.resign().await.unwrap();
    back_to(baseline, "resigning").await;

    // A campaign waiting behind a leader, cancelled.
    let leader = election.campaign("alpha", TTL).await.unwrap();
    let waiting =
        tokio::time::timeout(Duration::from_millis(500), election.campaign("beta", TTL)).await;
    assert!(waiting.is_err(), "beta cannot be elected while alpha leads");
    drop(leader);
    back_to(baseline, "cancelling a campaign and dropping its leader").await;

    // A leadership that was lost (its key deleted by an operator), then dropped.
    let leader = election.campaign("alpha", TTL).await.unwrap();
    client.clone().delete(leader.key(), None).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), leader.lost())
        .await
        .expect("a deleted key ends the leadership");
    drop(leader);
    back_to(baseline, "dropping a lost leadership").await;

    // A memory's follower.
    let memory =
        EtcdMemory::<Ledger>::open_with_client(client.clone(), config.clone(), Ledger::default())
            .await
            .unwrap();
    drop(memory);
    back_to(baseline, "dropping a memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_membership_whose_lease_expired_ends_its_renewal_task_before_it_is_dropped() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "leaks-expired");
    let client = config.connect().await.unwrap();
    Membership::list(&client, &config).await.unwrap();
    let baseline = alive();
    let membership = Membership::join(client.clone(), &config, "proc", TTL)
        .await
        .unwrap();
    membership.register(AgentId(1), "scout").await.unwrap();
    // An operator revokes the lease: the renewal task learns it and ends; the handle lives on.
    let key = format!("{}members/proc/1", config.prefix());
    let lease = client.clone().get(key, None).await.unwrap().kvs()[0].lease();
    client.lease_client().revoke(lease).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), membership.lost())
        .await
        .expect("a revoked lease is noticed");
    back_to(baseline, "the lease was lost (handle still held)").await;
    drop(membership);
    back_to(baseline, "dropping the lost membership").await;
}
