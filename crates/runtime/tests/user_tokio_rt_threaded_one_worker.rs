//! tokio's one-worker `block_in_place` tests (tests/rt_threaded.rs: `blocking`,
//! `coop_and_block_in_place`, `test_nested_block_in_place_with_block_on_between` (#5239),
//! `yield_now_in_block_in_place`, `wake_deferred_tasks_before_block_in_place` (#7877)) ported to
//! `execute`, which waits inside `block_in_place` on a worker. The global runtime is configured as
//! tokio's tests build theirs, one worker and one blocking thread: own binary, configured once.

use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, Once};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use hivekit_runtime::{configure, execute, spawn, RuntimeConfig};

const LIMIT: Duration = Duration::from_secs(20);

fn setup() {
    static CONFIGURED: Once = Once::new();
    CONFIGURED.call_once(|| {
        configure(RuntimeConfig {
            worker_threads: Some(1),
            max_blocking_threads: Some(1),
            ..RuntimeConfig::default()
        })
        .expect("the first use of the runtime in this binary");
    });
}

/// Runs `body` on a fresh plain thread; its panic reaches the test, and a hang fails it.
fn within<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    setup();
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

#[test]
fn the_only_worker_waiting_in_execute_hands_its_core_over_to_a_thousand_tasks() {
    const TASKS: usize = 1_000;
    let counted = within(|| {
        execute(spawn(async {
            let count = Arc::new(AtomicUsize::new(0));
            let (all_done, done) = tokio::sync::oneshot::channel();
            let all_done = Arc::new(Mutex::new(Some(all_done)));
            for _ in 0..TASKS {
                let count = Arc::clone(&count);
                let all_done = Arc::clone(&all_done);
                tokio::spawn(async move {
                    if count.fetch_add(1, Ordering::SeqCst) + 1 == TASKS {
                        let _ = all_done.lock().unwrap().take().unwrap().send(());
                    }
                });
            }
            // The spawned tasks sit in this worker's queue: they run only if the core moves on.
            execute(done).expect("the last task reports");
            count.load(Ordering::SeqCst)
        }))
        .unwrap()
    });
    assert_eq!(counted, TASKS);
}

#[test]
fn after_execute_returns_on_a_worker_the_rest_of_the_task_is_under_the_budget_again() {
    let yielded = within(|| {
        execute(spawn(async {
            let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
            for _ in 0..1024 {
                tx.send(()).await.unwrap();
            }
            drop(tx);
            // A wait that goes through `block_in_place` and back.
            execute(async {
                tokio::task::yield_now().await;
            });
            std::future::poll_fn(|cx| loop {
                match pin!(rx.recv()).poll(cx) {
                    Poll::Pending => return Poll::Ready(true),
                    Poll::Ready(Some(())) => {}
                    Poll::Ready(None) => return Poll::Ready(false),
                }
            })
            .await
        }))
        .unwrap()
    });
    assert!(yielded, "drained 1024 values without ever yielding");
}

#[test]
fn nested_executes_with_block_in_place_between_them_complete_a_hundred_times() {
    within(|| {
        for round in 0..100 {
            let out = execute(spawn(async move {
                execute(async move {
                    tokio::task::yield_now().await;
                    tokio::task::block_in_place(|| {
                        execute(async {
                            tokio::task::yield_now().await;
                        });
                    });
                    round
                })
            }))
            .unwrap();
            assert_eq!(out, round);
        }
    });
}

/// A waker that sends on a oneshot when woken.
struct SendOnWake(Mutex<Option<tokio::sync::oneshot::Sender<()>>>);

impl Wake for SendOnWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(sender) = self.0.lock().unwrap().take() {
            let _ = sender.send(());
        }
    }
}

#[test]
fn a_wake_deferred_by_the_worker_before_execute_waits_is_delivered_during_the_wait() {
    let (deferred, completed) = within(|| {
        execute(spawn(async {
            let (woken, wake_seen) = tokio::sync::oneshot::channel();
            let waker = Waker::from(Arc::new(SendOnWake(Mutex::new(Some(woken)))));
            // On a worker, `yield_now` puts this waker on the worker's list of deferred wakes.
            let polled = pin!(tokio::task::yield_now()).poll(&mut Context::from_waker(&waker));
            assert!(polled.is_pending());
            // `is_empty`: nothing was sent yet, so the wake is still deferred.
            let deferred = wake_seen.is_empty();
            // The future waits for that very wake-up: a wait that kept the deferred wakes
            // back until it ended would never end.
            let completed = execute(wake_seen).is_ok();
            (deferred, completed)
        }))
        .unwrap()
    });
    assert!(
        deferred,
        "the wake was not deferred: the test checks nothing"
    );
    assert!(completed);
}
