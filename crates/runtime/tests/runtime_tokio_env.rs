//! A panic inside tokio while the runtime is built (here an invalid `TOKIO_WORKER_THREADS`, which
//! tokio reads itself when `worker_threads` is `None`) is `RuntimeError::Build`, not a panic out of
//! `try_handle` (own process: the environment and the global runtime are process-wide).

use hivekit_runtime::{try_handle, RuntimeError};

#[test]
fn a_panic_while_tokio_builds_the_runtime_is_a_build_error() {
    std::env::set_var("TOKIO_WORKER_THREADS", "not a number");
    match try_handle() {
        Err(RuntimeError::Build { source }) => {
            assert!(
                source
                    .to_string()
                    .contains("tokio panicked while building the runtime"),
                "{source}"
            );
        }
        other => panic!("expected a build error, got {other:?}"),
    }
    assert!(!hivekit_runtime::is_initialized());
    // Nothing was cached: once the environment is fixed, the runtime builds.
    std::env::remove_var("TOKIO_WORKER_THREADS");
    assert_eq!(hivekit_runtime::execute(async { 3 }), 3);
    assert_eq!(hivekit_runtime::stats().runtimes_built, 1);
}
