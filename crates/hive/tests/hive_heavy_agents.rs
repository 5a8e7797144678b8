//! Heavy agents (`ResourceCost::Moderate` or `Heavy`): their calls run as tasks spread over the
//! workers, with the same guarantees as light agents' calls; a thread blocked on the round runs one
//! of them itself.

mod support;

use std::sync::{Arc, Condvar, Mutex};
use std::thread::ThreadId;
use std::time::Duration;

use hivekit_hive::{Agent, AgentContext, AgentError, Hive, ResourceCost, Snapshot};
use support::{add, Behaviour, Ledger, LedgerProposal};

/// An agent that declares itself heavy, so each call runs as its own task.
struct Heavy {
    id: u64,
    behaviour: Behaviour,
}

impl Agent<Ledger> for Heavy {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _: &Snapshot<Ledger>,
    ) -> Result<Option<LedgerProposal>, AgentError> {
        match self.behaviour {
            Behaviour::Panic => panic!("heavy agent exploded"),
            Behaviour::Never => std::future::pending().await,
            _ => Ok(Some(add(self.id, self.id, 1))),
        }
    }

    fn cost(&self) -> ResourceCost {
        ResourceCost::Heavy
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heavy_agents_run_as_tasks_with_the_same_guarantees() {
    let hive = Hive::builder(Ledger::default())
        .agent_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    for id in 0..8 {
        hive.spawn(Heavy {
            id,
            behaviour: Behaviour::Instant,
        });
    }
    hive.spawn(Heavy {
        id: 100,
        behaviour: Behaviour::Panic,
    });
    hive.spawn(Heavy {
        id: 101,
        behaviour: Behaviour::Never,
    });
    let decision = hive.decide().await.unwrap();
    assert_eq!(decision.accepted.len(), 8);
    let mut kinds: Vec<String> = decision
        .failures
        .iter()
        .map(|f| format!("{:?}", f.kind))
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        ["Panicked { message: \"heavy agent exploded\" }", "TimedOut"]
    );
}

/// Blocks its thread until `peers` agents have arrived (or `patience` runs out, a deadlock guard),
/// records the thread it ran on, and proposes whether it met them all: only agents running at the
/// same time on different threads can.
struct Rendezvous {
    id: u64,
    peers: usize,
    patience: Duration,
    arrived: Arc<(Mutex<usize>, Condvar)>,
    threads: Arc<Mutex<Vec<ThreadId>>>,
}

impl Agent<Ledger> for Rendezvous {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _: &Snapshot<Ledger>,
    ) -> Result<Option<LedgerProposal>, AgentError> {
        self.threads
            .lock()
            .unwrap()
            .push(std::thread::current().id());
        let (count, all_here) = &*self.arrived;
        let mut count = count.lock().unwrap();
        *count += 1;
        all_here.notify_all();
        let (count, _) = all_here
            .wait_timeout_while(count, self.patience, |count| *count < self.peers)
            .unwrap();
        let met_everyone = *count >= self.peers;
        Ok(met_everyone.then(|| add(self.id, self.id, 1)))
    }

    fn cost(&self) -> ResourceCost {
        ResourceCost::Heavy
    }
}

/// A hive of `peers` heavy agents that must all run at once, and the threads they ran on.
fn rendezvous_hive(peers: usize) -> (Hive<Ledger>, Arc<Mutex<Vec<ThreadId>>>) {
    let hive = Hive::new(Ledger::default());
    let arrived = Arc::default();
    let threads: Arc<Mutex<Vec<ThreadId>>> = Arc::default();
    for id in 0..peers as u64 {
        hive.spawn(Rendezvous {
            id,
            peers,
            // Generous: agents that can meet do so at once; this only bounds a failing test.
            patience: Duration::from_secs(5),
            arrived: Arc::clone(&arrived),
            threads: Arc::clone(&threads),
        });
    }
    (hive, threads)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heavy_agents_run_in_parallel_on_the_workers() {
    let (hive, _) = rendezvous_hive(2);
    let decision = hive.decide().await.unwrap();
    // Both proposed, so both were blocked at the same time on different threads.
    assert_eq!(decision.accepted.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thread_blocked_on_the_round_runs_one_heavy_agent_itself_beside_the_workers() {
    // Two workers and the test's own thread: three heavy agents meet only if the thread blocked on
    // the round runs one of them while the workers run the other two.
    let (hive, threads) = rendezvous_hive(3);
    let decision = hive.decide().await.unwrap();
    assert_eq!(decision.accepted.len(), 3);
    let here = std::thread::current().id();
    let threads = threads.lock().unwrap();
    assert_eq!(threads.iter().filter(|&&thread| thread == here).count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_inside_a_task_runs_every_heavy_agent_as_a_task_of_its_own() {
    // Inside a task the round runs on a worker; a heavy call run in place there would keep the
    // other (in that worker's unstealable LIFO slot) from running until it returned.
    let (hive, threads) = rendezvous_hive(2);
    let decision = tokio::spawn(async move { hive.decide().await })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(decision.accepted.len(), 2);
    let threads = threads.lock().unwrap();
    assert_ne!(threads[0], threads[1]);
}
