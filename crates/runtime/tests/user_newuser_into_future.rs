//! A new user's sync code calling an async client through `hivekit_runtime::execute`
//! (`hivekit::runtime::execute` in the facade), which takes what `.await` takes: a future, or a
//! request builder that turns into one (`IntoFuture`). In the runtime crate rather than the
//! facade because the builder spawns tokio tasks, and the facade has no tokio dev-dependency.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_runtime::{execute, spawn_blocking, try_execute};

/// A request builder, as HTTP and database clients offer: options set by chained calls, sent by
/// awaiting it.
#[derive(Debug, Clone)]
struct Lookup {
    word: &'static str,
    delay: Duration,
    on_a_task: bool,
}

impl Lookup {
    fn new(word: &'static str) -> Self {
        Self {
            word,
            delay: Duration::ZERO,
            on_a_task: false,
        }
    }

    /// Answers only after `delay` (a pending future, not the bridge's fast path).
    fn slow(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Runs the lookup on a tokio task spawned by `into_future` itself, as some clients do.
    fn on_a_task(mut self) -> Self {
        self.on_a_task = true;
        self
    }
}

impl IntoFuture for Lookup {
    type Output = usize;
    type IntoFuture = Pin<Box<dyn Future<Output = usize> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        let work = async move {
            if !self.delay.is_zero() {
                tokio::time::sleep(self.delay).await;
            }
            self.word.len()
        };
        if self.on_a_task {
            // Needs a tokio context when the builder is turned into a future.
            let task = tokio::spawn(work);
            Box::pin(async move { task.await.expect("the lookup task ran") })
        } else {
            Box::pin(work)
        }
    }
}

#[test]
fn execute_sends_a_request_builder_from_sync_code() {
    assert_eq!(execute(Lookup::new("hive")), 4);
    assert_eq!(
        execute(Lookup::new("swarm").slow(Duration::from_millis(5))),
        5
    );
    assert_eq!(try_execute(Lookup::new("agents")).expect("not refused"), 6);
    // A plain future still works, and so does a builder awaited inside one.
    assert_eq!(execute(async { Lookup::new("bee").await * 2 }), 6);
}

#[test]
fn into_future_runs_inside_the_runtime_on_a_fresh_thread() {
    // A thread that never called `execute` before: the builder's `into_future` spawns a tokio
    // task, which needs the runtime's context.
    let answer = std::thread::spawn(|| execute(Lookup::new("queen").on_a_task()))
        .join()
        .expect("no panic: into_future ran inside the runtime");
    assert_eq!(answer, 5);
    let slow = std::thread::spawn(|| {
        try_execute(
            Lookup::new("drone")
                .on_a_task()
                .slow(Duration::from_millis(5)),
        )
    })
    .join()
    .expect("no panic");
    assert_eq!(slow.expect("not refused"), 5);
}

#[test]
fn execute_takes_a_builder_on_a_blocking_thread() {
    let task = spawn_blocking(|| {
        execute(
            Lookup::new("comb")
                .on_a_task()
                .slow(Duration::from_millis(2)),
        )
    });
    assert_eq!(execute(task).expect("the blocking task ran"), 4);
}

/// A builder that counts the times it was turned into a future.
struct Counted(Arc<AtomicUsize>);

impl IntoFuture for Counted {
    type Output = ();
    type IntoFuture = std::future::Ready<()>;

    fn into_future(self) -> Self::IntoFuture {
        self.0.fetch_add(1, Ordering::SeqCst);
        std::future::ready(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_current_thread_runtime_refuses_before_turning_the_builder() {
    // On a thread driving a current-thread scheduler the bridge refuses (it would deadlock); the
    // builder is not turned into a future there.
    let turned = Arc::new(AtomicUsize::new(0));
    let refused = try_execute(Counted(turned.clone()));
    assert!(
        matches!(refused, Err(hivekit_runtime::RuntimeError::WouldDeadlock)),
        "{refused:?}"
    );
    assert_eq!(
        turned.load(Ordering::SeqCst),
        0,
        "into_future ran for a refused call"
    );
    // The same builder runs from a plain thread.
    let counter = turned.clone();
    std::thread::spawn(move || execute(Counted(counter)))
        .join()
        .expect("no panic");
    assert_eq!(turned.load(Ordering::SeqCst), 1);
}
