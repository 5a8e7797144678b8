//! `execute` from the places cleanup code ends up in: a `Drop` run when a future finishes, when it
//! unwinds, when a task of the global runtime is aborted or dropped with its runtime worker still
//! running, and a panic hook. Each must run the future to its output (blocking where blocking is
//! allowed), never deadlock and never turn into a second panic. Every wait is bounded.

use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use hivekit_runtime::{execute, spawn, try_execute};

const BOUND: Duration = Duration::from_secs(5);

/// The panic hook is process-wide: tests that panic on purpose take turns.
static HOOK: Mutex<()> = Mutex::new(());

/// A future that needs the runtime: it yields, then sleeps on a timer.
async fn needs_the_runtime(value: u32) -> u32 {
    tokio::task::yield_now().await;
    tokio::time::sleep(Duration::from_millis(1)).await;
    value
}

/// On drop, runs `needs_the_runtime` through `try_execute` and reports what it got.
struct Cleanup {
    value: u32,
    report: mpsc::Sender<Result<u32, String>>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let answer = panic::catch_unwind(AssertUnwindSafe(|| {
            try_execute(needs_the_runtime(self.value)).map_err(|error| error.to_string())
        }))
        .unwrap_or_else(|_| Err("execute panicked inside drop".to_string()));
        let _ = self.report.send(answer);
    }
}

/// Runs `case` on its own thread, so that a hang fails the test instead of blocking it.
fn bounded<T: Send + 'static>(case: impl FnOnce() -> T + Send + 'static) -> T {
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        let _ = sender.send(panic::catch_unwind(AssertUnwindSafe(case)));
    });
    match receiver.recv_timeout(BOUND) {
        Ok(Ok(output)) => output,
        Ok(Err(payload)) => panic::resume_unwind(payload),
        Err(_) => panic!("the case hung"),
    }
}

#[test]
fn a_drop_at_the_end_of_an_executed_future_executes_its_own_future() {
    let answer = bounded(|| {
        let (report, answers) = mpsc::channel();
        let outer = execute(async move {
            let cleanup = Cleanup { value: 7, report };
            tokio::task::yield_now().await;
            drop(cleanup);
            3
        });
        (outer, answers.recv_timeout(BOUND).expect("drop ran"))
    });
    assert_eq!(answer, (3, Ok(7)));
}

#[test]
fn a_drop_during_the_unwinding_of_an_executed_future_executes_its_own_future() {
    let _turn = HOOK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let answer = bounded(|| {
        let (report, answers) = mpsc::channel();
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
            execute(async move {
                let _cleanup = Cleanup { value: 11, report };
                tokio::task::yield_now().await;
                panic!("the future failed");
            })
        }));
        let payload = outcome.expect_err("the future's panic reaches the caller");
        let message = payload
            .downcast_ref::<&str>()
            .map(ToString::to_string)
            .unwrap_or_default();
        (message, answers.recv_timeout(BOUND).expect("drop ran"))
    });
    assert_eq!(answer, ("the future failed".to_string(), Ok(11)));
}

#[test]
fn a_drop_in_an_aborted_global_task_executes_its_own_future() {
    let answer = bounded(|| {
        let (report, answers) = mpsc::channel();
        let (started, running) = mpsc::channel();
        let task = spawn(async move {
            let _cleanup = Cleanup { value: 13, report };
            let _ = started.send(());
            std::future::pending::<()>().await;
        });
        running.recv_timeout(BOUND).expect("the task started");
        task.abort();
        let joined = execute(task);
        assert!(joined.unwrap_err().is_cancelled());
        answers.recv_timeout(BOUND).expect("drop ran")
    });
    assert_eq!(answer, Ok(13));
}

#[test]
fn a_drop_in_a_finished_global_task_executes_its_own_future() {
    let answer = bounded(|| {
        let (report, answers) = mpsc::channel();
        let task = spawn(async move {
            let cleanup = Cleanup { value: 17, report };
            tokio::task::yield_now().await;
            drop(cleanup);
            5
        });
        (
            execute(task).expect("the task ends"),
            answers.recv_timeout(BOUND).expect("drop ran"),
        )
    });
    assert_eq!(answer, (5, Ok(17)));
}

#[test]
fn a_panic_hook_that_executes_a_future_runs_it_and_the_panic_still_reaches_the_caller() {
    let _turn = HOOK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let (report, answers) = mpsc::channel::<Result<u32, String>>();
    let report = Mutex::new(report);
    let previous = panic::take_hook();
    panic::set_hook(Box::new(move |_info| {
        let answer = panic::catch_unwind(|| {
            try_execute(needs_the_runtime(19)).map_err(|error| error.to_string())
        })
        .unwrap_or_else(|_| Err("execute panicked inside the hook".to_string()));
        let _ = report.lock().unwrap().send(answer);
    }));
    let outcome = bounded(|| {
        let plain = panic::catch_unwind(|| panic!("outside any future")).is_err();
        let in_future = panic::catch_unwind(AssertUnwindSafe(|| {
            execute(async {
                tokio::task::yield_now().await;
                panic!("inside a future")
            })
        }))
        .is_err();
        let in_task = execute(spawn(async {
            tokio::task::yield_now().await;
            panic!("inside a task")
        }))
        .unwrap_err()
        .is_panic();
        (plain, in_future, in_task)
    });
    panic::set_hook(previous);
    assert_eq!(outcome, (true, true, true));
    let seen: Vec<_> = (0..3)
        .map(|_| answers.recv_timeout(BOUND).expect("the hook ran"))
        .collect();
    assert_eq!(seen, [Ok(19), Ok(19), Ok(19)]);
}

#[test]
fn a_spawned_task_that_executes_a_future_spawning_more_tasks_completes() {
    let answer = bounded(|| {
        execute(spawn(async {
            // Re-entered from a worker of the global runtime: waits in `block_in_place`.
            let inner = execute(async {
                let tasks: Vec<_> = (0..8_u32)
                    .map(|index| spawn(needs_the_runtime(index)))
                    .collect();
                let mut sum = 0;
                for task in tasks {
                    sum += task.await.unwrap();
                }
                sum
            });
            inner + needs_the_runtime(100).await
        }))
        .expect("the task ends")
    });
    assert_eq!(answer, 28 + 100);
}
