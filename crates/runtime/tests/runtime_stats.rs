//! `stats` counts exactly, across threads (including exited ones), in its own process so that no
//! other test's calls are counted.

mod support;

use std::sync::Barrier;

use hivekit_runtime::{execute, spawn, spawn_blocking, stats, try_execute, RuntimeError};
use support::pending_once;

#[test]
fn stats_count_exactly_across_threads() {
    let start = stats();
    assert_eq!(start.executes, 0);

    let threads = 6u64;
    let per_thread = 300u64;
    let barrier = Barrier::new(threads as usize);
    std::thread::scope(|scope| {
        for thread in 0..threads {
            let barrier = &barrier;
            scope.spawn(move || {
                barrier.wait();
                for index in 0..per_thread {
                    // A third of the futures need the slow path.
                    if (thread + index) % 3 == 0 {
                        assert_eq!(execute(pending_once(index)), index);
                    } else {
                        assert_eq!(execute(async move { index }), index);
                    }
                }
            });
        }
    });
    // All those threads have exited: their counts were folded into the retired totals.
    let after_threads = stats();
    let total = threads * per_thread;
    let slow = (0..threads)
        .flat_map(|thread| (0..per_thread).map(move |index| (thread + index) % 3 == 0))
        .filter(|slow| *slow)
        .count() as u64;
    assert_eq!(after_threads.executes, total);
    assert_eq!(after_threads.fast_path_hits, total - slow);
    assert_eq!(after_threads.slow_path(), slow);

    let tasks: Vec<_> = (0..10).map(|i| spawn(async move { i })).collect();
    let blocking: Vec<_> = (0..3).map(|i| spawn_blocking(move || i)).collect();
    execute(async {
        for task in tasks {
            task.await.unwrap();
        }
        for task in blocking {
            task.await.unwrap();
        }
    });
    let refused = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(async { try_execute(pending_once(())) });
    assert!(matches!(refused, Err(RuntimeError::WouldDeadlock)));

    let end = stats();
    assert_eq!(end.spawns, 10);
    assert_eq!(end.blocking_spawns, 3);
    assert_eq!(end.would_deadlock, 1);
    assert_eq!(end.executes, total + 1);
}
