//! Review of 4a8d8aa (crates/runtime/src/execute.rs, `notify_outer_block_on`): after `execute`'s
//! slow-path wait the thread's parker is left a notification, so that an outer `block_on` of the
//! same thread does not lose a wake-up consumed by the inner wait ("a spurious wake-up elsewhere
//! is harmless"). Checked here: the same lost wake-up when the executed future panics (and the
//! caller catches it), that the extra notification does not make an outer `block_on` spin, and
//! that `execute` inside `execute`, inside `spawn_blocking` and on many threads at once still
//! returns every output.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

const WAIT: Duration = Duration::from_millis(20);
const RESCUE: Duration = Duration::from_secs(2);

fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `case` under a rescue timer (which re-polls it once after `RESCUE`) and returns how long
/// it took: a lost wake-up shows as `RESCUE` instead of about `WAIT`.
async fn timed(case: impl Future<Output = ()>) -> Duration {
    let start = Instant::now();
    let rescue = tokio::time::sleep(RESCUE);
    tokio::pin!(case, rescue);
    let mut rescued = false;
    std::future::poll_fn(|cx| {
        if case.as_mut().poll(cx).is_ready() {
            return Poll::Ready(());
        }
        if !rescued && rescue.as_mut().poll(cx).is_ready() {
            rescued = true;
            if case.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
            panic!("the case did not end even after {RESCUE:?}");
        }
        Poll::Pending
    })
    .await;
    start.elapsed()
}

/// A future of the outer `block_on` is woken while `execute`'s future waits; that future then
/// panics, and the synchronous caller catches the panic and goes on (as a stage or an agent
/// catching a failed bridge call would). The outer `block_on` must still see the wake-up.
#[test]
fn a_wake_up_during_an_execute_whose_future_panics_is_not_lost() {
    let runtime = multi_thread();
    let took = runtime.block_on(timed(async {
        let (sender, receiver) = oneshot::channel::<()>();
        let waiter = async move {
            receiver.await.expect("the sender sends");
        };
        let bridging = async move {
            let caught = catch_unwind(AssertUnwindSafe(|| {
                hivekit_runtime::execute(async move {
                    sender.send(()).expect("the waiter waits");
                    tokio::time::sleep(WAIT).await;
                    panic!("the bridged call failed");
                })
            }));
            assert!(caught.is_err(), "the future's panic goes on to the caller");
        };
        tokio::join!(waiter, bridging);
    }));
    assert!(
        took < RESCUE,
        "the outer block_on lost the waiter's wake-up (took {took:?}; woken only by the rescue \
         timer)"
    );
}

/// A future that calls `execute` (a slow-path one: its future is pending once) on every poll,
/// then waits `PARKED` for a timer. The extra notification each `execute` leaves must not make
/// the outer `block_on` poll it again and again while it waits: a handful of polls, not a spin.
#[test]
fn the_notification_left_by_execute_does_not_make_the_outer_block_on_spin() {
    const PARKED: Duration = Duration::from_millis(300);
    let runtime = multi_thread();
    let polls = Arc::new(AtomicUsize::new(0));
    let executes_before = hivekit_runtime::stats().slow_path();
    runtime.block_on({
        let polls = polls.clone();
        async move {
            let sleep = tokio::time::sleep(PARKED);
            tokio::pin!(sleep);
            std::future::poll_fn(|cx| {
                polls.fetch_add(1, Ordering::SeqCst);
                // Synchronous code inside a poll, bridging into async code.
                let two = hivekit_runtime::execute(async {
                    tokio::task::yield_now().await;
                    2
                });
                assert_eq!(two, 2);
                sleep.as_mut().poll(cx)
            })
            .await;
        }
    });
    let polls = polls.load(Ordering::SeqCst);
    let executes = hivekit_runtime::stats().slow_path() - executes_before;
    assert!(
        polls <= 20,
        "the outer block_on polled a future waiting {PARKED:?} for a timer {polls} times \
         ({executes} slow-path executes): every execute's notification woke it again at once"
    );
}

/// `execute` inside `execute` (from a plain thread), several levels deep, on 8 threads at once,
/// each future pending at every level: every output comes back, promptly.
#[test]
fn nested_executes_on_many_plain_threads_return_every_output() {
    let start = Instant::now();
    let threads: Vec<_> = (0..8_u64)
        .map(|thread| {
            std::thread::spawn(move || {
                let mut sum = 0;
                for round in 0..50_u64 {
                    sum += hivekit_runtime::execute(async move {
                        tokio::task::yield_now().await;
                        let inner = hivekit_runtime::execute(async move {
                            tokio::task::yield_now().await;
                            hivekit_runtime::execute(async move {
                                tokio::time::sleep(Duration::from_micros(50)).await;
                                thread + round
                            })
                        });
                        tokio::task::yield_now().await;
                        inner + 1
                    });
                }
                sum
            })
        })
        .collect();
    for (thread, handle) in threads.into_iter().enumerate() {
        let thread = thread as u64;
        let expected: u64 = (0..50).map(|round| thread + round + 1).sum();
        assert_eq!(handle.join().unwrap(), expected, "thread {thread}");
    }
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
}

/// `execute` in `spawn_blocking` closures (hivekit's and a foreign runtime's), 16 at once, each
/// waiting on a timer: every output comes back, and the runtime that awaits them is not stalled.
#[test]
fn executes_inside_spawn_blocking_return_every_output() {
    let runtime = multi_thread();
    let total = runtime.block_on(async {
        let mut handles = Vec::new();
        for index in 0..16_u64 {
            let work = move || {
                hivekit_runtime::execute(async move {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    index
                })
            };
            if index % 2 == 0 {
                handles.push(hivekit_runtime::spawn_blocking(work));
            } else {
                handles.push(tokio::task::spawn_blocking(work));
            }
        }
        let mut total = 0;
        for handle in handles {
            total += tokio::time::timeout(Duration::from_secs(10), handle)
                .await
                .expect("a blocking execute ended")
                .unwrap();
        }
        total
    });
    assert_eq!(total, (0..16).sum::<u64>());
}
