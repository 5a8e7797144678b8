//! After `shutdown`, a future that uses a tokio timer is refused with `RuntimeError::ShutDown`, also
//! on a thread that used `execute` before (its fast path polls in place, in the stopped runtime's
//! context, where tokio panics "being shutdown"); it panicked with tokio's message (found by qa3).
//! One test in its own binary: shutdown is process-wide.

use std::sync::mpsc;
use std::time::Duration;

use hivekit_runtime::{execute, shutdown, try_execute, RuntimeError};

#[test]
fn a_timer_future_after_shutdown_is_refused_by_name_on_a_thread_that_used_execute() {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        assert_eq!(execute(async { 1 }), 1); // this thread is now on the fast path
        shutdown(Duration::from_secs(1)).unwrap();
        let result = std::panic::catch_unwind(|| {
            try_execute(async {
                tokio::time::sleep(Duration::from_millis(1)).await;
                2
            })
        });
        sender.send(result.map_err(|_| ())).unwrap();
    });
    let result = receiver.recv_timeout(Duration::from_secs(5)).expect("hung");
    let result = result.expect("try_execute panicked instead of returning an error");
    assert!(matches!(result, Err(RuntimeError::ShutDown)), "{result:?}");
}
