//! `execute` / `try_execute` inside the `block_on` of a current-thread runtime that another thread already drives (tokio allows concurrent `block_on`; the second caller polls without the core): a value or `WouldDeadlock`, never tokio's own panic.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use hivekit_runtime::{execute, panic_message, try_execute, RuntimeError};

/// Runs `body` inside `runtime.block_on` on a fresh thread while another thread holds the
/// runtime's core in its own `block_on`; returns what `body` returned, or the panic's message.
fn in_second_block_on<T: Send + 'static>(
    body: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let runtime = Arc::new(
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
    );
    // The first thread takes the core and keeps it until released.
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let (holding, held) = mpsc::channel();
    let driver = {
        let runtime = Arc::clone(&runtime);
        std::thread::spawn(move || {
            runtime.block_on(async move {
                holding.send(()).unwrap();
                let _ = released.await;
            });
        })
    };
    held.recv_timeout(Duration::from_secs(10))
        .expect("the first block_on never started");

    let (answer_tx, answer) = mpsc::channel();
    {
        let runtime = Arc::clone(&runtime);
        std::thread::spawn(move || {
            let outcome = catch_unwind(AssertUnwindSafe(|| runtime.block_on(async { body() })))
                .map_err(|panic| panic_message(&*panic));
            let _ = answer_tx.send(outcome);
        });
    }
    let outcome = answer
        .recv_timeout(Duration::from_secs(10))
        .expect("the call inside the second block_on hung");
    let _ = release.send(());
    driver.join().unwrap();
    outcome
}

#[test]
fn try_execute_of_a_pending_future_answers_by_name_or_runs() {
    let outcome = in_second_block_on(|| {
        try_execute(async {
            tokio::task::yield_now().await;
            7
        })
    });
    match outcome {
        Ok(Ok(7)) | Ok(Err(RuntimeError::WouldDeadlock)) => {}
        other => panic!("expected Ok(7) or Err(WouldDeadlock), got {other:?}"),
    }
}

#[test]
fn execute_of_a_pending_future_runs_or_panics_with_the_documented_message() {
    let outcome = in_second_block_on(|| {
        execute(async {
            tokio::task::yield_now().await;
            7
        })
    });
    match outcome {
        Ok(7) => {}
        Err(message) if message == RuntimeError::WouldDeadlock.to_string() => {}
        other => panic!("expected 7 or the WouldDeadlock message, got {other:?}"),
    }
}

#[test]
fn try_execute_of_a_ready_future_returns_its_output() {
    // Not a scheduler thread and nothing to wait for: the output comes back (or, at most, the
    // documented refusal).
    let outcome = in_second_block_on(|| try_execute(async { 5 }));
    match outcome {
        Ok(Ok(5)) | Ok(Err(RuntimeError::WouldDeadlock)) => {}
        other => panic!("expected Ok(5) or Err(WouldDeadlock), got {other:?}"),
    }
}
