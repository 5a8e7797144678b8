//! The audit a second process reads from etcd after a hive decided: each history entry names the
//! decision, its round, the version it was based on, whether it was rebased, when it was made, and
//! every accepted change with the agent that proposed it; rejected proposals are not in it.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hivekit_etcd::{EtcdMemory, Whole};
use hivekit_hive::{
    Agent, AgentContext, AgentError, Hive, Memory, ProposalId, ProposalOf, Snapshot,
};
use support::{add, config, etcd, Ledger};

type LedgerMemory = EtcdMemory<Ledger, Whole>;

/// Proposes an addition to `key` every round; agents sharing a key conflict.
struct Writer {
    key: u64,
    ids: u64,
}

impl Agent<Ledger> for Writer {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
    ) -> Result<Option<ProposalOf<Ledger>>, AgentError> {
        Ok(Some(add(self.ids + ctx.round(), self.key, 1)))
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_reads_each_decision_its_round_base_time_and_proposers_from_the_history() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "hive-audit");
    let memory = LedgerMemory::open(config.clone(), Ledger::default())
        .await
        .unwrap();
    let hive = Hive::builder_with_memory(memory).build().unwrap();
    // Two agents write key 1 (one of them is rejected each round), one writes key 2.
    let agents = [
        hive.spawn(Writer { key: 1, ids: 1_000 }),
        hive.spawn(Writer { key: 1, ids: 2_000 }),
        hive.spawn(Writer { key: 2, ids: 3_000 }),
    ];
    let started = now_ms();
    let mut decisions = Vec::new();
    for _ in 0..4 {
        let decision = tokio::time::timeout(Duration::from_secs(10), hive.decide())
            .await
            .expect("decided")
            .unwrap();
        decisions.push(decision);
    }
    let ended = now_ms();

    let auditor = LedgerMemory::open(config, Ledger::default()).await.unwrap();
    let history = auditor.history(1, u64::MAX - 1).await.unwrap();
    assert_eq!(history.len(), decisions.len());
    for (entry, decision) in history.iter().zip(&decisions) {
        assert_eq!(entry.version, decision.version);
        assert_eq!(entry.decision_id, format!("{:032x}", decision.id));
        assert_eq!(entry.round, decision.round, "version {}", entry.version);
        assert_eq!(
            entry.base, decision.base_version,
            "version {}",
            entry.version
        );
        assert_eq!(entry.rebased, decision.rebased);
        assert!(!entry.rebased, "one hive alone never rebases");
        assert_eq!(entry.base + 1, entry.version);
        assert!(
            (started..=ended).contains(&entry.time_ms),
            "time {} outside {started}..={ended}",
            entry.time_ms
        );
        let proposers: BTreeMap<ProposalId, u64> = decision
            .proposers
            .iter()
            .map(|(proposal, agent)| (*proposal, agent.0))
            .collect();
        let audited: Vec<(u64, Option<u64>)> = entry
            .changes
            .iter()
            .map(|change| (change.proposal, change.proposer))
            .collect();
        let expected: Vec<(u64, Option<u64>)> = decision
            .accepted
            .iter()
            .map(|id| (id.0, proposers.get(id).copied()))
            .collect();
        assert_eq!(audited, expected, "version {}", entry.version);
        assert_eq!(entry.changes.len(), 2, "one writer per key accepted");
        for (rejected, _) in &decision.rejected {
            assert!(
                entry
                    .changes
                    .iter()
                    .all(|change| change.proposal != rejected.0),
                "rejected proposal {} is in the audit",
                rejected.0
            );
        }
        for change in &entry.changes {
            let proposer = change.proposer.expect("a proposer is recorded");
            assert!(agents.iter().any(|agent| agent.0 == proposer));
            assert_eq!(change.change.id, change.proposal);
        }
    }
    let rounds: Vec<u64> = history.iter().map(|entry| entry.round).collect();
    assert!(
        rounds.windows(2).all(|pair| pair[0] < pair[1]),
        "{rounds:?}"
    );
    let state = auditor.snapshot();
    assert_eq!(state.counters.get(&1), Some(&4));
    assert_eq!(state.counters.get(&2), Some(&4));
}
