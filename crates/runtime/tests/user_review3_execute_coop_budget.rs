//! Review of fc3a1bb (crates/runtime/src/execute.rs, `wait_for`): the slow path no longer goes
//! through tokio's `Handle::block_on`, which polls each time inside tokio's cooperative budget.
//! A future that relies on that budget (a loop over an always-ready tokio channel inside
//! `tokio::time::timeout`) ends under `Handle::block_on` and must end under `execute` too.

use std::sync::mpsc;
use std::time::Duration;

use tokio::sync::mpsc as tmpsc;

const LIMIT: Duration = Duration::from_secs(5);

/// Yields once first (so `execute`'s first poll is `Pending`, deterministically, and the slow
/// path runs the rest), then loops over a channel that is always ready, under a 20 ms timeout: only tokio's
/// cooperative budget makes `recv` return `Pending` so that the timeout can fire.
async fn spin_until_timeout() -> bool {
    tokio::task::yield_now().await;
    let (tx, mut rx) = tmpsc::unbounded_channel::<u32>();
    let spun = tokio::time::timeout(Duration::from_millis(20), async move {
        loop {
            tx.send(1).unwrap();
            rx.recv().await.unwrap();
        }
    })
    .await;
    spun.is_err()
}

/// Runs `body` on a thread of its own and returns its result, or `None` if it did not finish
/// within `LIMIT` (the thread is left spinning; the test process ends anyway).
fn bounded<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (done, result) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(body());
    });
    result.recv_timeout(LIMIT).ok()
}

#[test]
fn reference_handle_block_on_ends_a_budget_reliant_future() {
    let ended = bounded(|| hivekit_runtime::handle().block_on(spin_until_timeout()));
    assert_eq!(ended, Some(true), "tokio's block_on did not end the loop");
}

#[test]
fn execute_slow_path_ends_a_budget_reliant_future_on_a_plain_thread() {
    let ended = bounded(|| {
        // The first call on this thread, then one that takes the fast path's first poll.
        hivekit_runtime::execute(spin_until_timeout())
            && hivekit_runtime::execute(spin_until_timeout())
    });
    assert_eq!(
        ended,
        Some(true),
        "execute never returned: its slow path polls outside tokio's cooperative budget, so \
         the always-ready channel never yields to the timeout"
    );
}

#[test]
fn execute_slow_path_ends_a_budget_reliant_future_on_a_worker() {
    let ended = bounded(|| {
        let task = hivekit_runtime::spawn(async { hivekit_runtime::execute(spin_until_timeout()) });
        hivekit_runtime::execute(task).unwrap()
    });
    assert_eq!(ended, Some(true), "execute on a worker never returned");
}
