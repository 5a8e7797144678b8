//! The block_on suites of pollster and futures-executor, ported to `execute`: wake storms from many threads, wakes during poll, self-wakes, wakers that outlive the call, and `execute` inside a `LocalSet` and its local tasks.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use hivekit_runtime::{execute, try_execute, RuntimeError};

/// Runs `body` on a fresh thread, failing if it does not answer within seconds.
fn bounded<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(body());
    });
    receiver
        .recv_timeout(Duration::from_secs(20))
        .expect("the call hung or its thread panicked")
}

/// Ready once `needed` wakes were counted; every poll hands its waker to the wakers' shared slot.
struct NeedsWakes {
    shared: Arc<(AtomicUsize, Mutex<Option<Waker>>)>,
    needed: usize,
    polls: usize,
}

impl Future for NeedsWakes {
    type Output = usize;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        self.polls += 1;
        *self.shared.1.lock().unwrap() = Some(cx.waker().clone());
        if self.shared.0.load(Ordering::SeqCst) >= self.needed {
            Poll::Ready(self.polls)
        } else {
            Poll::Pending
        }
    }
}

#[test]
fn many_threads_waking_many_times_complete_the_call() {
    for _ in 0..20 {
        let polls = bounded(|| {
            const WAKERS: usize = 8;
            const EACH: usize = 500;
            let shared = Arc::new((AtomicUsize::new(0), Mutex::new(None::<Waker>)));
            let future = NeedsWakes {
                shared: Arc::clone(&shared),
                needed: WAKERS * EACH,
                polls: 0,
            };
            let wakers: Vec<_> = (0..WAKERS)
                .map(|_| {
                    let shared = Arc::clone(&shared);
                    std::thread::spawn(move || {
                        for _ in 0..EACH {
                            shared.0.fetch_add(1, Ordering::SeqCst);
                            let waker = shared.1.lock().unwrap().clone();
                            if let Some(waker) = waker {
                                waker.wake();
                            }
                        }
                    })
                })
                .collect();
            let polls = execute(future);
            for waker in wakers {
                waker.join().unwrap();
            }
            polls
        });
        assert!(polls >= 1);
    }
}

/// Pending on its first poll; wakes its own waker from inside `poll`, through a clone, `count`
/// times in a row before being ready.
struct SelfWaking {
    left: usize,
}

impl Future for SelfWaking {
    type Output = &'static str;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<&'static str> {
        if self.left == 0 {
            return Poll::Ready("done");
        }
        self.left -= 1;
        if self.left % 2 == 0 {
            cx.waker().wake_by_ref();
        } else {
            // Both ways of waking, on purpose: by reference and by an owned clone.
            #[allow(clippy::waker_clone_wake)]
            cx.waker().clone().wake();
        }
        Poll::Pending
    }
}

#[test]
fn a_future_that_wakes_itself_ten_thousand_times_completes() {
    let answer = bounded(|| execute(SelfWaking { left: 10_000 }));
    assert_eq!(answer, "done");
}

/// Pending on its first poll, and woken by another thread *while* its second poll runs (the poll
/// waits for that wake before returning `Pending`); ready on the third poll.
struct WokenDuringPoll {
    polls: usize,
}

impl Future for WokenDuringPoll {
    type Output = usize;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        self.polls += 1;
        match self.polls {
            1 => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            2 => {
                let waker = cx.waker().clone();
                std::thread::spawn(move || waker.wake()).join().unwrap();
                Poll::Pending
            }
            polls => Poll::Ready(polls),
        }
    }
}

#[test]
fn a_wake_during_poll_is_not_lost() {
    for _ in 0..200 {
        let polls = bounded(|| execute(WokenDuringPoll { polls: 0 }));
        assert!(polls >= 3, "{polls}");
    }
}

#[test]
fn wakers_kept_after_the_call_returns_may_be_woken_and_dropped_anywhere() {
    let kept = bounded(|| {
        let slot: Arc<Mutex<Vec<Waker>>> = Arc::default();
        let store = Arc::clone(&slot);
        let value = execute(std::future::poll_fn(move |cx| {
            let mut wakers = store.lock().unwrap();
            wakers.push(cx.waker().clone());
            if wakers.len() < 3 {
                cx.waker().wake_by_ref();
                Poll::Pending
            } else {
                Poll::Ready(9)
            }
        }));
        assert_eq!(value, 9);
        // A second call on the same thread, then the old wakers are used from other threads.
        assert_eq!(
            execute(async {
                tokio::task::yield_now().await;
                10
            }),
            10
        );
        let wakers = std::mem::take(&mut *slot.lock().unwrap());
        let count = wakers.len();
        let handles: Vec<_> = wakers
            .into_iter()
            .enumerate()
            .map(|(i, waker)| {
                std::thread::spawn(move || {
                    if i % 2 == 0 {
                        waker.wake();
                    } else {
                        drop(waker);
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
        // And the thread still bridges.
        assert_eq!(
            execute(async {
                tokio::task::yield_now().await;
                11
            }),
            11
        );
        count
    });
    assert_eq!(kept, 3);
}

/// Runs `body` inside a `LocalSet` driven by a multi-thread runtime's `block_on` (no scheduler is
/// driven there: `execute` documents that it waits in `block_in_place`), on a fresh thread, and
/// returns its answer or its panic's message.
fn in_local_set_on_multi_thread<T: Send + 'static, F: std::future::Future<Output = T> + 'static>(
    body: impl FnOnce() -> F + Send + 'static,
) -> Result<T, String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            local.block_on(&runtime, body())
        }))
        .map_err(|panic| hivekit_runtime::panic_message(&*panic));
        let _ = sender.send(answer);
    });
    receiver
        .recv_timeout(Duration::from_secs(20))
        .expect("the call inside the LocalSet hung")
}

#[test]
fn inside_a_local_set_on_a_multi_thread_block_on_runs_or_refuses_by_name() {
    let answer = in_local_set_on_multi_thread(|| async {
        try_execute(async {
            tokio::task::yield_now().await;
            let task = tokio::spawn(async { 20 });
            task.await.unwrap() + 1
        })
    });
    match answer {
        Ok(Ok(21)) | Ok(Err(RuntimeError::WouldDeadlock)) => {}
        other => panic!("expected Ok(21) or Err(WouldDeadlock), got {other:?}"),
    }
}

#[test]
fn inside_a_local_task_on_a_multi_thread_block_on_runs_or_refuses_by_name() {
    let answer = in_local_set_on_multi_thread(|| async {
        tokio::task::spawn_local(async {
            let rc = std::rc::Rc::new(30);
            try_execute(async move {
                tokio::task::yield_now().await;
                *rc + 1
            })
        })
        .await
        .map_err(|error| error.to_string())
    });
    match answer {
        Ok(Ok(Ok(31))) | Ok(Ok(Err(RuntimeError::WouldDeadlock))) => {}
        other => panic!("expected Ok(31) or Err(WouldDeadlock), got {other:?}"),
    }
}

#[test]
fn inside_a_local_set_on_a_current_thread_runtime_is_refused_by_name() {
    let answer = bounded(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&runtime, async {
            tokio::task::spawn_local(async {
                try_execute(async {
                    tokio::task::yield_now().await;
                    1
                })
            })
            .await
            .unwrap()
        })
    });
    assert!(
        matches!(answer, Err(RuntimeError::WouldDeadlock)),
        "{answer:?}"
    );
}

#[test]
fn deeply_nested_executes_through_tasks_and_blocking_threads_complete() {
    fn level(depth: u32) -> u32 {
        if depth == 0 {
            return 0;
        }
        execute(async move {
            tokio::task::yield_now().await;
            let inner = if depth % 2 == 0 {
                hivekit_runtime::spawn_blocking(move || level(depth - 1))
                    .await
                    .unwrap()
            } else {
                hivekit_runtime::spawn(async move {
                    tokio::task::yield_now().await;
                    level(depth - 1)
                })
                .await
                .unwrap()
            };
            inner + 1
        })
    }
    assert_eq!(bounded(|| level(24)), 24);
}
