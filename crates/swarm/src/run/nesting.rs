//! Runs started inside a stage of another run (a loop's body, a pipeline that a stage or a fan-out
//! item runs) and dropped before they end: the outer run does not return its report before their
//! spawned stages have stopped.
//!
//! While a stage's attempt is polled, its thread notes the run the stage belongs to
//! ([`Polling`]). A run whose first poll happens there is *nested* in that run ([`Nested`]: the
//! outer run's [`Scope`], and every scope above it). Its driver, fleet and spawned stages' tasks
//! share that `Nested`. Dropped before it ends ([`DropWatch`]), the nested run takes a place in
//! every scope it is nested in, given back when the last of them is gone: its spawned stages stop
//! on the runtime's workers, shortly after the drop. At its end the outer run waits for its scope
//! to empty ([`nested_ended`]), so no stage of a run dropped inside it outlives it.
//!
//! A nested run kept alive (in an artifact, a task it was moved to after its first poll, an
//! agent's state between rounds) takes no place: it is its holder's to wait for, and waiting for
//! it could be waiting for the outer run's own report. A run first polled anywhere else (a task
//! the stage spawned, another thread, a blocking stage's thread, which a stopping run abandons)
//! is not nested at all. Nothing here is paid by a run that nests nothing beyond a thread-local
//! read when it starts and a thread-local write around each poll of a stage.

use std::cell::Cell;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::Poll;

use futures::task::AtomicWaker;

use crate::context::RunShared;

thread_local! {
    /// The run whose stage this thread is polling, if any.
    static POLLING: Cell<*const RunShared> = const { Cell::new(std::ptr::null()) };
}

/// Notes, while alive, that this thread polls a stage of `shared`'s run.
pub(crate) struct Polling {
    previous: *const RunShared,
}

impl Polling {
    /// Notes `shared`'s run until the returned guard is dropped (unwinding included).
    #[inline(always)]
    pub(crate) fn enter(shared: &RunShared) -> Self {
        let previous = POLLING.with(|polling| polling.replace(shared));
        Self { previous }
    }
}

impl Drop for Polling {
    #[inline(always)]
    fn drop(&mut self) {
        POLLING.with(|polling| polling.set(self.previous));
    }
}

/// A run's nested runs still alive, its own and those nested further down.
pub(crate) struct Scope {
    count: AtomicUsize,
    /// The outer run, waiting at its end for the count to reach zero.
    waiter: AtomicWaker,
    /// The scope the run itself is nested in.
    up: Option<Arc<Scope>>,
}

/// A nested run's link to the scopes it is nested in (its outer run's, and every one above), and
/// its place in them once it was dropped before it ended.
pub(crate) struct Nested {
    scope: Arc<Scope>,
    /// The run was dropped before it ended: its place in the scopes is taken until this is.
    counted: AtomicBool,
}

impl Nested {
    /// Takes the run's place in every scope it is nested in (once).
    fn dropped_unfinished(&self) {
        if self.counted.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut scope = Some(&self.scope);
        while let Some(this) = scope {
            this.count.fetch_add(1, Ordering::Relaxed);
            scope = this.up.as_ref();
        }
    }
}

impl Drop for Nested {
    fn drop(&mut self) {
        if !*self.counted.get_mut() {
            return;
        }
        let mut scope = Some(&self.scope);
        while let Some(this) = scope {
            if this.count.fetch_sub(1, Ordering::AcqRel) == 1 {
                this.waiter.wake();
            }
            scope = this.up.as_ref();
        }
    }
}

/// The scope of nested runs a run's [`RunShared`] keeps: made by the first run nested in it.
pub(crate) struct Scopes {
    own: OnceLock<Arc<Scope>>,
    /// The scope this run is nested in, if it is.
    up: Option<Arc<Scope>>,
}

impl Scopes {
    pub(crate) fn new(nested: Option<&Arc<Nested>>) -> Self {
        Self {
            own: OnceLock::new(),
            up: nested.map(|nested| nested.scope.clone()),
        }
    }
}

/// The place of a run that starts here: in the run whose stage this thread is polling, if any.
pub(crate) fn nested_here() -> Option<Arc<Nested>> {
    let outer = POLLING.with(Cell::get);
    if outer.is_null() {
        return None;
    }
    // SAFETY: `POLLING` is set only by a `Polling` guard, which borrows the `RunShared` it points
    // to for as long as the guard lives, and the guard lives (on this thread, and is restored on
    // drop) for the whole poll this call happens in.
    let outer = unsafe { &*outer };
    let scope = outer.nesting.own.get_or_init(|| {
        Arc::new(Scope {
            count: AtomicUsize::new(0),
            waiter: AtomicWaker::new(),
            up: outer.nesting.up.clone(),
        })
    });
    Some(Arc::new(Nested {
        scope: scope.clone(),
        counted: AtomicBool::new(false),
    }))
}

/// Held by a nested run's future: dropped before [`finished`](Self::finished) (the future dropped
/// before the run ended), it takes the run's place in the scopes it is nested in, at once, before
/// the outer stage's drop returns, for as long as the run's driver, fleet and tasks are alive.
pub(crate) struct DropWatch(Option<Arc<Nested>>);

impl DropWatch {
    pub(crate) fn new(nested: Option<&Arc<Nested>>) -> Self {
        Self(nested.cloned())
    }

    /// The run ended: nothing of it is left running.
    pub(crate) fn finished(mut self) {
        self.0 = None;
    }
}

impl Drop for DropWatch {
    fn drop(&mut self) {
        if let Some(nested) = self.0.take() {
            nested.dropped_unfinished();
        }
    }
}

/// Waits until no run nested in `shared`'s run (at any depth) is left. Called when the run has
/// no stage left to poll, so no further run can nest in it.
pub(crate) async fn nested_ended(shared: &RunShared) {
    let Some(scope) = shared.nesting.own.get() else {
        return;
    };
    poll_fn(|cx| {
        if scope.count.load(Ordering::Acquire) == 0 {
            return Poll::Ready(());
        }
        scope.waiter.register(cx.waker());
        if scope.count.load(Ordering::Acquire) == 0 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
}
