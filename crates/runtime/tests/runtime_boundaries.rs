//! Every numeric field of `RuntimeConfig` at its edges: a typed error naming the value, or a
//! runtime that works. Values that tokio used to panic or hang on are regression tests here. The
//! global runtime is process-wide, so this file is its own test binary; each `configure` runs
//! under a watchdog thread.

use std::sync::mpsc;
use std::time::Duration;

use hivekit_runtime::{configure, Flavor, RuntimeConfig, RuntimeError};
use proptest::prelude::*;

/// Runs `work` on its own thread and fails the test if it has not finished within `limit`.
fn within<T: Send + 'static>(limit: Duration, work: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(work());
    });
    finished
        .recv_timeout(limit)
        .expect("hung past the watchdog")
}

fn configure_within(config: RuntimeConfig) -> Result<(), RuntimeError> {
    within(Duration::from_secs(20), move || configure(config))
}

fn count_edge() -> impl Strategy<Value = Option<usize>> {
    prop::option::of(prop_oneof![
        Just(0_usize),
        Just(1),
        Just(2),
        Just(RuntimeConfig::MAX_WORKER_THREADS),
        Just(RuntimeConfig::MAX_WORKER_THREADS + 1),
        Just(RuntimeConfig::MAX_BLOCKING_THREADS),
        Just(RuntimeConfig::MAX_BLOCKING_THREADS + 1),
        Just(usize::MAX - 1),
        Just(usize::MAX),
    ])
}

fn stack_edge() -> impl Strategy<Value = Option<usize>> {
    prop::option::of(prop_oneof![
        Just(0_usize),
        Just(1),
        Just(RuntimeConfig::MIN_THREAD_STACK_SIZE - 1),
        Just(RuntimeConfig::MIN_THREAD_STACK_SIZE),
        Just(usize::MAX - 1),
        Just(usize::MAX),
    ])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// `validate` accepts exactly the documented ranges and names the first value out of range.
    #[test]
    fn runtime_configs_at_their_edges_are_valid_exactly_when_documented(
        multi_thread in any::<bool>(),
        worker_threads in count_edge(),
        max_blocking_threads in count_edge(),
        thread_stack_size in stack_edge(),
    ) {
        let flavor = if multi_thread { Flavor::MultiThread } else { Flavor::CurrentThread };
        let config = RuntimeConfig { flavor, worker_threads, max_blocking_threads, thread_stack_size, ..RuntimeConfig::default() };
        let workers_ok = !multi_thread
            || worker_threads.is_none_or(|count| (1..=RuntimeConfig::MAX_WORKER_THREADS).contains(&count));
        let blocking_ok = max_blocking_threads.is_none_or(|count| (1..=RuntimeConfig::MAX_BLOCKING_THREADS).contains(&count));
        let stack_ok = thread_stack_size.is_none_or(|size| size >= RuntimeConfig::MIN_THREAD_STACK_SIZE);
        match config.validate() {
            Ok(()) => prop_assert!(workers_ok && blocking_ok && stack_ok),
            Err(RuntimeError::InvalidWorkerThreads { value }) => {
                prop_assert!(!workers_ok);
                prop_assert_eq!(Some(value), worker_threads);
            }
            Err(RuntimeError::InvalidMaxBlockingThreads { value }) => {
                prop_assert!(workers_ok && !blocking_ok);
                prop_assert_eq!(Some(value), max_blocking_threads);
            }
            Err(RuntimeError::InvalidThreadStackSize { value }) => {
                prop_assert!(workers_ok && blocking_ok && !stack_ok);
                prop_assert_eq!(Some(value), thread_stack_size);
            }
            Err(other) => return Err(TestCaseError::fail(format!("unexpected {other:?}"))),
        }
    }
}

#[test]
fn worker_threads_of_usize_max_is_a_typed_error_not_a_capacity_overflow() {
    for value in [
        usize::MAX,
        usize::MAX - 1,
        RuntimeConfig::MAX_WORKER_THREADS + 1,
    ] {
        let error = configure_within(RuntimeConfig {
            worker_threads: Some(value),
            ..RuntimeConfig::default()
        })
        .unwrap_err();
        assert!(
            matches!(error, RuntimeError::InvalidWorkerThreads { value: named } if named == value)
        );
        assert_eq!(
            error.to_string(),
            format!("worker_threads is {value}, expected 1 to 32768")
        );
    }
    assert!(!hivekit_runtime::is_initialized());
    boundaries_then_a_runtime_at_its_smallest_edges();
}

/// Runs after the test above in the same thread (the global runtime admits one winner).
fn boundaries_then_a_runtime_at_its_smallest_edges() {
    // A huge stack on the multi-thread flavor: the operating system refuses the threads, which
    // tokio used to turn into a panic ("OS can't spawn worker thread").
    for flavor in [Flavor::MultiThread, Flavor::CurrentThread] {
        for size in [usize::MAX, usize::MAX - 1, 1 << 62] {
            let result = configure_within(RuntimeConfig {
                flavor,
                worker_threads: Some(1),
                thread_stack_size: Some(size),
                ..RuntimeConfig::default()
            });
            assert!(
                matches!(result, Err(RuntimeError::Build { .. })),
                "{flavor:?}, stack {size}: {result:?}"
            );
        }
    }
    // A max_blocking_threads that tokio's sum with the worker count would wrap.
    for value in [
        usize::MAX,
        usize::MAX - 1,
        RuntimeConfig::MAX_BLOCKING_THREADS + 1,
    ] {
        assert!(matches!(
            configure_within(RuntimeConfig {
                max_blocking_threads: Some(value),
                ..RuntimeConfig::default()
            }),
            Err(RuntimeError::InvalidMaxBlockingThreads { value: named }) if named == value
        ));
    }
    assert!(!hivekit_runtime::is_initialized());
    assert_eq!(hivekit_runtime::stats().runtimes_built, 0);

    // The smallest valid values make a runtime that works, blocking pool included.
    configure_within(RuntimeConfig {
        worker_threads: Some(1),
        max_blocking_threads: Some(1),
        thread_stack_size: Some(RuntimeConfig::MIN_THREAD_STACK_SIZE),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let answer = within(Duration::from_secs(20), || {
        let blocking = hivekit_runtime::spawn_blocking(|| 6 * 7);
        hivekit_runtime::execute(async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            blocking.await.unwrap()
        })
    });
    assert_eq!(answer, 42);
    assert_eq!(hivekit_runtime::stats().runtimes_built, 1);
}
