//! tokio's shutdown tests (tests/rt_common.rs: `eagerly_drops_futures_on_shutdown`,
//! `wake_while_rt_is_dropping`, `shutdown_concurrent_spawn`, `shutdown_timeout_0`; rt_threaded.rs:
//! `wake_during_shutdown`; rt_handle_block_on.rs: `spawn_blocking_started_before_shutdown_continues`,
//! `spawn_after_runtime_dropped`) ported to `hivekit_runtime::shutdown` of the global runtime.
//! `shutdown` is once per process, so this binary has one test.

use std::future::Future;
use std::pin::Pin;
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures::FutureExt;
use hivekit_runtime::{
    execute, handle, shutdown, spawn, spawn_blocking, try_execute, try_handle, RuntimeError,
};

const LIMIT: Duration = Duration::from_secs(10);

/// Pending for ever; reports its drop.
struct Never(mpsc::Sender<()>);

impl Future for Never {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
}

impl Drop for Never {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

/// Runs its closure when dropped.
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

/// rt_threaded's `wake_during_shutdown`: one future stores its waker, the other wakes it when
/// dropped, so whichever the runtime drops second was woken during the shutdown.
struct WakesOnDrop {
    shared: Arc<Mutex<Option<Waker>>>,
    stores_waker: bool,
    dropped: mpsc::Sender<()>,
}

impl Future for WakesOnDrop {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.stores_waker {
            *self.shared.lock().unwrap() = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

impl Drop for WakesOnDrop {
    fn drop(&mut self) {
        if !self.stores_waker {
            if let Some(waker) = self.shared.lock().unwrap().take() {
                waker.wake();
            }
        }
        let _ = self.dropped.send(());
    }
}

#[test]
fn a_zero_timeout_shutdown_returns_at_once_and_every_task_in_flight_is_dropped_without_a_panic() {
    const NEVER: usize = 100;
    const WAITERS: usize = 10_000;

    // Keep the handle from before the shutdown, as code holding `handle()` does.
    let held = handle();

    // Tasks that never finish, each started before the shutdown.
    let (dropped_tx, dropped) = mpsc::channel();
    let (started_tx, started) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..NEVER {
        let never = Never(dropped_tx.clone());
        let started_tx = started_tx.clone();
        spawn(async move {
            started_tx.send(()).unwrap();
            never.await;
        });
    }
    drop(dropped_tx);
    execute(async {
        let mut started = started;
        for _ in 0..NEVER {
            started.recv().await.unwrap();
        }
    });

    // Two tasks each holding the other's sender: whichever is dropped first wakes the other.
    let (pair_tx, pair_dropped) = mpsc::channel();
    let (tx1, rx1) = tokio::sync::oneshot::channel::<()>();
    let (tx2, rx2) = tokio::sync::oneshot::channel::<()>();
    let barrier = Arc::new(tokio::sync::Barrier::new(3));
    for (mut sender, receiver) in [(Some(tx2), rx1), (Some(tx1), rx2)] {
        let barrier = Arc::clone(&barrier);
        let pair_tx = pair_tx.clone();
        spawn(async move {
            let _wake_other = OnDrop(move || {
                let _ = sender.take().unwrap().send(());
                let _ = pair_tx.send(());
            });
            let _ = tokio::join!(receiver, barrier.wait());
        });
    }
    drop(pair_tx);
    execute(barrier.wait());

    // A waker stored by one task and woken by the other's drop.
    let (wake_pair_tx, wake_pair_dropped) = mpsc::channel();
    let shared = Arc::new(Mutex::new(None));
    for stores_waker in [true, false] {
        spawn(WakesOnDrop {
            shared: Arc::clone(&shared),
            stores_waker,
            dropped: wake_pair_tx.clone(),
        });
    }
    drop(wake_pair_tx);

    // Ten thousand tasks waiting on oneshots, whose senders fire while the runtime stops.
    let mut senders = Vec::with_capacity(WAITERS);
    for _ in 0..WAITERS {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        senders.push(tx);
        spawn(async move {
            let _ = rx.await;
        });
    }
    execute(async {
        tokio::task::yield_now().await;
    });
    let (sending_tx, sending) = mpsc::channel();
    let sender_thread = std::thread::spawn(move || {
        sending_tx.send(()).unwrap();
        for tx in senders {
            let _ = tx.send(());
        }
    });

    // A blocking closure that outlives any timeout.
    let (release, released) = mpsc::channel::<()>();
    let (running_tx, running) = mpsc::channel();
    let blocking = spawn_blocking(move || {
        running_tx.send(()).unwrap();
        released
            .recv_timeout(LIMIT)
            .expect("released after the shutdown");
        42
    });
    running.recv_timeout(LIMIT).expect("the closure runs");

    sending.recv_timeout(LIMIT).expect("the sender runs");
    let stopping = Instant::now();
    shutdown(Duration::ZERO).expect("a plain thread may shut down");
    let took = stopping.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "shutdown(ZERO) took {took:?}"
    );

    // Every task in flight is dropped (after `shutdown` returns: it waited for nothing).
    for dropped_so_far in 0..NEVER {
        dropped
            .recv_timeout(LIMIT)
            .unwrap_or_else(|_| panic!("only {dropped_so_far} of {NEVER} tasks were dropped"));
    }
    for _ in 0..2 {
        pair_dropped
            .recv_timeout(LIMIT)
            .expect("both tasks of the pair are dropped");
        wake_pair_dropped
            .recv_timeout(LIMIT)
            .expect("both futures waking each other are dropped");
    }
    sender_thread
        .join()
        .expect("sending to tasks being dropped does not panic");

    // The blocking closure started before the shutdown runs on and its handle still answers,
    // awaited without any runtime; through the refusing bridge it is `ShutDown` while pending.
    let mut blocking = blocking;
    assert!(matches!(
        try_execute(&mut blocking),
        Err(RuntimeError::ShutDown)
    ));
    release.send(()).unwrap();
    assert_eq!(
        pollster::block_on(blocking).expect("the closure's output"),
        42
    );

    // A handle kept from before still spawns, onto a runtime that cancels at once (tokio's
    // `spawn_after_runtime_dropped`); the crate's entry points refuse by name.
    let late = held.spawn(std::future::pending::<()>());
    let late = pollster::block_on(late).expect_err("no task runs after the shutdown");
    assert!(late.is_cancelled());
    assert!(matches!(try_handle(), Err(RuntimeError::ShutDown)));
    // Unused after the shutdown: `now_or_never` is one poll of a cancelled handle.
    assert!(held
        .spawn(async {})
        .now_or_never()
        .is_some_and(|joined| joined.is_err()));
}
