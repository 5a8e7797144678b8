//! Panics whose payload itself panics when dropped, from an event callback and from agents: the round records them and goes on.

mod support;

use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, FailureKind, Hive, HiveEvent, HiveEventSink, ProposalOf,
    ResourceCost, Snapshot,
};
use support::{Ledger, Writer};

const BOUND: Duration = Duration::from_secs(10);

/// A panic payload whose destructor panics.
struct Bomb;

impl Drop for Bomb {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("the panic payload exploded when dropped");
        }
    }
}

/// `HiveEventSink::callback`: "A callback that panics does not stop the round: the panic is caught
/// and logged".
#[tokio::test]
async fn an_event_callback_panicking_with_a_payload_that_panics_on_drop_does_not_stop_the_round() {
    let sink = HiveEventSink::callback(|event: HiveEvent<u64>| {
        if matches!(event, HiveEvent::ProposalsIn { .. }) {
            std::panic::panic_any(Bomb);
        }
    });
    let hive = Hive::builder(Ledger::default())
        .events(sink)
        .build()
        .unwrap();
    hive.spawn(Writer::new(1, 1));
    let round = tokio::spawn({
        let hive = hive.clone();
        async move { hive.decide().await }
    });
    let outcome = tokio::time::timeout(BOUND, round)
        .await
        .expect("round hung");
    let decision = outcome
        .expect("the round panicked because of the event callback's panic payload")
        .unwrap();
    assert_eq!(decision.version, 1);
    assert_eq!(hive.memory().version(), 1);
}

/// Panics with a [`Bomb`] while proposing.
struct BombProposer {
    heavy: bool,
}

impl Agent<Ledger> for BombProposer {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
    ) -> Result<Option<ProposalOf<Ledger>>, AgentError> {
        std::panic::panic_any(Bomb);
    }

    fn cost(&self) -> ResourceCost {
        support::cost(self.heavy)
    }
}

async fn agent_case(heavy: bool) {
    let hive = Hive::builder(Ledger::default()).build().unwrap();
    hive.spawn(Writer::new(1, 1));
    let bomb = hive.spawn(BombProposer { heavy });
    let round = tokio::spawn({
        let hive = hive.clone();
        async move { hive.decide().await }
    });
    let outcome = tokio::time::timeout(BOUND, round)
        .await
        .expect("round hung");
    let decision = outcome
        .unwrap_or_else(|_| {
            panic!("heavy={heavy}: the round panicked on the agent's panic payload")
        })
        .unwrap();
    assert_eq!(decision.version, 1);
    assert_eq!(decision.failures.len(), 1, "{decision}");
    assert_eq!(decision.failures[0].agent, bomb);
    assert!(matches!(
        decision.failures[0].kind,
        FailureKind::Panicked { .. }
    ));
}

/// `Agent`: "A call that panics, errs or times out is recorded as a failure of that agent and the
/// round goes on."
#[tokio::test]
async fn a_light_agent_panicking_with_a_payload_that_panics_on_drop_is_a_failure() {
    agent_case(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heavy_agent_panicking_with_a_payload_that_panics_on_drop_is_a_failure() {
    agent_case(true).await;
}
