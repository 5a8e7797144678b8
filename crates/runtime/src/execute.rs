//! The sync -> async bridge: [`execute`], [`try_execute`], [`spawn`], [`spawn_blocking`].

use std::cell::Cell;
use std::future::{Future, IntoFuture};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::{pin, Pin};
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll, Wake, Waker};

use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::task::JoinHandle;

use crate::global::{global_handle, is_shut_down};
use crate::stats::{bump, bump_fast_path, on_fast_path, Counter, THREAD};
use crate::RuntimeError;

/// Runs `future` to completion on the global runtime and returns its output; callable from any
/// synchronous code. It takes what `.await` takes: a future, or anything that turns into one
/// ([`IntoFuture`], such as a request builder).
///
/// Where it is called from decides how it waits:
///
/// - a plain thread, or a `spawn_blocking` thread of any runtime: blocks the thread on the global
///   runtime;
/// - a worker of a multi-thread tokio runtime (the global one included) or a thread inside a
///   multi-thread runtime's `block_on`: waits inside `tokio::task::block_in_place`, so other tasks
///   keep running and nothing deadlocks;
/// - a thread driving a current-thread runtime: blocking would stop that runtime, so this panics
///   (use [`try_execute`] to get [`RuntimeError::WouldDeadlock`] instead; see there for the one
///   case where a future ready at once is still run).
///
/// The future is first polled once in place, inside the global runtime's context (so it may call
/// `tokio::spawn` or create timers). If that poll finishes it, the result is returned without any
/// wait (the fast path, counted in [`RuntimeStats::fast_path_hits`]); otherwise the same pinned
/// future is polled again at once, still in the global runtime's context and, from then on, within
/// tokio's cooperative budget, and between polls the thread parks on a parker of this call's own
/// (not tokio's per-thread one, which an outer `block_on` on the same thread uses), so no wake-up
/// is lost, this call's or anyone else's. The first poll runs outside the budget (entering it
/// would cost the fast path its speed): a future that loops over always-ready tokio resources from
/// its very start, such as `timeout(d, async { loop { tx.send(1)?; rx.recv().await; } })`, never
/// yields there, so its timeout never fires and it spins its thread for good. Such a future should
/// begin with `tokio::task::yield_now().await`: its later polls are within the budget.
///
/// The first call on a plain thread enters the global runtime's context on that thread and leaves
/// it entered (like a thread the runtime started itself): later calls skip the context switch,
/// which would otherwise cost two shared atomic writes per call. `tokio::runtime::Handle::current()`
/// on that thread then returns the global runtime. Should such a thread later enter another
/// runtime's context (its own `Runtime::block_on`, `Handle::enter`), the first poll runs in that
/// context, since telling contexts apart would cost the fast path its speed; later polls run in
/// the global runtime's context.
///
/// The future is polled on the calling thread only, so it need not be `Send` (an `Rc` or a
/// `RefCell` borrow may live across its awaits). A panic inside it propagates to the caller with
/// its original payload; the runtime is unaffected.
///
/// # Panics
///
/// With the message of the [`RuntimeError`] [`try_execute`] would return: inside a current-thread
/// runtime, when the global runtime cannot be built, or after [`shutdown`](crate::shutdown). Also
/// when `future` panics.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let sum = hivekit_runtime::execute(async {
///     let task = tokio::spawn(async { 40 });
///     tokio::time::sleep(Duration::from_millis(1)).await;
///     task.await.unwrap() + 2
/// });
/// assert_eq!(sum, 42);
/// ```
///
/// [`RuntimeStats::fast_path_hits`]: crate::RuntimeStats::fast_path_hits
// Inlined into the caller, as the fast path's few instructions are meant to be: left to the
// heuristics, an unrelated change to the caller's crate graph (serde_json's features) once moved
// it out of line, 13 -> 37 instructions a call.
#[inline]
#[track_caller]
pub fn execute<F: IntoFuture>(future: F) -> F::Output {
    match try_execute(future) {
        Ok(output) => output,
        Err(error) => panic!("{error}"),
    }
}

/// Like [`execute`], but returns an error instead of panicking when it cannot run the future.
///
/// # Errors
///
/// - [`RuntimeError::WouldDeadlock`] when called on a thread that drives a current-thread tokio
///   runtime (`#[tokio::main(flavor = "current_thread")]`, `#[tokio::test]`, or the global runtime
///   itself when built with [`Flavor::CurrentThread`](crate::Flavor::CurrentThread)); the future is
///   dropped unpolled. Also, for a future not ready on its first poll, wherever else tokio forbids
///   blocking the thread: inside a `LocalSet` (on any runtime), or in a second thread's `block_on`
///   of a current-thread runtime that another thread drives. One exception keeps the fast path free of checks: on a thread that already
///   sits in the global runtime's context (a thread it started, or one `execute` was called on
///   before) and has since started a current-thread runtime of its own, the future is polled once
///   first; if that finishes it, its output is returned (nothing could deadlock), otherwise it is
///   dropped and the error returned.
/// - The errors of [`try_handle`](crate::try_handle) when the global runtime cannot be built.
/// - [`RuntimeError::ThreadLocalDestroyed`] when called from a thread-local destructor after
///   tokio's own thread-local context is gone.
/// - [`RuntimeError::ShutDown`] after [`shutdown`](crate::shutdown), for a future that is not
///   ready on its first poll (one that is still returns its output: it needs no runtime).
///
/// # Examples
///
/// ```
/// use hivekit_runtime::{try_execute, RuntimeError};
///
/// // From synchronous code: fine.
/// assert_eq!(try_execute(async { 1 + 1 })?, 2);
///
/// // From inside a current-thread runtime: refused instead of deadlocking.
/// let local = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// let refused = local.block_on(async {
///     try_execute(async {
///         tokio::task::yield_now().await;
///         1
///     })
/// });
/// assert!(matches!(refused, Err(RuntimeError::WouldDeadlock)));
/// # Ok::<(), RuntimeError>(())
/// ```
#[inline]
pub fn try_execute<F: IntoFuture>(future: F) -> Result<F::Output, RuntimeError> {
    // The fast path, for threads whose context is the global runtime: poll in place, reading
    // nothing but this thread's own state (one `const` thread-local, which also says that the
    // global runtime exists). The shutdown check waits for the slow paths: a future ready at once
    // needs no runtime.
    if !on_fast_path() {
        return try_execute_routed(future);
    }
    let mut future = pin!(future.into_future());
    // After `shutdown` this thread still sits in the stopped runtime's context, and a future that
    // touches its timers or I/O panics inside tokio ("being shutdown"): that is the typed error,
    // not the caller's panic. Catching costs nothing until something panics.
    let polled = match catch_unwind(AssertUnwindSafe(|| poll_once(future.as_mut()))) {
        Ok(polled) => polled,
        Err(panic) => return Err(shut_down_or_resume(panic)),
    };
    match polled {
        Poll::Ready(output) => {
            bump_fast_path();
            Ok(output)
        }
        Poll::Pending => {
            refuse_if_scheduler()?;
            wait_pending(future)
        }
    }
}

/// [`try_execute`] off the fast path: the first call on this thread, a foreign runtime's thread,
/// or a thread-local destructor. The call is routed first, so a refused call never turns its
/// `IntoFuture` into a future, and one that goes on does so in the context its future is first
/// polled in. After `shutdown`, a future ready on its first poll still returns its output (it
/// needs no runtime); any other is refused.
#[inline(never)]
fn try_execute_routed<F: IntoFuture>(future: F) -> Result<F::Output, RuntimeError> {
    let (global, first) = match global_handle() {
        Ok(global) => (Some(global), route(global)?),
        Err(RuntimeError::ShutDown) => (None, FirstPoll::ShutDown),
        Err(error) => return Err(error),
    };
    let context = global
        .filter(|_| first == FirstPoll::EnterGlobal)
        .map(Handle::enter);
    let mut future = pin!(future.into_future());
    let polled = poll_once(future.as_mut());
    drop(context);
    match polled {
        Poll::Ready(output) => {
            bump(Counter::FastPathHits);
            Ok(output)
        }
        Poll::Pending if first == FirstPoll::ShutDown => Err(RuntimeError::ShutDown),
        Poll::Pending => wait_pending(future),
    }
}

/// The rest of a call whose future was pending after its first poll (and whose thread may block):
/// waits for it on the global runtime.
fn wait_pending<F: Future>(future: Pin<&mut F>) -> Result<F::Output, RuntimeError> {
    if is_shut_down() {
        return Err(RuntimeError::ShutDown);
    }
    let global = global_handle()?;
    // `block_in_place` is free where blocking is already allowed (it just calls the closure) and
    // hands this worker's tasks to another thread on a multi-thread worker. Current-thread
    // schedulers were refused before; where tokio still refuses to block (inside a `LocalSet`, a
    // second thread's `block_on` of a current-thread runtime that another thread drives) it panics
    // before running the closure, which has not moved the future yet: that is the typed error.
    // Catching costs nothing until a panic.
    let mut waiting = false;
    let waited = catch_unwind(AssertUnwindSafe(|| {
        tokio::task::block_in_place(|| {
            waiting = true;
            // Counted once the wait begins: a call tokio refuses to block is a refusal
            // (`would_deadlock`), not an execute.
            bump(Counter::SlowPath);
            wait_for(future, global)
        })
    }));
    match waited {
        Ok(output) => Ok(output),
        Err(panic) => Err(refused_or_resume(panic, waiting)),
    }
}

/// Polls `future` until it is ready, in `global`'s context, parking this thread on a parker of
/// this call's own between polls.
///
/// Not one `Handle::block_on` over the whole wait: tokio parks every `block_on` of a thread on one
/// thread-local parker, so a wait on a thread that is itself inside a `block_on` (a
/// `#[tokio::test]` body that joins several futures, one of which calls `execute`) used up wake-ups
/// meant for the outer one, which then parked for good. A parker per call shares nothing with any
/// other wait on the thread. Each poll still runs inside `block_on` (of a future that is ready at
/// once, so tokio's parker is never parked on): that gives the poll the runtime's context and
/// tokio's cooperative budget, which a future looping over always-ready tokio resources (a busy
/// channel under a `timeout`) needs in order to yield.
fn wait_for<F: Future>(mut future: Pin<&mut F>, global: &Handle) -> F::Output {
    let parker = Arc::new(CallParker::default());
    let waker = Waker::from(Arc::clone(&parker));
    loop {
        let polled = global.block_on(std::future::poll_fn(|_| {
            Poll::Ready(future.as_mut().poll(&mut Context::from_waker(&waker)))
        }));
        if let Poll::Ready(output) = polled {
            return output;
        }
        parker.park();
    }
}

/// One `execute` call's parker: a flag the future's waker sets and the waiting thread takes.
#[derive(Default)]
struct CallParker {
    notified: std::sync::Mutex<bool>,
    wakeup: std::sync::Condvar,
}

impl CallParker {
    /// Waits until woken since the last wait (at once if that happened already).
    fn park(&self) {
        let mut notified = self.notified.lock().unwrap_or_else(|e| e.into_inner());
        while !*notified {
            notified = self
                .wakeup
                .wait(notified)
                .unwrap_or_else(|e| e.into_inner());
        }
        *notified = false;
    }
}

impl Wake for CallParker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let mut notified = self.notified.lock().unwrap_or_else(|e| e.into_inner());
        if !*notified {
            *notified = true;
            self.wakeup.notify_one();
        }
    }
}

/// The error for a panic out of `try_execute`'s wait: tokio refusing to block (it panicked
/// before the wait began), or its panic at a runtime another thread shut down; any other panic
/// (the future's own) goes on with its payload.
#[cold]
#[inline(never)]
fn refused_or_resume(panic: Box<dyn std::any::Any + Send>, waiting: bool) -> RuntimeError {
    if !waiting {
        bump(Counter::WouldDeadlock);
        RuntimeError::WouldDeadlock
    } else {
        shut_down_or_resume(panic)
    }
}

/// [`RuntimeError::ShutDown`] for tokio's panic at a stopped runtime (a future touching its timers
/// or I/O after [`shutdown`](crate::shutdown)); any other panic (the future's own) goes on with its
/// payload.
#[cold]
#[inline(never)]
fn shut_down_or_resume(panic: Box<dyn std::any::Any + Send>) -> RuntimeError {
    let message = crate::panic_message(&*panic);
    if is_shut_down()
        && (message.contains("being shutdown") || message.contains("no reactor running"))
    {
        RuntimeError::ShutDown
    } else {
        resume_unwind(panic)
    }
}

/// Spawns `future` as a task on the global runtime (building it on first use).
///
/// # Panics
///
/// If the global runtime cannot be built or was [shut down](crate::shutdown) (see [`try_handle`](crate::try_handle)).
///
/// # Examples
///
/// ```
/// let task = hivekit_runtime::spawn(async { 21 * 2 });
/// assert_eq!(hivekit_runtime::execute(task).unwrap(), 42);
/// ```
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handle = crate::handle();
    bump(Counter::Spawns);
    handle.spawn(future)
}

/// Runs the blocking closure `work` on the global runtime's blocking thread pool.
///
/// `execute` works inside `work` (it blocks that pool thread, which is what the pool is for).
///
/// # Panics
///
/// If the global runtime cannot be built or was [shut down](crate::shutdown) (see [`try_handle`](crate::try_handle)).
///
/// # Examples
///
/// ```
/// let task = hivekit_runtime::spawn_blocking(|| {
///     // Blocking work, and even a nested bridge back into async code.
///     hivekit_runtime::execute(async { 6 }) * 7
/// });
/// assert_eq!(hivekit_runtime::execute(task).unwrap(), 42);
/// ```
#[track_caller]
pub fn spawn_blocking<F, R>(work: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let handle = crate::handle();
    bump(Counter::BlockingSpawns);
    handle.spawn_blocking(work)
}

/// Where the first poll happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FirstPoll {
    /// The thread's current context already is the global runtime.
    InPlace,
    /// Another runtime's context is current: enter the global one around the poll.
    EnterGlobal,
    /// The global runtime was shut down: poll in no runtime's context.
    ShutDown,
}

/// Decides where a thread that is not known to sit in the global runtime's context polls first,
/// refusing current-thread schedulers up front.
fn route(global: &'static Handle) -> Result<FirstPoll, RuntimeError> {
    refuse_if_scheduler()?;
    if is_shut_down() {
        return Ok(FirstPoll::ShutDown);
    }
    match Handle::try_current() {
        // A thread of an adopted runtime: already in the global runtime's context.
        Ok(current) if current.id() == global.id() => Ok(FirstPoll::InPlace),
        Ok(_) => Ok(FirstPoll::EnterGlobal),
        Err(missing) if missing.is_missing_context() => {
            let entered = THREAD.try_with(|thread| {
                // A plain thread. Enter the global runtime once and for all: the guard is
                // forgotten, so the context stays entered at the bottom of this thread's context
                // stack (any context entered later nests above it and is left before it). tokio
                // releases its handle reference when the thread exits.
                std::mem::forget(global.enter());
                thread.mark_base_global();
            });
            match entered {
                Ok(()) => Ok(FirstPoll::InPlace),
                // Without our thread-locals the entry could not be remembered; enter per call.
                Err(_) => Ok(FirstPoll::EnterGlobal),
            }
        }
        Err(_) => Err(RuntimeError::ThreadLocalDestroyed),
    }
}

/// Returns `WouldDeadlock` (and counts it) when the calling thread drives a current-thread
/// scheduler. A multi-thread worker is fine: it will wait inside `block_in_place`.
fn refuse_if_scheduler() -> Result<(), RuntimeError> {
    if !drives_scheduler() {
        return Ok(());
    }
    // Knowing the flavor costs a reference-count round trip on that runtime's handle; acceptable
    // here, since a multi-thread worker is about to pay for `block_in_place` anyway.
    match Handle::try_current() {
        Ok(current) if current.runtime_flavor() == RuntimeFlavor::CurrentThread => {
            bump(Counter::WouldDeadlock);
            Err(RuntimeError::WouldDeadlock)
        }
        _ => Ok(()),
    }
}

fn poll_once<F: Future>(future: Pin<&mut F>) -> Poll<F::Output> {
    // A wake-up sent to this waker is not lost: on `Pending` the future is polled again at once by
    // the wait (`wait_for`), and a future must register the waker of its latest poll.
    future.poll(&mut Context::from_waker(Waker::noop()))
}

thread_local! {
    static PROBE_WOKEN: Cell<bool> = const { Cell::new(false) };
}

/// A waker that records, on the thread that wakes it, that it was woken.
struct ProbeWake;

impl Wake for ProbeWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let _ = PROBE_WOKEN.try_with(|woken| woken.set(true));
    }
}

static PROBE_WAKER: LazyLock<Waker> = LazyLock::new(|| Waker::from(Arc::new(ProbeWake)));

/// True when the calling thread is running a tokio scheduler (a current-thread runtime's `block_on`
/// or a multi-thread worker that holds its core): the one place where plain blocking is wrong.
///
/// tokio has no public query for this. `yield_now` reveals it: its first poll hands the waker to
/// the running scheduler's defer list, or, outside one (plain threads, `spawn_blocking` threads,
/// a worker inside `block_in_place`), wakes it immediately, as its source documents. The probe
/// reads only thread-locals. Should a future tokio change that behaviour, the unit test below and
/// `runtime_contexts.rs` fail.
pub(crate) fn drives_scheduler() -> bool {
    let _ = PROBE_WOKEN.try_with(|woken| woken.set(false));
    let mut context = Context::from_waker(&PROBE_WAKER);
    let yielded = pin!(tokio::task::yield_now());
    // The first poll of `yield_now` is always `Pending`; what matters is whether it woke us.
    let _ = yielded.poll(&mut context);
    !PROBE_WOKEN.try_with(Cell::get).unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use tokio::runtime::Builder;

    use super::drives_scheduler;

    /// The probe relies on how `tokio::task::yield_now` treats its waker; pin that down per context
    /// so a tokio upgrade that changes it fails here, by name.
    #[test]
    fn probe_tells_scheduler_threads_from_blocking_ones() {
        assert!(!drives_scheduler(), "plain thread");

        let current = Builder::new_current_thread().build().unwrap();
        assert!(
            current.block_on(async { drives_scheduler() }),
            "current-thread block_on"
        );
        assert!(
            current.block_on(async { tokio::spawn(async { drives_scheduler() }).await.unwrap() }),
            "current-thread task"
        );
        assert!(
            !current
                .block_on(async { tokio::task::spawn_blocking(drives_scheduler).await.unwrap() }),
            "current-thread spawn_blocking"
        );
        let _entered = current.enter();
        assert!(
            !drives_scheduler(),
            "context entered, scheduler not running"
        );

        let multi = Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        let (worker, in_place, blocking) = multi.block_on(async {
            tokio::spawn(async {
                (
                    drives_scheduler(),
                    tokio::task::block_in_place(drives_scheduler),
                    tokio::task::spawn_blocking(drives_scheduler).await.unwrap(),
                )
            })
            .await
            .unwrap()
        });
        assert!(worker, "multi-thread worker");
        assert!(!in_place, "multi-thread worker inside block_in_place");
        assert!(!blocking, "multi-thread spawn_blocking");
        assert!(
            !multi.block_on(async { drives_scheduler() }),
            "multi-thread block_on"
        );
    }
}
