//! Adopting an application's runtime: `configure(handle)` before first use makes every bridge use
//! it, builds nothing, and `shutdown` leaves it running (own process: the global runtime is
//! process-wide).

use std::time::Duration;

use hivekit_runtime::{active_config, configure, RuntimeConfig, RuntimeError};

#[test]
fn an_adopted_runtime_is_used_by_every_bridge_and_outlives_shutdown() {
    let app = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("app-worker")
        .enable_all()
        .build()
        .unwrap();
    configure(app.handle().clone()).unwrap();
    assert!(matches!(
        configure(RuntimeConfig::default()),
        Err(RuntimeError::AlreadyInitialized)
    ));
    assert!(hivekit_runtime::is_initialized());
    assert!(active_config().is_none());
    assert_eq!(hivekit_runtime::stats().runtimes_built, 0);
    assert_eq!(hivekit_runtime::handle().id(), app.handle().id());

    // From a plain thread: execute waits on the application's runtime (timers work).
    let (id, thread) = hivekit_runtime::execute(async {
        tokio::time::sleep(Duration::from_millis(1)).await;
        let task =
            hivekit_runtime::spawn(async { std::thread::current().name().map(str::to_owned) });
        (tokio::runtime::Handle::current().id(), task.await.unwrap())
    });
    assert_eq!(id, app.handle().id());
    assert_eq!(thread.as_deref(), Some("app-worker"));

    // From the application's own workers: execute works there too (block_in_place), in place.
    let nested = app.block_on(async {
        tokio::spawn(async { hivekit_runtime::execute(async { 6 * 7 }) })
            .await
            .unwrap()
    });
    assert_eq!(nested, 42);
    let blocking =
        hivekit_runtime::spawn_blocking(|| std::thread::current().name().map(str::to_owned));
    assert_eq!(
        app.block_on(blocking).unwrap().as_deref(),
        Some("app-worker")
    );

    // Ending hivekit's use does not stop the application's runtime.
    hivekit_runtime::shutdown(Duration::from_secs(1)).unwrap();
    assert!(matches!(
        hivekit_runtime::try_handle(),
        Err(RuntimeError::ShutDown)
    ));
    assert_eq!(
        app.block_on(async { tokio::spawn(async { 5 }).await.unwrap() }),
        5
    );
}
