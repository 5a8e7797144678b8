//! A round driven from synchronous code (on hivekit's global runtime) while the program shuts
//! that runtime down, as a service's exit path does: the round ends (no hang, no panic), a heavy
//! call the shutdown cut short is recorded as `Cancelled`, and a round started after the shutdown
//! is a typed error. One test: a shutdown is final for the process.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, FailureKind, Hive, HiveError, ProposalOf, ResourceCost,
    Snapshot, State,
};

const BOUND: Duration = Duration::from_secs(10);

#[derive(Clone, Default, Debug)]
struct Count(u64);

impl State for Count {
    type Key = u64;
    type Change = u64;
    fn apply(&mut self, change: &u64) {
        self.0 += change;
    }
}

/// Adds 1 on key 1 at once.
struct Quick;

impl Agent<Count> for Quick {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Count>,
    ) -> Result<Option<ProposalOf<Count>>, AgentError> {
        Ok(Some(ctx.proposal(1).writes([1])))
    }
}

/// A heavy call that says it started, then waits forever.
struct Hanging(mpsc::Sender<()>);

impl Agent<Count> for Hanging {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Count>,
    ) -> Result<Option<ProposalOf<Count>>, AgentError> {
        let _ = self.0.send(());
        std::future::pending().await
    }

    fn cost(&self) -> ResourceCost {
        ResourceCost::Heavy
    }
}

type Outcome = thread::Result<Result<(usize, Vec<FailureKind>, u64), HiveError>>;

#[test]
fn a_round_on_the_global_runtime_survives_its_shutdown_and_later_rounds_are_refused() {
    let hive = Hive::builder(Count::default())
        .agent_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    hive.spawn(Quick);
    let (started_tx, started) = mpsc::channel();
    hive.spawn(Hanging(started_tx));

    let (outcome_tx, outcome_rx) = mpsc::channel::<Outcome>();
    let round_hive = hive.clone();
    thread::spawn(move || {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // Another executor: the round's timers and heavy calls live on the global runtime.
            futures::executor::block_on(round_hive.decide()).map(|decision| {
                let kinds = decision.failures.iter().map(|f| f.kind.clone()).collect();
                (decision.accepted.len(), kinds, decision.version)
            })
        }));
        let _ = outcome_tx.send(outcome);
    });
    started
        .recv_timeout(BOUND)
        .expect("the heavy call started on the global runtime");
    hivekit_runtime::shutdown(Duration::from_secs(1)).expect("a plain thread may shut down");

    let outcome = outcome_rx
        .recv_timeout(BOUND)
        .expect("the round must end once its runtime is shut down");
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(payload) => panic!(
            "the round panicked: {}",
            hivekit_runtime::panic_message(&*payload)
        ),
    };
    match outcome {
        Ok((accepted, failures, version)) => {
            assert_eq!(failures, [FailureKind::Cancelled]);
            assert_eq!((accepted, version), (1, 1));
        }
        Err(error) => panic!("the round failed: {error}"),
    }

    let later = futures::executor::block_on(hive.decide());
    assert!(
        matches!(later, Err(HiveError::NoRuntime { .. })),
        "{later:?}"
    );
}
