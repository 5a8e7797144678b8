//! `configure` racing the first use of the runtime (an `execute`, a `spawn`, a `try_handle` on
//! other threads), as a program whose library threads start early does: whoever wins, exactly one
//! runtime is built, and if `configure` returned `Ok` every thread runs on the configured runtime.
//! One test: the runtime is process-wide.

use std::sync::Barrier;
use std::thread;

use hivekit_runtime::{
    active_config, configure, execute, spawn, stats, try_handle, RuntimeConfig, RuntimeError,
};

#[test]
fn configure_racing_first_uses_builds_one_runtime_and_a_successful_configure_is_the_one_used() {
    const USERS: usize = 6;
    let start = Barrier::new(USERS + 1);
    let (configured, names) = thread::scope(|scope| {
        let users: Vec<_> = (0..USERS)
            .map(|index| {
                let start = &start;
                scope.spawn(move || {
                    start.wait();
                    let name = || thread::current().name().map(str::to_owned);
                    match index % 3 {
                        0 => execute(spawn(async move { name() })).unwrap(),
                        1 => execute(async move {
                            tokio::task::yield_now().await;
                            tokio::spawn(async move { name() }).await.unwrap()
                        }),
                        _ => {
                            let handle = try_handle().expect("a runtime");
                            execute(handle.spawn(async move { name() })).unwrap()
                        }
                    }
                })
            })
            .collect();
        let configure_outcome = {
            start.wait();
            configure(RuntimeConfig {
                worker_threads: Some(2),
                thread_name: "qa5-configured".to_string(),
                ..RuntimeConfig::default()
            })
        };
        let names: Vec<Option<String>> = users.into_iter().map(|u| u.join().unwrap()).collect();
        (configure_outcome, names)
    });
    assert_eq!(stats().runtimes_built, 1, "exactly one runtime");
    match configured {
        Ok(()) => {
            let config = active_config().expect("a built runtime has a config");
            assert_eq!(config.thread_name, "qa5-configured");
            assert_eq!(config.worker_threads, Some(2));
            for name in &names {
                assert_eq!(name.as_deref(), Some("qa5-configured"), "{names:?}");
            }
        }
        Err(RuntimeError::AlreadyInitialized) => {
            let config = active_config().expect("a built runtime has a config");
            assert_ne!(config.thread_name, "qa5-configured");
        }
        Err(other) => panic!("configure failed: {other}"),
    }
}
