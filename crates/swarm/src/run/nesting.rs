//! Runs started inside a stage of another run (a loop's body, a pipeline that a stage or a fan-out
//! item runs): the outer run does not return its report before they have ended.
//!
//! While a stage's attempt is polled, its thread notes the run the stage belongs to
//! ([`Polling`]). A run whose first poll happens there is *nested* in that run: it takes a place
//! ([`Nested`]) in the outer run's [`Scope`] and in every scope above it, and holds that place in
//! its driver, its fleet and its spawned stages' tasks. The place is given back when the last of
//! them is dropped. An outer run that stops drops its stages, and with them the nested runs in
//! them, whose spawned stages then stop on the runtime's workers; at its end the outer run waits
//! for its scope to empty ([`nested_ended`]), so no stage of a nested run outlives it.
//!
//! A run first polled anywhere else (a task the stage spawned, another thread, a blocking stage's
//! thread, which a stopping run abandons) is not nested: it is the caller's to wait for. Nothing here is paid by a run that nests nothing beyond a
//! thread-local read when it starts and a thread-local write around each poll of a stage.

use std::cell::Cell;
use std::future::poll_fn;
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// A nested run's place in the scopes it is nested in (its outer run's, and every one above).
pub(crate) struct Nested {
    scope: Arc<Scope>,
}

impl Drop for Nested {
    fn drop(&mut self) {
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
    let mut counted = Some(scope);
    while let Some(this) = counted {
        this.count.fetch_add(1, Ordering::Relaxed);
        counted = this.up.as_ref();
    }
    Some(Arc::new(Nested {
        scope: scope.clone(),
    }))
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
