//! `shutdown` while tasks and blocking closures run: it returns within its timeout, the tasks are
//! dropped, and every later use is refused with `RuntimeError::ShutDown` (own process: the global
//! runtime is process-wide).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use hivekit_runtime::{configure, RuntimeConfig, RuntimeError};

/// Counts its drops.
struct Dropped(Arc<AtomicUsize>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn shutdown_while_tasks_run_stops_them_and_refuses_later_use() {
    configure(RuntimeConfig {
        worker_threads: Some(2),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let dropped = Arc::new(AtomicUsize::new(0));
    let (started_tx, started) = mpsc::channel();
    const TASKS: usize = 4;
    for _ in 0..TASKS {
        let guard = Dropped(Arc::clone(&dropped));
        let started_tx = started_tx.clone();
        hivekit_runtime::spawn(async move {
            let _guard = guard;
            let _ = started_tx.send(());
            loop {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
    }
    // A blocking closure that outlives the timeout: shutdown must not wait for it.
    let (release, released) = mpsc::channel::<()>();
    hivekit_runtime::spawn_blocking(move || {
        let _ = released.recv_timeout(Duration::from_secs(30));
    });
    for _ in 0..TASKS {
        started.recv_timeout(Duration::from_secs(10)).unwrap();
    }

    // Refused from async code, where it would block a runtime thread; nothing is stopped.
    let local = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert!(matches!(
        local.block_on(async { hivekit_runtime::shutdown(Duration::from_secs(1)) }),
        Err(RuntimeError::ShutdownInAsyncContext)
    ));
    assert_eq!(hivekit_runtime::execute(async { 1 }), 1);

    let timeout = Duration::from_millis(200);
    let begun = Instant::now();
    hivekit_runtime::shutdown(timeout).unwrap();
    let took = begun.elapsed();
    assert!(took < Duration::from_secs(10), "shutdown took {took:?}");

    // Every task is dropped (the workers drop them as they stop; wait for that, boundedly).
    let deadline = Instant::now() + Duration::from_secs(10);
    while dropped.load(Ordering::SeqCst) < TASKS && Instant::now() < deadline {
        std::thread::yield_now();
    }
    assert_eq!(dropped.load(Ordering::SeqCst), TASKS);

    // Later use is refused by name.
    assert!(matches!(
        hivekit_runtime::try_handle(),
        Err(RuntimeError::ShutDown)
    ));
    assert!(matches!(
        configure(RuntimeConfig::default()),
        Err(RuntimeError::ShutDown)
    ));
    let waiting = hivekit_runtime::try_execute(async {
        tokio::task::yield_now().await;
        1
    });
    assert!(matches!(waiting, Err(RuntimeError::ShutDown)));
    // A future ready at once needs no runtime and still runs.
    assert_eq!(hivekit_runtime::try_execute(async { 2 }).unwrap(), 2);
    let panic = std::panic::catch_unwind(|| hivekit_runtime::spawn(async {})).unwrap_err();
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert_eq!(message, "the global runtime was shut down");
    // A second call has nothing left to stop.
    hivekit_runtime::shutdown(timeout).unwrap();
    let _ = release.send(());
}
