//! `shutdown` of a current-thread global runtime: its driver thread stops the runtime (own
//! process: the global runtime is process-wide).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use hivekit_runtime::{configure, Flavor, RuntimeConfig, RuntimeError};

struct Dropped(Arc<AtomicUsize>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn shutdown_stops_a_current_thread_runtime_and_its_tasks() {
    configure(RuntimeConfig {
        flavor: Flavor::CurrentThread,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let dropped = Arc::new(AtomicUsize::new(0));
    let (started_tx, started) = mpsc::channel();
    let guard = Dropped(Arc::clone(&dropped));
    hivekit_runtime::spawn(async move {
        let _guard = guard;
        let _ = started_tx.send(());
        std::future::pending::<()>().await;
    });
    started.recv_timeout(Duration::from_secs(10)).unwrap();
    let begun = Instant::now();
    hivekit_runtime::shutdown(Duration::from_secs(1)).unwrap();
    assert!(begun.elapsed() < Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(10);
    while dropped.load(Ordering::SeqCst) < 1 && Instant::now() < deadline {
        std::thread::yield_now();
    }
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
    assert!(matches!(
        hivekit_runtime::try_handle(),
        Err(RuntimeError::ShutDown)
    ));
}
