//! `shutdown` inside the `block_on` of a current-thread runtime that another thread already drives: `Ok` or `ShutdownInAsyncContext`, never tokio's panic (own binary: shutdown is process-wide).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use hivekit_runtime::{execute, panic_message, shutdown, RuntimeError};

#[test]
fn shutdown_in_a_second_block_on_answers_by_name() {
    // The global runtime exists and has done work.
    assert_eq!(
        execute(async {
            tokio::task::yield_now().await;
            1
        }),
        1
    );
    let runtime = Arc::new(
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
    );
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
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                runtime.block_on(async { shutdown(Duration::from_millis(200)) })
            }))
            .map_err(|panic| panic_message(&*panic));
            let _ = answer_tx.send(outcome);
        });
    }
    let outcome = answer
        .recv_timeout(Duration::from_secs(10))
        .expect("shutdown inside the second block_on hung");
    let _ = release.send(());
    driver.join().unwrap();
    match outcome {
        Ok(Ok(())) | Ok(Err(RuntimeError::ShutdownInAsyncContext)) => {}
        other => panic!("expected Ok(()) or Err(ShutdownInAsyncContext), got {other:?}"),
    }
}
