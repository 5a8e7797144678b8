//! Timers once the global runtime is shut down: a sleep registered on the global timer answers
//! `poll_sleep` with `Err(ShutDown)` (not tokio's panic), a runtime with its own timer keeps it,
//! and where no timer is left `sleep` panics as documented. Own binary, one test: shutdown is
//! process-wide.

use std::pin::Pin;
use std::sync::mpsc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use hivekit_runtime::{poll_sleep, shutdown, sleep, RuntimeError};
use tokio::time::Sleep;

fn poll_once(sleep: Pin<&mut Sleep>) -> Result<Poll<()>, RuntimeError> {
    poll_sleep(sleep, &mut Context::from_waker(Waker::noop()))
}

fn panic_of<T>(body: impl FnOnce() -> T) -> Option<String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(body))
        .err()
        .map(|panic| hivekit_runtime::panic_message(&*panic))
}

fn scenario() {
    // A runtime without timers: hivekit's sleep borrows the global runtime's timer.
    let no_timers = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut borrowed = Box::pin({
        let _entered = no_timers.enter();
        sleep(Duration::from_secs(3600))
    });
    assert!(matches!(poll_once(borrowed.as_mut()), Ok(Poll::Pending)));
    // A thread that used `execute` sits in the global runtime's context.
    assert_eq!(hivekit_runtime::execute(async { 1 }), 1);

    shutdown(Duration::from_secs(1)).unwrap();

    // The registered sleep's timer is gone: a typed answer, not a panic.
    let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        poll_once(borrowed.as_mut())
    }));
    assert!(
        matches!(answer, Ok(Err(RuntimeError::ShutDown))),
        "a sleep on the stopped global timer: {:?}",
        answer.map_err(|panic| hivekit_runtime::panic_message(&*panic))
    );

    // Made after the shutdown in the stopped global runtime's context: the same answer.
    let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut late = Box::pin(sleep(Duration::from_millis(1)));
        poll_once(late.as_mut())
    }));
    assert!(
        matches!(answer, Ok(Err(RuntimeError::ShutDown))),
        "a sleep made after shutdown on a thread in the global context: {:?}",
        answer.map_err(|panic| hivekit_runtime::panic_message(&*panic))
    );

    // A runtime with its own timer keeps it.
    let timed = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    timed.block_on(async { sleep(Duration::from_millis(2)).await });

    // No timer anywhere: `sleep` panics (inside a runtime without timers, and on a fresh thread
    // outside every runtime).
    let message = panic_of(|| {
        let _entered = no_timers.enter();
        sleep(Duration::from_millis(1))
    });
    assert!(
        message.is_some(),
        "sleep in a timer-less runtime after shutdown did not panic"
    );
    let message = std::thread::spawn(|| panic_of(|| sleep(Duration::from_millis(1))))
        .join()
        .unwrap();
    assert!(
        message.is_some(),
        "sleep outside every runtime after shutdown did not panic"
    );
}

#[test]
fn after_shutdown_a_global_timer_sleep_answers_shut_down_and_own_timers_keep_working() {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let outcome = std::panic::catch_unwind(scenario)
            .map_err(|panic| hivekit_runtime::panic_message(&*panic));
        let _ = sender.send(outcome);
    });
    match receiver.recv_timeout(Duration::from_secs(30)) {
        Ok(Ok(())) => {}
        Ok(Err(message)) => panic!("{message}"),
        Err(_) => panic!("the scenario hung"),
    }
}
