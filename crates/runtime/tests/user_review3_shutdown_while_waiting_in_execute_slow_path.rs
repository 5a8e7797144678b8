//! Review of fc3a1bb (crates/runtime/src/execute.rs, `wait_for`): the global runtime (multi-thread)
//! shut down while callers wait in `try_execute`'s own parker, from a plain thread, from global
//! workers (inside `block_in_place`) and from `spawn_blocking`: each gets the future's output or
//! `ShutDown` in bounded time, never a hang nor tokio's panic. Its own binary: shutdown is
//! process-wide.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hivekit_runtime::{
    configure, panic_message, shutdown, spawn, spawn_blocking, try_execute, RuntimeConfig,
    RuntimeError,
};
use tokio::sync::oneshot;

type Answer = (&'static str, Result<Result<u32, RuntimeError>, String>);

/// Waits on a long timer, then (if it ever fires) spawns a task and awaits it.
async fn long_sleep(started: mpsc::Sender<()>) -> u32 {
    tokio::task::yield_now().await;
    started.send(()).unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    spawn(async { 1 }).await.unwrap_or(2)
}

/// Waits on a oneshot whose sender a task holds forever: shutdown drops the task, and the future
/// ends with its own output.
async fn held_by_a_task(started: mpsc::Sender<()>) -> u32 {
    let (tx, rx) = oneshot::channel::<u32>();
    spawn(async move {
        std::future::pending::<()>().await;
        drop(tx);
    });
    tokio::task::yield_now().await;
    started.send(()).unwrap();
    rx.await.unwrap_or(77)
}

fn answer(
    name: &'static str,
    future: impl std::future::Future<Output = u32>,
    answers: &mpsc::Sender<Answer>,
) {
    let got =
        catch_unwind(AssertUnwindSafe(|| try_execute(future))).map_err(|p| panic_message(&*p));
    let _ = answers.send((name, got));
}

#[test]
fn shutdown_while_callers_wait_in_every_context_gives_output_or_shut_down() {
    configure(RuntimeConfig {
        worker_threads: Some(4),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let (started_tx, started) = mpsc::channel();
    let (answers_tx, answers) = mpsc::channel::<Answer>();
    let mut expected = 0;
    for _ in 0..2 {
        for kind in 0..2 {
            // Plain threads.
            let (s, a) = (started_tx.clone(), answers_tx.clone());
            std::thread::spawn(move || {
                if kind == 0 {
                    answer("plain/sleep", long_sleep(s), &a)
                } else {
                    answer("plain/held", held_by_a_task(s), &a)
                }
            });
            // Global workers.
            let (s, a) = (started_tx.clone(), answers_tx.clone());
            drop(spawn(async move {
                if kind == 0 {
                    answer("worker/sleep", long_sleep(s), &a)
                } else {
                    answer("worker/held", held_by_a_task(s), &a)
                }
            }));
            // spawn_blocking threads.
            let (s, a) = (started_tx.clone(), answers_tx.clone());
            drop(spawn_blocking(move || {
                if kind == 0 {
                    answer("blocking/sleep", long_sleep(s), &a)
                } else {
                    answer("blocking/held", held_by_a_task(s), &a)
                }
            }));
            expected += 3;
        }
    }
    drop(answers_tx);
    for _ in 0..expected {
        started
            .recv_timeout(Duration::from_secs(10))
            .expect("a caller never started waiting");
    }
    let stopper = std::thread::spawn(|| shutdown(Duration::from_millis(300)));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut bad = Vec::new();
    for _ in 0..expected {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok((name, got)) = answers.recv_timeout(left) else {
            panic!("a caller hung in execute after shutdown; bad so far: {bad:?}");
        };
        match got {
            Ok(Ok(77)) if name.ends_with("held") => {}
            Ok(Err(RuntimeError::ShutDown)) => {}
            other => bad.push((name, other)),
        }
    }
    assert!(bad.is_empty(), "{bad:?}");
    let stopped = stopper.join().unwrap();
    assert!(stopped.is_ok(), "{stopped:?}");
}
