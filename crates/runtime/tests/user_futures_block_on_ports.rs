//! futures-executor's `block_on` and `LocalPool` tests (tests/local_pool.rs, tests/recurse.rs,
//! tests/future_shared.rs, tests/lock_mutex.rs, benches/thread_notify.rs) ported to `execute`:
//! user code that parks the thread itself, a `Shared` future awaited by hundreds of bridged
//! threads, a clone dropped mid-wait, a future that drops itself while polled, a thousand-deep
//! chain of boxed futures, a waker handed to another thread on every poll, and a contended async
//! mutex. futures' `block_on` refuses to nest; `execute` nests on purpose (its docs), so that test
//! is not ported.

use std::cell::RefCell;
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::future::{self, BoxFuture, FutureExt, LocalBoxFuture, TryFutureExt};
use hivekit_runtime::{execute, spawn, spawn_blocking, AbortOnDrop};

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

/// How a future's own code uses the calling thread's park token during a poll.
#[derive(Clone, Copy)]
enum UserParking {
    /// futures' `park_unpark_independence`: wake, then park until another thread unparks us.
    UntilAnotherThreadUnparks,
    /// tokio's `thread_park_ok`: wake, then unpark ourselves and park, eating the token.
    EatsItsOwnToken,
}

/// Wakes its waker, then lets user code park the thread, then returns `Pending`; ready after
/// `rounds` such polls. A bridge whose wake-up is the thread's park token loses every wake-up.
struct ParksTheThread {
    parking: UserParking,
    rounds: usize,
    polls: usize,
}

impl Future for ParksTheThread {
    type Output = usize;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        self.polls += 1;
        if self.polls > self.rounds {
            return Poll::Ready(self.polls);
        }
        cx.waker().wake_by_ref();
        match self.parking {
            UserParking::UntilAnotherThreadUnparks => {
                let me = std::thread::current();
                let latch = Arc::new(AtomicBool::new(false));
                let signal = Arc::clone(&latch);
                std::thread::spawn(move || {
                    signal.store(true, Ordering::SeqCst);
                    me.unpark();
                });
                while !latch.load(Ordering::SeqCst) {
                    std::thread::park();
                }
            }
            UserParking::EatsItsOwnToken => {
                std::thread::current().unpark();
                std::thread::park();
            }
        }
        Poll::Pending
    }
}

#[test]
fn a_wake_sent_before_user_code_parks_the_thread_is_not_lost() {
    for parking in [
        UserParking::UntilAnotherThreadUnparks,
        UserParking::EatsItsOwnToken,
    ] {
        let parks = move || {
            execute(ParksTheThread {
                parking,
                rounds: 50,
                polls: 0,
            })
        };
        // A plain thread, a global blocking thread, and a global worker (inside its task).
        let polls = within(move || {
            [
                parks(),
                execute(spawn_blocking(parks)).unwrap(),
                execute(spawn(async move { parks() })).unwrap(),
            ]
        });
        assert_eq!(polls, [51; 3]);
    }
}

#[test]
fn every_thread_waiting_on_one_shared_oneshot_gets_the_value() {
    const THREADS: usize = 256;
    let got = within(|| {
        let (tx, rx) = futures::channel::oneshot::channel::<i32>();
        let shared = rx.shared();
        let (started_tx, started) = mpsc::channel();
        let waiters: Vec<_> = (0..THREADS)
            .map(|_| {
                let shared = shared.clone();
                let started_tx = started_tx.clone();
                std::thread::spawn(move || {
                    execute(async move {
                        // Polled once before the value exists: the wait is a real one.
                        assert!(futures::poll!(&mut shared.clone()).is_pending());
                        started_tx.send(()).unwrap();
                        shared.await.unwrap()
                    })
                })
            })
            .collect();
        for _ in 0..THREADS {
            started.recv().unwrap();
        }
        tx.send(6).unwrap();
        let mut got = vec![execute(shared).unwrap()];
        got.extend(waiters.into_iter().map(|w| w.join().unwrap()));
        got
    });
    assert_eq!(got.len(), THREADS + 1);
    assert!(got.iter().all(|&value| value == 6), "{got:?}");
}

#[test]
fn dropping_one_shared_clone_mid_wait_still_lets_the_other_waiter_finish() {
    let result = within(|| {
        let (tx, rx) = futures::channel::oneshot::channel::<u32>();
        let first = rx.shared();
        let second = first.clone();

        // `first` is raced against a cancel signal and loses: its clone is dropped mid-wait,
        // possibly while it was the one polling the inner oneshot.
        let (cancel_tx, cancel_rx) = futures::channel::oneshot::channel::<u32>();
        let dropper = std::thread::spawn(move || {
            execute(future::try_select(
                first.map_err(|_| ()),
                cancel_rx.map_err(|_| ()),
            ))
            .is_ok()
        });
        let (forward_tx, forward_rx) = futures::channel::oneshot::channel::<u32>();
        let waiter = std::thread::spawn(move || {
            execute(second.map_ok(|value| forward_tx.send(value).unwrap()))
        });

        cancel_tx.send(11).unwrap();
        assert!(dropper.join().unwrap(), "the cancel won the race");
        tx.send(42).unwrap();
        let result = execute(forward_rx).unwrap();
        waiter.join().unwrap().unwrap();
        result
    });
    assert_eq!(result, 42);
}

#[test]
fn a_future_that_drops_itself_while_being_polled_completes() {
    let value = within(|| {
        type Slot = Rc<RefCell<Option<LocalBoxFuture<'static, u32>>>>;
        let slot: Slot = Rc::default();
        let in_poll = Rc::clone(&slot);
        let shared = future::lazy(move |_| {
            // Drops the last other clone of this very future, during its own poll.
            in_poll.replace(None);
            1
        })
        .shared();
        slot.replace(Some(shared.clone().boxed_local()));
        execute(shared)
    });
    assert_eq!(value, 1);
}

/// futures' `recurse::lots`: each step's future is a boxed future built by the previous step.
fn chain(n: i32, sum: i32) -> BoxFuture<'static, i32> {
    if n == 0 {
        future::ready(sum).boxed()
    } else {
        future::ready((n - 1, sum + n))
            .then(|(n, sum)| chain(n, sum))
            .boxed()
    }
}

#[test]
fn a_thousand_deep_chain_of_boxed_futures_completes_on_a_plain_thread_and_a_blocking_thread() {
    const N: i32 = 1_000;
    let expected: i32 = (0..=N).sum();
    let (plain, blocking) = within(|| {
        let plain = execute(chain(N, 0));
        let blocking = execute(spawn_blocking(|| execute(chain(N, 0)))).unwrap();
        (plain, blocking)
    });
    assert_eq!((plain, blocking), (expected, expected));
}

/// futures' `thread_yield_multi_thread`: every poll sends its waker to another thread, which wakes it.
struct WokenElsewhere {
    remaining: usize,
    to_waker_thread: mpsc::SyncSender<Waker>,
}

impl Future for WokenElsewhere {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.remaining == 0 {
            return Poll::Ready(());
        }
        self.remaining -= 1;
        self.to_waker_thread.send(cx.waker().clone()).unwrap();
        Poll::Pending
    }
}

#[test]
fn a_waker_sent_to_another_thread_on_every_poll_completes_a_thousand_polls_twice() {
    within(|| {
        let (to_waker_thread, wakers) = mpsc::sync_channel::<Waker>(10_000);
        let waker_thread = std::thread::spawn(move || {
            while let Ok(waker) = wakers.recv() {
                waker.wake();
            }
        });
        for _ in 0..2 {
            execute(WokenElsewhere {
                remaining: 1_000,
                to_waker_thread: to_waker_thread.clone(),
            });
        }
        drop(to_waker_thread);
        waker_thread.join().unwrap();
    });
}

#[test]
fn a_thousand_tasks_contending_for_a_futures_mutex_count_every_increment() {
    const TASKS: usize = 1_000;
    let counted = within(|| {
        let mutex = Arc::new(futures::lock::Mutex::new(0usize));
        let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let mutex = Arc::clone(&mutex);
                let done_tx = done_tx.clone();
                AbortOnDrop::new(spawn(async move {
                    let mut lock = mutex.lock().await;
                    // Held across a yield, as futures' `pending_once` does.
                    tokio::task::yield_now().await;
                    *lock += 1;
                    done_tx.send(()).unwrap();
                }))
            })
            .collect();
        execute(async {
            for _ in 0..TASKS {
                done_rx.recv().await.unwrap();
            }
            let counted = *mutex.lock().await;
            drop(tasks);
            counted
        })
    });
    assert_eq!(counted, TASKS);
}

#[test]
fn execute_returns_without_waiting_for_the_tasks_its_future_spawned() {
    let (value, was_running) = within(|| {
        let (held, watch) = tokio::sync::oneshot::channel::<()>();
        let (value, task) = execute(async {
            tokio::task::yield_now().await;
            let task = AbortOnDrop::new(tokio::spawn(async move {
                let _held = held;
                std::future::pending::<()>().await
            }));
            (7, task)
        });
        let was_running = !task.is_finished();
        drop(task);
        // The aborted task drops what it held, so the watcher sees its sender gone.
        let aborted = execute(watch).is_err();
        assert!(aborted, "the task was not aborted with its guard");
        (value, was_running)
    });
    assert_eq!(value, 7);
    assert!(
        was_running,
        "execute waited for a never-ending spawned task"
    );
}
