//! `execute` and `try_execute` from every kind of thread, on the default global runtime.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_runtime::{execute, spawn, spawn_blocking, try_execute, RuntimeError};
use support::{pending_once, WokenBeforePending, WokenFromAnotherThread};
use tokio::runtime::Builder;

#[test]
fn smoke_ready_future_from_plain_thread() {
    assert_eq!(execute(async { 7 }), 7);
}

#[test]
fn pending_future_from_plain_thread() {
    assert_eq!(execute(pending_once("later")), "later");
}

#[test]
fn first_poll_may_spawn_and_create_timers() {
    // Run on a fresh thread so the very first call (which enters the context) is the one tested.
    let result = std::thread::spawn(|| {
        execute(async {
            let task = tokio::spawn(async { 20 });
            tokio::time::sleep(Duration::from_millis(1)).await;
            task.await.unwrap() + 1
        })
    })
    .join()
    .unwrap();
    assert_eq!(result, 21);
}

#[test]
fn ready_future_may_spawn_on_first_poll_of_a_fresh_thread() {
    // A ready future that spawns: the task must land on the global runtime.
    let handle = std::thread::spawn(|| execute(async { (tokio::spawn(async { 5 }),) }).0)
        .join()
        .unwrap();
    assert_eq!(execute(handle).unwrap(), 5);
}

#[test]
fn wake_sent_before_pending_is_not_lost() {
    // Polled once on the fast path, then once more by block_on: the same future, twice.
    assert_eq!(execute(WokenBeforePending::default()), 2);
}

#[test]
fn pending_future_woken_from_another_thread_completes() {
    assert!(execute(WokenFromAnotherThread::default()) >= 2);
}

#[test]
fn the_same_future_is_polled_across_the_fast_and_slow_path() {
    let polls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&polls);
    let output = execute(async move {
        counted.fetch_add(1, Ordering::SeqCst);
        tokio::task::yield_now().await;
        counted.fetch_add(1, Ordering::SeqCst);
        "finished"
    });
    assert_eq!(output, "finished");
    assert_eq!(polls.load(Ordering::SeqCst), 2, "the body ran exactly once");
}

#[test]
fn futures_that_are_not_send_are_fine() {
    let shared = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let inside = std::rc::Rc::clone(&shared);
    execute(async move {
        inside.borrow_mut().push(1);
        tokio::task::yield_now().await;
        inside.borrow_mut().push(2);
    });
    assert_eq!(*shared.borrow(), [1, 2]);
}

#[test]
fn nested_execute_inside_execute() {
    let output = execute(async { execute(async { 3 }) + execute(pending_once(4)) });
    assert_eq!(output, 7);
}

#[test]
fn nested_execute_while_the_outer_one_blocks() {
    // The outer future is pending first, so the inner calls run inside the outer `block_on`.
    let output = execute(async {
        pending_once(()).await;
        execute(pending_once(5)) + execute(async { 1 })
    });
    assert_eq!(output, 6);
}

#[test]
fn inside_a_multi_thread_runtime_block_on() {
    let runtime = Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let output = runtime.block_on(async { execute(pending_once(11)) + execute(async { 1 }) });
    assert_eq!(output, 12);
}

#[test]
fn inside_a_multi_thread_worker_other_tasks_keep_running() {
    // One worker: if execute blocked it without block_in_place, the sender task could never run.
    let runtime = Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let output = runtime.block_on(async {
        tokio::spawn(async {
            let (sender, receiver) = tokio::sync::oneshot::channel();
            tokio::spawn(async move { sender.send(99).unwrap() });
            execute(receiver).unwrap()
        })
        .await
        .unwrap()
    });
    assert_eq!(output, 99);
}

#[test]
fn inside_the_global_runtimes_own_tasks() {
    let task = spawn(async {
        let inner = spawn(async { 8 });
        execute(async { inner.await.unwrap() }) + execute(pending_once(1))
    });
    assert_eq!(execute(task).unwrap(), 9);
}

#[test]
fn inside_a_current_thread_runtime_is_refused_ready_or_not() {
    let runtime = Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        assert!(matches!(
            try_execute(async { 1 }),
            Err(RuntimeError::WouldDeadlock)
        ));
        assert!(matches!(
            try_execute(pending_once(1)),
            Err(RuntimeError::WouldDeadlock)
        ));
        // And from a task of that runtime, not only its block_on future.
        let refused = tokio::spawn(async { try_execute(async { 2 }) })
            .await
            .unwrap();
        assert!(matches!(refused, Err(RuntimeError::WouldDeadlock)));
    });
}

#[test]
fn the_refused_future_is_never_polled() {
    let polled = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&polled);
    let runtime = Builder::new_current_thread().build().unwrap();
    let refused = runtime.block_on(async move {
        try_execute(async move {
            seen.fetch_add(1, Ordering::SeqCst);
        })
    });
    assert!(matches!(refused, Err(RuntimeError::WouldDeadlock)));
    assert_eq!(polled.load(Ordering::SeqCst), 0);
}

#[test]
fn execute_inside_a_current_thread_runtime_panics_with_the_error_message() {
    let runtime = Builder::new_current_thread().build().unwrap();
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(async { execute(async { 1 }) })
    }))
    .unwrap_err();
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert_eq!(message, RuntimeError::WouldDeadlock.to_string());
}

#[test]
fn inside_spawn_blocking_of_a_current_thread_runtime() {
    // The blocking pool thread does not drive the scheduler, so blocking there is fine.
    let runtime = Builder::new_current_thread().enable_all().build().unwrap();
    let output = runtime.block_on(async {
        tokio::task::spawn_blocking(|| execute(pending_once(5)) + execute(async { 1 }))
            .await
            .unwrap()
    });
    assert_eq!(output, 6);
}

#[test]
fn inside_spawn_blocking_of_a_multi_thread_runtime() {
    let runtime = Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let output = runtime.block_on(async {
        tokio::task::spawn_blocking(|| execute(pending_once(5)) + execute(async { 2 }))
            .await
            .unwrap()
    });
    assert_eq!(output, 7);
}

#[test]
fn inside_the_global_spawn_blocking() {
    let task = spawn_blocking(|| execute(pending_once(40)) + execute(async { 2 }));
    assert_eq!(execute(task).unwrap(), 42);
}

#[test]
fn inside_a_current_thread_runtime_context_entered_but_not_running() {
    // `Handle::enter` alone does not make this thread a scheduler: blocking is allowed.
    let runtime = Builder::new_current_thread().build().unwrap();
    let _context = runtime.enter();
    assert_eq!(execute(pending_once(3)), 3);
}

#[test]
fn plain_thread_may_use_its_own_runtime_after_execute() {
    std::thread::spawn(|| {
        assert_eq!(execute(async { 1 }), 1);
        // The global context stays entered, yet a private runtime still works on this thread.
        // Nested inside it, the unchecked fast path still completes a ready future (nothing can
        // deadlock), and a future that would have to wait is refused.
        let private = Builder::new_current_thread().build().unwrap();
        let (ready, pending) =
            private.block_on(async { (try_execute(async { 2 }), try_execute(pending_once(2))) });
        assert_eq!(ready.unwrap(), 2);
        assert!(matches!(pending, Err(RuntimeError::WouldDeadlock)));
        assert_eq!(execute(pending_once(3)), 3);
    })
    .join()
    .unwrap();
}

#[test]
fn many_threads_every_execute_returns_its_own_value() {
    let threads = 8;
    let per_thread = 200;
    let total: usize = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|thread| {
                scope.spawn(move || {
                    (0..per_thread)
                        .map(|index| {
                            let value = thread * per_thread + index;
                            if index % 2 == 0 {
                                execute(async move { value })
                            } else {
                                execute(pending_once(value))
                            }
                        })
                        .sum::<usize>()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().unwrap())
            .sum()
    });
    let n = threads * per_thread;
    assert_eq!(total, n * (n - 1) / 2);
}

#[test]
fn every_spawned_task_runs_exactly_once() {
    let runs = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..500)
        .map(|_| {
            let runs = Arc::clone(&runs);
            spawn(async move {
                runs.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    execute(async {
        for task in tasks {
            task.await.unwrap();
        }
    });
    assert_eq!(runs.load(Ordering::SeqCst), 500);
}
