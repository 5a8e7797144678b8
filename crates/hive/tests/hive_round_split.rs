//! How a large round spreads its light agents over the workers: split when their calls cost real
//! CPU time (judged from the first agents), inside a task as well as from a thread blocked on the
//! round, with every agent asked exactly once and every answer recorded; and how a round inside a
//! task spreads large ballots over the workers.

mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use hivekit_hive::{AgentContext, AgentError, CancellationToken, Hive, Snapshot};
use parking_lot::Mutex;
use support::{add, Ledger, LedgerProposal};

/// Spins for `work` (0: answers at once), then proposes its own key;
/// counts its calls and records the thread that polled it.
struct Busy {
    index: u64,
    work: Duration,
    calls: Arc<AtomicUsize>,
    threads: Arc<Mutex<HashSet<ThreadId>>>,
}

impl hivekit_hive::Agent<Ledger> for Busy {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _: &Snapshot<Ledger>,
    ) -> Result<Option<LedgerProposal>, AgentError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let started = Instant::now();
        while started.elapsed() < self.work {
            std::hint::spin_loop();
        }
        self.threads.lock().insert(std::thread::current().id());
        Ok(Some(add(self.index, self.index, 1)))
    }
}

/// A hive of `agents` [`Busy`] agents, with their call counter and the threads that polled them.
fn busy_hive(
    agents: usize,
    work: Duration,
) -> (
    Hive<Ledger>,
    Arc<AtomicUsize>,
    Arc<Mutex<HashSet<ThreadId>>>,
) {
    let hive = Hive::new(Ledger::default());
    let calls = Arc::new(AtomicUsize::new(0));
    let threads = Arc::new(Mutex::new(HashSet::new()));
    hive.spawn_many(agents, |index| Busy {
        index: index as u64,
        work,
        calls: Arc::clone(&calls),
        threads: Arc::clone(&threads),
    });
    (hive, calls, threads)
}

/// Runs one round and checks that each of the hive's `agents` was asked once and accepted.
async fn every_agent_answers_once(hive: &Hive<Ledger>, calls: &AtomicUsize, agents: usize) {
    let before = calls.load(Ordering::SeqCst);
    let decision = hive.decide().await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst) - before, agents);
    assert_eq!(decision.accepted.len(), agents);
    assert!(decision.failures.is_empty(), "{:?}", decision.failures);
    let accepted: HashSet<_> = decision.accepted.iter().map(|id| id.0).collect();
    assert_eq!(accepted, (0..agents as u64).collect());
}

fn two_workers() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_round_inside_a_task_polls_busy_light_agents_on_both_workers() {
    // 1,000 agents of 20 us each: 5 ms for the first 256, well worth a split. Inside a task every
    // chunk is spawned, so the spawning worker's LIFO slot does not keep them on one thread.
    let runtime = two_workers();
    let (hive, calls, threads) = busy_hive(1_000, Duration::from_micros(20));
    runtime.block_on(async {
        tokio::spawn(async move {
            every_agent_answers_once(&hive, &calls, 1_000).await;
        })
        .await
        .unwrap();
    });
    assert!(threads.lock().len() >= 2, "polled on one thread only");
}

#[test]
fn a_thread_blocked_on_a_round_polls_busy_light_agents_beside_a_worker() {
    let runtime = two_workers();
    let (hive, calls, threads) = busy_hive(1_000, Duration::from_micros(20));
    runtime.block_on(every_agent_answers_once(&hive, &calls, 1_000));
    assert!(threads.lock().len() >= 2, "polled on one thread only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_rounds_of_agents_answering_at_once_ask_each_once() {
    // Whether split or not, the first agents asked apart from the rest: none twice, none left out.
    for agents in [511, 512, 1_000, 3_001] {
        let (hive, calls, _) = busy_hive(agents, Duration::ZERO);
        for _ in 0..3 {
            every_agent_answers_once(&hive, &calls, agents).await;
        }
    }
}

/// Waits until the last agent of the hive has been asked (`last` cancelled), then proposes its
/// own key.
struct WaitsForTheLast {
    index: u64,
    last: u64,
    asked: CancellationToken,
}

impl hivekit_hive::Agent<Ledger> for WaitsForTheLast {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _: &Snapshot<Ledger>,
    ) -> Result<Option<LedgerProposal>, AgentError> {
        if self.index == self.last {
            self.asked.cancel();
        }
        self.asked.cancelled().await;
        Ok(Some(add(self.index, self.index, 1)))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_agents_waiting_do_not_hold_back_the_asking_of_the_rest() {
    // Every agent waits until the last one is asked: a round that asked the rest only once the
    // first agents (those it times) had answered would time them all out.
    let agents = 1_500;
    let hive = Hive::builder(Ledger::default())
        .agent_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let asked = CancellationToken::new();
    hive.spawn_many(agents, |index| WaitsForTheLast {
        index: index as u64,
        last: agents as u64 - 1,
        asked: asked.clone(),
    });
    let decision = hive.decide().await.unwrap();
    assert!(decision.failures.is_empty(), "{:?}", decision.failures);
    assert_eq!(decision.accepted.len(), agents);
}

/// Proposes on key `index / 2` (so agents 2k and 2k + 1 contest key k); votes for the contest's
/// preferred candidate after spinning for `work`, recording the thread that polled the vote.
struct BusyVoter {
    index: u64,
    work: Duration,
    threads: Arc<Mutex<HashSet<ThreadId>>>,
}

impl hivekit_hive::Agent<Ledger> for BusyVoter {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _: &Snapshot<Ledger>,
    ) -> Result<Option<LedgerProposal>, AgentError> {
        Ok(Some(add(self.index, self.index / 2, 1)))
    }

    async fn vote(
        &self,
        _ctx: &AgentContext,
        _: &Snapshot<Ledger>,
        contest: &hivekit_hive::Contest<Ledger>,
    ) -> Result<hivekit_hive::Vote, AgentError> {
        let started = Instant::now();
        while started.elapsed() < self.work {
            std::hint::spin_loop();
        }
        self.threads.lock().insert(std::thread::current().id());
        Ok(support::preferred(contest))
    }
}

#[test]
fn a_round_inside_a_task_votes_on_large_ballots_on_both_workers() {
    // 200 voters on 100 contests: 20,000 (contest, voter) pairs, split into one chunk per worker.
    // Inside a task every chunk is spawned, so the spawning worker's LIFO slot does not keep them
    // on one thread, one after the other.
    let runtime = two_workers();
    let hive = Hive::new(Ledger::default());
    let threads = Arc::new(Mutex::new(HashSet::new()));
    hive.spawn_many(200, |index| BusyVoter {
        index: index as u64,
        work: Duration::from_micros(5),
        threads: Arc::clone(&threads),
    });
    let decision = runtime.block_on(async move {
        tokio::spawn(async move { hive.decide().await.unwrap() })
            .await
            .unwrap()
    });
    assert!(decision.failures.is_empty(), "{:?}", decision.failures);
    assert_eq!(decision.ballots.len(), 100);
    assert_eq!(decision.accepted.len(), 100, "one winner per contested key");
    assert!(threads.lock().len() >= 2, "voted on one thread only");
}
