//! pollster's `block_on` tests (tests/basic.rs) ported to `execute`: a future ready at once, a future
//! that waits on a timer of its own (no tokio), and three plain threads relaying many messages
//! through small bounded channels, each thread inside its own bridge. Also the mix a pollster user
//! brings: pollster's `block_on` around `execute` and inside it, and pollster driving tokio timers on
//! a thread that `execute` left in the global runtime's context (as its doc promises).

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use hivekit_runtime::{execute, handle, spawn};

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

/// Whether the delay is over, and the waker of the latest poll.
type TimerState = Arc<Mutex<(bool, Option<Waker>)>>;

/// A timer that knows nothing of tokio (like `futures_timer::Delay`): a helper thread started on
/// the first poll sleeps out the delay, marks it done and wakes the waker of the latest poll.
struct ThreadDelay {
    delay: Duration,
    state: Option<TimerState>,
}

impl ThreadDelay {
    fn new(delay: Duration) -> Self {
        Self { delay, state: None }
    }
}

impl std::future::Future for ThreadDelay {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(state) = &self.state {
            let mut state = state.lock().unwrap();
            if state.0 {
                return Poll::Ready(());
            }
            state.1 = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let state: TimerState = Arc::new(Mutex::new((false, Some(cx.waker().clone()))));
        let timer = Arc::clone(&state);
        let delay = self.delay;
        // The timer's own implementation, not a wait for something else to happen.
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            let mut timer = timer.lock().unwrap();
            timer.0 = true;
            if let Some(waker) = timer.1.take() {
                waker.wake();
            }
        });
        self.state = Some(state);
        Poll::Pending
    }
}

#[test]
fn a_ready_future_returns_its_value_and_a_non_tokio_timer_is_waited_out() {
    let (ready, waited) = within(|| {
        let ready = execute(std::future::ready(42));
        let started = Instant::now();
        execute(ThreadDelay::new(Duration::from_millis(100)));
        (ready, started.elapsed())
    });
    assert_eq!(ready, 42);
    assert!(
        waited >= Duration::from_millis(100),
        "returned after {waited:?}"
    );
}

#[test]
fn three_plain_threads_relay_a_hundred_thousand_messages_through_bounded_channels() {
    const BOUNDED: usize = 16;
    const MESSAGES: usize = 100_000;

    let received = within(|| {
        let (a_tx, mut a_rx) = tokio::sync::mpsc::channel::<usize>(BOUNDED);
        let (b_tx, mut b_rx) = tokio::sync::mpsc::channel::<usize>(BOUNDED);

        let relay = std::thread::spawn(move || {
            execute(async move {
                while let Some(message) = a_rx.recv().await {
                    b_tx.send(message).await.expect("the receiver lives");
                }
            });
        });
        let producer = std::thread::spawn(move || {
            execute(async move {
                for message in 0..MESSAGES {
                    a_tx.send(message).await.expect("the relay lives");
                }
            });
        });
        // In order, each exactly once, and the channel closes after the last.
        let received = execute(async move {
            let mut next = 0;
            while let Some(message) = b_rx.recv().await {
                assert_eq!(message, next, "out of order or lost");
                next += 1;
            }
            next
        });
        relay.join().expect("the relay thread");
        producer.join().expect("the producer thread");
        received
    });
    assert_eq!(received, MESSAGES);
}

#[test]
fn after_execute_a_plain_thread_can_drive_tokio_timers_and_tasks_with_pollster() {
    let (same_runtime, slept, joined) = within(|| {
        execute(async { 1 });
        // "`tokio::runtime::Handle::current()` on that thread then returns the global runtime."
        let same_runtime = tokio::runtime::Handle::current().id() == handle().id();
        let started = Instant::now();
        pollster::block_on(tokio::time::sleep(Duration::from_millis(30)));
        let slept = started.elapsed();
        let task = spawn(async {
            tokio::task::yield_now().await;
            "joined"
        });
        let joined = pollster::block_on(task).expect("the task does not fail");
        (same_runtime, slept, joined)
    });
    assert!(
        same_runtime,
        "the thread's context is not the global runtime"
    );
    assert!(slept >= Duration::from_millis(30), "slept only {slept:?}");
    assert_eq!(joined, "joined");
}

#[test]
fn execute_inside_pollster_block_on_and_pollster_block_on_inside_execute_both_complete() {
    let (outer, inner) = within(|| {
        // Sync code called from a pollster-driven future calls `execute`.
        let outer = pollster::block_on(async {
            let bridged = execute(async {
                tokio::task::yield_now().await;
                tokio::time::sleep(Duration::from_millis(1)).await;
                20
            });
            bridged + 1
        });
        // And a future run by `execute` calls sync code that uses pollster on a tokio channel fed
        // by a task of the global runtime.
        let inner = execute(async {
            tokio::task::yield_now().await;
            let (tx, rx) = tokio::sync::oneshot::channel();
            let _task = spawn(async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                let _ = tx.send(41);
            });
            pollster::block_on(rx).expect("the task sends") + 1
        });
        (outer, inner)
    });
    assert_eq!((outer, inner), (21, 42));
}
