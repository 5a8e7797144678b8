//! Review of 1eb1ff3: `execute` and `try_execute` take any `IntoFuture`, "what `.await` takes".
//! `.await` turns the value into its future where it is awaited, inside the task's runtime; these
//! call `into_future` first thing, before they enter the global runtime's context (a plain thread's
//! first call, a foreign runtime's thread) and before they refuse a call that would deadlock. A
//! builder whose `into_future` starts its work (spawns a task, reads `Handle::current()`, as
//! request builders of tokio clients do) then fails or runs on the wrong runtime, where the same
//! code in an `async` block passed to `execute` works.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hivekit_runtime::{execute, try_execute, RuntimeError};
use tokio::runtime::{Handle, Id};

/// A job builder that spawns its work when turned into a future and returns its outcome.
struct SpawnedJob {
    answer: u32,
}

impl IntoFuture for SpawnedJob {
    type Output = u32;
    type IntoFuture = Pin<Box<dyn Future<Output = u32> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        let answer = self.answer;
        let task = tokio::spawn(async move { answer });
        Box::pin(async move { task.await.expect("the job's task") })
    }
}

/// `execute(async { tokio::spawn(..).await })` works on a plain thread (the docs: the future "may
/// call `tokio::spawn` or create timers"); the same work started by `into_future` must too.
#[test]
fn a_builder_that_spawns_in_into_future_runs_on_a_fresh_plain_thread() {
    let in_async_block = std::thread::spawn(|| {
        execute(async {
            let task = tokio::spawn(async { 5 });
            task.await.unwrap()
        })
    })
    .join();
    assert_eq!(in_async_block.ok(), Some(5), "the async block works");

    let builder = std::thread::spawn(|| execute(SpawnedJob { answer: 6 })).join();
    assert_eq!(
        builder.ok(),
        Some(6),
        "execute(builder) panicked on a plain thread's first call: into_future ran before the \
         global runtime's context was entered"
    );
}

/// Records the runtime whose context `into_future` ran in, and the one the future is polled in.
struct Probe {
    seen: Arc<std::sync::Mutex<Vec<Option<Id>>>>,
}

fn current_id() -> Option<Id> {
    Handle::try_current().ok().map(|handle| handle.id())
}

impl IntoFuture for Probe {
    type Output = ();
    type IntoFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        self.seen.lock().unwrap().push(current_id());
        Box::pin(async move {
            self.seen.lock().unwrap().push(current_id());
        })
    }
}

/// On a thread inside a foreign multi-thread runtime's `block_on` the future is polled in the
/// global runtime's context; its `into_future` ran in the foreign one's.
#[test]
fn into_future_runs_in_the_context_the_future_is_polled_in() {
    let seen: Arc<std::sync::Mutex<Vec<Option<Id>>>> = Arc::default();
    let foreign = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let probe = Probe {
        seen: Arc::clone(&seen),
    };
    std::thread::spawn(move || foreign.block_on(async { execute(probe) }))
        .join()
        .expect("the probe's thread");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[0], seen[1],
        "into_future saw runtime {:?}, its future was polled in {:?}",
        seen[0], seen[1]
    );
}

/// A builder that counts how often it was turned into a future.
struct Counted {
    made: Arc<AtomicUsize>,
}

impl IntoFuture for Counted {
    type Output = ();
    type IntoFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        self.made.fetch_add(1, Ordering::SeqCst);
        Box::pin(async {
            tokio::task::yield_now().await;
        })
    }
}

/// `try_execute` on a current-thread runtime: "`RuntimeError::WouldDeadlock` ...; the future is
/// dropped unpolled". A refused builder was still turned into its future (its work started).
#[test]
fn a_builder_refused_on_a_current_thread_runtime_is_never_turned_into_a_future() {
    let made = Arc::new(AtomicUsize::new(0));
    let local = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let refused = std::thread::spawn({
        let made = Arc::clone(&made);
        move || local.block_on(async { try_execute(Counted { made }) })
    })
    .join()
    .expect("the refusing thread");
    assert!(
        matches!(refused, Err(RuntimeError::WouldDeadlock)),
        "{refused:?}"
    );
    assert_eq!(
        made.load(Ordering::SeqCst),
        0,
        "the refused builder was turned into its future"
    );
}
