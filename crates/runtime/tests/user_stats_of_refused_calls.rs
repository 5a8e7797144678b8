//! `stats()` for calls `try_execute` refuses with `WouldDeadlock`: the refusal is counted in
//! `would_deadlock` and nowhere else, whichever check refused it ("executes: futures run by
//! execute/try_execute: fast-path hits plus calls that blocked"). Own binary, one test: the
//! counters are process-wide and other tests would move them.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use hivekit_runtime::{stats, try_execute, RuntimeError, RuntimeStats};

async fn yielding(value: u32) -> u32 {
    tokio::task::yield_now().await;
    value
}

/// (executes, fast_path_hits, slow_path, would_deadlock) between two snapshots.
fn delta(before: RuntimeStats, after: RuntimeStats) -> (u64, u64, u64, u64) {
    (
        after.executes - before.executes,
        after.fast_path_hits - before.fast_path_hits,
        after.slow_path() - before.slow_path(),
        after.would_deadlock - before.would_deadlock,
    )
}

/// Calls `try_execute(yielding(7))` inside the `block_on` of a current-thread runtime whose core
/// another thread holds (tokio lets the second caller poll without the core, where blocking is
/// refused), from a fresh thread; returns its answer and the stats around the call.
fn refused_in_a_second_block_on() -> (Result<u32, RuntimeError>, RuntimeStats, RuntimeStats) {
    let runtime = Arc::new(
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
    );
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let (holding, held) = mpsc::channel();
    let driver = {
        let runtime = Arc::clone(&runtime);
        std::thread::spawn(move || {
            runtime.block_on(async move {
                holding.send(()).unwrap();
                let _ = released.await;
            });
        })
    };
    held.recv_timeout(Duration::from_secs(10))
        .expect("the first block_on never started");
    let (answer_tx, answer) = mpsc::channel();
    {
        let runtime = Arc::clone(&runtime);
        std::thread::spawn(move || {
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                runtime.block_on(async {
                    let before = stats();
                    let answer = try_execute(yielding(7));
                    (answer, before, stats())
                })
            }));
            let _ =
                answer_tx.send(outcome.map_err(|panic| hivekit_runtime::panic_message(&*panic)));
        });
    }
    let outcome = answer
        .recv_timeout(Duration::from_secs(10))
        .expect("the call inside the second block_on hung");
    let _ = release.send(());
    driver.join().unwrap();
    outcome.unwrap_or_else(|message| panic!("the second block_on panicked: {message}"))
}

#[test]
fn a_call_refused_with_would_deadlock_counts_as_a_refusal_and_not_as_an_execute() {
    // The runtime exists first, so that building it is not part of the measured call.
    assert_eq!(hivekit_runtime::execute(async { 1 }), 1);

    // Refused up front: inside a current-thread runtime's own `block_on`.
    let (answer, before, after) = std::thread::spawn(|| {
        let local = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        local.block_on(async {
            let before = stats();
            (try_execute(yielding(1)), before, stats())
        })
    })
    .join()
    .unwrap();
    assert!(
        matches!(answer, Err(RuntimeError::WouldDeadlock)),
        "{answer:?}"
    );
    assert_eq!(
        delta(before, after),
        (0, 0, 0, 1),
        "refused by the up-front check: (executes, fast, slow, would_deadlock)"
    );

    // Refused where tokio forbids blocking: a second thread's `block_on` of a current-thread
    // runtime another thread drives. The call is refused exactly as the one above.
    let (answer, before, after) = refused_in_a_second_block_on();
    assert!(
        matches!(answer, Err(RuntimeError::WouldDeadlock)),
        "{answer:?}"
    );
    assert_eq!(
        delta(before, after),
        (0, 0, 0, 1),
        "refused by tokio's block_in_place: (executes, fast, slow, would_deadlock)"
    );
}
