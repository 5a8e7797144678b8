//! The global runtime with `Flavor::CurrentThread`: a driver thread runs it (own process).

mod support;

use std::time::Duration;

use hivekit_runtime::{
    configure, execute, spawn, spawn_blocking, try_execute, Flavor, RuntimeConfig, RuntimeError,
};
use support::{pending_once, WokenFromAnotherThread};

#[test]
fn current_thread_global_runtime_works_from_everywhere_it_can() {
    configure(RuntimeConfig {
        flavor: Flavor::CurrentThread,
        thread_name: "hivekit-driver".to_owned(),
        ..RuntimeConfig::default()
    })
    .unwrap();

    // Plain threads: timers and spawned tasks progress, driven by the driver thread.
    let output = execute(async {
        let task = tokio::spawn(async { 1 });
        tokio::time::sleep(Duration::from_millis(1)).await;
        task.await.unwrap() + 1
    });
    assert_eq!(output, 2);
    assert!(execute(WokenFromAnotherThread::default()) >= 2);

    // Tasks run on the driver thread, where blocking would deadlock: refused.
    let task = spawn(async {
        let name = std::thread::current().name().map(str::to_owned);
        let refused = try_execute(async { 1 });
        (name, matches!(refused, Err(RuntimeError::WouldDeadlock)))
    });
    let (name, refused) = execute(task).unwrap();
    assert_eq!(name.as_deref(), Some("hivekit-driver"));
    assert!(refused);

    // The blocking pool is fine.
    let blocking = spawn_blocking(|| execute(pending_once(5)) + execute(async { 1 }));
    assert_eq!(execute(blocking).unwrap(), 6);

    let counts = hivekit_runtime::stats();
    assert_eq!(counts.would_deadlock, 1);
}
