//! `HiveEvent::RoundFailed`: "The round ended without a decision: `decide` returned this error
//! (cancelled, its commit refused or failed, ...). The events of every round that returns end with
//! exactly one of `Committed`, `NothingToCommit` and this (a round whose future is dropped, or that
//! a panicking memory unwinds, sends none)" (src/events.rs). A round that finds no agent to ask
//! returns `HiveError::NoAgents`: it is numbered and counted like any other round, so a listener
//! must be told how it ended.

use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, Hive, HiveError, HiveEvent, HiveEventSink, ProposalOf,
    Snapshot, State, Supervision,
};
use parking_lot::Mutex;

#[derive(Clone, Default, Debug)]
struct Count(u64);

impl State for Count {
    type Key = ();
    type Change = u64;
    fn apply(&mut self, change: &u64) {
        self.0 += change;
    }
}

/// Fails every call.
struct Failing;

impl Agent<Count> for Failing {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Count>,
    ) -> Result<Option<ProposalOf<Count>>, AgentError> {
        Err(AgentError::msg("down"))
    }
}

type Seen = Arc<Mutex<Vec<HiveEvent<()>>>>;

fn recorder() -> (HiveEventSink<()>, Seen) {
    let seen: Seen = Arc::default();
    let sink = HiveEventSink::callback({
        let seen = Arc::clone(&seen);
        move |event| seen.lock().push(event)
    });
    (sink, seen)
}

fn is_terminal(event: &HiveEvent<()>) -> bool {
    matches!(
        event,
        HiveEvent::Committed { .. }
            | HiveEvent::NothingToCommit { .. }
            | HiveEvent::RoundFailed { .. }
    )
}

/// The events of `round`, in order.
fn of_round(seen: &Seen, round: u64) -> Vec<HiveEvent<()>> {
    let seen = seen.lock();
    seen.iter()
        .filter(|event| event.round() == round)
        .cloned()
        .collect()
}

#[tokio::test]
async fn a_round_in_a_hive_without_agents_ends_its_events_with_round_failed() {
    let (sink, seen) = recorder();
    let hive = Hive::builder(Count::default())
        .events(sink)
        .build()
        .expect("valid");
    let error = hive.decide().await.expect_err("no agents");
    assert_eq!(error, HiveError::NoAgents);
    // The round was counted as started.
    assert_eq!(hive.stats().rounds, 1);
    let events = of_round(&seen, 1);
    let terminal: Vec<_> = events.iter().filter(|event| is_terminal(event)).collect();
    assert_eq!(
        terminal,
        [&HiveEvent::RoundFailed {
            round: 1,
            error: HiveError::NoAgents.to_string(),
        }],
        "decide returned {error:?}; the round's events: {events:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_round_whose_every_agent_sits_out_a_quarantine_ends_its_events_with_round_failed() {
    let (sink, seen) = recorder();
    let hive = Hive::builder(Count::default())
        .supervision(Supervision::quarantine(1, 1))
        .events(sink)
        .build()
        .expect("valid");
    let agent = hive.spawn(Failing);
    let first = tokio::time::timeout(Duration::from_secs(10), hive.decide())
        .await
        .expect("round 1 ends")
        .expect("round 1 decides");
    assert_eq!(first.supervised.len(), 1);
    assert_eq!(hive.quarantined_until(agent), Some(2));
    // Round 2: the only agent sits it out.
    let second = tokio::time::timeout(Duration::from_secs(10), hive.decide())
        .await
        .expect("round 2 ends");
    let Err(error) = second else {
        // An empty round that decided is also an answer; then its events end as a decision's.
        let events = of_round(&seen, 2);
        assert_eq!(events.iter().filter(|event| is_terminal(event)).count(), 1);
        return;
    };
    assert_eq!(error, HiveError::NoAgents);
    let events = of_round(&seen, 2);
    assert_eq!(
        events.iter().filter(|event| is_terminal(event)).count(),
        1,
        "round 2 returned {error:?}; its events: {events:?}"
    );
    // Round 3: the agent is back, and its round is numbered 3.
    let third = tokio::time::timeout(Duration::from_secs(10), hive.decide())
        .await
        .expect("round 3 ends")
        .expect("round 3 decides");
    assert_eq!(third.round, 3);
    assert_eq!(third.agents, 1);
}
