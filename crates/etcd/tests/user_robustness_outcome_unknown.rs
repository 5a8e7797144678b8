//! Indeterminate commits on a 3-member cluster, after Jepsen's etcd analysis (an operation whose
//! answer was lost may still take effect later) and etcd's robustness tests (a paused member holds
//! requests it applies when it runs again): a hive's round whose transaction is stuck in a frozen
//! member ends in `OutcomeUnknown`; `resolve`, asked elsewhere, settles it for good, and nothing
//! the frozen member does once thawed changes that answer.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hivekit_etcd::testing::EtcdCluster;
use hivekit_etcd::{EtcdConfig, EtcdMemory, Whole};
use hivekit_hive::{
    Agent, AgentContext, AgentError, Hive, HiveError, MemoryError, Proposal, ProposalId,
    ProposalOf, Snapshot, State,
};
use serde::{Deserialize, Serialize};

/// The order of every change applied.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Trail {
    tags: Vec<u64>,
}

impl State for Trail {
    type Key = u64;
    type Change = u64;
    fn apply(&mut self, tag: &u64) {
        self.tags.push(*tag);
    }
}

type TrailMemory = EtcdMemory<Trail, Whole>;

const REQUEST_TIMEOUT: Duration = Duration::from_millis(500);
const COMMIT_TIMEOUT: Duration = Duration::from_millis(1_500);
const WITHIN: Duration = Duration::from_secs(15);

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn cluster() -> EtcdCluster {
    EtcdCluster::start(3).unwrap_or_else(|error| panic!("{error}"))
}

fn config_for(endpoints: Vec<String>, prefix: &str) -> EtcdConfig {
    support::config_under(endpoints, prefix)
        .request_timeout(REQUEST_TIMEOUT)
        .commit_timeout(COMMIT_TIMEOUT)
        .history(usize::MAX)
}

/// Proposes `base + round` every round.
struct Tagger {
    base: u64,
}

impl Agent<Trail> for Tagger {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Trail>,
    ) -> Result<Option<ProposalOf<Trail>>, AgentError> {
        let tag = self.base + ctx.round();
        Ok(Some(
            Proposal::new(ProposalId(tag), tag).writes([self.base]),
        ))
    }
}

async fn hive_on(config: EtcdConfig, base: u64) -> Hive<Trail> {
    let memory = TrailMemory::open(config, Trail::default()).await.unwrap();
    let hive = Hive::builder_with_memory(memory).build().unwrap();
    hive.spawn(Tagger { base });
    hive
}

fn etcd_memory(hive: &Hive<Trail>) -> &TrailMemory {
    hive.memory().downcast_ref::<TrailMemory>().unwrap()
}

/// Retries `resolve` while etcd cannot be reached (then nothing is settled, per its doc).
async fn resolve_retrying(memory: &TrailMemory, id: u128) -> Option<u64> {
    let started = Instant::now();
    loop {
        match memory.resolve(id).await {
            Ok(answer) => return answer,
            Err(error) => {
                assert!(started.elapsed() < WITHIN, "resolving {id:#x}: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Decides on `hive` until a round lands (the cluster may still be electing a leader).
async fn decide_until_landed(hive: &Hive<Trail>) -> u64 {
    let started = Instant::now();
    loop {
        match hive.decide().await {
            Ok(decision) => return decision.version,
            Err(error) => {
                assert!(
                    !matches!(&error, HiveError::Memory(memory) if memory.may_have_committed()),
                    "a round on the healthy members ended unknown: {error}"
                );
                assert!(started.elapsed() < WITHIN, "no round landed: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Every tag in the history, in order, checking the versions are gapless.
async fn history_tags(memory: &TrailMemory) -> Vec<u64> {
    let history = memory.history(1, u64::MAX - 1).await.unwrap();
    let mut tags = Vec::new();
    for (index, entry) in history.iter().enumerate() {
        assert_eq!(entry.version, index as u64 + 1, "gapless");
        tags.extend(entry.changes.iter().map(|change| change.change));
    }
    tags
}

/// Waits until `memory` holds `version`.
async fn caught_up(memory: &TrailMemory, version: u64) -> Snapshot<Trail> {
    support::caught_up(memory, version, WITHIN).await
}

/// A hive pinned to a member that is then frozen: its round ends unknown; `resolve` through
/// another member fences it (`None`); the frozen member, thawed, then runs the transactions it
/// held, and none of them lands.
async fn fenced_while_frozen(cluster: &EtcdCluster, frozen: usize) {
    let endpoints = cluster.endpoints();
    let elsewhere = (frozen + 1) % 3;
    let prefix = support::unique_prefix("robust-unknown");
    let pinned = hive_on(config_for(vec![endpoints[frozen].clone()], &prefix), 1_000).await;
    let other = hive_on(
        config_for(vec![endpoints[elsewhere].clone()], &prefix),
        2_000,
    )
    .await;
    // The pinned process's decision lease is granted before the freeze: its next round sends its
    // transaction, which the frozen member holds unanswered.
    assert_eq!(pinned.decide().await.unwrap().version, 1);

    tokio::task::block_in_place(|| cluster.members()[frozen].freeze());
    let started = Instant::now();
    let error = tokio::time::timeout(COMMIT_TIMEOUT * 4, pinned.decide())
        .await
        .expect("the round gave up by itself")
        .unwrap_err();
    assert!(
        started.elapsed() < COMMIT_TIMEOUT + Duration::from_secs(2),
        "gave up after {:?}",
        started.elapsed()
    );
    let HiveError::Memory(MemoryError::OutcomeUnknown { decision_id, .. }) = error else {
        panic!("a round whose transaction was held is unknown, not {error}");
    };
    // Settled elsewhere while the member still holds the transaction.
    let settled = resolve_retrying(etcd_memory(&other), decision_id).await;
    assert_eq!(settled, None, "the held transaction cannot have landed yet");
    decide_until_landed(&other).await;
    tokio::task::block_in_place(|| cluster.members()[frozen].thaw());

    // The thawed member runs what it held; rounds go on through both processes.
    let mut newest = 0;
    for _ in 0..3 {
        newest = newest.max(decide_until_landed(&other).await);
        newest = newest.max(decide_until_landed(&pinned).await);
    }
    let seen = caught_up(etcd_memory(&pinned), newest).await;
    let tags = history_tags(etcd_memory(&other)).await;
    assert_eq!(seen.tags[..], tags[..seen.tags.len()], "one order");
    let stuck_tag = 1_000 + 2;
    assert!(
        !tags.contains(&stuck_tag),
        "the fenced round landed after the thaw: {tags:?}"
    );
    let mut unique = tags.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), tags.len(), "a change applied twice: {tags:?}");
    // The answer stays the same, from either process.
    assert_eq!(
        resolve_retrying(etcd_memory(&pinned), decision_id).await,
        None
    );
    assert_eq!(
        resolve_retrying(etcd_memory(&other), decision_id).await,
        None
    );
}

#[test]
fn a_round_held_by_a_frozen_follower_is_fenced_by_resolve_elsewhere_and_never_lands_after_the_thaw()
{
    let _serial = serial();
    let cluster = cluster();
    runtime().block_on(async {
        let leader = support::leader_index(&cluster).await;
        fenced_while_frozen(&cluster, (leader + 1) % 3).await;
    });
}

#[test]
fn a_round_held_by_the_frozen_raft_leader_is_fenced_by_resolve_elsewhere_and_never_lands_after_the_thaw(
) {
    let _serial = serial();
    let cluster = cluster();
    runtime().block_on(async {
        let leader = support::leader_index(&cluster).await;
        fenced_while_frozen(&cluster, leader).await;
    });
}

#[test]
fn a_resolve_while_the_commit_still_resends_fences_it_and_the_commit_then_reports_it_did_not_land()
{
    let _serial = serial();
    let cluster = cluster();
    runtime().block_on(async {
        let endpoints = cluster.endpoints();
        let leader = support::leader_index(&cluster).await;
        let frozen = (leader + 1) % 3;
        let prefix = support::unique_prefix("robust-fence-inflight");
        // A long commit timeout: the commit is still resending when the member thaws.
        let pinned_config = config_for(vec![endpoints[frozen].clone()], &prefix)
            .commit_timeout(Duration::from_secs(8));
        let pinned = Arc::new(
            TrailMemory::open(pinned_config, Trail::default())
                .await
                .unwrap(),
        );
        let other = hive_on(config_for(vec![endpoints[leader].clone()], &prefix), 2_000).await;
        let tagged = |tag: u64| Proposal::new(ProposalId(tag), tag).writes([1]);
        support::commit(&*pinned, 1, 0, &[tagged(1)], 1)
            .await
            .unwrap();

        tokio::task::block_in_place(|| cluster.members()[frozen].freeze());
        let committing = tokio::spawn({
            let pinned = Arc::clone(&pinned);
            async move { support::commit(&*pinned, 2, 1, &[tagged(2)], 1).await }
        });
        // Settled through another member while the commit's copies are held by the frozen one.
        assert_eq!(resolve_retrying(etcd_memory(&other), 2).await, None);
        decide_until_landed(&other).await;
        tokio::task::block_in_place(|| cluster.members()[frozen].thaw());

        let outcome = tokio::time::timeout(WITHIN, committing)
            .await
            .expect("the commit ended")
            .unwrap();
        let error = outcome.expect_err("a fenced decision cannot commit");
        assert!(
            matches!(error, MemoryError::Backend { .. }) && error.to_string().contains("fenced"),
            "the commit learns it was fenced, and says it did not land: {error}"
        );
        let tags = history_tags(etcd_memory(&other)).await;
        assert!(!tags.contains(&2), "the fenced decision landed: {tags:?}");
        assert_eq!(resolve_retrying(&pinned, 2).await, None);
        // The pinned process goes on committing after the fenced decision.
        let base = caught_up(&pinned, tags.len() as u64).await.version();
        let next = support::commit(&*pinned, 3, base, &[tagged(3)], 1)
            .await
            .unwrap();
        assert_eq!(next.version, tags.len() as u64 + 1);
    });
}

#[test]
fn an_unknown_round_resolved_at_once_from_every_member_gets_one_answer_the_history_agrees_with() {
    let _serial = serial();
    let cluster = cluster();
    runtime().block_on(async {
        let endpoints = cluster.endpoints();
        let leader = support::leader_index(&cluster).await;
        let prefix = support::unique_prefix("robust-resolve-everywhere");
        // Pinned to the leader: frozen, it is replaced, and what it held may or may not land.
        let pinned = hive_on(config_for(vec![endpoints[leader].clone()], &prefix), 1_000).await;
        assert_eq!(pinned.decide().await.unwrap().version, 1);
        let resolvers: Vec<TrailMemory> = {
            let mut resolvers = Vec::new();
            for endpoint in &endpoints {
                resolvers.push(
                    TrailMemory::open(
                        config_for(vec![endpoint.clone()], &prefix),
                        Trail::default(),
                    )
                    .await
                    .unwrap(),
                );
            }
            resolvers
        };

        tokio::task::block_in_place(|| cluster.members()[leader].freeze());
        let error = tokio::time::timeout(COMMIT_TIMEOUT * 4, pinned.decide())
            .await
            .expect("the round gave up by itself")
            .unwrap_err();
        let HiveError::Memory(MemoryError::OutcomeUnknown { decision_id, .. }) = error else {
            panic!("expected an unknown outcome, got {error}");
        };
        // Thawed before anyone settles it: what the old leader held may land now.
        tokio::task::block_in_place(|| cluster.members()[leader].thaw());
        let answers = futures::future::join_all(
            resolvers
                .iter()
                .map(|resolver| resolve_retrying(resolver, decision_id)),
        )
        .await;
        assert!(
            answers.iter().all(|answer| *answer == answers[0]),
            "resolves from every member disagree: {answers:?}"
        );
        let tags = history_tags(&resolvers[0]).await;
        let landed = tags.iter().filter(|tag| **tag == 1_000 + 2).count();
        assert_eq!(landed, usize::from(answers[0].is_some()), "{tags:?}");
        if let Some(version) = answers[0] {
            assert_eq!(tags[version as usize - 1], 1_000 + 2);
        }
        // Later rounds change nothing about it.
        let other = hive_on(config_for(endpoints.clone(), &prefix), 2_000).await;
        decide_until_landed(&other).await;
        decide_until_landed(&pinned).await;
        for resolver in &resolvers {
            assert_eq!(resolve_retrying(resolver, decision_id).await, answers[0]);
        }
        let tags = history_tags(&resolvers[0]).await;
        assert_eq!(
            tags.iter().filter(|tag| **tag == 1_000 + 2).count(),
            landed,
            "{tags:?}"
        );
    });
}
