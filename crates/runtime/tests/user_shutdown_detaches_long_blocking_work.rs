//! `shutdown(timeout)` with a `spawn_blocking` closure that outlives the timeout: "waited for up to
//! `timeout` and then left to finish on their own (their threads are detached)". `shutdown`
//! returns after about the timeout, and the closure, released later, still runs to its end. Own
//! binary, one test: shutdown is process-wide.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use hivekit_runtime::{configure, shutdown, spawn_blocking, RuntimeConfig};

#[test]
fn a_blocking_closure_outliving_the_timeout_is_left_running_and_finishes_after_shutdown() {
    configure(RuntimeConfig {
        worker_threads: Some(1),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let finished = Arc::new(AtomicBool::new(false));
    let (started_tx, started) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let (ended_tx, ended) = mpsc::channel();
    {
        let finished = Arc::clone(&finished);
        let _detached = spawn_blocking(move || {
            started_tx.send(()).unwrap();
            let waited = released.recv_timeout(Duration::from_secs(30));
            finished.store(waited.is_ok(), Ordering::SeqCst);
            let _ = ended_tx.send(waited.is_ok());
        });
    }
    started
        .recv_timeout(Duration::from_secs(10))
        .expect("the blocking closure never started");

    let timeout = Duration::from_millis(300);
    let begun = Instant::now();
    shutdown(timeout).unwrap();
    let took = begun.elapsed();
    assert!(
        took < timeout + Duration::from_secs(2),
        "shutdown({timeout:?}) waited {took:?} for a closure it should have detached"
    );
    assert!(!finished.load(Ordering::SeqCst), "the closure ended early");

    // The detached closure goes on: released now, it runs to its end.
    release.send(()).expect("the detached closure was dropped");
    assert_eq!(
        ended.recv_timeout(Duration::from_secs(10)),
        Ok(true),
        "the detached closure did not finish on its own"
    );
    assert!(finished.load(Ordering::SeqCst));
}
