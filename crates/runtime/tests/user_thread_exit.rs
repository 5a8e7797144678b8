//! `try_execute` from a thread-local destructor while the thread exits: an answer (the output
//! or `ThreadLocalDestroyed`), never a panic or a hang, on a thread that used the runtime
//! before and on one that did not.

use std::cell::RefCell;
use std::sync::mpsc;
use std::time::Duration;

use hivekit_runtime::{execute, try_execute, RuntimeError};

type Answer = std::thread::Result<Result<u32, String>>;

struct OnExit(mpsc::Sender<Answer>);

impl Drop for OnExit {
    fn drop(&mut self) {
        let answer = std::panic::catch_unwind(|| {
            try_execute(async {
                tokio::task::yield_now().await;
                tokio::time::sleep(Duration::from_millis(1)).await;
                5
            })
            .map_err(|error| match error {
                RuntimeError::ThreadLocalDestroyed => "destroyed".to_string(),
                other => other.to_string(),
            })
        });
        let _ = self.0.send(answer);
    }
}

thread_local! {
    static GUARD: RefCell<Option<OnExit>> = const { RefCell::new(None) };
}

fn exit_answer(used_before: bool) -> Answer {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        if used_before {
            assert_eq!(execute(async { 1 }), 1);
        }
        GUARD.with(|guard| *guard.borrow_mut() = Some(OnExit(sender)));
    });
    receiver
        .recv_timeout(Duration::from_secs(5))
        .expect("the destructor hung or never ran")
}

#[test]
fn try_execute_in_a_thread_local_destructor_answers_without_panicking() {
    for used_before in [false, true] {
        match exit_answer(used_before) {
            Ok(Ok(5)) => {}
            Ok(Err(reason)) => assert_eq!(reason, "destroyed", "used before {used_before}"),
            Ok(Ok(other)) => panic!("used before {used_before}: output {other}"),
            Err(payload) => panic!(
                "used before {used_before}: panicked: {:?}",
                payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            ),
        }
    }
}
