//! Review of "try_execute counts the slow path only once block_in_place runs"
//! (crates/runtime/src/execute.rs): `RuntimeStats::executes` is "fast-path hits plus calls that
//! blocked" and `stats` promises "no count is ever lost or counted twice". Nested calls (an
//! `execute` inside the future of another, which blocks inside the outer wait) and many threads
//! blocking at once must each be counted exactly once, and a future that panics during the wait
//! (after it blocked) is an execute, not a refusal. Own binary, one test: the counters are
//! process-wide.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Barrier};

use hivekit_runtime::{execute, stats, try_execute, RuntimeError, RuntimeStats};

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

#[test]
fn nested_concurrent_and_panicking_executes_are_each_counted_once() {
    // Warm up: the first call builds the runtime.
    assert_eq!(execute(async { 1 }), 1);

    // An execute blocking inside another's wait: two blocked calls.
    let before = stats();
    let nested = execute(async {
        tokio::task::yield_now().await;
        execute(yielding(5)) + 1
    });
    assert_eq!(nested, 6);
    assert_eq!(
        delta(before, stats()),
        (2, 0, 2, 0),
        "nested blocking calls"
    );

    // Eight threads, 50 blocking and 50 ready calls each, all at once.
    let before = stats();
    let barrier = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                for n in 0..50 {
                    assert_eq!(try_execute(yielding(n)).unwrap(), n);
                    assert_eq!(try_execute(async move { n }).unwrap(), n);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(
        delta(before, stats()),
        (800, 400, 400, 0),
        "concurrent calls"
    );

    // A future that panics after it blocked: the call blocked, so it is an execute (and its panic
    // goes on to the caller), not a refusal.
    let before = stats();
    let panicked = catch_unwind(AssertUnwindSafe(|| {
        try_execute(async {
            tokio::task::yield_now().await;
            panic!("late failure");
        })
    }));
    assert!(panicked.is_err());
    assert_eq!(
        delta(before, stats()),
        (1, 0, 1, 0),
        "a panic during the wait"
    );

    // Refused inside a current-thread runtime: a refusal only.
    let before = stats();
    let local = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let refused = local.block_on(async { try_execute(yielding(1)) });
    assert!(matches!(refused, Err(RuntimeError::WouldDeadlock)));
    assert_eq!(delta(before, stats()), (0, 0, 0, 1), "a refused call");
}
