//! `HIVEKIT_WORKER_THREADS`: an invalid value is a typed error, a valid one overrides the
//! configuration (own process: the environment is process-wide).

use hivekit_runtime::{
    active_config, configure, try_handle, RuntimeConfig, RuntimeError, WORKER_THREADS_ENV,
};

#[test]
fn environment_override_is_validated_and_applied() {
    for bad in [
        "abc",
        "0",
        "-2",
        "1.5",
        "",
        "32769",
        "18446744073709551614",
        "18446744073709551615",
    ] {
        std::env::set_var(WORKER_THREADS_ENV, bad);
        match try_handle() {
            Err(RuntimeError::InvalidWorkerThreadsEnv { value }) => assert_eq!(value, bad),
            other => panic!("{bad:?}: expected InvalidWorkerThreadsEnv, got {other:?}"),
        }
        // configure reports it too, and the message names the variable and the value.
        let error = configure(RuntimeConfig::default()).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("environment variable HIVEKIT_WORKER_THREADS is `{bad}`, expected an integer from 1 to 32768")
        );
    }
    // `handle` panics with the same message rather than silently using a default.
    std::env::set_var(WORKER_THREADS_ENV, "many");
    let panic = std::panic::catch_unwind(hivekit_runtime::handle).unwrap_err();
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        message.contains("HIVEKIT_WORKER_THREADS is `many`"),
        "{message}"
    );
    assert_eq!(hivekit_runtime::stats().runtimes_built, 0);

    // A valid value overrides the configured count (surrounding whitespace is tolerated).
    std::env::set_var(WORKER_THREADS_ENV, " 3 ");
    configure(RuntimeConfig {
        worker_threads: Some(1),
        ..RuntimeConfig::default()
    })
    .unwrap();
    assert_eq!(active_config().unwrap().worker_threads, Some(3));
    assert_eq!(try_handle().unwrap().metrics().num_workers(), 3);
    assert_eq!(hivekit_runtime::stats().runtimes_built, 1);
}
