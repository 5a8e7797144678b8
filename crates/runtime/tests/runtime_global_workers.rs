//! `execute` on the global runtime's own workers, with a single worker so that blocking it without
//! `block_in_place` would deadlock (own process: it configures the runtime).

mod support;

use hivekit_runtime::{configure, execute, spawn, RuntimeConfig};
use support::pending_once;

#[test]
fn execute_on_the_only_global_worker_does_not_deadlock() {
    configure(RuntimeConfig {
        worker_threads: Some(1),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let task = spawn(async {
        // The receiver can only complete once another task runs on the (single) worker.
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let sender_task = tokio::spawn(async move { sender.send(41).unwrap() });
        let value = execute(receiver).unwrap();
        sender_task.await.unwrap();
        // Nested, from the same worker, several times.
        value + execute(pending_once(1)) + execute(spawn(async { 0 })).unwrap()
    });
    assert_eq!(execute(task).unwrap(), 42);

    let tasks: Vec<_> = (0..20u64)
        .map(|index| spawn(async move { execute(pending_once(index)) }))
        .collect();
    let sum: u64 = execute(async {
        let mut sum = 0;
        for task in tasks {
            sum += task.await.unwrap();
        }
        sum
    });
    assert_eq!(sum, 190);
}
