//! `shutdown` called from a `spawn_blocking` closure of the global runtime: "may call it, but then
//! waits out the whole `timeout`, since the runtime waits for that very closure". It returns
//! `Ok(())` after about the timeout (no hang, no panic) and the runtime is shut down. Own binary,
//! one test: shutdown is process-wide.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use hivekit_runtime::{
    configure, is_shut_down, spawn_blocking, try_handle, RuntimeConfig, RuntimeError,
};

#[test]
fn shutdown_from_a_global_blocking_closure_returns_after_its_timeout_and_stops_the_runtime() {
    configure(RuntimeConfig {
        worker_threads: Some(2),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let timeout = Duration::from_millis(300);
    let (answer_tx, answer) = mpsc::channel();
    let _closure = spawn_blocking(move || {
        let begun = Instant::now();
        let outcome = std::panic::catch_unwind(|| hivekit_runtime::shutdown(timeout))
            .map_err(|panic| hivekit_runtime::panic_message(&*panic));
        let _ = answer_tx.send((outcome, begun.elapsed()));
    });
    let (outcome, took) = answer
        .recv_timeout(Duration::from_secs(20))
        .expect("shutdown from a blocking closure hung");
    assert!(
        matches!(outcome, Ok(Ok(()))),
        "shutdown from a blocking closure answered {outcome:?}"
    );
    assert!(
        took < timeout + Duration::from_secs(3),
        "shutdown({timeout:?}) from a blocking closure took {took:?}"
    );
    assert!(is_shut_down());
    assert!(matches!(try_handle(), Err(RuntimeError::ShutDown)));
}
