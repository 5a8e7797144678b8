//! `shutdown` of a `Flavor::CurrentThread` global runtime whose driver thread a task blocks: "a
//! task that blocks the driver thread keeps it from turning, and then this waits only the timeout
//! (and a little slack)". The driver stops once it turns again, dropping its tasks. Own binary,
//! one test: shutdown is process-wide.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use hivekit_runtime::{
    configure, shutdown, spawn, try_handle, Flavor, RuntimeConfig, RuntimeError,
};

struct Dropped(Arc<AtomicUsize>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn shutdown_waits_only_its_timeout_for_a_blocked_driver_which_stops_once_it_turns() {
    configure(RuntimeConfig {
        flavor: Flavor::CurrentThread,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let dropped = Arc::new(AtomicUsize::new(0));
    let (blocking_tx, blocking) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    // Blocks the driver thread (a std channel, not an await) until released.
    let blocker = Dropped(Arc::clone(&dropped));
    let _blocker = spawn(async move {
        let _guard = blocker;
        blocking_tx.send(()).unwrap();
        let _ = released.recv_timeout(Duration::from_secs(30));
        std::future::pending::<()>().await;
    });
    // Another task, waiting on the driver.
    let waiter = Dropped(Arc::clone(&dropped));
    let _waiter = spawn(async move {
        let _guard = waiter;
        std::future::pending::<()>().await;
    });
    blocking
        .recv_timeout(Duration::from_secs(10))
        .expect("the blocking task never ran");

    let timeout = Duration::from_millis(300);
    let begun = Instant::now();
    shutdown(timeout).unwrap();
    let took = begun.elapsed();
    assert!(
        took < timeout + Duration::from_secs(2),
        "shutdown({timeout:?}) of a blocked driver took {took:?}"
    );
    assert!(matches!(try_handle(), Err(RuntimeError::ShutDown)));

    // Released, the driver turns, sees the stop and drops both tasks.
    release.send(()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while dropped.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
        std::thread::yield_now();
    }
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        2,
        "the driver did not stop once it turned"
    );
}
