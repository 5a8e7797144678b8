//! The task helpers the hive and the swarm share: `AbortOnDrop`, `InlineOrSpawned`,
//! `panic_message` and `ConcurrencyLimit`.

use std::future::Future;
use std::num::NonZeroUsize;
use std::panic::catch_unwind;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::stream::{FuturesUnordered, StreamExt};
use hivekit_runtime::{
    panic_message, AbortOnDrop, ConcurrencyLimit, ConcurrencyLimitError, InlineOrSpawned,
};
use tokio::sync::oneshot;

type Work = Pin<Box<dyn Future<Output = u32> + Send>>;

#[tokio::test]
async fn dropping_an_abort_on_drop_guard_aborts_its_task() {
    let (held, watch) = oneshot::channel::<()>();
    let task = AbortOnDrop::new(tokio::spawn(async move {
        let _held = held;
        std::future::pending::<()>().await
    }));
    assert!(!task.is_finished());
    drop(task);
    // The sender lives in the task: it is dropped only when the aborted task is.
    assert!(watch.await.is_err());
}

#[tokio::test]
async fn an_aborted_guard_yields_a_cancelled_join_error() {
    let task = AbortOnDrop::from(tokio::spawn(std::future::pending::<()>()));
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
}

/// Counts the polls of the handle it wraps.
struct Counted(AbortOnDrop<usize>, Arc<AtomicUsize>);

impl Future for Counted {
    type Output = usize;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        self.1.fetch_add(1, Ordering::Relaxed);
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|joined| joined.expect("the task does not panic"))
    }
}

/// A set of many handles (a wide fan's spawned stages), awaited on a worker, polls each handle
/// about twice: when it is added and when its task ends. Each poll taking tokio's cooperative
/// budget made every poll past the budget a deferred wake-up that had the set poll the rest
/// again: 4,096 handles cost about 65,000 polls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_of_many_handles_polls_each_about_twice_not_once_per_budget() {
    const TASKS: usize = 4_096;
    let polls = Arc::new(AtomicUsize::new(0));
    let counted = polls.clone();
    // On a worker, as a run's driver is: there tokio defers the wake-ups of an exhausted budget.
    let sum = tokio::spawn(async move {
        let mut set: FuturesUnordered<Counted> = (0..TASKS)
            .map(|task| {
                Counted(
                    AbortOnDrop::new(tokio::spawn(async move { task })),
                    counted.clone(),
                )
            })
            .collect();
        let mut sum = 0;
        while let Some(task) = set.next().await {
            sum += task;
        }
        sum
    })
    .await
    .expect("the draining task does not panic");
    assert_eq!(
        sum,
        TASKS * (TASKS - 1) / 2,
        "every task's output arrives once"
    );
    let polls = polls.load(Ordering::Relaxed);
    assert!(polls <= 3 * TASKS, "{polls} polls of {TASKS} handles");
}

#[tokio::test]
async fn inline_and_spawned_work_are_awaited_alike() {
    let inline: InlineOrSpawned<Work> = InlineOrSpawned::Inline(Box::pin(async { 1 }));
    let spawned: InlineOrSpawned<Work> = InlineOrSpawned::spawn(async { 2 });
    assert!(!inline.is_spawned());
    assert!(spawned.is_spawned());
    assert_eq!(inline.await.unwrap() + spawned.await.unwrap(), 3);
}

#[tokio::test]
async fn a_spawned_task_that_panics_is_a_join_error_carrying_the_message() {
    let spawned: InlineOrSpawned<Work> =
        InlineOrSpawned::spawn(async { panic!("stage {} exploded", 3) });
    let error = spawned.await.unwrap_err();
    assert!(error.is_panic());
    assert_eq!(panic_message(&*error.into_panic()), "stage 3 exploded");
}

#[test]
fn panic_message_reads_str_and_string_payloads_and_names_any_other() {
    let literal = catch_unwind(|| panic!("plain")).unwrap_err();
    assert_eq!(panic_message(&*literal), "plain");
    let formatted = catch_unwind(|| panic!("agent {}", 7)).unwrap_err();
    assert_eq!(panic_message(&*formatted), "agent 7");
    let other = catch_unwind(|| std::panic::panic_any(7_u8)).unwrap_err();
    assert_eq!(panic_message(&*other), "a panic with a non-string payload");
}

#[test]
fn a_zero_concurrency_limit_is_a_typed_error_naming_the_zero() {
    assert_eq!(ConcurrencyLimit::new(0), Err(ConcurrencyLimitError::Zero));
    assert_eq!(
        ConcurrencyLimit::try_from(0),
        Err(ConcurrencyLimitError::Zero)
    );
    assert_eq!(
        ConcurrencyLimitError::Zero.to_string(),
        "a concurrency limit must be at least 1, got 0"
    );
}

#[test]
fn a_concurrency_limit_converts_from_the_std_types_and_counts_its_slots() {
    assert_eq!(ConcurrencyLimit::default(), ConcurrencyLimit::Unbounded);
    assert_eq!(ConcurrencyLimit::from(None), ConcurrencyLimit::Unbounded);
    let three = NonZeroUsize::new(3).unwrap();
    assert_eq!(
        ConcurrencyLimit::from(Some(three)),
        ConcurrencyLimit::AtMost(three)
    );
    assert_eq!(ConcurrencyLimit::from(three).slots(), 3);
    assert_eq!(ConcurrencyLimit::Unbounded.slots(), usize::MAX);
    assert_eq!(ConcurrencyLimit::Unbounded.get(), None);
    assert_eq!(ConcurrencyLimit::Unbounded.to_string(), "unbounded");
    assert_eq!(ConcurrencyLimit::AtMost(three).to_string(), "at most 3");
}
