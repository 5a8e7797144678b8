//! Spawning and removing agents while a round runs: a round asks the agents it started with; an
//! agent spawned meanwhile is asked from the next round; a removed agent is gone from the next
//! one; ids are never reused.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{Agent, AgentContext, AgentError, Hive, Snapshot};
use support::{add, Ledger, LedgerProposal};
use tokio::sync::Notify;

/// Says it was called, then waits (bounded) to be released before proposing.
struct Gate {
    called: Arc<Notify>,
    release: Arc<Notify>,
    calls: Arc<AtomicUsize>,
    key: u64,
}

impl Agent<Ledger> for Gate {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
    ) -> Result<Option<LedgerProposal>, AgentError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        if call == 0 {
            self.called.notify_one();
            let _ = tokio::time::timeout(Duration::from_secs(5), self.release.notified()).await;
        }
        Ok(Some(add(ctx.round() * 100 + self.key, self.key, 1)))
    }
}

struct Counter {
    calls: Arc<AtomicUsize>,
    key: u64,
}

impl Agent<Ledger> for Counter {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
    ) -> Result<Option<LedgerProposal>, AgentError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(Some(add(ctx.round() * 100 + self.key, self.key, 1)))
    }
}

#[tokio::test]
async fn an_agent_spawned_during_a_round_is_asked_from_the_next_one() {
    let hive = Hive::builder(Ledger::default())
        .agent_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let (called, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let gate_calls = Arc::new(AtomicUsize::new(0));
    hive.spawn(Gate {
        called: Arc::clone(&called),
        release: Arc::clone(&release),
        calls: Arc::clone(&gate_calls),
        key: 1,
    });
    let round = tokio::spawn({
        let hive = hive.clone();
        async move { hive.decide().await }
    });
    tokio::time::timeout(Duration::from_secs(5), called.notified())
        .await
        .expect("the gate is asked");
    let late_calls = Arc::new(AtomicUsize::new(0));
    let late = hive.spawn(Counter {
        calls: Arc::clone(&late_calls),
        key: 2,
    });
    assert!(hive.contains(late));
    release.notify_one();
    let first = tokio::time::timeout(Duration::from_secs(5), round)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.agents, 1, "{first}");
    assert_eq!(late_calls.load(Ordering::SeqCst), 0);
    assert_eq!(first.accepted.len(), 1);

    let second = tokio::time::timeout(Duration::from_secs(5), hive.decide())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.agents, 2);
    assert_eq!(late_calls.load(Ordering::SeqCst), 1);
    assert!(second.proposer(second.accepted[0]).is_some());
    assert_eq!(hive.memory().load().value().counters.get(&2), Some(&1));
}

#[tokio::test]
async fn removed_agents_leave_the_next_round_and_their_ids_are_not_reused() {
    let hive = Hive::new(Ledger::default());
    let calls = Arc::new(AtomicUsize::new(0));
    let ids = hive.spawn_many(3, |i| Counter {
        calls: Arc::clone(&calls),
        key: i as u64,
    });
    assert!(hive.remove(ids[1]));
    assert!(!hive.remove(ids[1]), "a second remove is false");
    assert!(!hive.contains(ids[1]));
    let decision = hive.decide().await.unwrap();
    assert_eq!(decision.agents, 2);
    assert!(decision.proposers.iter().all(|(_, agent)| *agent != ids[1]));
    let fresh = hive.spawn(Counter {
        calls: Arc::clone(&calls),
        key: 9,
    });
    assert!(!ids.contains(&fresh), "ids are never reused");
    assert_eq!(hive.agents(), vec![ids[0], ids[2], fresh]);
}

/// Records the proposal id the hive assigned it in each call.
struct IdRecorder {
    ids: Arc<parking_lot::Mutex<Vec<(u64, hivekit_hive::ProposalId)>>>,
}

impl Agent<Ledger> for IdRecorder {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
    ) -> Result<Option<LedgerProposal>, AgentError> {
        self.ids.lock().push((ctx.round(), ctx.proposal_id()));
        Ok(Some(add(ctx.proposal_id().0, ctx.agent().0, 1)))
    }
}

#[tokio::test]
async fn assigned_proposal_ids_are_unique_across_rounds_and_roster_changes() {
    for supervised in [false, true] {
        let mut builder = Hive::builder(Ledger::default());
        if supervised {
            builder = builder.supervision(hivekit_hive::Supervision::quarantine(3, 1));
        }
        let hive = builder.build().unwrap();
        let ids = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let recorder = || IdRecorder {
            ids: Arc::clone(&ids),
        };
        let mut members = hive.spawn_many(3, |_| recorder());
        for round in 0..6 {
            let decision = hive.decide().await.unwrap();
            assert_eq!(decision.accepted.len(), members.len(), "{decision}");
            // Change the roster between rounds.
            if round % 2 == 0 {
                members.push(hive.spawn(recorder()));
            } else {
                assert!(hive.remove(members.remove(0)));
            }
        }
        let ids = ids.lock().clone();
        let mut unique: Vec<_> = ids.iter().map(|(_, id)| *id).collect();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "supervised {supervised}: {ids:?}");
    }
}
