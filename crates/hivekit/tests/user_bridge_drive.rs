//! The sync -> async bridge (`hivekit::runtime::execute`) driving hive rounds and pipeline runs from plain threads, runtime tasks, nested stages and Drop impls.
#![cfg(all(feature = "runtime", feature = "hive", feature = "swarm"))]

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use hivekit::hive::{Agent, AgentContext, AgentError, Hive, Proposal, ProposalId, Snapshot, State};
use hivekit::runtime::{execute, spawn, spawn_blocking, try_execute};
use hivekit::swarm::{Pipeline, StageContext, StageError};

const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, Default)]
struct Counter(i64);

impl State for Counter {
    type Key = &'static str;
    type Change = i64;
    fn apply(&mut self, change: &i64) {
        self.0 += change;
    }
}

/// Proposes +1, after yielding to the runtime (so no round is ready on its first poll: the bridge
/// must take its slow path).
struct SlowAdder;

impl Agent<Counter> for SlowAdder {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Counter>,
    ) -> Result<Option<Proposal<&'static str, i64>>, AgentError> {
        hivekit::runtime::sleep(Duration::from_millis(1)).await;
        Ok(Some(Proposal::new(ProposalId(1), 1).writes(["counter"])))
    }
}

fn hive() -> Hive<Counter> {
    let hive = Hive::builder(Counter::default()).build().unwrap();
    hive.spawn(SlowAdder);
    hive
}

async fn within<F: Future>(what: &str, future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut sleep = std::pin::pin!(hivekit::runtime::sleep(TIMEOUT));
    let output = std::future::poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        if sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await;
    output.unwrap_or_else(|| panic!("{what} did not finish within {TIMEOUT:?}"))
}

/// Joins a thread, failing (not hanging) after [`TIMEOUT`].
fn join_bounded<T: Send + 'static>(what: &str, handle: std::thread::JoinHandle<T>) -> T {
    let start = std::time::Instant::now();
    while !handle.is_finished() {
        assert!(start.elapsed() < TIMEOUT, "{what} hung");
        std::thread::yield_now();
    }
    match handle.join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

#[test]
fn rounds_from_many_plain_threads_each_commit_once() {
    let hive = hive();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let hive = hive.clone();
            std::thread::spawn(move || {
                (0..5)
                    .map(|_| execute(hive.decide()).expect("a round").version)
                    .collect::<Vec<u64>>()
            })
        })
        .collect();
    let mut versions: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| join_bounded("a deciding thread", t))
        .collect();
    versions.sort_unstable();
    assert_eq!(versions, (1..=40).collect::<Vec<u64>>());
    assert_eq!(hive.memory().load().0, 40);
}

#[test]
fn execute_inside_runtime_tasks_and_blocking_threads_drives_rounds() {
    let hive = hive();
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let hive = hive.clone();
            // A worker of the global multi-thread runtime calling sync code that uses the bridge.
            spawn(async move { execute(hive.decide()).unwrap().version })
        })
        .chain((0..4).map(|_| {
            let hive = hive.clone();
            spawn_blocking(move || execute(hive.decide()).unwrap().version)
        }))
        .collect();
    let mut versions = execute(within("tasks calling execute", async {
        let mut versions = Vec::new();
        for task in tasks {
            versions.push(task.await.unwrap());
        }
        versions
    }));
    versions.sort_unstable();
    assert_eq!(versions, (1..=8).collect::<Vec<u64>>());
}

#[test]
fn a_stage_with_sync_code_calls_execute_while_the_run_itself_is_executed() {
    let hive = hive();
    let stage_hive = hive.clone();
    let pipeline = Pipeline::builder()
        .stage("sync-inline", move |_: StageContext| {
            let hive = stage_hive.clone();
            async move {
                // A library the stage calls that only has a sync API and bridges internally.
                let version = execute(hive.decide())?.version;
                Ok::<_, StageError>(version)
            }
        })
        .stage("sync-blocking", {
            let hive = hive.clone();
            move |_: StageContext| {
                let hive = hive.clone();
                async move { Ok::<_, StageError>(execute(hive.decide())?.version) }
            }
        })
        .blocking()
        .after(["sync-inline"])
        .build()
        .unwrap();
    // From a plain thread: execute(run) -> stage -> execute(decide).
    let handle = std::thread::spawn(move || execute(within("the nested run", pipeline.run())));
    let report = join_bounded("the nested run", handle);
    assert!(report.is_success(), "{report}");
    assert_eq!(*report.artifact::<u64>("sync-inline").unwrap(), 1);
    assert_eq!(*report.artifact::<u64>("sync-blocking").unwrap(), 2);
    assert_eq!(hive.memory().load().0, 2);
}

/// Commits a last round when dropped (a "flush on drop" guard).
struct FlushOnDrop {
    hive: Hive<Counter>,
    flushed: Arc<Mutex<Vec<u64>>>,
}

impl Drop for FlushOnDrop {
    fn drop(&mut self) {
        let version = execute(self.hive.decide())
            .expect("the final round")
            .version;
        self.flushed.lock().unwrap().push(version);
    }
}

#[test]
fn drop_impls_run_rounds_from_threads_tasks_and_unwinding() {
    let hive = hive();
    let flushed = Arc::new(Mutex::new(Vec::new()));
    let guard = || FlushOnDrop {
        hive: hive.clone(),
        flushed: flushed.clone(),
    };

    // Dropped on a plain thread.
    drop(guard());
    // Dropped on another plain thread.
    let g = guard();
    join_bounded(
        "a thread dropping a guard",
        std::thread::spawn(move || drop(g)),
    );
    // Dropped inside a task of the global runtime.
    let g = guard();
    execute(within(
        "a task dropping a guard",
        spawn(async move { drop(g) }),
    ))
    .unwrap();
    // Dropped at the end of an async block polled by execute.
    let g = guard();
    execute(within("an async block dropping a guard", async move {
        hivekit::runtime::sleep(Duration::from_millis(1)).await;
        drop(g);
    }));
    // Dropped while a panic unwinds the thread.
    let g = guard();
    let unwound = std::thread::spawn(move || {
        let _g = g;
        panic!("boom");
    });
    let start = std::time::Instant::now();
    while !unwound.is_finished() {
        assert!(start.elapsed() < TIMEOUT, "the unwinding thread hung");
        std::thread::yield_now();
    }
    assert!(unwound.join().is_err());

    let mut versions = flushed.lock().unwrap().clone();
    versions.sort_unstable();
    assert_eq!(versions, vec![1, 2, 3, 4, 5]);
    assert_eq!(hive.memory().load().0, 5);
}

#[test]
fn a_drop_impl_in_a_thread_local_destructor_gets_a_result_or_a_typed_error() {
    thread_local! {
        static LAST: std::cell::RefCell<Option<LocalFlush>> = const { std::cell::RefCell::new(None) };
    }
    struct LocalFlush(Hive<Counter>, Arc<AtomicUsize>);
    impl Drop for LocalFlush {
        fn drop(&mut self) {
            // Must not panic (a panic in a TLS destructor aborts the process) or hang.
            match try_execute(self.0.decide()) {
                Ok(decision) => {
                    decision.expect("a round");
                    self.1.fetch_add(1, Ordering::SeqCst);
                }
                Err(error) => {
                    assert!(!error.to_string().is_empty());
                    self.1.fetch_add(100, Ordering::SeqCst);
                }
            }
        }
    }
    let hive = hive();
    let outcome = Arc::new(AtomicUsize::new(0));
    let (h, o) = (hive.clone(), outcome.clone());
    join_bounded(
        "a thread whose TLS destructor bridges",
        std::thread::spawn(move || {
            execute(async {}); // this thread enters the global runtime's context
            LAST.with(|last| *last.borrow_mut() = Some(LocalFlush(h, o)));
        }),
    );
    let outcome = outcome.load(Ordering::SeqCst);
    assert!(
        outcome == 1 || outcome == 100,
        "the destructor ran once: {outcome}"
    );
    if outcome == 1 {
        assert_eq!(hive.memory().load().0, 1);
    }
}

#[test]
fn a_panicking_round_future_reaches_the_caller_with_its_payload() {
    let counter = Arc::new(AtomicU64::new(0));
    let c = counter.clone();
    let result = std::panic::catch_unwind(move || {
        execute(async move {
            hivekit::runtime::sleep(Duration::from_millis(1)).await;
            c.fetch_add(1, Ordering::SeqCst);
            panic!("stage exploded: {}", 42);
        })
    });
    let payload = result.expect_err("the panic propagates");
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert_eq!(message, "stage exploded: 42");
    // The runtime still works afterwards.
    assert_eq!(execute(hive().decide()).unwrap().version, 1);
    assert_eq!(counter.load(Ordering::SeqCst), 1);
}
