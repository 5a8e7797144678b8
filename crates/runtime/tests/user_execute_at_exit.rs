//! `try_execute` from a C `atexit` handler while the process exits (after main's thread-locals are gone): an answer (output, `ThreadLocalDestroyed` or `ShutDown`), never a panic, abort or hang (child process).

use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use hivekit_runtime::{execute, panic_message, try_execute, RuntimeError};

const CASE_ENV: &str = "HIVEKIT_USER_EXECUTE_AT_EXIT_CASE";
const MARKER: &str = "HIVEKIT-AT-EXIT:";

extern "C" {
    fn atexit(callback: extern "C" fn()) -> std::os::raw::c_int;
}

fn report(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{MARKER}{line}");
    let _ = out.flush();
}

extern "C" fn at_exit() {
    // A panic must not cross the C boundary (that aborts): catch it and report it.
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let ready = try_execute(async { 5 });
        let pending = try_execute(async {
            tokio::task::yield_now().await;
            let task = tokio::spawn(async { 6 });
            task.await.unwrap()
        });
        (ready, pending)
    }));
    match outcome {
        Ok((ready, pending)) => {
            let fine = |answer: &Result<i32, RuntimeError>, value: i32| match answer {
                Ok(got) => *got == value,
                Err(RuntimeError::ThreadLocalDestroyed | RuntimeError::ShutDown) => true,
                Err(_) => false,
            };
            if fine(&ready, 5) && fine(&pending, 6) {
                report(&format!("ok {ready:?} {pending:?}"));
            } else {
                report(&format!("wrong {ready:?} {pending:?}"));
            }
        }
        Err(panic) => report(&format!("panicked {}", panic_message(&*panic))),
    }
}

#[test]
fn try_execute_in_an_atexit_handler_answers() {
    if std::env::var_os(CASE_ENV).is_some() {
        // The child: the runtime exists and this process has used it; register the handler.
        assert_eq!(
            execute(async {
                tokio::task::yield_now().await;
                1
            }),
            1
        );
        // SAFETY: registering a plain `extern "C" fn()` with the C library.
        assert_eq!(unsafe { atexit(at_exit) }, 0);
        return;
    }
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "try_execute_in_an_atexit_handler_answers",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CASE_ENV, "1")
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
        panic!("the child process hung at exit");
    };
    let output = output.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = stdout
        .lines()
        .find_map(|line| line.strip_prefix(MARKER))
        .unwrap_or_else(|| panic!("the atexit handler never reported:\n{stdout}\n{stderr}"));
    assert!(line.starts_with("ok "), "atexit handler: {line}\n{stderr}");
    assert!(
        output.status.success(),
        "the child exited with {:?}:\n{stdout}\n{stderr}",
        output.status
    );
}
