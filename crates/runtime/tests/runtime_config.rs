//! Invalid configurations are typed errors that build nothing; a valid one then wins (own process).

use hivekit_runtime::{
    active_config, configure, is_initialized, Flavor, RuntimeConfig, RuntimeError,
};

#[test]
fn invalid_configurations_are_rejected_then_a_valid_one_is_used() {
    let zero_workers = RuntimeConfig {
        worker_threads: Some(0),
        ..RuntimeConfig::default()
    };
    let error = configure(zero_workers).unwrap_err();
    assert!(matches!(
        error,
        RuntimeError::InvalidWorkerThreads { value: 0 }
    ));
    assert_eq!(
        error.to_string(),
        "worker_threads is 0, expected 1 to 32768"
    );

    let zero_blocking = RuntimeConfig {
        max_blocking_threads: Some(0),
        ..RuntimeConfig::default()
    };
    assert!(matches!(
        configure(zero_blocking),
        Err(RuntimeError::InvalidMaxBlockingThreads { value: 0 })
    ));

    let bad_name = RuntimeConfig {
        thread_name: "bad\0name".to_owned(),
        ..RuntimeConfig::default()
    };
    match configure(bad_name) {
        Err(RuntimeError::InvalidThreadName { name }) => assert_eq!(name, "bad\0name"),
        other => panic!("expected InvalidThreadName, got {other:?}"),
    }

    assert!(!is_initialized());
    assert_eq!(hivekit_runtime::stats().runtimes_built, 0);
    assert!(active_config().is_none());

    // A current-thread config ignores worker_threads (even 0), and is accepted.
    let config = RuntimeConfig {
        flavor: Flavor::CurrentThread,
        worker_threads: Some(0),
        thread_name: "config-test".to_owned(),
        thread_stack_size: Some(4 * 1024 * 1024),
        max_blocking_threads: Some(4),
    };
    configure(config).unwrap();
    assert_eq!(hivekit_runtime::stats().runtimes_built, 1);
    let active = active_config().unwrap();
    assert_eq!(active.flavor, Flavor::CurrentThread);
    assert_eq!(active.worker_threads, None);
    assert_eq!(
        hivekit_runtime::handle().runtime_flavor(),
        tokio::runtime::RuntimeFlavor::CurrentThread
    );
    assert!(matches!(
        configure(RuntimeConfig::default()),
        Err(RuntimeError::AlreadyInitialized)
    ));
}
