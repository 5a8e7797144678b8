//! Supervision: agents that keep failing are quarantined for some rounds or removed, recorded in
//! the decision, the stats and the events, and the restart hook is called.

mod support;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, FailureKind, Hive, HiveEvent, HiveEventSink, Snapshot,
    Supervised, Supervision, SupervisionAction,
};
use parking_lot::Mutex;
use support::{add, Behaviour, Ledger, LedgerProposal, Writer};

/// Behaves as scripted, one behaviour per call (then answers at once), proposing a fresh id each
/// time it succeeds; counts its calls.
struct Scripted {
    script: Mutex<VecDeque<Behaviour>>,
    key: u64,
    calls: Arc<AtomicUsize>,
}

impl Scripted {
    fn new(key: u64, script: impl IntoIterator<Item = Behaviour>) -> (Self, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let agent = Self {
            script: Mutex::new(script.into_iter().collect()),
            key,
            calls: Arc::clone(&calls),
        };
        (agent, calls)
    }
}

impl Agent<Ledger> for Scripted {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
    ) -> Result<Option<LedgerProposal>, AgentError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) as u64;
        let behaviour = self.script.lock().pop_front().unwrap_or(Behaviour::Instant);
        match behaviour {
            Behaviour::Fail => Err(AgentError::msg("scripted failure")),
            Behaviour::Panic => panic!("scripted panic"),
            Behaviour::Never => std::future::pending().await,
            Behaviour::Slow(delay) => {
                tokio::time::sleep(delay).await;
                Ok(None)
            }
            Behaviour::Instant => Ok(Some(add(ctx.round() * 100 + call, self.key, 1))),
        }
    }
}

/// The events a sink received.
type Seen = Arc<Mutex<Vec<HiveEvent<u64>>>>;

fn events() -> (HiveEventSink<u64>, Seen) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = {
        let seen = Arc::clone(&seen);
        HiveEventSink::callback(move |event| seen.lock().push(event))
    };
    (sink, seen)
}

#[tokio::test(start_paused = true)]
async fn an_agent_that_fails_three_rounds_is_quarantined_then_rejoins_and_recovers() {
    let (sink, seen) = events();
    let hive = Hive::builder(Ledger::default())
        .supervision(Supervision::quarantine(3, 2))
        .agent_timeout(Duration::from_secs(1))
        .events(sink)
        .build()
        .unwrap();
    // An error, a panic and a timeout: three failed rounds in a row, then it behaves.
    let (flaky, calls) = Scripted::new(1, [Behaviour::Fail, Behaviour::Panic, Behaviour::Never]);
    let flaky = hive.spawn(flaky);
    let steady = hive.spawn(Writer::new(7, 2));

    for round in 1..=2 {
        let decision = hive.decide().await.unwrap();
        assert_eq!(decision.failures.len(), 1, "round {round}");
        assert!(decision.supervised.is_empty(), "round {round}");
    }
    let third = hive.decide().await.unwrap();
    assert!(matches!(third.failures[0].kind, FailureKind::TimedOut));
    assert_eq!(
        third.supervised,
        vec![Supervised {
            agent: flaky,
            failures: 3,
            action: SupervisionAction::Quarantine { rounds: 2 },
            until_round: Some(5),
            last: FailureKind::TimedOut,
        }]
    );
    assert!(third.to_string().contains(&format!(
        "supervised: {flaky} quarantined for 2 rounds after 3 failed rounds in a row (last: timed out); back after round 5"
    )));
    assert_eq!(hive.quarantined_until(flaky), Some(5));
    assert_eq!(hive.quarantined_until(steady), None);

    // Rounds 4 and 5: not asked.
    for _ in 4..=5 {
        let decision = hive.decide().await.unwrap();
        assert_eq!(decision.agents, 1);
        assert!(decision.failures.is_empty());
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(hive.quarantined_until(flaky), None);

    // Round 6: back, and its proposal is accepted.
    let sixth = hive.decide().await.unwrap();
    assert_eq!(sixth.agents, 2);
    assert!(sixth.failures.is_empty());
    assert!(sixth
        .accepted
        .iter()
        .any(|id| sixth.proposer(*id) == Some(flaky)));
    assert!(hive.contains(flaky));

    let stats = hive.stats();
    assert_eq!((stats.quarantines, stats.removals), (1, 0));
    assert_eq!((stats.errors, stats.panics, stats.timeouts), (1, 1, 1));
    let supervised: Vec<_> = seen
        .lock()
        .iter()
        .filter_map(|event| match event {
            HiveEvent::AgentSupervised { round, record } => Some((*round, record.agent)),
            _ => None,
        })
        .collect();
    assert_eq!(supervised, vec![(3, flaky)]);
}

#[tokio::test]
async fn a_round_without_failure_clears_the_record() {
    let hive = Hive::builder(Ledger::default())
        .supervision(Supervision::quarantine(2, 5))
        .build()
        .unwrap();
    // Fails, succeeds, fails, succeeds: never two failed rounds in a row.
    let (agent, calls) = Scripted::new(
        1,
        [
            Behaviour::Fail,
            Behaviour::Instant,
            Behaviour::Fail,
            Behaviour::Instant,
        ],
    );
    let agent = hive.spawn(agent);
    for _ in 0..4 {
        assert!(hive.decide().await.unwrap().supervised.is_empty());
    }
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert_eq!(hive.quarantined_until(agent), None);
    assert_eq!(hive.stats().quarantines, 0);
}

#[tokio::test]
async fn an_agent_that_keeps_failing_is_removed_and_the_restart_hook_spawns_a_fresh_one() {
    let restarts: Arc<Mutex<Vec<Supervised>>> = Arc::default();
    let hive = Hive::builder(Ledger::default())
        .supervision(Supervision::remove(2))
        .on_restart({
            let restarts = Arc::clone(&restarts);
            move |hive, record| {
                restarts.lock().push(record.clone());
                hive.spawn(Writer::new(9, 9));
            }
        })
        .build()
        .unwrap();
    let broken = hive.spawn(Writer::new(1, 1).proposing(Behaviour::Fail));
    hive.spawn(Writer::new(2, 2));

    assert!(hive.decide().await.unwrap().supervised.is_empty());
    let second = hive.decide().await.unwrap();
    assert_eq!(second.supervised.len(), 1);
    assert_eq!(second.supervised[0].action, SupervisionAction::Remove);
    assert_eq!(second.supervised[0].until_round, None);
    assert!(second.to_string().contains(&format!(
        "supervised: {broken} removed after 2 failed rounds in a row"
    )));
    assert!(!hive.contains(broken));
    assert_eq!(hive.len(), 2, "the hook spawned a replacement");
    assert_eq!(restarts.lock().as_slice(), second.supervised.as_slice());

    let third = hive.decide().await.unwrap();
    assert!(third.failures.is_empty());
    assert_eq!(third.accepted.len(), 2);
    let stats = hive.stats();
    assert_eq!((stats.quarantines, stats.removals), (0, 1));
}

#[tokio::test]
async fn a_panicking_restart_hook_is_caught_and_the_round_still_decides() {
    let hive = Hive::builder(Ledger::default())
        .supervision(Supervision::quarantine(1, 1))
        .on_restart(|_, _| panic!("hook exploded"))
        .build()
        .unwrap();
    let broken = hive.spawn(Writer::new(1, 1).proposing(Behaviour::Fail));
    hive.spawn(Writer::new(2, 2));
    let decision = hive.decide().await.unwrap();
    assert_eq!(decision.supervised.len(), 1);
    assert_eq!(hive.quarantined_until(broken), Some(2));
    assert_eq!(hive.stats().quarantines, 1);
}

#[tokio::test]
async fn without_a_policy_a_failing_agent_is_asked_every_round() {
    let hive = Hive::new(Ledger::default());
    let (agent, calls) = Scripted::new(1, std::iter::repeat_n(Behaviour::Fail, 5));
    hive.spawn(agent);
    for _ in 0..5 {
        let decision = hive.decide().await.unwrap();
        assert_eq!(decision.failures.len(), 1);
        assert!(decision.supervised.is_empty());
    }
    assert_eq!(calls.load(Ordering::SeqCst), 5);
    assert_eq!(hive.supervision(), None);
}

#[tokio::test]
async fn invalid_answers_do_not_count_as_failures() {
    let hive = Hive::builder(Ledger::default())
        .supervision(Supervision::remove(1))
        .build()
        .unwrap();
    // Two agents proposing the same id: the second's is a duplicate, an invalid answer.
    hive.spawn(Writer::new(1, 1));
    let duplicate = hive.spawn(Writer::new(1, 2));
    let decision = hive.decide().await.unwrap();
    assert_eq!(decision.failures.len(), 1);
    assert!(decision.supervised.is_empty());
    assert!(hive.contains(duplicate));
}
