//! After `shutdown`: a future ready on its first poll returns its output on every thread (as `try_execute` documents), and a future's own panic keeps its payload (each case in a child process: shutdown is process-wide).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use hivekit_runtime::{execute, panic_message, shutdown, try_execute, RuntimeError};

const CASE_ENV: &str = "HIVEKIT_USER_AFTER_SHUTDOWN_CASE";

/// In the parent: runs this test binary again with only `test` selected and `CASE_ENV` set, and
/// fails with the child's output unless it passed within the time limit. In the child: `true`.
fn in_child(test: &str) -> bool {
    if std::env::var_os(CASE_ENV).is_some() {
        return true;
    }
    let child = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CASE_ENV, test)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    let Ok(output) = finished.recv_timeout(Duration::from_secs(20)) else {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        panic!("the child process for {test} hung");
    };
    let output = output.unwrap();
    assert!(
        output.status.success(),
        "{test} failed in its child process:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    false
}

/// Runs `body` on a fresh thread, failing if it does not answer within seconds.
fn bounded<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(body());
    });
    receiver
        .recv_timeout(Duration::from_secs(10))
        .expect("the call hung or its thread panicked")
}

#[test]
fn a_ready_future_on_a_fresh_thread_after_shutdown_returns_its_output() {
    if !in_child("a_ready_future_on_a_fresh_thread_after_shutdown_returns_its_output") {
        return;
    }
    bounded(|| {
        assert_eq!(
            execute(async {
                tokio::task::yield_now().await;
                1
            }),
            1
        );
        shutdown(Duration::from_secs(1)).unwrap();
    });
    // A thread that never called execute: "one that is [ready on its first poll] still returns
    // its output: it needs no runtime".
    let answer = bounded(|| try_execute(async { 3 }));
    assert!(matches!(answer, Ok(3)), "expected Ok(3), got {answer:?}");
}

#[test]
fn a_ready_future_after_a_shutdown_before_first_use_returns_its_output() {
    if !in_child("a_ready_future_after_a_shutdown_before_first_use_returns_its_output") {
        return;
    }
    // "Calling it before the first use (nothing to stop) ... is fine."
    shutdown(Duration::from_secs(1)).unwrap();
    let answer = bounded(|| try_execute(async { 3 }));
    assert!(matches!(answer, Ok(3)), "expected Ok(3), got {answer:?}");
    let pending = bounded(|| {
        try_execute(async {
            tokio::task::yield_now().await;
            4
        })
    });
    assert!(
        matches!(pending, Err(RuntimeError::ShutDown)),
        "expected Err(ShutDown), got {pending:?}"
    );
}

#[test]
fn a_futures_own_panic_after_shutdown_keeps_its_payload() {
    if !in_child("a_futures_own_panic_after_shutdown_keeps_its_payload") {
        return;
    }
    let outcome = bounded(|| {
        // This thread uses execute first (its fast path), then stops the runtime.
        assert_eq!(execute(async { 1 }), 1);
        shutdown(Duration::from_secs(1)).unwrap();
        // A future that panics by itself, touching no runtime at all: the caller's bug, which
        // "propagates to the caller with its original payload".
        catch_unwind(AssertUnwindSafe(|| {
            try_execute(async { panic!("the caller's own bug, 42") })
        }))
        .map_err(|panic| panic_message(&*panic))
    });
    match outcome {
        Err(message) if message == "the caller's own bug, 42" => {}
        other => panic!("expected the future's panic with its payload, got {other:?}"),
    }
}
