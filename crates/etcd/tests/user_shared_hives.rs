//! Two hives (two handles, as two processes would hold them) deciding at once on one etcd memory,
//! and concurrent rounds of one hive: no lost update, one version per decision, the history
//! complete and in order, and a watcher that sees every version.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use hivekit_etcd::{EtcdMemory, Whole};
use hivekit_hive::{Agent, AgentContext, AgentError, Hive, Memory, ProposalOf, Snapshot};
use support::{add, config, etcd, Ledger};

type LedgerMemory = EtcdMemory<Ledger, Whole>;

/// Adds one to its counter every round; its proposal ids are unique across hives.
struct Incrementer {
    key: u64,
    ids: u64,
}

impl Agent<Ledger> for Incrementer {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
    ) -> Result<Option<ProposalOf<Ledger>>, AgentError> {
        Ok(Some(add(self.ids + ctx.round(), self.key, 1)))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hives_deciding_at_once_on_one_memory_lose_no_update_and_share_one_history() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "two-hives");
    let hives: Vec<Arc<Hive<Ledger>>> = futures::future::join_all((0..2_u64).map(|index| {
        let config = config.clone();
        async move {
            let memory = LedgerMemory::open(config, Ledger::default()).await.unwrap();
            let hive = Hive::builder_with_memory(memory)
                .history(64)
                .build()
                .unwrap();
            hive.spawn(Incrementer {
                key: 1,
                ids: (index + 1) * 1_000,
            });
            Arc::new(hive)
        }
    }))
    .await;
    let rounds = 12;
    let decisions = tokio::time::timeout(
        Duration::from_secs(30),
        futures::future::join_all(hives.iter().map(|hive| {
            let hive = Arc::clone(hive);
            tokio::spawn(async move {
                let mut decisions = Vec::new();
                for _ in 0..rounds {
                    decisions.push(hive.decide().await.unwrap());
                }
                decisions
            })
        })),
    )
    .await
    .expect("both hives finished");
    let per_hive: Vec<Vec<_>> = decisions.into_iter().map(Result::unwrap).collect();
    // Each hive's own history holds the state exactly at the versions it committed, never a later
    // one followed from the other hive.
    for (hive, decisions) in hives.iter().zip(&per_hive) {
        let mut kept = 0;
        for decision in decisions {
            if let Some(entry) = hive.memory().at(decision.version) {
                kept += 1;
                assert_eq!(entry.snapshot.version(), decision.version);
                assert_eq!(entry.snapshot.applied, decision.version);
                assert_eq!(entry.decision.id, decision.id);
            }
        }
        assert!(kept > 0, "the hive's history kept none of its versions");
    }
    let decisions: Vec<_> = per_hive.into_iter().flatten().collect();

    let versions: BTreeSet<u64> = decisions.iter().map(|decision| decision.version).collect();
    assert_eq!(
        versions,
        (1..=2 * rounds).collect(),
        "one version per decision"
    );
    for hive in &hives {
        let memory = hive.memory().downcast_ref::<LedgerMemory>().unwrap();
        let caught_up = support::caught_up(memory, 2 * rounds, Duration::from_secs(5)).await;
        assert_eq!(caught_up.counters.get(&1), Some(&(2 * rounds as i64)));
        assert_eq!(caught_up.applied, 2 * rounds);
    }
    let memory = hives[0].memory().downcast_ref::<LedgerMemory>().unwrap();
    let history = memory.history(1, 2 * rounds).await.unwrap();
    let in_order: Vec<u64> = history.iter().map(|entry| entry.version).collect();
    assert_eq!(in_order, (1..=2 * rounds).collect::<Vec<_>>());
    for decision in &decisions {
        let entry = &history[decision.version as usize - 1];
        assert_eq!(entry.decision_id, format!("{:032x}", decision.id));
        let accepted: Vec<u64> = entry.changes.iter().map(|change| change.proposal).collect();
        let expected: Vec<u64> = decision.accepted.iter().map(|id| id.0).collect();
        assert_eq!(accepted, expected, "version {}", decision.version);
        assert_eq!(
            entry.rebased, decision.rebased,
            "version {}",
            decision.version
        );
    }
    assert!(
        decisions.iter().any(|decision| decision.rebased),
        "the hives contended"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_rounds_of_one_hive_each_commit_exactly_one_version() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "one-hive-concurrent");
    let memory = LedgerMemory::open(config, Ledger::default()).await.unwrap();
    let hive = Arc::new(Hive::builder_with_memory(memory).build().unwrap());
    hive.spawn(Incrementer { key: 7, ids: 0 });
    let decisions = tokio::time::timeout(
        Duration::from_secs(30),
        futures::future::join_all((0..8).map(|_| {
            let hive = Arc::clone(&hive);
            tokio::spawn(async move { hive.decide().await.unwrap() })
        })),
    )
    .await
    .expect("the rounds finished");
    let versions: BTreeSet<u64> = decisions
        .into_iter()
        .map(|decision| decision.unwrap().version)
        .collect();
    assert_eq!(versions, (1..=8).collect());
    let memory = hive.memory().downcast_ref::<LedgerMemory>().unwrap();
    assert_eq!(memory.snapshot().version(), 8);
    assert_eq!(memory.snapshot().counters.get(&7), Some(&8));
    assert_eq!(memory.history(1, 8).await.unwrap().len(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_on_another_handle_reading_the_history_sees_every_version_once_in_order() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "watch-every");
    let writer = LedgerMemory::open(config.clone(), Ledger::default())
        .await
        .unwrap();
    let watcher = LedgerMemory::open(config, Ledger::default()).await.unwrap();
    let total = 40_u64;
    let watching = tokio::spawn(async move {
        let mut seen = Vec::new();
        let mut at = 0;
        while at < total {
            let snapshot = watcher.changed(at).await.unwrap();
            // `changed` may skip versions; the history fills them in.
            for entry in watcher.history(at + 1, snapshot.version()).await.unwrap() {
                seen.push(entry.version);
            }
            at = snapshot.version();
        }
        seen
    });
    for id in 1..=total {
        support::commit(&writer, u128::from(id), id - 1, &[add(id, id % 3, 1)], 1)
            .await
            .unwrap();
    }
    let seen = tokio::time::timeout(Duration::from_secs(10), watching)
        .await
        .expect("the watcher saw the last version")
        .unwrap();
    assert_eq!(seen, (1..=total).collect::<Vec<_>>());
}

/// Proposes nothing.
struct Idle;

impl Agent<Ledger> for Idle {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
    ) -> Result<Option<ProposalOf<Ledger>>, AgentError> {
        Ok(None)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_that_accepts_nothing_writes_nothing_to_etcd_and_uses_no_version() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "idle-round");
    let memory = LedgerMemory::open(config, Ledger::default()).await.unwrap();
    let client = memory.client().clone();
    let hive = Hive::builder_with_memory(memory).build().unwrap();
    let idle = hive.spawn(Idle);
    let before = support::current_revision(&client).await;
    let decision = hive.decide().await.unwrap();
    assert_eq!((decision.base_version, decision.version), (0, 0));
    assert!(decision.accepted.is_empty());
    assert_eq!(
        support::current_revision(&client).await,
        before,
        "etcd untouched"
    );

    hive.remove(idle);
    hive.spawn(Incrementer { key: 1, ids: 0 });
    let decision = hive.decide().await.unwrap();
    assert_eq!(decision.version, 1, "the next accepted round is version 1");
    let memory = hive.memory().downcast_ref::<LedgerMemory>().unwrap();
    assert_eq!(memory.history(0, 10).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handles_committing_to_one_keyed_memory_at_once_agree_with_a_sequential_model() {
    use hivekit_etcd::Keyed;
    use hivekit_hive::{Proposal, ProposalId};
    use support::{Add, Counters};

    type CounterMemory = EtcdMemory<Counters, Keyed>;
    let server = etcd();
    let config = config(vec![server.endpoint()], "keyed-concurrent");
    let handles = [
        CounterMemory::open(config.clone(), Counters::default())
            .await
            .unwrap(),
        CounterMemory::open(config.clone(), Counters::default())
            .await
            .unwrap(),
    ];
    // Deltas that bring counters back to zero (their keys are then deleted) and up again.
    let change = |id: u64| Add {
        id,
        key: id % 3,
        delta: if id % 2 == 0 { 1 } else { -1 },
    };
    let per_handle = 15_u64;
    let commits = handles
        .iter()
        .enumerate()
        .map(|(index, memory)| async move {
            for n in 0..per_handle {
                let id = index as u64 * 1_000 + n;
                let proposal = Proposal::new(ProposalId(id), change(id)).writes([id % 3]);
                let base = hivekit_hive::Memory::snapshot(memory).version();
                support::commit(memory, u128::from(id + 1), base, &[proposal], 1)
                    .await
                    .unwrap();
            }
        });
    tokio::time::timeout(Duration::from_secs(30), futures::future::join_all(commits))
        .await
        .expect("the commits ended");

    let mut model = Counters::default();
    for index in 0..2_u64 {
        for n in 0..per_handle {
            hivekit_hive::State::apply(&mut model, &change(index * 1_000 + n));
        }
    }
    let total = 2 * per_handle;
    for memory in &handles {
        let followed = support::caught_up(memory, total, Duration::from_secs(5)).await;
        assert_eq!(followed.0, model.0);
        assert_eq!(memory.stats().commits, per_handle);
    }
    let reopened = CounterMemory::open(config, Counters::default())
        .await
        .unwrap();
    assert_eq!(hivekit_hive::Memory::snapshot(&reopened).version(), total);
    assert_eq!(hivekit_hive::Memory::snapshot(&reopened).0, model.0);
}
