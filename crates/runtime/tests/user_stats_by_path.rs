//! `stats()` counts each path exactly as documented: panics on the first poll are not executes, later panics are, calls from a user's runtime and the documented current-thread exception count, refusals after shutdown count nothing (own binary, one test).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::time::Duration;

use hivekit_runtime::{
    execute, is_initialized, shutdown, spawn, stats, try_execute, RuntimeError, RuntimeStats,
};

/// What changed between two snapshots, as (executes, fast_path_hits, spawns, would_deadlock).
fn delta(before: RuntimeStats, after: RuntimeStats) -> (u64, u64, u64, u64) {
    assert!(after.executes >= before.executes && after.fast_path_hits >= before.fast_path_hits);
    assert!(after.executes >= after.fast_path_hits, "{after:?}");
    assert_eq!(after.slow_path(), after.executes - after.fast_path_hits);
    (
        after.executes - before.executes,
        after.fast_path_hits - before.fast_path_hits,
        after.spawns - before.spawns,
        after.would_deadlock - before.would_deadlock,
    )
}

async fn yielding<T>(value: T) -> T {
    tokio::task::yield_now().await;
    value
}

fn scenario() {
    // Reading does not build the runtime.
    let zero = stats();
    assert!(!is_initialized(), "stats() built the runtime");
    assert_eq!(zero.runtimes_built, 0);

    // A panic on the first poll is not counted; one after waiting is (it blocked).
    let before = stats();
    let first = catch_unwind(|| execute(async { panic!("first poll") }));
    assert!(first.is_err());
    let later = catch_unwind(|| {
        execute(async {
            tokio::task::yield_now().await;
            panic!("later poll")
        })
    });
    assert!(later.is_err());
    assert_eq!(delta(before, stats()), (1, 0, 0, 0), "panicking futures");
    assert_eq!(stats().runtimes_built, 1);

    // From a worker of a user's multi-thread runtime (a foreign context: the checked path each
    // call), ready and pending, and spawns from there.
    let user = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let before = stats();
    user.block_on(async {
        tokio::spawn(async {
            for i in 0..10 {
                assert_eq!(execute(async move { i }), i);
                assert_eq!(execute(yielding(i)), i);
            }
            let task = spawn(async { 1 });
            assert_eq!(execute(task).unwrap(), 1);
        })
        .await
        .unwrap();
    });
    // 21 executes: 10 ready + 10 pending + 1 on the JoinHandle (pending or ready at once).
    let (executes, fast, spawns, refused) = delta(before, stats());
    assert_eq!(
        (executes, spawns, refused),
        (21, 1, 0),
        "from a user's worker"
    );
    assert!(
        (10..=11).contains(&fast),
        "fast-path hits from a user's worker: {fast}"
    );
    drop(user);

    // The documented exception: on a thread that used execute, inside a current-thread runtime a
    // ready future runs (an execute, a fast-path hit), a pending one is refused (would_deadlock
    // only).
    assert_eq!(execute(async { 0 }), 0);
    let current = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let before = stats();
    let (ready, pending) =
        current.block_on(async { (try_execute(async { 3 }), try_execute(yielding(4))) });
    assert!(matches!(ready, Ok(3)), "{ready:?}");
    assert!(
        matches!(pending, Err(RuntimeError::WouldDeadlock)),
        "{pending:?}"
    );
    assert_eq!(
        delta(before, stats()),
        (1, 1, 0, 1),
        "current-thread exception"
    );

    // After shutdown: a refused call counts nothing.
    shutdown(Duration::from_secs(1)).unwrap();
    let before = stats();
    assert!(matches!(
        try_execute(yielding(5)),
        Err(RuntimeError::ShutDown)
    ));
    let fresh = std::thread::spawn(|| try_execute(yielding(6)))
        .join()
        .unwrap();
    assert!(matches!(fresh, Err(RuntimeError::ShutDown)), "{fresh:?}");
    assert_eq!(
        delta(before, stats()),
        (0, 0, 0, 0),
        "refused after shutdown"
    );
    assert_eq!(stats().runtimes_built, 1);
}

#[test]
fn stats_count_each_path_as_documented() {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let outcome = catch_unwind(AssertUnwindSafe(scenario))
            .map_err(|panic| hivekit_runtime::panic_message(&*panic));
        let _ = sender.send(outcome);
    });
    let outcome = receiver
        .recv_timeout(Duration::from_secs(30))
        .expect("the stats scenario hung");
    if let Err(message) = outcome {
        panic!("{message}");
    }
}
