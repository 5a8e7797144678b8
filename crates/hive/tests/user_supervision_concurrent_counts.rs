//! Supervision under concurrent rounds: quarantines and removals counted exactly once, in decisions, stats, events and the restart hook alike.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, AgentId, Decision, FailureKind, Hive, HiveEvent,
    HiveEventSink, ProposalOf, Snapshot, State, Supervision, SupervisionAction,
};

#[derive(Clone, Debug, Default)]
struct Sum(u64);

impl State for Sum {
    type Key = u64;
    type Change = u64;
    fn apply(&mut self, change: &u64) {
        self.0 += change;
    }
}

struct Good;

impl Agent<Sum> for Good {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Sum>,
    ) -> Result<Option<ProposalOf<Sum>>, AgentError> {
        tokio::task::yield_now().await;
        Ok(Some(ctx.proposal(1).writes([ctx.proposal_id().0])))
    }
}

struct Bad;

impl Agent<Sum> for Bad {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Sum>,
    ) -> Result<Option<ProposalOf<Sum>>, AgentError> {
        tokio::task::yield_now().await;
        Err(AgentError::msg("bad"))
    }
}

const ROUNDS: usize = 32;

struct Run {
    hive: Hive<Sum>,
    decisions: Vec<Decision<Sum>>,
    events: Vec<HiveEvent<u64>>,
    hooks: u64,
    bad: AgentId,
}

async fn run(policy: Supervision) -> Run {
    let events: Arc<Mutex<Vec<HiveEvent<u64>>>> = Arc::default();
    let hooks = Arc::new(AtomicU64::new(0));
    let sink = {
        let events = Arc::clone(&events);
        HiveEventSink::callback(move |event| events.lock().unwrap().push(event))
    };
    let hive = Hive::builder(Sum::default())
        .supervision(policy)
        .events(sink)
        .on_restart({
            let hooks = Arc::clone(&hooks);
            move |_, _| {
                hooks.fetch_add(1, Ordering::SeqCst);
            }
        })
        .build()
        .unwrap();
    hive.spawn_many(2, |_| Good);
    let bad = hive.spawn(Bad);
    let tasks: Vec<_> = (0..ROUNDS)
        .map(|_| {
            let hive = hive.clone();
            tokio::spawn(async move { hive.decide().await })
        })
        .collect();
    let mut decisions = Vec::new();
    for task in tasks {
        let decision = tokio::time::timeout(Duration::from_secs(20), task)
            .await
            .expect("a round hung")
            .expect("a round panicked")
            .expect("decide failed");
        decisions.push(decision);
    }
    let events = events.lock().unwrap().clone();
    Run {
        hive,
        decisions,
        events,
        hooks: hooks.load(Ordering::SeqCst),
        bad,
    }
}

fn failed_rounds(run: &Run) -> u64 {
    run.decisions
        .iter()
        .filter(|d| {
            d.failures
                .iter()
                .any(|f| f.agent == run.bad && matches!(f.kind, FailureKind::Errored { .. }))
        })
        .count() as u64
}

fn supervised_events(run: &Run) -> u64 {
    run.events
        .iter()
        .filter(|e| matches!(e, HiveEvent::AgentSupervised { .. }))
        .count() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarantines_under_concurrent_rounds_are_one_per_limit_of_failed_rounds() {
    const LIMIT: u32 = 3;
    let run = run(Supervision::quarantine(LIMIT, 1)).await;
    let failed = failed_rounds(&run);
    let records: Vec<_> = run
        .decisions
        .iter()
        .flat_map(|d| d.supervised.iter())
        .collect();
    assert!(
        records.iter().all(|r| r.agent == run.bad
            && r.failures == LIMIT
            && r.action == SupervisionAction::Quarantine { rounds: 1 }),
        "{records:?}"
    );
    assert_eq!(
        records.len() as u64,
        failed / u64::from(LIMIT),
        "{failed} failed rounds with a limit of {LIMIT}"
    );
    for decision in &run.decisions {
        for record in &decision.supervised {
            assert_eq!(record.until_round, Some(decision.round + 1), "{record:?}");
        }
    }
    let stats = run.hive.stats();
    assert_eq!(stats.quarantines, records.len() as u64, "{stats:?}");
    assert_eq!(stats.removals, 0);
    assert_eq!(stats.errors, failed, "{stats:?}");
    assert_eq!(supervised_events(&run), records.len() as u64);
    assert_eq!(run.hooks, records.len() as u64);
    assert_eq!(stats.rounds, ROUNDS as u64);
    assert_eq!(stats.commits, ROUNDS as u64);
    assert_eq!(run.hive.memory().load().0, stats.accepted);
    assert_eq!(run.hive.memory().version(), ROUNDS as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_under_concurrent_rounds_happens_once() {
    let run = run(Supervision::remove(2)).await;
    let failed = failed_rounds(&run);
    assert!(failed >= 2, "{failed}");
    let records: Vec<_> = run
        .decisions
        .iter()
        .flat_map(|d| d.supervised.iter())
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].agent, run.bad);
    assert_eq!(records[0].action, SupervisionAction::Remove);
    assert!(!run.hive.contains(run.bad));
    let stats = run.hive.stats();
    assert_eq!((stats.removals, stats.quarantines), (1, 0), "{stats:?}");
    assert_eq!(stats.errors, failed);
    assert_eq!(supervised_events(&run), 1);
    assert_eq!(run.hooks, 1);
    // Rounds that started after the removal did not ask it.
    let removed_in = run
        .decisions
        .iter()
        .find(|d| !d.supervised.is_empty())
        .unwrap()
        .round;
    for decision in &run.decisions {
        if decision.agents == 2 {
            assert!(decision.failures.is_empty());
        } else {
            assert_eq!(decision.agents, 3);
        }
    }
    assert!(run.decisions.iter().any(|d| d.round == removed_in));
}
