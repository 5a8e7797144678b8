//! A hive round on an application's own runtime, adopted by `hivekit_runtime::configure(handle)`:
//! the round and its agents run there, not on a second thread pool (own process: the global
//! runtime is process-wide).

mod support;

use std::sync::{Arc, Mutex};

use hivekit_hive::{Agent, AgentContext, AgentError, Hive, Snapshot};
use support::{add, Ledger, LedgerProposal};

/// Proposes one change and records which runtime and thread it was asked on.
#[derive(Debug)]
struct Recorder {
    id: u64,
    seen: Arc<Mutex<Vec<tokio::runtime::Id>>>,
}

impl Agent<Ledger> for Recorder {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
    ) -> Result<Option<LedgerProposal>, AgentError> {
        tokio::task::yield_now().await;
        self.seen
            .lock()
            .unwrap()
            .push(tokio::runtime::Handle::current().id());
        Ok(Some(add(self.id, self.id, 1)))
    }
}

#[test]
fn a_hive_round_runs_on_an_adopted_application_runtime() {
    let app = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("app-worker")
        .enable_all()
        .build()
        .unwrap();
    hivekit_runtime::configure(app.handle().clone()).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let hive = Hive::new(Ledger::default());
    for id in 1..=3 {
        hive.spawn(Recorder {
            id,
            seen: Arc::clone(&seen),
        });
    }
    // From synchronous code, through the bridge: the round waits on the application's runtime.
    let decision = hivekit_runtime::execute(hive.decide()).unwrap();
    assert_eq!(decision.accepted.len(), 3);
    assert_eq!(hive.memory().version(), 1);
    // And from a task of the application itself.
    let hive = Arc::new(hive);
    let again = app
        .block_on(tokio::spawn({
            let hive = Arc::clone(&hive);
            async move { hive.decide().await }
        }))
        .unwrap()
        .unwrap();
    assert_eq!(again.version, 2);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 6);
    assert!(seen.iter().all(|id| *id == app.handle().id()), "{seen:?}");
    assert_eq!(hivekit_runtime::stats().runtimes_built, 0);
}
