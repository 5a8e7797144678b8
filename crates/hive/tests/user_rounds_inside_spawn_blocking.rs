//! `Hive::decide` "runs on the caller's tokio runtime": a round polled by a thread of the runtime's
//! blocking pool (`spawn_blocking`, then `Handle::block_on` or another executor's `block_on`) must
//! decide as any other, on a multi-thread and on a current-thread runtime, with heavy agents (their
//! own tasks), light agents, and agents that never answer (timed out by `agent_timeout`, and their
//! calls dropped: "a call the round stops waiting for ... is dropped").

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use hivekit_hive::{
    Agent, AgentContext, AgentError, Decision, FailureKind, Hive, ProposalOf, ResourceCost,
    Snapshot, State,
};
use tokio::runtime::{Builder, Handle, Runtime};

const TIMEOUT: Duration = Duration::from_millis(150);
const BOUND: Duration = Duration::from_secs(10);

#[derive(Clone, Default, Debug)]
struct Sum(u64);

impl State for Sum {
    type Key = u64;
    type Change = u64;
    fn apply(&mut self, change: &u64) {
        self.0 += change;
    }
}

/// Counts the agent's calls that were dropped (finished or not).
struct DropCount(Arc<AtomicUsize>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Adds `change` on its own key, at once or never.
struct Adder {
    key: u64,
    change: u64,
    heavy: bool,
    hangs: bool,
    dropped: Arc<AtomicUsize>,
}

impl Agent<Sum> for Adder {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Sum>,
    ) -> Result<Option<ProposalOf<Sum>>, AgentError> {
        let _guard = DropCount(Arc::clone(&self.dropped));
        if self.hangs {
            std::future::pending::<()>().await;
        }
        tokio::task::yield_now().await;
        Ok(Some(ctx.proposal(self.change).writes([self.key])))
    }

    fn cost(&self) -> ResourceCost {
        if self.heavy {
            ResourceCost::Heavy
        } else {
            ResourceCost::Light
        }
    }
}

struct Setup {
    hive: Hive<Sum>,
    dropped: Arc<AtomicUsize>,
}

fn setup() -> Setup {
    let hive = Hive::builder(Sum::default())
        .agent_timeout(TIMEOUT)
        .build()
        .expect("valid");
    let dropped = Arc::new(AtomicUsize::new(0));
    for (key, heavy, hangs) in [
        (1, false, false),
        (2, true, false),
        (3, false, true),
        (4, true, true),
    ] {
        hive.spawn(Adder {
            key,
            change: key * 10,
            heavy,
            hangs,
            dropped: Arc::clone(&dropped),
        });
    }
    Setup { hive, dropped }
}

/// Runs `round` on a thread of `runtime`'s blocking pool and waits for its decision, at most
/// `BOUND`; the runtime is shut down in the background either way, so a hang fails the test
/// instead of hanging it.
fn decide_in_blocking_pool<F>(runtime: Runtime, round: F) -> Decision<Sum>
where
    F: FnOnce() -> Decision<Sum> + Send + 'static,
{
    let (send, receive) = mpsc::channel();
    runtime.spawn_blocking(move || {
        let _ = send.send(round());
    });
    let decision = receive.recv_timeout(BOUND);
    runtime.shutdown_background();
    decision.expect("the round decided within its bound")
}

fn check(decision: &Decision<Sum>, hive: &Hive<Sum>, dropped: &AtomicUsize) {
    assert_eq!(decision.agents, 4);
    assert_eq!(decision.accepted.len(), 2, "{decision}");
    assert_eq!(hive.memory().load().0, 10 + 20, "{decision}");
    let timed_out = decision
        .failures
        .iter()
        .filter(|failure| failure.kind == FailureKind::TimedOut)
        .count();
    assert_eq!(timed_out, 2, "{decision}");
    assert!(
        decision.elapsed >= TIMEOUT && decision.elapsed < BOUND,
        "{:?}",
        decision.elapsed
    );
    // The answered calls and the light hung call are dropped by the time `decide` returns; the
    // heavy hung call's task is aborted and stops at its await soon after.
    let deadline = Instant::now() + BOUND;
    while dropped.load(Ordering::SeqCst) < 4 {
        assert!(
            Instant::now() < deadline,
            "{} of 4 calls dropped",
            dropped.load(Ordering::SeqCst)
        );
        std::thread::yield_now();
    }
}

fn run(runtime: Runtime, block_on: fn(&Handle, Round) -> Decision<Sum>) {
    let Setup { hive, dropped } = setup();
    let round_hive = hive.clone();
    let handle = runtime.handle().clone();
    let decision = decide_in_blocking_pool(runtime, move || {
        let hive = round_hive;
        block_on(
            &handle,
            Box::pin(async move { hive.decide().await.expect("the round decides") }),
        )
    });
    check(&decision, &hive, &dropped);
}

type Round = std::pin::Pin<Box<dyn Future<Output = Decision<Sum>> + Send>>;

fn tokio_block_on(handle: &Handle, round: Round) -> Decision<Sum> {
    handle.block_on(round)
}

fn other_executor_block_on(_handle: &Handle, round: Round) -> Decision<Sum> {
    futures::executor::block_on(round)
}

fn multi_thread() -> Runtime {
    Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn current_thread_driven() -> Runtime {
    Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn a_round_blocked_on_in_the_blocking_pool_of_a_multi_thread_runtime_decides() {
    run(multi_thread(), tokio_block_on);
}

#[test]
fn a_round_on_another_executor_in_the_blocking_pool_of_a_multi_thread_runtime_decides() {
    run(multi_thread(), other_executor_block_on);
}

/// A current-thread runtime runs its tasks and timers only while a thread drives it: the test's
/// thread does, blocked on a future that waits for the round's decision.
fn run_driven(block_on: fn(&Handle, Round) -> Decision<Sum>) {
    let runtime = current_thread_driven();
    let Setup { hive, dropped } = setup();
    let round_hive = hive.clone();
    let handle = runtime.handle().clone();
    let blocking = runtime.spawn_blocking(move || {
        let hive = round_hive;
        block_on(
            &handle,
            Box::pin(async move { hive.decide().await.expect("the round decides") }),
        )
    });
    let decision = runtime.block_on(async {
        let decision = tokio::time::timeout(BOUND, blocking).await;
        // Keep driving the runtime until the aborted heavy call is gone.
        let deadline = tokio::time::Instant::now() + BOUND;
        while dropped.load(Ordering::SeqCst) < 4 && tokio::time::Instant::now() < deadline {
            tokio::task::yield_now().await;
        }
        decision
    });
    runtime.shutdown_background();
    let decision = decision
        .expect("the round decided within its bound")
        .expect("the blocking task did not panic");
    check(&decision, &hive, &dropped);
}

#[test]
fn a_round_blocked_on_in_the_blocking_pool_of_a_current_thread_runtime_decides() {
    run_driven(tokio_block_on);
}

#[test]
fn a_round_on_another_executor_in_the_blocking_pool_of_a_current_thread_runtime_decides() {
    run_driven(other_executor_block_on);
}
