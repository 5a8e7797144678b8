//! `max_blocking_threads` at the top of its range still leaves the blocking pool working (own
//! process: the global runtime is process-wide).

use std::sync::mpsc;
use std::time::Duration;

use hivekit_runtime::{configure, RuntimeConfig};

#[test]
fn max_blocking_threads_at_its_limit_does_not_hang_spawn_blocking() {
    configure(RuntimeConfig {
        worker_threads: Some(2),
        max_blocking_threads: Some(RuntimeConfig::MAX_BLOCKING_THREADS),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let task = hivekit_runtime::spawn_blocking(|| 7);
        let _ = done.send(hivekit_runtime::execute(task).unwrap());
    });
    assert_eq!(finished.recv_timeout(Duration::from_secs(20)), Ok(7));
}
