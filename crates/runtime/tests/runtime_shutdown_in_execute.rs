//! `shutdown` from a future inside `execute`, on its slow path (the calling thread waits in the
//! global runtime's `block_on`), stops the global runtime and the future's result comes back
//! (qa5's case: tokio panicked there). Its own binary: shutdown is process-wide.

use std::time::Duration;

use hivekit_runtime::{execute, shutdown, try_handle, RuntimeError};

#[test]
fn shutdown_from_a_future_inside_execute_stops_the_global_runtime() {
    let stopped = execute(async {
        tokio::task::yield_now().await;
        shutdown(Duration::from_millis(200))
    });
    assert!(stopped.is_ok(), "{stopped:?}");
    assert!(matches!(try_handle(), Err(RuntimeError::ShutDown)));
    assert!(matches!(
        hivekit_runtime::try_execute(async {
            tokio::task::yield_now().await;
            1
        }),
        Err(RuntimeError::ShutDown)
    ));
}
