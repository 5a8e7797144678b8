//! The `hivekit-runtime` contract of DESIGN.md, written from that document alone. Own process: every
//! test first configures the global runtime (once) with a thread name and two workers.

use std::sync::Once;
use std::thread;
use std::time::Duration;

use hivekit_runtime::{
    configure, execute, handle, spawn, spawn_blocking, stats, try_execute, Flavor, RuntimeConfig,
    RuntimeError, RuntimeStats,
};

const THREAD_NAME: &str = "design-contract-worker";

fn configured() {
    static CONFIGURE: Once = Once::new();
    CONFIGURE.call_once(|| {
        let config = RuntimeConfig {
            flavor: Flavor::MultiThread,
            worker_threads: Some(2),
            thread_name: THREAD_NAME.to_owned(),
            ..RuntimeConfig::default()
        };
        configure(config).expect("configure before first use succeeds");
    });
}

/// Runs `case` on its own thread and fails the test if it does not finish within five seconds.
fn within_five_seconds<T: Send + 'static>(case: impl FnOnce() -> T + Send + 'static) -> T {
    let (sender, receiver) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let _ = sender.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(case)));
    });
    match receiver.recv_timeout(Duration::from_secs(5)) {
        Ok(Ok(value)) => value,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("the case hung (deadlock?)"),
    }
}

#[test]
fn runtime_config_default_is_a_multi_thread_runtime() {
    let config = RuntimeConfig::default();
    assert_eq!(config.flavor, Flavor::MultiThread);
    assert_eq!(config.worker_threads, None);
    assert!(!config.thread_name.is_empty());
}

#[test]
fn configure_after_first_use_is_already_initialized_and_the_first_config_stays() {
    configured();
    let again = configure(RuntimeConfig {
        flavor: Flavor::CurrentThread,
        ..RuntimeConfig::default()
    });
    assert!(matches!(again, Err(RuntimeError::AlreadyInitialized)));
    // The runtime built is the configured one: its tasks run on threads of the configured name.
    let name = execute(spawn(async { thread::current().name().map(str::to_owned) })).unwrap();
    assert_eq!(name.as_deref(), Some(THREAD_NAME));
}

#[test]
fn handle_is_one_static_handle_for_the_whole_process() {
    configured();
    let here: &'static tokio::runtime::Handle = handle();
    let elsewhere = thread::spawn(|| handle() as *const tokio::runtime::Handle as usize)
        .join()
        .unwrap();
    assert_eq!(here as *const tokio::runtime::Handle as usize, elsewhere);
    assert_eq!(here.block_on(async { 5 }), 5);
}

#[test]
fn execute_from_a_plain_thread_blocks_on_the_global_runtime() {
    configured();
    let value = within_five_seconds(|| {
        execute(async {
            tokio::time::sleep(Duration::from_millis(2)).await;
            tokio::spawn(async { 40 }).await.unwrap() + 2
        })
    });
    assert_eq!(value, 42);
}

#[test]
fn execute_inside_a_foreign_one_worker_multi_thread_runtime_neither_panics_nor_deadlocks() {
    configured();
    let value = within_five_seconds(|| {
        let foreign = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        foreign.block_on(async {
            tokio::spawn(async {
                let (sender, receiver) = tokio::sync::oneshot::channel();
                // Runs on the foreign runtime's only worker, which `execute` is about to block.
                let sender_task = tokio::spawn(async move { sender.send(41).unwrap() });
                let value = execute(receiver).unwrap();
                sender_task.await.unwrap();
                value + 1
            })
            .await
            .unwrap()
        })
    });
    assert_eq!(value, 42);
}

#[test]
fn inside_a_current_thread_runtime_try_execute_is_would_deadlock_and_execute_panics_with_it() {
    configured();
    let local = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let refused = local.block_on(async { try_execute(tokio::task::yield_now()) });
    assert!(matches!(refused, Err(RuntimeError::WouldDeadlock)));

    let panic = local
        .block_on(async {
            tokio::spawn(async {
                execute(tokio::task::yield_now());
            })
            .await
        })
        .unwrap_err();
    let payload = panic.into_panic();
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .expect("a text panic payload");
    assert_eq!(message, RuntimeError::WouldDeadlock.to_string());
}

#[test]
fn execute_inside_spawn_blocking_works_and_spawn_returns_a_join_handle() {
    configured();
    let value = within_five_seconds(|| {
        let blocking = spawn_blocking(|| {
            execute(async {
                tokio::task::yield_now().await;
                6
            }) * 7
        });
        execute(blocking).unwrap()
    });
    assert_eq!(value, 42);
    let task: tokio::task::JoinHandle<&str> = spawn(async { "spawned" });
    assert_eq!(execute(task).unwrap(), "spawned");
}

#[test]
fn a_future_ready_on_its_first_poll_is_polled_in_the_runtime_context_and_counted_as_a_fast_path_hit(
) {
    configured();
    within_five_seconds(|| {
        // Warm this thread up, so that its next calls take the fast path.
        execute(async {});
        let before: RuntimeStats = stats();
        // Ready at once, yet it needs the runtime context: spawning and creating a timer.
        let ready = execute(async {
            drop(tokio::spawn(async {}));
            drop(tokio::time::sleep(Duration::from_secs(1)));
            7
        });
        let after = stats();
        assert_eq!(ready, 7);
        assert!(after.executes > before.executes);
        assert!(
            after.fast_path_hits > before.fast_path_hits,
            "a ready future must be a fast-path hit: {before:?} -> {after:?}"
        );
        assert!(after.spawns >= before.spawns);
    });
}

#[test]
fn stats_sum_the_counters_of_every_thread_including_exited_ones() {
    configured();
    const THREADS: u64 = 8;
    const CALLS: u64 = 50;
    let before = stats();
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            thread::spawn(|| {
                for index in 0..CALLS {
                    assert_eq!(execute(async move { index }), index);
                }
                drop(spawn(async {}));
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let after = stats();
    assert!(after.executes - before.executes >= THREADS * CALLS);
    assert!(after.spawns - before.spawns >= THREADS);
}
