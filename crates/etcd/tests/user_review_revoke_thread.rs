//! Review of cbc1951 (crates/etcd/src/lease.rs `revoke_in_background`): dropped leases are revoked
//! from one process-wide revoke thread. Here only that thread can get the revoke out (the leases
//! are dropped where the caller's runtime never runs its revoke task): leases of many clients,
//! of two separate etcd servers, dropped at once; leases dropped by a runtime being shut down;
//! and leases whose endpoint list starts with a member that is down.

mod support;

use std::time::Duration;

use hivekit_etcd::testing::EtcdCluster;
use hivekit_etcd::{EtcdConfig, Membership};
use hivekit_hive::AgentId;
use support::{config_under, etcd, unique_prefix};

/// Long: a membership that goes within a few seconds was revoked, not expired.
const TTL: Duration = Duration::from_secs(30);
/// How long the revoke thread is given (its revoke is bounded by 2 s, plus a connect).
const WITHIN: Duration = Duration::from_secs(5);

/// A current-thread runtime: a task spawned on it while no `block_on` runs is never run, so the
/// revoke sent with the caller's client (a task on the lease's runtime) never goes out.
fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// `count` memberships under `config`, each with a client of its own, one agent each.
async fn join(config: &EtcdConfig, first: usize, count: usize) -> Vec<Membership> {
    let mut memberships = Vec::with_capacity(count);
    for index in first..first + count {
        let client = config.connect().await.unwrap();
        let membership = Membership::join(client, config, &format!("proc{index}"), TTL)
            .await
            .unwrap();
        membership
            .register(AgentId(index as u64), "scout")
            .await
            .unwrap();
        memberships.push(membership);
    }
    memberships
}

/// Waits, on a runtime of its own, until no member is listed under `config`; fails after
/// [`WITHIN`].
fn all_gone(config: &EtcdConfig, what: &str) {
    let runtime = current_thread();
    runtime.block_on(async {
        let client = config.connect().await.unwrap();
        let outcome = tokio::time::timeout(WITHIN, async {
            loop {
                let listed = Membership::list(&client, config).await.unwrap();
                if listed.is_empty() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        if outcome.is_err() {
            let left = Membership::list(&client, config).await.unwrap();
            panic!(
                "{what}: {} dropped memberships still listed after {WITHIN:?} (TTL {TTL:?}): {:?}",
                left.len(),
                left.iter()
                    .map(|member| &member.process)
                    .collect::<Vec<_>>()
            );
        }
    });
}

/// 32 memberships on each of two etcd servers (64 clients), dropped at once outside their
/// current-thread runtime, which is then dropped: the revoke thread revokes all of them, each at
/// its own server.
#[test]
fn leases_of_many_clients_on_two_servers_dropped_at_once_all_go() {
    let (first, second) = (etcd(), etcd());
    let prefix = unique_prefix("review-revoke-two-servers");
    let configs = [
        config_under(vec![first.endpoint()], &prefix),
        config_under(vec![second.endpoint()], &prefix),
    ];
    let runtime = current_thread();
    let memberships: Vec<Membership> = runtime.block_on(async {
        let mut all = join(&configs[0], 0, 32).await;
        all.extend(join(&configs[1], 32, 32).await);
        all
    });
    drop(memberships);
    drop(runtime);
    all_gone(&configs[0], "first server");
    all_gone(&configs[1], "second server");
}

/// Memberships held by tasks of a multi-thread runtime that is shut down: each lease is dropped
/// inside the runtime's shutdown, where a task spawned on it never runs.
#[test]
fn leases_dropped_by_a_runtime_shutting_down_all_go() {
    let server = etcd();
    let config = config_under(
        vec![server.endpoint()],
        &unique_prefix("review-revoke-shutdown"),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        for membership in join(&config, 0, 16).await {
            tokio::spawn(async move {
                let _held = membership;
                std::future::pending::<()>().await;
            });
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(5));
    all_gone(&config, "dropped by the runtime's shutdown");
}

/// A 3-member cluster whose first member is down: the clients reach the other two. Their leases,
/// dropped where only the revoke thread sends a revoke, all go (the revoke thread's connection
/// to the same endpoint list reaches a live member).
#[test]
fn leases_dropped_while_a_member_is_down_all_go() {
    let mut cluster = match EtcdCluster::start(3) {
        Ok(cluster) => cluster,
        Err(error) => panic!("{error}"),
    };
    cluster.member_mut(0).unwrap().kill();
    let config = config_under(
        cluster.endpoints(),
        &unique_prefix("review-revoke-member-down"),
    );
    let live = config_under(cluster.endpoints()[1..].to_vec(), config.prefix());
    let runtime = current_thread();
    // The two left have a Raft leader (member 0 may have been it).
    runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Ok(mut client) = live.connect().await {
                    if client
                        .status()
                        .await
                        .is_ok_and(|status| status.leader() != 0)
                    {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("the two members left elected a Raft leader");
    });
    let memberships = runtime.block_on(join(&config, 0, 24));
    drop(memberships);
    drop(runtime);
    all_gone(&live, "a member down");
}
