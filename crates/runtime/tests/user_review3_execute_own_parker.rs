//! Review of fc3a1bb (crates/runtime/src/execute.rs, `wait_for` / `CallParker`): `execute`'s slow
//! path polls the future itself in the global runtime's context and parks on a parker of the
//! call's own. Checked here through the public API: futures that start other runtimes or block
//! inside it, nesting three deep in every context, a wake-up racing the `Pending`, a waker kept
//! after the call returned, and many threads waiting on one `Notify`.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use hivekit_runtime::{execute, panic_message, try_execute};
use tokio::sync::{oneshot, Notify};

const LIMIT: Duration = Duration::from_secs(10);

/// Runs `body` on a thread of its own and returns its result, failing if it did not finish within
/// `LIMIT` or panicked.
fn bounded<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, result) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(catch_unwind(AssertUnwindSafe(body)).map_err(|p| panic_message(&*p)));
    });
    match result.recv_timeout(LIMIT) {
        Ok(Ok(value)) => value,
        Ok(Err(panic)) => panic!("the body panicked: {panic}"),
        Err(_) => panic!("the body did not finish within {LIMIT:?}"),
    }
}

fn other_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_future_inside_execute_blocking_on_another_runtime_returns_or_panics_with_its_own_message() {
    // tokio may refuse a runtime started inside a runtime (it did under `Handle::block_on`, before
    // fc3a1bb); a hang, a typed error in place of the panic, or a wrong output is not acceptable.
    let got = bounded(|| {
        catch_unwind(AssertUnwindSafe(|| {
            try_execute(async {
                tokio::task::yield_now().await;
                let other = other_runtime();
                let inner = other.block_on(async {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    5
                });
                drop(other);
                tokio::time::sleep(Duration::from_millis(1)).await;
                inner + 1
            })
        }))
        .map_err(|p| panic_message(&*p))
    });
    match got {
        Ok(Ok(6)) => {}
        Err(message) => assert!(message.contains("runtime"), "{message}"),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn a_future_inside_execute_calling_handle_current_block_on_returns_or_panics_with_its_own_message()
{
    // Either outcome is acceptable (tokio may refuse a nested block_on); a hang or a typed error
    // in place of the panic is not.
    let got = bounded(|| {
        catch_unwind(AssertUnwindSafe(|| {
            try_execute(async {
                tokio::task::yield_now().await;
                tokio::runtime::Handle::current().block_on(async {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    7
                })
            })
        }))
        .map_err(|p| panic_message(&*p))
    });
    match got {
        Ok(Ok(7)) => {}
        Err(message) => assert!(message.contains("runtime"), "{message}"),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn a_future_inside_execute_may_call_block_in_place() {
    let got = bounded(|| {
        execute(async {
            tokio::task::yield_now().await;
            let inside = tokio::task::block_in_place(|| execute(async { 3 }));
            tokio::time::sleep(Duration::from_millis(1)).await;
            inside * 2
        })
    });
    assert_eq!(got, 6);
}

#[test]
fn a_future_inside_execute_calling_spawn_local_panics_with_tokios_message_not_a_typed_error() {
    let got = bounded(|| {
        catch_unwind(AssertUnwindSafe(|| {
            try_execute(async {
                tokio::task::yield_now().await;
                tokio::task::spawn_local(async {}).await.unwrap();
            })
        }))
        .map_err(|p| panic_message(&*p))
    });
    let message = got.expect_err("spawn_local outside a LocalSet must panic");
    assert!(message.contains("spawn_local"), "{message}");
}

/// `execute` nested `depth` levels, each level yielding and sleeping before going deeper.
fn nested(depth: u32) -> u32 {
    execute(async move {
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
        let below = if depth > 1 { nested(depth - 1) } else { 0 };
        tokio::task::yield_now().await;
        below + 1
    })
}

#[test]
fn execute_nested_three_deep_on_a_plain_thread() {
    assert_eq!(bounded(|| nested(3)), 3);
}

#[test]
fn execute_nested_three_deep_on_global_workers_and_in_spawn_blocking() {
    let got = bounded(|| {
        let on_workers: Vec<_> = (0..8)
            .map(|_| hivekit_runtime::spawn(async { nested(3) }))
            .collect();
        let in_blocking: Vec<_> = (0..8)
            .map(|_| hivekit_runtime::spawn_blocking(|| nested(3)))
            .collect();
        let mut sum = 0;
        for task in on_workers.into_iter().chain(in_blocking) {
            sum += execute(task).unwrap();
        }
        sum
    });
    assert_eq!(got, 16 * 3);
}

#[test]
fn execute_nested_three_deep_on_a_foreign_multi_thread_runtime() {
    let got = bounded(|| {
        let foreign = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let tasks: Vec<_> = (0..8).map(|_| foreign.spawn(async { nested(3) })).collect();
        let blocking = foreign.spawn_blocking(|| nested(3));
        foreign.block_on(async {
            let mut sum = nested(3);
            for task in tasks {
                sum += task.await.unwrap();
            }
            sum + blocking.await.unwrap()
        })
    });
    assert_eq!(got, 10 * 3);
}

/// Returns `Pending` once, after handing its waker to another thread that wakes it at once, then
/// `Ready(id)`.
struct WokenFromElsewhere {
    id: usize,
    wakers: mpsc::Sender<Waker>,
    sent: bool,
}

impl Future for WokenFromElsewhere {
    type Output = usize;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        if self.sent {
            return Poll::Ready(self.id);
        }
        // Only the slow path's waker counts: the first poll's waker is a no-op by design.
        if cx.waker().will_wake(Waker::noop()) {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.sent = true;
        self.wakers.send(cx.waker().clone()).unwrap();
        Poll::Pending
    }
}

#[test]
fn a_wake_up_racing_the_pending_is_never_lost_over_ten_thousand_calls() {
    let got = bounded(|| {
        let (wakers, to_wake) = mpsc::channel::<Waker>();
        let waker_thread = std::thread::spawn(move || {
            for waker in to_wake {
                waker.wake();
            }
        });
        let mut outputs = Vec::with_capacity(10_000);
        for id in 0..10_000 {
            let wakers = wakers.clone();
            outputs.push(execute(WokenFromElsewhere {
                id,
                wakers,
                sent: false,
            }));
        }
        drop(wakers);
        waker_thread.join().unwrap();
        outputs
    });
    assert_eq!(got, (0..10_000).collect::<Vec<_>>());
}

type Kept = Arc<Mutex<Vec<Waker>>>;

#[test]
fn a_waker_kept_after_execute_returned_may_be_woken_without_effect() {
    let kept: Kept = Arc::default();
    let got = {
        let kept = Arc::clone(&kept);
        bounded(move || {
            let mut outputs = 0;
            for _ in 0..100 {
                let kept = Arc::clone(&kept);
                let mut polls = 0;
                outputs += execute(std::future::poll_fn(move |cx| {
                    polls += 1;
                    kept.lock().unwrap().push(cx.waker().clone());
                    if polls < 3 {
                        cx.waker().wake_by_ref();
                        Poll::Pending
                    } else {
                        Poll::Ready(1)
                    }
                }));
            }
            outputs
        })
    };
    assert_eq!(got, 100);
    // Woken long after, from other threads, many times: no crash, and later calls still work.
    let wakers: Vec<Waker> = std::mem::take(&mut *kept.lock().unwrap());
    assert!(wakers.len() >= 300);
    let threads: Vec<_> = wakers
        .chunks(50)
        .map(|chunk| {
            let chunk = chunk.to_vec();
            std::thread::spawn(move || {
                for waker in &chunk {
                    waker.wake_by_ref();
                }
                for waker in chunk {
                    waker.wake();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let later = bounded(|| {
        execute(async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            9
        })
    });
    assert_eq!(later, 9);
}

#[test]
fn sixteen_threads_in_execute_at_once_waiting_on_one_notify_all_return() {
    let notify = Arc::new(Notify::new());
    let waiting = Arc::new(AtomicUsize::new(0));
    let (answers_tx, answers) = mpsc::channel();
    for id in 0..16usize {
        let notify = Arc::clone(&notify);
        let waiting = Arc::clone(&waiting);
        let answers_tx = answers_tx.clone();
        std::thread::spawn(move || {
            let got = execute(async move {
                let notified = notify.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                waiting.fetch_add(1, Ordering::SeqCst);
                notified.await;
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
    notify.notify_waiters();
    let mut got: Vec<usize> = (0..16)
        .map(|_| {
            answers
                .recv_timeout(LIMIT)
                .expect("a thread in execute missed the notification")
        })
        .collect();
    got.sort_unstable();
    assert_eq!(got, (0..16).collect::<Vec<_>>());
}

#[test]
fn execute_inside_a_tokio_test_style_block_on_keeps_the_outer_wake_ups() {
    // The outer block_on joins a future woken by another thread while the inner execute waits.
    let got = bounded(|| {
        let outer = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        outer.block_on(async {
            let (tx, rx) = oneshot::channel::<u32>();
            let inner = async move {
                execute(async move {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    let _ = tx.send(4);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    1
                })
            };
            let (a, b) = tokio::join!(inner, rx);
            a + b.unwrap()
        })
    });
    assert_eq!(got, 5);
}
