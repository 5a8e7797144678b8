//! Faults: the etcd leader killed mid-run, etcd stopped and restarted, a follower behind
//! compaction.

mod support;

use std::time::{Duration, Instant};

use hivekit_etcd::testing::EtcdCluster;
use hivekit_etcd::{EtcdMemory, Whole};
use hivekit_hive::{
    Agent, AgentContext, AgentError, Hive, HiveError, Memory, MemoryError, ProposalOf, Snapshot,
};
use support::child::{run_if_child, verify, Client, ClientPlan};
use support::{add, commit, config, etcd, leader_index, Ledger};

type LedgerMemory = EtcdMemory<Ledger, Whole>;

/// Adds one to its counter every round.
struct Incrementer {
    key: u64,
}

impl Agent<Ledger> for Incrementer {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
    ) -> Result<Option<ProposalOf<Ledger>>, AgentError> {
        Ok(Some(add(ctx.round(), self.key, 1)))
    }
}

fn cluster() -> EtcdCluster {
    EtcdCluster::start(3).unwrap_or_else(|error| panic!("{error}"))
}

#[test]
fn killing_the_etcd_leader_mid_run_loses_no_committed_decision_and_lands_none_reported_failed() {
    if run_if_child() {
        return;
    }
    let mut cluster = cluster();
    let config = config(cluster.endpoints(), "leader-killed");
    let name = "killing_the_etcd_leader_mid_run_loses_no_committed_decision_and_lands_none_reported_failed";
    let mut clients: Vec<Client> = (0..2)
        .map(|index| {
            let plan = ClientPlan {
                endpoints: cluster.endpoints(),
                prefix: config.prefix().to_string(),
                index,
                agents: 10,
                decisions: 150,
                lease_ttl_secs: 5,
            };
            Client::spawn(name, &plan)
        })
        .collect();
    clients[0].wait_for_commits(30, Duration::from_secs(30));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let leader = runtime.block_on(leader_index(&cluster));
    cluster.member_mut(leader).unwrap().kill();

    for client in &mut clients {
        client.finish(Duration::from_secs(60));
    }
    let history = runtime.block_on(verify(&config, &clients, 10));
    for client in &clients {
        let (failed, unknown) = client.failed_and_unknown();
        eprintln!(
            "client {}: {} committed, {} failed, {} unknown",
            client.index,
            client.committed().len(),
            failed,
            unknown.len()
        );
    }
    let committed: usize = clients.iter().map(|client| client.committed().len()).sum();
    assert!(
        committed >= 250,
        "the run went on after the leader died: {committed} of 300 committed"
    );
    assert!(history.len() >= committed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_etcd_fails_decide_with_a_typed_error_within_its_timeout_and_a_restarted_one_decides(
) {
    let mut server = etcd();
    let config = config(vec![server.endpoint()], "stopped")
        .request_timeout(Duration::from_millis(500))
        .commit_timeout(Duration::from_secs(2));
    let memory = LedgerMemory::open(config, Ledger::default()).await.unwrap();
    let hive = Hive::builder_with_memory(memory).build().unwrap();
    hive.spawn(Incrementer { key: 1 });
    assert_eq!(hive.decide().await.unwrap().version, 1);

    tokio::task::block_in_place(|| server.kill());
    let started = Instant::now();
    let error = hive.decide().await.unwrap_err();
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(4),
        "decide gave up after {waited:?}"
    );
    let HiveError::Memory(error) = error else {
        panic!("expected a memory error, got {error}");
    };
    assert!(
        matches!(
            error,
            MemoryError::Unavailable { .. } | MemoryError::OutcomeUnknown { .. }
        ),
        "{error}"
    );
    assert!(
        error.to_string().contains("unreachable") || error.to_string().contains("unknown"),
        "{error}"
    );

    tokio::task::block_in_place(|| server.restart().unwrap());
    let decision = hive.decide().await.unwrap();
    // The failed round's outcome was unknown or nothing; either way versions stay gapless.
    let memory = hive.memory().downcast_ref::<LedgerMemory>().unwrap();
    let history = memory.history(1, u64::MAX - 1).await.unwrap();
    assert_eq!(history.last().unwrap().version, decision.version);
    assert_eq!(memory.snapshot().applied, decision.version);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_compaction_reloads_from_the_history_and_says_so() {
    let mut cluster = cluster();
    let endpoints = cluster.endpoints();
    let prefix = support::unique_prefix("compaction");
    let config_for = |endpoint: &str| support::config_under(vec![endpoint.to_string()], &prefix);
    let writer = LedgerMemory::open(config_for(&endpoints[0]), Ledger::default())
        .await
        .unwrap();
    let follower = LedgerMemory::open(config_for(&endpoints[2]), Ledger::default())
        .await
        .unwrap();

    // The follower's only member goes away; commits and a compaction happen without it.
    tokio::task::block_in_place(|| cluster.member_mut(2).unwrap().kill());
    for id in 1..=5 {
        let base = writer.snapshot().version();
        commit(&writer, u128::from(id), base, &[add(id, 1, 1)], 1)
            .await
            .unwrap();
    }
    support::compact_now(writer.client()).await;
    tokio::task::block_in_place(|| cluster.member_mut(2).unwrap().restart().unwrap());

    // The snapshot is carried forward: waiting for a version after a fresh `snapshot()` would wait
    // for a 6th version if the 5th landed in between.
    let caught_up = support::caught_up(&follower, 5, Duration::from_secs(15)).await;
    assert_eq!(caught_up.applied, 5);
    assert_eq!(follower.stats().reloads, 1, "the follower said it reloaded");
}
