//! A round driven from synchronous code (on hivekit's global runtime) while the program shuts
//! that runtime down, as a service's exit path does. Shared by the test binaries that each run it
//! once with another hanging agent (a shutdown is final for the process); include it with
//! `#[path = "support/global_shutdown.rs"] mod global_shutdown;`.
#![allow(dead_code, unreachable_pub)] // Each test binary uses one of the hangs.

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

/// How the hanging agent's call waits once it has said it started.
#[derive(Clone, Copy, Debug)]
pub enum Hang {
    /// On a tokio timer (20 s), which the shutdown cuts.
    OnATimer,
    /// On a future nothing ever wakes.
    Forever,
}

/// A call that says it started, then hangs.
struct Hanging {
    started: mpsc::Sender<()>,
    hang: Hang,
    heavy: bool,
}

impl Agent<Count> for Hanging {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Count>,
    ) -> Result<Option<ProposalOf<Count>>, AgentError> {
        let _ = self.started.send(());
        match self.hang {
            Hang::OnATimer => tokio::time::sleep(Duration::from_secs(20)).await,
            Hang::Forever => std::future::pending().await,
        }
        Ok(None)
    }

    fn cost(&self) -> ResourceCost {
        if self.heavy {
            ResourceCost::Heavy
        } else {
            ResourceCost::Light
        }
    }
}

type Outcome = thread::Result<Result<(usize, Vec<FailureKind>, u64), HiveError>>;

/// A round of a quick agent and a hanging one, driven by `futures::executor::block_on` on a
/// thread of its own, while this thread shuts the global runtime down: the round ends (no hang,
/// no panic), the hanging call is recorded `Cancelled` and the quick agent's change commits; a
/// round started after the shutdown is refused by name.
pub fn round_through_the_global_shutdown(hang: Hang, heavy: bool) {
    let hive = Hive::builder(Count::default())
        .agent_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    hive.spawn(Quick);
    let (started_tx, started) = mpsc::channel();
    hive.spawn(Hanging {
        started: started_tx,
        hang,
        heavy,
    });

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
        .expect("the hanging call started on the global runtime");
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
            assert_eq!(
                failures,
                [FailureKind::Cancelled],
                "{hang:?}, heavy {heavy}"
            );
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
