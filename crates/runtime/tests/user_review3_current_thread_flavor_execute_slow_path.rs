//! Review of fc3a1bb (crates/runtime/src/execute.rs, `wait_for`) with the global runtime built as
//! `Flavor::CurrentThread` (one driver thread): `execute`'s own parker on plain threads and
//! `spawn_blocking` threads, nested three deep, sixteen at once on one `Notify`, a wake-up racing
//! the `Pending`, and the driver thread refusing. Its own binary: it configures the global runtime.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use hivekit_runtime::{
    configure, execute, spawn, spawn_blocking, try_execute, Flavor, RuntimeConfig, RuntimeError,
};
use tokio::sync::Notify;

const LIMIT: Duration = Duration::from_secs(10);

fn setup() {
    let _ = configure(RuntimeConfig {
        flavor: Flavor::CurrentThread,
        ..RuntimeConfig::default()
    });
}

fn bounded<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, result) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(body());
    });
    result
        .recv_timeout(LIMIT)
        .expect("the body did not finish (or panicked)")
}

fn nested(depth: u32) -> u32 {
    execute(async move {
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
        let task = spawn(async { 1 });
        let below = if depth > 1 { nested(depth - 1) } else { 0 };
        below + task.await.unwrap()
    })
}

#[test]
fn current_thread_flavor_nested_three_deep_on_plain_and_blocking_threads() {
    setup();
    let got = bounded(|| {
        let blocking: Vec<_> = (0..4).map(|_| spawn_blocking(|| nested(3))).collect();
        let mut sum = nested(3);
        for task in blocking {
            sum += execute(task).unwrap();
        }
        sum
    });
    assert_eq!(got, 5 * 3);
    assert_eq!(
        hivekit_runtime::active_config().unwrap().flavor,
        Flavor::CurrentThread
    );
}

#[test]
fn current_thread_flavor_driver_thread_refuses_a_pending_future() {
    setup();
    let got = bounded(|| {
        execute(spawn(async {
            try_execute(async {
                tokio::task::yield_now().await;
                1
            })
        }))
        .unwrap()
    });
    assert!(matches!(got, Err(RuntimeError::WouldDeadlock)), "{got:?}");
}

#[test]
fn current_thread_flavor_sixteen_threads_on_one_notify_all_return() {
    setup();
    let notify = Arc::new(Notify::new());
    let waiting = Arc::new(AtomicUsize::new(0));
    let (answers_tx, answers) = mpsc::channel();
    for id in 0..16usize {
        let (notify, waiting, answers_tx) = (
            Arc::clone(&notify),
            Arc::clone(&waiting),
            answers_tx.clone(),
        );
        std::thread::spawn(move || {
            let got = execute(async move {
                let notified = notify.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                waiting.fetch_add(1, Ordering::SeqCst);
                notified.await;
                tokio::time::sleep(Duration::from_millis(1)).await;
                id
            });
            let _ = answers_tx.send(got);
        });
    }
    let deadline = Instant::now() + LIMIT;
    while waiting.load(Ordering::SeqCst) < 16 {
        assert!(
            Instant::now() < deadline,
            "not every thread started waiting"
        );
        std::thread::yield_now();
    }
    // Notified from a task on the driver thread.
    execute(spawn(async move { notify.notify_waiters() })).unwrap();
    let mut got: Vec<usize> = (0..16)
        .map(|_| answers.recv_timeout(LIMIT).expect("a waiter was lost"))
        .collect();
    got.sort_unstable();
    assert_eq!(got, (0..16).collect::<Vec<_>>());
}

/// Pending once with its waker handed to a task on the driver thread, then `Ready(id)`.
struct WokenByTheDriver {
    id: usize,
    sent: bool,
}

impl Future for WokenByTheDriver {
    type Output = usize;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        if self.sent {
            return Poll::Ready(self.id);
        }
        if cx.waker().will_wake(Waker::noop()) {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.sent = true;
        let waker = cx.waker().clone();
        drop(spawn(async move { waker.wake() }));
        Poll::Pending
    }
}

#[test]
fn current_thread_flavor_wake_ups_from_the_driver_racing_the_pending_are_never_lost() {
    setup();
    let got = bounded(|| {
        (0..5_000)
            .map(|id| execute(WokenByTheDriver { id, sent: false }))
            .collect::<Vec<_>>()
    });
    assert_eq!(got, (0..5_000).collect::<Vec<_>>());
}
