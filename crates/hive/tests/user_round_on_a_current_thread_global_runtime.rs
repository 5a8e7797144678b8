//! A program that configured hivekit's global runtime as a current-thread runtime (one driver
//! thread) and decides from synchronous code: heavy agents run on that driver, timeouts fire,
//! rounds from several threads at once all end. One test: the runtime is process-wide.

mod support;

use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, FailureKind, Hive, Phase, ProposalOf, ResourceCost, Snapshot,
};
use hivekit_runtime::{configure, execute, Flavor, RuntimeConfig};
use support::Count;

/// Adds 1 on its own key after a short timer; heavy or not.
struct Worker {
    key: u64,
    heavy: bool,
}

impl Agent<Count> for Worker {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Count>,
    ) -> Result<Option<ProposalOf<Count>>, AgentError> {
        tokio::time::sleep(Duration::from_millis(2)).await;
        Ok(Some(ctx.proposal(1).writes([self.key])))
    }

    fn cost(&self) -> ResourceCost {
        if self.heavy {
            ResourceCost::Heavy
        } else {
            ResourceCost::Light
        }
    }
}

/// A heavy agent that never answers.
struct Stuck;

impl Agent<Count> for Stuck {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Count>,
    ) -> Result<Option<ProposalOf<Count>>, AgentError> {
        std::future::pending().await
    }

    fn cost(&self) -> ResourceCost {
        ResourceCost::Heavy
    }
}

#[test]
fn rounds_decide_on_a_current_thread_global_runtime_from_several_threads() {
    configure(RuntimeConfig {
        flavor: Flavor::CurrentThread,
        ..RuntimeConfig::default()
    })
    .expect("configured before first use");
    let hive = Hive::builder(Count::default())
        .agent_timeout(Duration::from_millis(400))
        .build()
        .unwrap();
    for key in 0..6 {
        hive.spawn(Worker {
            key,
            heavy: key % 2 == 0,
        });
    }
    let stuck = hive.spawn(Stuck);

    let (sender, receiver) = std::sync::mpsc::channel();
    for _ in 0..3 {
        let (hive, sender) = (hive.clone(), sender.clone());
        std::thread::spawn(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let decision = execute(hive.decide()).expect("the round decides");
                let failures: Vec<(u64, Phase, FailureKind)> = decision
                    .failures
                    .iter()
                    .map(|f| (f.agent.0, f.phase, f.kind.clone()))
                    .collect();
                (decision.accepted.len(), failures)
            }));
            let _ = sender.send(outcome.map_err(|p| hivekit_runtime::panic_message(&*p)));
        });
    }
    drop(sender);
    for _ in 0..3 {
        let (accepted, failures) = receiver
            .recv_timeout(Duration::from_secs(10))
            .expect("every round ends")
            .expect("no round panics");
        assert_eq!(accepted, 6);
        assert_eq!(failures, [(stuck.0, Phase::Propose, FailureKind::TimedOut)]);
    }
    let state = hive.memory().load();
    assert_eq!((state.version(), state.0), (3, 18));
}
