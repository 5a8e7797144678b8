//! Ported from etcd's `TestV3LeaseFailureOverlap` (tests/integration/clientv3/lease/lease_test.go):
//! sessions brought up and torn down at once, before, during and after a two-member cluster loses
//! its quorum. Every one answers in bounded time (with a typed error while there is no quorum), and
//! once the quorum is back sessions work again and none is left behind.

mod support;

use std::time::{Duration, Instant};

use hivekit_etcd::testing::EtcdCluster;
use hivekit_etcd::{Election, EtcdConfig, EtcdError, Membership};
use hivekit_hive::AgentId;
use support::{config_under, unique_prefix};

const SESSIONS: usize = 5;
const TTL: Duration = Duration::from_secs(2);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// Joins, registers an agent and leaves as process `name`; then campaigns and resigns.
async fn up_down(config: EtcdConfig, name: String) -> Result<(), EtcdError> {
    let client = config.connect().await?;
    let membership = Membership::join(client.clone(), &config, &name, TTL).await?;
    membership.register(AgentId(1), &name).await?;
    membership.leave().await?;
    let election = Election::new(client, &config, "rounds")?;
    let leadership = election.campaign(&name, TTL).await?;
    leadership.resign().await
}

/// Runs `SESSIONS` up-downs at once; each must end within `limit`. Returns their outcomes.
async fn round(config: &EtcdConfig, phase: &str, limit: Duration) -> Vec<Result<(), EtcdError>> {
    let tasks: Vec<_> = (0..SESSIONS)
        .map(|index| {
            let config = config.clone();
            let name = format!("{phase}-{index}");
            tokio::spawn(async move {
                let started = Instant::now();
                let outcome = tokio::time::timeout(limit, up_down(config, name.clone())).await;
                outcome
                    .unwrap_or_else(|_| panic!("{name} still going after {:?}", started.elapsed()))
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    outcomes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sessions_up_and_down_across_a_lost_quorum_answer_in_time_and_work_once_it_is_back() {
    let mut cluster = EtcdCluster::start(2).unwrap_or_else(|error| panic!("{error}"));
    let prefix = unique_prefix("peer-lease-failure-overlap");
    let config = config_under(vec![cluster.endpoints()[0].clone()], &prefix)
        .request_timeout(REQUEST_TIMEOUT);
    // Elections queue: five sessions campaign one after another (each resigns at once).
    let healthy_limit = Duration::from_secs(5);

    for outcome in round(&config, "before", healthy_limit).await {
        outcome.unwrap();
    }

    cluster.member_mut(1).unwrap().kill();
    // Without a quorum, each call gives up within its request timeout: a session does at most a
    // connect, a grant and a revoke that may each wait that long, never longer.
    let lost_limit = REQUEST_TIMEOUT * 6 + Duration::from_secs(1);
    // Nothing can be granted without a quorum: each fails, typed.
    for outcome in round(&config, "during", lost_limit).await {
        let error = outcome.expect_err("a session came up without a quorum");
        assert!(
            matches!(
                error,
                EtcdError::Timeout { .. }
                    | EtcdError::Client { .. }
                    | EtcdError::Unreachable { .. }
                    | EtcdError::LeaseLost { .. }
            ),
            "{error:?}"
        );
    }

    cluster.member_mut(1).unwrap().restart().unwrap();
    for outcome in round(&config, "after", healthy_limit).await {
        outcome.unwrap();
    }

    // Nothing is left behind: no member listed, no leader (leases of sessions that could not
    // leave while the quorum was gone expire within their TTL).
    let client = config.connect().await.unwrap();
    let election = Election::new(client.clone(), &config, "rounds").unwrap();
    tokio::time::timeout(TTL * 3, async {
        loop {
            let members = Membership::list(&client, &config).await.unwrap();
            let leader = election.leader().await.unwrap();
            if members.is_empty() && leader.is_none() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("every session's agents and candidacies went");
}
