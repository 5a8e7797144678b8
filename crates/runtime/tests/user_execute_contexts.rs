//! `execute` / `try_execute` from every place a user calls them: a plain thread, a multi-thread
//! worker, inside a current-thread runtime, nested, with a panicking future; and `configure`
//! after first use. Every wait is bounded: each case runs on its own thread, joined with a timeout.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use hivekit_runtime::{configure, execute, try_execute, RuntimeConfig, RuntimeError};

/// Runs `case` on a fresh thread and returns its result, failing the test if it takes over 5 s.
fn bounded<T: Send + 'static>(case: impl FnOnce() -> T + Send + 'static) -> std::thread::Result<T> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(case));
        let _ = sender.send(result);
    });
    receiver
        .recv_timeout(Duration::from_secs(5))
        .expect("the case hung")
}

async fn timer_then(value: u32) -> u32 {
    tokio::time::sleep(Duration::from_millis(2)).await;
    value
}

#[test]
fn from_a_plain_thread_a_future_with_timers_and_tasks_completes() {
    let out = bounded(|| {
        execute(async {
            let task = tokio::spawn(timer_then(40));
            task.await.unwrap() + timer_then(2).await
        })
    })
    .unwrap();
    assert_eq!(out, 42);
}

#[test]
fn from_a_multi_thread_worker_it_waits_without_deadlocking() {
    let out = bounded(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            // On the one worker of the user's runtime, then in its block_on thread.
            let on_worker = tokio::spawn(async { execute(timer_then(7)) })
                .await
                .unwrap();
            let in_block_on = execute(timer_then(8));
            on_worker + in_block_on
        })
    })
    .unwrap();
    assert_eq!(out, 15);
}

#[test]
fn inside_a_current_thread_runtime_try_execute_refuses_without_polling() {
    let (refused, polls) = bounded(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let polls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&polls);
        let refused = runtime.block_on(async move {
            try_execute(async move {
                counted.fetch_add(1, Ordering::SeqCst);
                timer_then(1).await
            })
        });
        (refused, polls.load(Ordering::SeqCst))
    })
    .unwrap();
    assert!(
        matches!(refused, Err(RuntimeError::WouldDeadlock)),
        "{refused:?}"
    );
    assert_eq!(polls, 0, "documented: the future is dropped unpolled");
}

#[test]
fn inside_a_current_thread_runtime_execute_panics_with_the_error_message() {
    let payload = bounded(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async { execute(timer_then(1)) })
    })
    .unwrap_err();
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap();
    assert_eq!(message, RuntimeError::WouldDeadlock.to_string());
}

#[test]
fn inside_a_current_thread_task_and_spawn_blocking() {
    let (refused, allowed) = bounded(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let refused = tokio::spawn(async { try_execute(timer_then(1)) })
                .await
                .unwrap();
            let allowed = tokio::task::spawn_blocking(|| try_execute(timer_then(2)))
                .await
                .unwrap();
            (refused, allowed)
        })
    })
    .unwrap();
    assert!(
        matches!(refused, Err(RuntimeError::WouldDeadlock)),
        "{refused:?}"
    );
    assert_eq!(allowed.unwrap(), 2);
}

#[test]
fn nested_execute_completes() {
    let out = bounded(|| {
        execute(async {
            let inner = execute(timer_then(3));
            let task = tokio::spawn(async { execute(timer_then(4)) });
            inner + task.await.unwrap() + timer_then(5).await
        })
    })
    .unwrap();
    assert_eq!(out, 12);
}

#[test]
fn a_panicking_future_reaches_the_caller_with_its_payload_and_the_runtime_lives_on() {
    for ready_at_once in [true, false] {
        let payload = bounded(move || {
            execute(async move {
                if !ready_at_once {
                    timer_then(1).await;
                }
                std::panic::panic_any(17_u32);
            })
        })
        .unwrap_err();
        assert_eq!(
            payload.downcast_ref::<u32>(),
            Some(&17),
            "ready {ready_at_once}"
        );
        assert_eq!(bounded(|| execute(timer_then(9))).unwrap(), 9);
    }
}

#[test]
fn configure_after_first_use_is_refused() {
    let result = bounded(|| {
        execute(timer_then(1));
        configure(RuntimeConfig::default())
    })
    .unwrap();
    assert!(
        matches!(result, Err(RuntimeError::AlreadyInitialized)),
        "{result:?}"
    );
}

#[test]
fn inside_a_current_thread_runtime_even_a_ready_future_is_refused_on_a_fresh_thread() {
    let (refused, polls) = bounded(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let polls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&polls);
        let refused = runtime.block_on(async move {
            try_execute(async move {
                counted.fetch_add(1, Ordering::SeqCst);
                1
            })
        });
        (refused, polls.load(Ordering::SeqCst))
    })
    .unwrap();
    assert!(
        matches!(refused, Err(RuntimeError::WouldDeadlock)),
        "{refused:?}"
    );
    assert_eq!(polls, 0, "documented: dropped unpolled (the fast-path exception needs a thread that used execute before)");
}

#[test]
fn on_a_thread_that_used_execute_a_current_thread_runtime_gets_the_documented_exception() {
    let (ready, pending, polls) = bounded(|| {
        assert_eq!(execute(async { 0 }), 0);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let polls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&polls);
        runtime.block_on(async move {
            let ready = try_execute(async { 1 });
            let pending = try_execute(async move {
                counted.fetch_add(1, Ordering::SeqCst);
                timer_then(2).await
            });
            (ready, pending, polls.load(Ordering::SeqCst))
        })
    })
    .unwrap();
    assert_eq!(ready.unwrap(), 1, "a future ready at once is run");
    assert!(
        matches!(pending, Err(RuntimeError::WouldDeadlock)),
        "{pending:?}"
    );
    assert_eq!(polls, 1, "polled once, then dropped");
}

#[test]
fn a_future_panicking_inside_execute_on_a_worker_fails_that_task_only() {
    let (payload, after) = bounded(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let failed = tokio::spawn(async {
                execute(async {
                    timer_then(1).await;
                    std::panic::panic_any(23_u32)
                })
            })
            .await
            .unwrap_err();
            let payload = failed
                .into_panic()
                .downcast::<u32>()
                .map(|value| *value)
                .ok();
            let after = tokio::spawn(async { execute(timer_then(4)) })
                .await
                .unwrap();
            (payload, after)
        })
    })
    .unwrap();
    assert_eq!(payload, Some(23));
    assert_eq!(after, 4);
}
