//! `shutdown` in the body of a multi-thread runtime's `block_on` (what `#[tokio::main]`'s main is)
//! stops the global runtime (qa5's case: that thread drives no scheduler, so shutdown went on, and
//! tokio panicked after stopping the workers because blocking is forbidden in a runtime's context;
//! the global runtime was left refused). Its own binary: shutdown is process-wide.

use std::time::Duration;

use hivekit_runtime::{execute, shutdown, try_handle, RuntimeError};

#[test]
fn shutdown_in_the_body_of_a_multi_thread_block_on_stops_the_global_runtime() {
    assert_eq!(execute(async { 1 }), 1);
    let app = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let stopped = app.block_on(async { shutdown(Duration::from_millis(200)) });
    assert!(stopped.is_ok(), "{stopped:?}");
    assert!(matches!(try_handle(), Err(RuntimeError::ShutDown)));
    // The application's own runtime goes on.
    assert_eq!(
        app.block_on(async { tokio::spawn(async { 5 }).await.unwrap() }),
        5
    );
}
