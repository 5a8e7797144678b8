//! tokio's runtime tests (tests/rt_common.rs, rt_handle_block_on.rs, task_blocking.rs) ported to
//! the global runtime and `execute`: many tasks spawned from a bridged future and from a task,
//! a bridge that completes while spinning tasks saturate every worker, tasks spawned from blocking
//! closures, a panicking task whose future is dropped while unwinding, tokio's cooperative budget
//! (and `unconstrained`) inside the bridge from every context, ping-pong saturation, wakers woken
//! from a thread-local destructor after the call returned, a runtime built and shut down inside a
//! bridged future, and `execute` under `block_in_place` on a worker.

use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use hivekit_runtime::{execute, panic_message, spawn, spawn_blocking, try_execute, AbortOnDrop};
use tokio::sync::oneshot;

const LIMIT: Duration = Duration::from_secs(20);

/// Runs `body` on a fresh plain thread; its panic reaches the test, and a hang fails it.
fn within<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(catch_unwind(AssertUnwindSafe(body)));
    });
    match receiver.recv_timeout(LIMIT) {
        Ok(Ok(value)) => value,
        Ok(Err(panic)) => resume_unwind(panic),
        Err(_) => panic!("the call did not finish within {LIMIT:?}"),
    }
}

/// Where `execute` is called from.
#[derive(Debug, Clone, Copy)]
enum Caller {
    PlainThread,
    GlobalBlockingThread,
    GlobalWorkerTask,
}

const CALLERS: [Caller; 3] = [
    Caller::PlainThread,
    Caller::GlobalBlockingThread,
    Caller::GlobalWorkerTask,
];

/// Calls `body` (which calls `execute`) from `caller`'s kind of thread, bounded in time.
fn call_from<T: Send + 'static>(caller: Caller, body: fn() -> T) -> T {
    within(move || match caller {
        Caller::PlainThread => body(),
        Caller::GlobalBlockingThread => execute(spawn_blocking(body)).expect("the closure"),
        Caller::GlobalWorkerTask => execute(spawn(async move { body() })).expect("the task"),
    })
}

/// tokio's `yield_once`: pending once, woken at once.
async fn yield_once() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await;
}

/// tokio's `spawn_many_from_block_on`/`spawn_many_from_task`: `count` tasks each wait for their
/// index from another thread and report it; returns the reported indexes, sorted.
async fn spawn_many(count: usize) -> Vec<usize> {
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let senders: Vec<_> = (0..count)
        .map(|index| {
            let (tx, rx) = oneshot::channel();
            let done_tx = done_tx.clone();
            tokio::spawn(async move {
                let message = rx.await.expect("the sender sends");
                assert_eq!(message, index);
                done_tx.send(message).expect("the collector lives");
            });
            tx
        })
        .collect();
    drop(done_tx);
    std::thread::spawn(move || {
        for (index, tx) in senders.into_iter().enumerate() {
            tx.send(index).expect("the task waits");
        }
    });
    let mut out = Vec::with_capacity(count);
    while let Some(index) = done_rx.recv().await {
        out.push(index);
    }
    out.sort_unstable();
    out
}

#[test]
fn two_hundred_tasks_spawned_from_a_bridged_future_each_report_once() {
    let out = within(|| execute(spawn_many(200)));
    assert_eq!(out, (0..200).collect::<Vec<_>>());
}

#[test]
fn five_hundred_tasks_spawned_from_a_global_task_each_report_once() {
    let out = within(|| execute(spawn(spawn_many(500))).expect("the task"));
    assert_eq!(out, (0..500).collect::<Vec<_>>());
}

#[test]
fn a_chain_of_awaited_spawns_returns_the_innermost_value() {
    let out = within(|| {
        execute(spawn(async {
            tokio::spawn(async { tokio::spawn(async { "hello" }).await.unwrap() })
                .await
                .unwrap()
        }))
        .unwrap()
    });
    assert_eq!(out, "hello");
}

#[test]
fn execute_completes_while_spinning_tasks_saturate_every_worker() {
    for caller in CALLERS {
        let waited = call_from(caller, || {
            let workers = hivekit_runtime::handle().metrics().num_workers();
            // One endless spinner per worker, plus one, stopped by their guards at the end.
            let spinners: Vec<_> = (0..=workers)
                .map(|_| {
                    AbortOnDrop::new(spawn(async {
                        loop {
                            yield_once().await;
                        }
                    }))
                })
                .collect();
            let (tx, rx) = oneshot::channel();
            let started = Instant::now();
            std::thread::spawn(move || {
                let _ = tx.send(());
            });
            execute(rx).expect("the thread sends");
            // A task woken from another thread under load, too.
            let (tx1, rx1) = oneshot::channel();
            let (tx2, rx2) = oneshot::channel();
            let _relay = AbortOnDrop::new(spawn(async move {
                rx1.await.expect("the thread sends");
                let _ = tx2.send(());
            }));
            std::thread::spawn(move || {
                let _ = tx1.send(());
            });
            execute(rx2).expect("the relay sends");
            drop(spinners);
            started.elapsed()
        });
        assert!(waited < LIMIT, "{caller:?}");
    }
}

#[test]
fn a_sleep_in_a_spawned_task_is_waited_out_by_execute() {
    let elapsed = within(|| {
        let started = Instant::now();
        execute(async {
            let (tx, rx) = oneshot::channel();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                tx.send(()).unwrap();
            });
            rx.await.unwrap();
        });
        started.elapsed()
    });
    assert!(elapsed >= Duration::from_millis(50), "{elapsed:?}");
}

#[test]
fn tasks_and_blocking_closures_spawned_from_a_blocking_closure_complete() {
    let (task, blocking) = within(|| {
        let inner = execute(spawn_blocking(|| tokio::spawn(async { "from task" }))).unwrap();
        let task = execute(inner).unwrap();
        let inner = execute(spawn_blocking(|| {
            tokio::task::spawn_blocking(|| "from blocking")
        }))
        .unwrap();
        (task, execute(inner).unwrap())
    });
    assert_eq!((task, blocking), ("from task", "from blocking"));
}

#[test]
fn other_executors_drive_tokio_timers_inside_a_global_blocking_closure() {
    let elapsed = within(|| {
        execute(spawn_blocking(|| {
            let started = Instant::now();
            futures::executor::block_on(tokio::time::sleep(Duration::from_millis(5)));
            pollster::block_on(tokio::time::sleep(Duration::from_millis(5)));
            started.elapsed()
        }))
        .unwrap()
    });
    assert!(elapsed >= Duration::from_millis(10), "{elapsed:?}");
}

/// Panics when polled; when dropped, checks it is dropped while unwinding and reports.
struct Boom(Option<mpsc::Sender<bool>>);

impl Future for Boom {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        panic!("boom in a task");
    }
}

impl Drop for Boom {
    fn drop(&mut self) {
        if let Some(report) = self.0.take() {
            let _ = report.send(std::thread::panicking());
        }
    }
}

#[test]
fn a_panicking_task_is_dropped_while_unwinding_and_its_join_error_keeps_the_message() {
    let (dropped_while_panicking, message, after) = within(|| {
        let (report, reported) = mpsc::channel();
        let joined = execute(spawn(Boom(Some(report))));
        let dropped_while_panicking = reported.recv_timeout(LIMIT).expect("the drop reported");
        let error = joined.expect_err("the task panicked");
        assert!(error.is_panic());
        let message = panic_message(&*error.into_panic());
        let after = execute(async {
            tokio::task::yield_now().await;
            3
        });
        (dropped_while_panicking, message, after)
    });
    assert!(
        dropped_while_panicking,
        "the future was dropped after the unwinding"
    );
    assert_eq!(message, "boom in a task");
    assert_eq!(after, 3);
}

/// tokio's `coop`: with 1000 messages queued, some `poll_recv` in one poll must return `Pending`.
/// Run after a yield: `execute`'s doc says its first poll is outside the budget, later ones inside.
fn coop_yields() -> bool {
    execute(async {
        tokio::task::yield_now().await;
        let (send, mut recv) = tokio::sync::mpsc::unbounded_channel();
        for _ in 0..1_000 {
            send.send(()).unwrap();
        }
        std::future::poll_fn(|cx| {
            for _ in 0..1_000 {
                if recv.poll_recv(cx).is_pending() {
                    return Poll::Ready(true);
                }
            }
            Poll::Ready(false)
        })
        .await
    })
}

/// tokio's `coop_unconstrained`: the same loop under `unconstrained` never sees `Pending`.
fn unconstrained_never_yields() -> bool {
    execute(async {
        tokio::task::yield_now().await;
        let (send, mut recv) = tokio::sync::mpsc::unbounded_channel();
        for _ in 0..1_000 {
            send.send(()).unwrap();
        }
        tokio::task::unconstrained(std::future::poll_fn(|cx| {
            for _ in 0..1_000 {
                if recv.poll_recv(cx) != Poll::Ready(Some(())) {
                    return Poll::Ready(false);
                }
            }
            Poll::Ready(true)
        }))
        .await
    })
}

#[test]
fn the_cooperative_budget_applies_inside_execute_and_unconstrained_lifts_it_everywhere() {
    for caller in CALLERS {
        assert!(call_from(caller, coop_yields), "did not yield: {caller:?}");
        assert!(
            call_from(caller, unconstrained_never_yields),
            "yielded although unconstrained: {caller:?}"
        );
    }
}

#[test]
fn a_hundred_ping_pong_pairs_saturating_the_runtime_do_not_starve_another_task() {
    const PAIRS: usize = 100;
    within(|| {
        let running = Arc::new(AtomicBool::new(true));
        let running_in = Arc::clone(&running);
        execute(async move {
            let (spawned_tx, mut spawned_rx) = tokio::sync::mpsc::unbounded_channel();
            let mut tasks = Vec::new();
            for _ in 0..PAIRS {
                let (tx1, mut rx1) = tokio::sync::mpsc::unbounded_channel::<()>();
                let (tx2, mut rx2) = tokio::sync::mpsc::unbounded_channel::<()>();
                let spawned_tx = spawned_tx.clone();
                let running = Arc::clone(&running_in);
                tasks.push(AbortOnDrop::new(tokio::spawn(async move {
                    spawned_tx.send(()).unwrap();
                    while running.load(Ordering::Relaxed) {
                        tx1.send(()).unwrap();
                        rx2.recv().await.unwrap();
                    }
                    drop(tx1);
                    assert!(rx2.recv().await.is_none());
                })));
                tasks.push(AbortOnDrop::new(tokio::spawn(async move {
                    while rx1.recv().await.is_some() {
                        tx2.send(()).unwrap();
                    }
                })));
            }
            for _ in 0..PAIRS {
                spawned_rx.recv().await.unwrap();
            }
            tokio::spawn(async {
                for _ in 0..5 {
                    tokio::task::yield_now().await;
                }
            })
            .await
            .unwrap();
            running_in.store(false, Ordering::Relaxed);
            for task in tasks {
                task.await.unwrap();
            }
        });
        assert!(!running.load(Ordering::Relaxed));
    });
}

/// Holds a waker of a finished `execute` in a thread-local; wakes it when the thread exits.
struct WakeAtThreadExit {
    by_ref: bool,
    waker: Option<Waker>,
    done: mpsc::Sender<bool>,
}

impl Drop for WakeAtThreadExit {
    fn drop(&mut self) {
        if let Some(waker) = self.waker.take() {
            if self.by_ref {
                waker.wake_by_ref();
            } else {
                waker.wake();
            }
        }
        let _ = self.done.send(true);
    }
}

thread_local! {
    static WAKE_AT_EXIT: std::cell::RefCell<Option<WakeAtThreadExit>> =
        const { std::cell::RefCell::new(None) };
}

#[test]
fn a_waker_of_a_finished_execute_woken_from_a_thread_local_destructor_is_harmless() {
    for by_ref in [true, false] {
        let (done, finished) = mpsc::channel();
        let exited = std::thread::spawn(move || {
            let mut polls = 0;
            execute(std::future::poll_fn(move |cx| {
                polls += 1;
                if polls == 1 {
                    // The first poll's waker is a placeholder; keep the real one of the second.
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                let done = done.clone();
                let waker = Some(cx.waker().clone());
                WAKE_AT_EXIT.with(|slot| {
                    slot.replace(Some(WakeAtThreadExit {
                        by_ref,
                        waker,
                        done,
                    }))
                });
                Poll::Ready(())
            }));
        });
        exited.join().expect("the thread exits cleanly");
        assert!(finished.recv_timeout(LIMIT).expect("the destructor ran"));
    }
    // The runtime is unaffected.
    assert_eq!(within(|| execute(spawn(async { 5 })).unwrap()), 5);
}

#[test]
fn a_runtime_built_inside_execute_can_be_shut_down_with_a_zero_timeout_or_in_the_background() {
    for background in [false, true] {
        let answer = within(move || {
            try_execute(async move {
                // The slow path: polled inside the bridge's wait, as in tokio's `block_on`.
                tokio::task::yield_now().await;
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                if background {
                    runtime.shutdown_background();
                } else {
                    runtime.shutdown_timeout(Duration::from_nanos(0));
                }
                "stopped"
            })
        });
        assert_eq!(answer.unwrap(), "stopped", "background: {background}");
    }
}

#[test]
fn dropping_a_runtime_inside_a_waiting_execute_panics_with_tokios_message_and_the_bridge_lives_on()
{
    let (message, after) = within(|| {
        let panicked = catch_unwind(|| {
            execute(async {
                tokio::task::yield_now().await;
                let _ = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
            })
        })
        .expect_err("tokio refuses to drop a runtime where blocking is not allowed");
        let after = execute(async {
            tokio::task::yield_now().await;
            8
        });
        (panic_message(&*panicked), after)
    });
    assert!(message.contains("Cannot drop a runtime"), "{message}");
    assert_eq!(after, 8);
}

#[test]
fn execute_under_block_in_place_on_a_worker_runs_a_hundred_times() {
    let count = within(|| {
        let done = Arc::new(AtomicUsize::new(0));
        for _ in 0..100 {
            let done = Arc::clone(&done);
            let out = execute(spawn(async move {
                tokio::task::block_in_place(|| {
                    execute(async {
                        tokio::task::yield_now().await;
                        tokio::task::block_in_place(|| {
                            execute(async {
                                tokio::time::sleep(Duration::from_micros(10)).await;
                            });
                        });
                    });
                    done.fetch_add(1, Ordering::SeqCst);
                    "hello"
                })
            }))
            .unwrap();
            assert_eq!(out, "hello");
        }
        done.load(Ordering::SeqCst)
    });
    assert_eq!(count, 100);
}

#[test]
fn a_tokio_mutex_locked_past_the_budget_inside_execute_on_a_worker_completes() {
    const BUDGET: usize = 128;
    let last = within(|| {
        execute(spawn(async {
            let lock = tokio::sync::Mutex::new(0);
            execute(async {
                tokio::task::yield_now().await;
                for i in 0..=BUDGET {
                    *lock.lock().await = i;
                }
            });
            lock.into_inner()
        }))
        .unwrap()
    });
    assert_eq!(last, BUDGET);
}
