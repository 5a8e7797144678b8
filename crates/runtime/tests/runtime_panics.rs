//! A panic inside an executed future reaches the caller with its payload; the runtime survives.

mod support;

use std::panic::{catch_unwind, AssertUnwindSafe};

use hivekit_runtime::{execute, spawn};
use support::pending_once;

#[derive(Debug, PartialEq)]
struct Payload(u32);

fn payload_of(run: impl FnOnce()) -> Box<dyn std::any::Any + Send> {
    catch_unwind(AssertUnwindSafe(run)).expect_err("the future panicked")
}

#[test]
fn panic_on_the_first_poll_keeps_its_payload() {
    let payload = payload_of(|| {
        execute(async { std::panic::panic_any(Payload(1)) });
    });
    assert_eq!(payload.downcast_ref::<Payload>(), Some(&Payload(1)));
    assert_eq!(execute(async { 1 }), 1);
}

#[test]
fn panic_after_blocking_keeps_its_payload() {
    let payload = payload_of(|| {
        execute(async {
            pending_once(()).await;
            std::panic::panic_any(Payload(2))
        });
    });
    assert_eq!(payload.downcast_ref::<Payload>(), Some(&Payload(2)));
    assert_eq!(execute(pending_once(2)), 2);
}

#[test]
fn panic_with_a_message_keeps_the_message() {
    let agent = std::hint::black_box(7);
    let payload = payload_of(|| {
        execute(async move {
            pending_once(()).await;
            panic!("agent {agent} failed")
        });
    });
    assert_eq!(
        payload.downcast_ref::<String>().map(String::as_str),
        Some("agent 7 failed")
    );
    let payload = payload_of(|| {
        execute(async {
            pending_once(()).await;
            panic!("static message")
        });
    });
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"static message"));
}

#[test]
fn panic_inside_execute_on_a_global_worker_reaches_that_task() {
    let task = spawn(async {
        catch_unwind(AssertUnwindSafe(|| {
            execute(async {
                pending_once(()).await;
                std::panic::panic_any(Payload(3))
            })
        }))
        .map_err(|payload| payload.downcast_ref::<Payload>().map(|p| p.0))
    });
    assert_eq!(execute(task).unwrap(), Err(Some(3)));
    // The worker that unwound is still usable, and so is everything else.
    let again = spawn(async { execute(pending_once(4)) });
    assert_eq!(execute(again).unwrap(), 4);
}

#[test]
fn runtime_survives_many_panics_from_many_threads() {
    let threads: Vec<_> = (0..4)
        .map(|thread| {
            std::thread::spawn(move || {
                for round in 0..25u32 {
                    let payload = payload_of(|| {
                        execute(async move {
                            if round % 2 == 0 {
                                pending_once(()).await;
                            }
                            std::panic::panic_any(Payload(thread * 100 + round))
                        });
                    });
                    assert_eq!(
                        payload.downcast_ref::<Payload>(),
                        Some(&Payload(thread * 100 + round))
                    );
                }
                execute(pending_once(thread))
            })
        })
        .collect();
    let sum: u32 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(sum, 6);
}
