//! `HIVEKIT_WORKER_THREADS`: "An invalid `HIVEKIT_WORKER_THREADS` is an error whatever the flavor"
//! and "It is not read when `configure` adopts an application's runtime"; `validate` does not
//! read it either. Own binary, one test: the environment and the runtime are process-wide.

use std::time::Duration;

use hivekit_runtime::{
    active_config, configure, execute, spawn, spawn_blocking, stats, try_handle, Flavor,
    RuntimeConfig, RuntimeError, WORKER_THREADS_ENV,
};

#[test]
fn a_bad_worker_env_refuses_every_flavor_but_not_an_adopted_runtime() {
    std::env::set_var(WORKER_THREADS_ENV, "lots");
    let current_thread = RuntimeConfig {
        flavor: Flavor::CurrentThread,
        ..RuntimeConfig::default()
    };
    assert!(
        current_thread.validate().is_ok(),
        "validate reads no environment"
    );
    match configure(current_thread) {
        Err(RuntimeError::InvalidWorkerThreadsEnv { value }) => assert_eq!(value, "lots"),
        other => panic!("a current-thread config with a bad env: {other:?}"),
    }
    assert!(!hivekit_runtime::is_initialized());

    // The application's runtime is adopted whatever the variable says.
    let application = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    configure(application.handle().clone()).expect("adopting reads no environment");
    assert!(active_config().is_none());
    assert_eq!(stats().runtimes_built, 0);
    let global = try_handle().expect("the adopted runtime is the global one");
    assert_eq!(global.id(), application.handle().id());

    // Everything runs on the application's runtime.
    let on = |id: tokio::runtime::Id| id == application.handle().id();
    assert!(on(execute(async {
        tokio::time::sleep(Duration::from_millis(1)).await;
        tokio::runtime::Handle::current().id()
    })));
    let task = spawn(async { tokio::runtime::Handle::current().id() });
    assert!(on(execute(task).unwrap()));
    let blocking = spawn_blocking(|| tokio::runtime::Handle::current().id());
    assert!(on(execute(blocking).unwrap()));
    assert!(matches!(
        configure(RuntimeConfig::default()),
        Err(RuntimeError::AlreadyInitialized)
    ));
    std::env::remove_var(WORKER_THREADS_ENV);
}
