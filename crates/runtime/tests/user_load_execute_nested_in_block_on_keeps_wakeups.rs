//! `execute` called from a future that a thread is blocked on (`Runtime::block_on` of a
//! multi-thread runtime, or an outer `execute`), while another future polled by that same
//! `block_on` is woken: the way an agent system calls it (a stage or an agent with synchronous
//! code, next to other stages or agents polled by the same thread). The docs promise that
//! `execute` works there ("a thread inside a multi-thread runtime's `block_on`: waits inside
//! `tokio::task::block_in_place`, so other tasks keep running and nothing deadlocks"), so the
//! outer `block_on` must still see the other future's wake-up.
//!
//! Each case wakes the other future from inside the executed future, then lets the executed
//! future wait a little (`WAIT`); everything should be done just after `WAIT`. A safety timer
//! (`RESCUE`) re-polls the outer future: a wake-up that was lost shows as the whole taking
//! `RESCUE` instead of `WAIT` (without the timer, the thread would sleep forever).

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

const WAIT: Duration = Duration::from_millis(20);
const RESCUE: Duration = Duration::from_secs(2);

/// A future woken from inside the executed one, and the synchronous code that executes it.
async fn wake_from_inside_execute() {
    let (sender, receiver) = oneshot::channel::<()>();
    let waiter = async move {
        receiver.await.expect("the sender sends");
    };
    let bridging = async move {
        // Synchronous code (a stage's or an agent's) bridging into async code.
        hivekit_runtime::execute(async move {
            sender.send(()).expect("the waiter waits");
            tokio::time::sleep(WAIT).await;
        });
    };
    tokio::join!(waiter, bridging);
}

/// Runs `case` under the rescue timer and returns how long it took.
async fn timed(case: impl Future<Output = ()>) -> Duration {
    let start = Instant::now();
    let rescue = tokio::time::sleep(RESCUE);
    tokio::pin!(case, rescue);
    let mut rescued = false;
    std::future::poll_fn(|cx| {
        if case.as_mut().poll(cx).is_ready() {
            return std::task::Poll::Ready(());
        }
        if !rescued && rescue.as_mut().poll(cx).is_ready() {
            rescued = true;
            // Poll once more now that the timer woke this thread.
            if case.as_mut().poll(cx).is_ready() {
                return std::task::Poll::Ready(());
            }
            panic!("the case did not end even after {RESCUE:?}");
        }
        std::task::Poll::Pending
    })
    .await;
    start.elapsed()
}

fn assert_no_lost_wakeup(took: Duration, place: &str) {
    assert!(
        took < RESCUE / 2,
        "{place}: the other future's wake-up was lost while execute blocked the thread; the \
         join ended only when the {RESCUE:?} rescue timer fired ({took:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_inside_a_multi_thread_block_on_keeps_the_wakeups_of_the_other_futures_it_polls() {
    let took = timed(wake_from_inside_execute()).await;
    assert_no_lost_wakeup(took, "a multi-thread runtime's block_on thread");
}

#[test]
fn execute_nested_in_execute_on_a_plain_thread_keeps_the_wakeups_of_the_other_futures() {
    let took = hivekit_runtime::execute(timed(wake_from_inside_execute()));
    assert_no_lost_wakeup(took, "an outer execute on a plain thread");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_inside_a_worker_task_keeps_the_wakeups_of_the_other_futures_it_polls() {
    // The control: a task's wake-up goes to the scheduler, not to the thread's parker.
    let took = tokio::spawn(timed(wake_from_inside_execute()))
        .await
        .expect("the task does not panic");
    assert_no_lost_wakeup(took, "a multi-thread runtime's worker task");
}
