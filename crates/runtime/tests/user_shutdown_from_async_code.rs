//! `shutdown` called from async code, where stopping the runtime would deadlock or stop the very
//! thread asking: a global task, a user's own current-thread runtime and a worker of a user's
//! multi-thread runtime (the body of a multi-thread `block_on` is filed as failing:
//! qa_failing/runtime_shutdown_in_multi_thread_block_on_panics.rs). Each is refused by name and stops nothing; the
//! runtime goes on serving, and a later call from plain synchronous code stops it. One test: the
//! runtime is process-wide and a shutdown is final.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use hivekit_runtime::{execute, shutdown, spawn, try_execute, try_handle, RuntimeError};

const BOUND: Duration = Duration::from_secs(10);
const GRACE: Duration = Duration::from_secs(1);

fn still_serving(step: &str) {
    let answer = execute(async {
        tokio::time::sleep(Duration::from_millis(1)).await;
        spawn(async { 7 }).await.unwrap()
    });
    assert_eq!(answer, 7, "after {step}");
    assert!(try_handle().is_ok(), "after {step}");
}

fn refused(outcome: Result<(), RuntimeError>, step: &str) {
    assert!(
        matches!(outcome, Err(RuntimeError::ShutdownInAsyncContext)),
        "{step}: {outcome:?}"
    );
    still_serving(step);
}

#[test]
fn shutdown_from_async_code_is_refused_and_stops_nothing_then_a_plain_call_stops_the_runtime() {
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        still_serving("start");

        let in_task = execute(spawn(async { shutdown(GRACE) })).unwrap();
        refused(in_task, "a global task");

        let local = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        refused(
            local.block_on(async { shutdown(GRACE) }),
            "a current-thread block_on",
        );

        let pool = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let on_worker = pool
            .block_on(pool.spawn(async { shutdown(GRACE) }))
            .unwrap();
        refused(on_worker, "a worker of the user's runtime");
        drop(pool);
        drop(local);

        shutdown(GRACE).expect("a plain thread may stop it");
        shutdown(GRACE).expect("a second call is fine");
        let after = try_execute(async {
            tokio::task::yield_now().await;
            1
        });
        let _ = sender.send(after.map_err(|error| error.to_string()));
    });
    let after = receiver
        .recv_timeout(BOUND)
        .expect("a step hung or panicked");
    assert_eq!(after, Err(RuntimeError::ShutDown.to_string()));
}
