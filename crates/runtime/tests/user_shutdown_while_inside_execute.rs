//! `shutdown` while other threads wait inside `try_execute` (on a timer, on a task's JoinHandle, on a channel a task holds): each caller gets its output or `ShutDown` in bounded time, never a panic (each case in a child process: shutdown is process-wide).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use hivekit_runtime::{
    configure, panic_message, shutdown, spawn, try_execute, RuntimeConfig, RuntimeError,
};

const CASE_ENV: &str = "HIVEKIT_USER_SHUTDOWN_INSIDE_EXECUTE_CASE";

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
    let Ok(output) = finished.recv_timeout(Duration::from_secs(30)) else {
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

type Answer<T> = Result<Result<T, RuntimeError>, String>;

/// Starts `threads` threads that each call `try_execute(make())` and report when they are about to
/// wait (after `started` is sent from inside the future); then shuts the runtime down and collects
/// every answer, failing if one does not come within seconds.
fn shutdown_under<T, F>(threads: usize, make: impl Fn(mpsc::Sender<()>) -> F) -> Vec<Answer<T>>
where
    T: Send + 'static,
    F: std::future::Future<Output = T> + Send + 'static,
{
    configure(RuntimeConfig {
        worker_threads: Some(2),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let (started_tx, started) = mpsc::channel();
    let (answer_tx, answers) = mpsc::channel();
    for _ in 0..threads {
        let future = make(started_tx.clone());
        let answer_tx = answer_tx.clone();
        std::thread::spawn(move || {
            let answer = catch_unwind(AssertUnwindSafe(|| try_execute(future)))
                .map_err(|panic| panic_message(&*panic));
            let _ = answer_tx.send(answer);
        });
    }
    for _ in 0..threads {
        started
            .recv_timeout(Duration::from_secs(10))
            .expect("a caller never started waiting");
    }
    let stopper = std::thread::spawn(|| shutdown(Duration::from_millis(300)));
    let mut collected = Vec::new();
    for _ in 0..threads {
        collected.push(
            answers
                .recv_timeout(Duration::from_secs(10))
                .expect("a caller inside try_execute never returned after shutdown"),
        );
    }
    let (stopped_tx, stopped) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = stopped_tx.send(stopper.join());
    });
    let stopped = stopped
        .recv_timeout(Duration::from_secs(10))
        .expect("shutdown hung");
    assert!(matches!(stopped, Ok(Ok(()))), "shutdown: {stopped:?}");
    collected
}

#[test]
fn callers_waiting_on_a_timer_get_shut_down_not_a_panic() {
    if !in_child("callers_waiting_on_a_timer_get_shut_down_not_a_panic") {
        return;
    }
    let answers = shutdown_under(3, |started| async move {
        tokio::task::yield_now().await;
        let _ = started.send(());
        tokio::time::sleep(Duration::from_secs(600)).await;
        "slept"
    });
    for answer in answers {
        assert!(
            matches!(answer, Ok(Err(RuntimeError::ShutDown))),
            "a caller waiting on a timer across shutdown: expected Err(ShutDown), got {answer:?}"
        );
    }
}

#[test]
fn callers_waiting_on_a_hivekit_sleep_get_shut_down_not_a_panic() {
    if !in_child("callers_waiting_on_a_hivekit_sleep_get_shut_down_not_a_panic") {
        return;
    }
    let answers = shutdown_under(2, |started| async move {
        tokio::task::yield_now().await;
        let _ = started.send(());
        hivekit_runtime::sleep(Duration::from_secs(600)).await;
        "slept"
    });
    for answer in answers {
        assert!(
            matches!(answer, Ok(Err(RuntimeError::ShutDown))),
            "a caller waiting on hivekit_runtime::sleep across shutdown: expected Err(ShutDown), got {answer:?}"
        );
    }
}

#[test]
fn callers_waiting_on_a_tasks_join_handle_or_channel_complete() {
    if !in_child("callers_waiting_on_a_tasks_join_handle_or_channel_complete") {
        return;
    }
    let answers = shutdown_under(4, |started| async move {
        let (held, watch) = tokio::sync::oneshot::channel::<()>();
        let forever = spawn(async move {
            let _held = held;
            std::future::pending::<()>().await;
        });
        let _ = started.send(());
        // Both end when shutdown drops the task: the channel closes, the handle is cancelled.
        let closed = watch.await.is_err();
        let joined = forever.await;
        (closed, joined.map_err(|error| error.is_cancelled()))
    });
    for answer in answers {
        match answer {
            Ok(Ok((true, Err(true)))) | Ok(Err(RuntimeError::ShutDown)) => {}
            other => panic!("expected (closed, cancelled) or Err(ShutDown), got {other:?}"),
        }
    }
}
