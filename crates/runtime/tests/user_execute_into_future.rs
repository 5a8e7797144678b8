//! `execute` and `try_execute` take what `.await` takes: anything that is `IntoFuture` (a request
//! builder, say), as pollster's `block_on` does, on the fast path and on the waiting path.

use std::future::IntoFuture;
use std::time::Duration;

use hivekit_runtime::{execute, try_execute};

/// A builder that becomes a future only when run, like a client's request builder.
struct Request {
    wait: Option<Duration>,
    answer: u32,
}

impl IntoFuture for Request {
    type Output = u32;
    type IntoFuture = std::pin::Pin<Box<dyn std::future::Future<Output = u32> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            if let Some(wait) = self.wait {
                tokio::time::sleep(wait).await;
            }
            self.answer
        })
    }
}

#[test]
fn a_builder_ready_at_once_is_run_on_the_fast_path() {
    let answer = execute(Request {
        wait: None,
        answer: 7,
    });
    assert_eq!(answer, 7);
}

#[test]
fn a_builder_that_waits_is_run_to_its_end() {
    let answer = try_execute(Request {
        wait: Some(Duration::from_millis(5)),
        answer: 9,
    });
    assert_eq!(answer.ok(), Some(9));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_builder_is_run_from_a_worker_too() {
    let answer = execute(Request {
        wait: Some(Duration::from_millis(5)),
        answer: 11,
    });
    assert_eq!(answer, 11);
}
