//! A thread-local destructor on a worker of the global runtime (a connection pool's per-thread
//! handle, say) that calls `try_execute` while `shutdown` stops that worker: it gets an answer by
//! name, without a panic, and `shutdown` is not held up past its timeout. One test: a shutdown is
//! final for the process.

use std::cell::RefCell;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hivekit_runtime::{execute, shutdown, spawn, try_execute, RuntimeError};

const BOUND: Duration = Duration::from_secs(10);

type Answer = Result<u32, String>;

struct OnWorkerExit(mpsc::Sender<Answer>);

impl Drop for OnWorkerExit {
    fn drop(&mut self) {
        let answer = std::panic::catch_unwind(|| {
            try_execute(async {
                tokio::task::yield_now().await;
                3
            })
            .map_err(|error| match error {
                RuntimeError::ShutDown => "shut down".to_string(),
                RuntimeError::ThreadLocalDestroyed => "destroyed".to_string(),
                RuntimeError::WouldDeadlock => "would deadlock".to_string(),
                other => format!("other: {other}"),
            })
        })
        .unwrap_or_else(|_| Err("panicked".to_string()));
        let _ = self.0.send(answer);
    }
}

thread_local! {
    static GUARD: RefCell<Option<OnWorkerExit>> = const { RefCell::new(None) };
}

#[test]
fn a_worker_thread_local_calling_try_execute_at_shutdown_answers_and_shutdown_returns() {
    let (sender, answers) = mpsc::channel();
    // Plant a guard on every worker that runs one of these tasks.
    let planted: usize = (0..8)
        .map(|_| {
            let sender = sender.clone();
            execute(spawn(async move {
                GUARD.with(|guard| {
                    let mut guard = guard.borrow_mut();
                    if guard.is_none() {
                        *guard = Some(OnWorkerExit(sender));
                        1
                    } else {
                        0
                    }
                })
            }))
            .unwrap()
        })
        .sum();
    drop(sender);
    assert!(planted >= 1);

    let began = Instant::now();
    shutdown(Duration::from_secs(1)).expect("a plain thread may shut down");
    let took = began.elapsed();
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");

    for _ in 0..planted {
        let answer = answers
            .recv_timeout(BOUND)
            .expect("every worker's destructor answered");
        assert!(
            matches!(
                answer.as_ref().map_err(String::as_str),
                Ok(3) | Err("shut down" | "destroyed" | "would deadlock")
            ),
            "{answer:?}"
        );
    }
}
