//! After `shutdown`: every entry point refuses by name (or panics with that name), a future ready
//! at once still runs, and a second shutdown is fine. One test: shutdown is process-wide.

use std::sync::mpsc;
use std::time::Duration;

use hivekit_runtime::{
    configure, execute, shutdown, spawn, try_execute, try_handle, RuntimeConfig, RuntimeError,
};

#[test]
fn after_shutdown_every_entry_point_refuses_by_name() {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        assert_eq!(
            execute(async {
                tokio::time::sleep(Duration::from_millis(1)).await;
                1
            }),
            1
        );
        let forever = spawn(std::future::pending::<()>());
        shutdown(Duration::from_secs(1)).unwrap();
        // (A future using a tokio timer panics inside tokio here instead: see
        // qa_failing/runtime_timer_future_after_shutdown_panics.rs.)
        let pending = try_execute(async {
            tokio::task::yield_now().await;
            2
        });
        assert!(
            matches!(pending, Err(RuntimeError::ShutDown)),
            "{pending:?}"
        );
        assert_eq!(
            try_execute(async { 3 }).unwrap(),
            3,
            "ready at once: no runtime needed"
        );
        assert!(matches!(try_handle(), Err(RuntimeError::ShutDown)));
        assert!(matches!(
            configure(RuntimeConfig::default()),
            Err(RuntimeError::ShutDown)
        ));
        let spawned = std::panic::catch_unwind(|| spawn(async {}));
        assert!(spawned.is_err(), "spawn after shutdown panics");
        shutdown(Duration::from_secs(1)).unwrap();
        // A fresh thread (not on the fast path) is refused the same way.
        let other = std::thread::spawn(|| {
            try_execute(async {
                tokio::task::yield_now().await;
                4
            })
        })
        .join()
        .unwrap();
        assert!(matches!(other, Err(RuntimeError::ShutDown)), "{other:?}");
        drop(forever);
        sender.send(()).unwrap();
    });
    receiver
        .recv_timeout(Duration::from_secs(5))
        .expect("the shutdown case failed or hung");
}
