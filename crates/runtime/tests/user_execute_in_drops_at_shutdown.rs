//! Cleanup code that calls `try_execute` from the `Drop` of a task's future, when the task is
//! dropped by `shutdown` of the global runtime, and when a user's own current-thread runtime is
//! dropped with the task still in it: an answer by name (the output, `ShutDown`, or
//! `WouldDeadlock`), never a panic or a hang, and `shutdown` still returns. One test: a shutdown is
//! final for the process.

use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use hivekit_runtime::{shutdown, spawn, try_execute, RuntimeError};

const BOUND: Duration = Duration::from_secs(10);

/// On drop, runs a future that needs the runtime through `try_execute` and reports the answer.
struct Cleanup(mpsc::Sender<Result<u32, String>>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let answer = panic::catch_unwind(AssertUnwindSafe(|| {
            try_execute(async {
                tokio::task::yield_now().await;
                tokio::time::sleep(Duration::from_millis(1)).await;
                5
            })
            .map_err(|error| match error {
                RuntimeError::ShutDown => "shut down".to_string(),
                RuntimeError::WouldDeadlock => "would deadlock".to_string(),
                other => format!("other: {other}"),
            })
        }))
        .unwrap_or_else(|_| Err("panicked".to_string()));
        let _ = self.0.send(answer);
    }
}

fn acceptable(answer: &Result<u32, String>) -> bool {
    match answer {
        Ok(value) => *value == 5,
        Err(reason) => reason == "shut down" || reason == "would deadlock",
    }
}

#[test]
fn cleanup_calling_try_execute_while_its_runtime_goes_away_gets_an_answer() {
    // A user's current-thread runtime dropped with a pending task that cleans up on drop.
    let (report, answers) = mpsc::channel();
    let (started_tx, started) = mpsc::channel();
    thread::spawn(move || {
        let local = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        local.block_on(async move {
            tokio::spawn(async move {
                let _cleanup = Cleanup(report);
                let _ = started_tx.send(());
                std::future::pending::<()>().await;
            });
            tokio::task::yield_now().await;
        });
        drop(local);
    });
    started.recv_timeout(BOUND).expect("the local task started");
    let answer = answers.recv_timeout(BOUND).expect("the drop answered");
    assert!(acceptable(&answer), "local runtime drop: {answer:?}");

    // A global task dropped by shutdown.
    let (report, answers) = mpsc::channel();
    let (started_tx, started) = mpsc::channel();
    let task = spawn(async move {
        let _cleanup = Cleanup(report);
        let _ = started_tx.send(());
        std::future::pending::<()>().await;
    });
    started
        .recv_timeout(BOUND)
        .expect("the global task started");
    let (done_tx, done) = mpsc::channel();
    thread::spawn(move || {
        let began = Instant::now();
        let outcome = shutdown(Duration::from_secs(1)).map_err(|error| error.to_string());
        let _ = done_tx.send((outcome, began.elapsed()));
    });
    let (outcome, took) = done.recv_timeout(BOUND).expect("shutdown returned");
    assert_eq!(outcome, Ok(()));
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    let answer = answers.recv_timeout(BOUND).expect("the drop answered");
    assert!(acceptable(&answer), "global shutdown: {answer:?}");
    drop(task);
}
