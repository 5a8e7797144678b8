//! `poll_sleep` answers `Err(RuntimeError::ShutDown)` rather than tokio's panic once the runtime
//! whose timer holds the sleep is shut down, and `sleep`/`sleep_until` fall back to the global
//! runtime's timer outside any runtime and inside a multi-thread runtime built without timers.
//! (The global runtime is never shut down here; see `user_timers_after_global_shutdown.rs`.)

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::mpsc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use hivekit_runtime::{poll_sleep, sleep, sleep_until, RuntimeError};
use tokio::time::Sleep;

/// Runs `body` on a fresh thread, failing if it does not answer within seconds.
fn bounded<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(body());
    });
    receiver
        .recv_timeout(Duration::from_secs(20))
        .expect("the case hung or its thread panicked")
}

/// `poll_sleep` once with a waker that does nothing.
fn poll_once(sleep: Pin<&mut Sleep>) -> Result<Poll<()>, RuntimeError> {
    poll_sleep(sleep, &mut Context::from_waker(Waker::noop()))
}

/// A sleep on `runtime`'s own timer (created inside its context).
fn sleep_on(runtime: &tokio::runtime::Runtime, duration: Duration) -> Sleep {
    let _entered = runtime.enter();
    sleep(duration)
}

#[test]
fn poll_sleep_of_a_registered_sleep_whose_runtime_was_dropped_is_shut_down_not_a_panic() {
    let answer = bounded(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let mut sleep = Box::pin(sleep_on(&runtime, Duration::from_secs(3600)));
        // Registered with the runtime's timer by a first poll inside it.
        let first = runtime.block_on(std::future::poll_fn(|cx| {
            Poll::Ready(poll_sleep(sleep.as_mut(), cx))
        }));
        assert!(matches!(first, Ok(Poll::Pending)), "{first:?}");
        drop(runtime);
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| poll_once(sleep.as_mut())))
            .map_err(|panic| hivekit_runtime::panic_message(&*panic))
    });
    match answer {
        Ok(Err(RuntimeError::ShutDown)) => {}
        other => panic!("expected Ok(Err(ShutDown)), got {other:?}"),
    }
}

#[test]
fn poll_sleep_of_a_never_polled_sleep_whose_runtime_was_dropped_is_shut_down_not_a_panic() {
    let answer = bounded(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_time()
            .build()
            .unwrap();
        let mut sleep = Box::pin(sleep_on(&runtime, Duration::from_millis(1)));
        drop(runtime);
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| poll_once(sleep.as_mut())))
            .map_err(|panic| hivekit_runtime::panic_message(&*panic))
    });
    match answer {
        Ok(Err(RuntimeError::ShutDown)) => {}
        other => panic!("expected Ok(Err(ShutDown)), got {other:?}"),
    }
}

#[test]
fn poll_sleep_on_a_live_runtime_is_pending_then_ready_and_never_an_error() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let polls = runtime.block_on(async {
        let mut sleep = pin!(sleep(Duration::from_millis(5)));
        let mut polls = 0_u32;
        std::future::poll_fn(|cx| {
            polls += 1;
            match poll_sleep(sleep.as_mut(), cx) {
                Ok(Poll::Pending) => Poll::Pending,
                Ok(Poll::Ready(())) => Poll::Ready(()),
                Err(error) => panic!("a live runtime's sleep answered {error:?}"),
            }
        })
        .await;
        polls
    });
    assert!(polls >= 2, "a 5 ms sleep was ready on its first poll");
}

#[test]
fn outside_any_runtime_sleep_runs_on_the_global_timer() {
    // A fresh thread that never entered a runtime's context; the sleep is polled by a minimal
    // executor that is not tokio.
    let elapsed = bounded(|| {
        assert!(tokio::runtime::Handle::try_current().is_err());
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(20);
        futures::executor::block_on(async {
            sleep(Duration::from_millis(10)).await;
            sleep_until(deadline).await;
        });
        started.elapsed()
    });
    assert!(
        elapsed >= Duration::from_millis(20),
        "woke after {elapsed:?}"
    );
}

#[test]
fn inside_a_multi_thread_runtime_without_timers_sleep_borrows_the_global_timer() {
    let elapsed = bounded(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let started = Instant::now();
        // On a worker of that runtime, and in its block_on body.
        runtime.block_on(async {
            tokio::spawn(async { sleep(Duration::from_millis(10)).await })
                .await
                .unwrap();
            sleep(Duration::from_millis(10)).await;
        });
        started.elapsed()
    });
    assert!(
        elapsed >= Duration::from_millis(20),
        "woke after {elapsed:?}"
    );
}

/// A future that is never woken by anything but the sleep it wraps, for `poll_sleep` behind a
/// plain `Future` (the way the swarm and the hive use it).
struct Timed {
    sleep: Pin<Box<Sleep>>,
}

impl Future for Timed {
    type Output = Result<(), RuntimeError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match poll_sleep(self.sleep.as_mut(), cx) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(())) => Poll::Ready(Ok(())),
            Err(error) => Poll::Ready(Err(error)),
        }
    }
}

#[test]
fn a_future_waiting_on_poll_sleep_ends_with_shut_down_when_its_timer_runtime_is_dropped() {
    // The waiter runs on another executor; the sleep's runtime is dropped while it waits. The
    // dropped timer wakes the waiter, whose next poll answers ShutDown.
    let answer = bounded(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_time()
            .build()
            .unwrap();
        let timed = Timed {
            sleep: Box::pin(sleep_on(&runtime, Duration::from_secs(3600))),
        };
        let (polled_tx, polled) = mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let mut timed = pin!(timed);
            let mut first = true;
            futures::executor::block_on(std::future::poll_fn(|cx| {
                let answer = timed.as_mut().poll(cx);
                if first {
                    first = false;
                    let _ = polled_tx.send(());
                }
                answer
            }))
        });
        polled
            .recv_timeout(Duration::from_secs(10))
            .expect("the waiter never polled");
        drop(runtime);
        waiter
            .join()
            .map_err(|panic| hivekit_runtime::panic_message(&*panic))
    });
    match answer {
        Ok(Err(RuntimeError::ShutDown)) => {}
        other => panic!("expected Ok(Err(ShutDown)), got {other:?}"),
    }
}
