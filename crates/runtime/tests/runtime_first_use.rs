//! Racing first uses from many threads build exactly one runtime (fresh process: own file).

use std::sync::Barrier;

use hivekit_runtime::{configure, execute, is_initialized, RuntimeConfig, RuntimeError};

#[test]
fn concurrent_first_use_builds_exactly_one_runtime() {
    assert!(!is_initialized());
    assert_eq!(hivekit_runtime::stats().runtimes_built, 0);
    let threads = 16;
    let barrier = Barrier::new(threads);
    let handles: Vec<_> = std::thread::scope(|scope| {
        let joins: Vec<_> = (0..threads)
            .map(|index| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    // Half go through `handle`, half through `execute`.
                    if index % 2 == 0 {
                        hivekit_runtime::handle().clone()
                    } else {
                        execute(async { tokio::runtime::Handle::current() })
                    }
                })
            })
            .collect();
        joins.into_iter().map(|join| join.join().unwrap()).collect()
    });
    assert_eq!(hivekit_runtime::stats().runtimes_built, 1);
    assert!(is_initialized());
    // Every thread got a working handle of that one runtime.
    for handle in &handles {
        assert_eq!(
            handle.block_on(async { tokio::spawn(async { 1 }).await.unwrap() }),
            1
        );
    }

    // Configuring now is too late, and builds nothing.
    assert!(matches!(
        configure(RuntimeConfig::default()),
        Err(RuntimeError::AlreadyInitialized)
    ));
    assert_eq!(hivekit_runtime::stats().runtimes_built, 1);
}
