//! proptest: random sequences of bridge operations, from the test thread and from fresh threads,
//! against a sequential model of their results and of `stats` (own process: nothing else counts).

mod support;

use std::panic::{catch_unwind, AssertUnwindSafe};

use hivekit_runtime::{
    execute, spawn, spawn_blocking, stats, try_execute, RuntimeError, RuntimeStats,
};
use proptest::prelude::*;
use support::pending_once;

#[derive(Debug, Clone)]
enum Operation {
    /// `execute` of a future ready at once.
    Ready(u32),
    /// `execute` of a future pending `yields` times.
    Pending(u32, u8),
    /// `execute` of a spawned task's handle.
    SpawnAwait(u32),
    /// `execute` of a `spawn_blocking` handle.
    SpawnBlockingAwait(u32),
    /// A future that panics, at once or after being pending.
    Panics(u32, bool),
    /// `try_execute` inside a current-thread runtime, of a ready or a pending future.
    InsideCurrentThread(u32, bool),
    /// `execute` inside `execute`: outer ready, inner ready and inner pending.
    Nested(u32),
}

fn operation() -> impl Strategy<Value = Operation> {
    prop_oneof![
        any::<u32>().prop_map(Operation::Ready),
        (any::<u32>(), 1u8..4).prop_map(|(value, yields)| Operation::Pending(value, yields)),
        any::<u32>().prop_map(Operation::SpawnAwait),
        any::<u32>().prop_map(Operation::SpawnBlockingAwait),
        (any::<u32>(), any::<bool>())
            .prop_map(|(value, pending)| Operation::Panics(value, pending)),
        (any::<u32>(), any::<bool>())
            .prop_map(|(value, pending)| Operation::InsideCurrentThread(value, pending)),
        any::<u32>().prop_map(Operation::Nested),
    ]
}

/// What the model expects: exact counts, except the fast/slow split of awaiting a task handle,
/// which depends on whether the task finished before the first poll (`undetermined`).
#[derive(Debug, Default)]
struct Model {
    fast: u64,
    slow: u64,
    undetermined: u64,
    spawns: u64,
    blocking_spawns: u64,
    would_deadlock: u64,
}

async fn yield_times(value: u32, yields: u8) -> u32 {
    for _ in 0..yields {
        tokio::task::yield_now().await;
    }
    value
}

/// Runs `operation` on the current thread, checks its result, and updates the model.
/// `entered` says whether this thread already sits in the global runtime's context.
fn run(operation: &Operation, entered: bool, model: &mut Model) {
    match *operation {
        Operation::Ready(value) => {
            assert_eq!(execute(async move { value }), value);
            model.fast += 1;
        }
        Operation::Pending(value, yields) => {
            assert_eq!(execute(yield_times(value, yields)), value);
            model.slow += 1;
        }
        Operation::SpawnAwait(value) => {
            assert_eq!(execute(spawn(async move { value })).unwrap(), value);
            model.spawns += 1;
            model.undetermined += 1;
        }
        Operation::SpawnBlockingAwait(value) => {
            assert_eq!(execute(spawn_blocking(move || value)).unwrap(), value);
            model.blocking_spawns += 1;
            model.undetermined += 1;
        }
        Operation::Panics(value, pending) => {
            let payload = catch_unwind(AssertUnwindSafe(|| {
                execute(async move {
                    if pending {
                        pending_once(()).await;
                    }
                    std::panic::panic_any(value)
                })
            }))
            .unwrap_err();
            assert_eq!(payload.downcast_ref::<u32>(), Some(&value));
            // A panic on the first poll is not counted; one after blocking is a slow-path execute.
            if pending {
                model.slow += 1;
            }
        }
        Operation::InsideCurrentThread(value, pending) => {
            let local = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let result = local.block_on(async move {
                if pending {
                    try_execute(pending_once(value))
                } else {
                    try_execute(async move { value })
                }
            });
            if entered && !pending {
                // The documented exception: the unchecked fast path finishes a ready future.
                assert_eq!(result.unwrap(), value);
                model.fast += 1;
            } else {
                assert!(matches!(result, Err(RuntimeError::WouldDeadlock)));
                model.would_deadlock += 1;
            }
        }
        Operation::Nested(value) => {
            let output = execute(async move {
                execute(async move { value }).wrapping_add(execute(pending_once(1)))
            });
            assert_eq!(output, value.wrapping_add(1));
            model.fast += 2;
            model.slow += 1;
        }
    }
}

fn check(before: RuntimeStats, model: &Model) {
    let after = stats();
    let executes = model.fast + model.slow + model.undetermined;
    assert_eq!(after.executes - before.executes, executes);
    let fast = after.fast_path_hits - before.fast_path_hits;
    assert!(
        (model.fast..=model.fast + model.undetermined).contains(&fast),
        "fast path hits {fast}, model {model:?}"
    );
    assert_eq!(after.spawns - before.spawns, model.spawns);
    assert_eq!(
        after.blocking_spawns - before.blocking_spawns,
        model.blocking_spawns
    );
    assert_eq!(
        after.would_deadlock - before.would_deadlock,
        model.would_deadlock
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn bridge_matches_the_model(
        operations in prop::collection::vec((operation(), any::<bool>()), 1..12)
    ) {
        // The test thread enters the global context before any case runs.
        execute(async {});
        let before = stats();
        let mut model = Model::default();
        for (operation, on_fresh_thread) in &operations {
            if *on_fresh_thread {
                let operation = operation.clone();
                let mut thread_model = Model::default();
                let thread_model = std::thread::spawn(move || {
                    run(&operation, false, &mut thread_model);
                    thread_model
                })
                .join()
                .unwrap();
                model.fast += thread_model.fast;
                model.slow += thread_model.slow;
                model.undetermined += thread_model.undetermined;
                model.spawns += thread_model.spawns;
                model.blocking_spawns += thread_model.blocking_spawns;
                model.would_deadlock += thread_model.would_deadlock;
            } else {
                run(operation, true, &mut model);
            }
        }
        check(before, &model);
    }
}
