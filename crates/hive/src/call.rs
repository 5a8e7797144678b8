//! One guarded agent call: a panic, an error or a timeout becomes a [`FailureKind`], and a heavy
//! agent's call runs as its own runtime task.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hivekit_runtime::{instant_after, take_panic_message, First, InlineOrSpawned, Spare};
use tokio::task::JoinError;
use tokio::time::{Instant, Sleep};

use crate::agent::{AgentError, BoxFuture, Contest, DynAgent, Vote, VoteSlot};
use crate::context::AgentContext;
use crate::decision::FailureKind;
use crate::lockfree::Snapshot;
use crate::state::State;

pub(crate) type CallResult<T> = Result<T, FailureKind>;

/// How long a call may run: the hive's agent timeout from the call's start, but never past the
/// round's deadline.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limit {
    pub(crate) timeout: Duration,
    pub(crate) deadline: Option<Instant>,
}

impl Limit {
    /// The instant a call starting now must answer by.
    pub(crate) fn deadline_from_now(self) -> Instant {
        let at = instant_after(Instant::now(), self.timeout);
        self.deadline.map_or(at, |deadline| deadline.min(at))
    }

    /// `context` for a call that starts now after waiting for a slot (`max_in_flight`): its
    /// deadline counted from now, as the call's timer is, not from the phase's start.
    #[inline(never)]
    pub(crate) fn context_for_waited(self, context: &AgentContext) -> AgentContext {
        let mut context = context.clone();
        context.set_deadline(self.deadline_from_now());
        context
    }

    /// A timer for a call that starts now.
    fn timer(self) -> Pin<Box<Sleep>> {
        Box::pin(hivekit_runtime::sleep_until(self.deadline_from_now()))
    }
}

/// An agent's future under a timeout, with panics caught.
///
/// The timer starts at the first poll that finds the call pending, so an agent that answers at once
/// never touches the timer wheel. A call without a limit is timed by its owner (see
/// [`Deadlines`]).
pub(crate) struct Guarded<'a, T> {
    call: Option<BoxFuture<'a, Result<T, AgentError>>>,
    limit: Option<Limit>,
    timer: Option<Pin<Box<Sleep>>>,
    span: tracing::Span,
}

impl<'a, T> Guarded<'a, T> {
    pub(crate) fn new(
        call: BoxFuture<'a, Result<T, AgentError>>,
        limit: Limit,
        span: tracing::Span,
    ) -> Self {
        Self {
            call: Some(call),
            limit: Some(limit),
            timer: None,
            span,
        }
    }
}

/// A call after its first poll: answered, or still running (as `R`).
pub(crate) enum Polled<T, R> {
    Done(CallResult<T>),
    Running(R),
}

/// A guarded call after its first poll.
pub(crate) type Started<'a, T> = Polled<T, Call<'a, T>>;

/// A light voter's `vote` call after its first poll (in its slot or the round's spare block): a
/// vote apart from a failure, so that the vote loop counts a vote straight from the agent's answer (a
/// `CallResult` in between re-encoded every vote's tag into `FailureKind`'s niche and back).
pub(crate) enum SlotPolled<'a> {
    Voted(Vote),
    Failed(FailureKind),
    Running(SlotCall<'a>),
}

/// A light voter's `vote` call still running after its first poll (it took its slot, or the
/// round's spare block, as its `Box`), timed by its owner (the round's [`Deadlines`]), under the same guard as
/// [`Guarded`] (span, panic catching).
///
/// Small on purpose: a round keeps one per waiting call in a `FuturesUnordered` (up to 100k in
/// flight), which moves it into a heap block of its own. Wrapped in [`Call`] and [`Guarded`] the
/// call took 140 bytes with its tags (a span, a limit and a timer the round never uses), copied
/// with `memcpy` on every push and allocated in glibc's slower size classes.
pub(crate) struct SlotCall<'a> {
    /// `None` once it has answered or panicked.
    call: Option<BoxFuture<'a, Result<Vote, AgentError>>>,
    /// The call's span, boxed and only when a subscriber records it (a disabled span is 40 bytes
    /// of nothing that every waiting call would carry).
    span: Option<Box<tracing::Span>>,
}

/// As [`Guarded`]'s: a call dropped unfinished is dropped quietly.
impl Drop for SlotCall<'_> {
    fn drop(&mut self) {
        if let Some(call) = self.call.take() {
            drop_quietly(call);
        }
    }
}

impl Future for SlotCall<'_> {
    type Output = CallResult<Vote>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let _entered = this.span.as_deref().map(tracing::Span::enter);
        poll_caught(&mut this.call, cx)
    }
}

/// Starts a vote about `contest` in a light voter's reusable `slot` (made by `new_slot` if the
/// voter has none) and polls it once, under the same guard as [`Guarded`] (its `span` if recorded,
/// panic catching; no timer: the caller times a pending call). An answer at once costs no
/// allocation and leaves the slot for the voter's next call; a pending call takes the slot with it.
// Always inlined into the round's vote loop (its one caller): left to the inliner it is sometimes
// a call of its own, about 18 instructions more per vote (decide conflicts_1k +5.7%).
#[inline(always)]
pub(crate) fn start_in_slot<'a, S: State>(
    slot: &mut Option<Pin<Box<dyn VoteSlot<'a, S> + 'a>>>,
    new_slot: impl FnOnce() -> Pin<Box<dyn VoteSlot<'a, S> + 'a>>,
    contest: &'a Contest<S>,
    span: Option<tracing::Span>,
    cx: &mut Context<'_>,
) -> SlotPolled<'a> {
    // The slot stays in place for a call that answers at once (the common case); a pending or
    // panicking call takes it out.
    let call = slot.get_or_insert_with(new_slot);
    let polled = {
        let _entered = span.as_ref().map(tracing::Span::enter);
        catch_unwind(AssertUnwindSafe(|| call.as_mut().start_poll(contest, cx)))
    };
    slot_answer(slot, polled, span)
}

/// What the first poll of a call in `slot` answered (`polled`: the poll under the panic guard),
/// as the vote loop counts it: a pending or panicking call takes the slot with it (a panicking
/// one is dropped quietly, the voter gets a new slot).
#[inline(always)]
pub(crate) fn slot_answer<'a, S: State>(
    slot: &mut Option<Pin<Box<dyn VoteSlot<'a, S> + 'a>>>,
    polled: std::thread::Result<Poll<Result<Vote, AgentError>>>,
    span: Option<tracing::Span>,
) -> SlotPolled<'a> {
    let caught = match polled {
        Ok(Poll::Ready(result)) => {
            return match result {
                Ok(vote) => SlotPolled::Voted(vote),
                Err(error) => SlotPolled::Failed(FailureKind::Errored { error }),
            }
        }
        Ok(Poll::Pending) => None,
        Err(panic) => Some(panic),
    };
    let Some(call) = slot.take() else {
        // Cannot happen: the slot was filled when the call started.
        return SlotPolled::Failed(FailureKind::Cancelled);
    };
    match caught {
        // The slot is the call's future: it goes on running as one.
        None => SlotPolled::Running(SlotCall {
            call: Some(call),
            span: span.map(Box::new),
        }),
        Some(panic) => {
            // The slot may be left mid-call: it is dropped, the voter gets a new one.
            drop_quietly(call);
            SlotPolled::Failed(panicked(panic))
        }
    }
}

/// A light voter's `vote` call that waited for a slot (`max_in_flight`), with its own `context`
/// (see [`Limit::context_for_waited`]): built now, started at its first poll, under the same guard
/// as [`Guarded`] and timed by its owner. Off the round's fast path: only a round whose calls
/// filled `max_in_flight` makes one.
#[cold]
#[inline(never)]
pub(crate) fn waited_vote<'a, S: State>(
    agent: &'a dyn DynAgent<S>,
    context: AgentContext,
    view: &'a Snapshot<S>,
    contest: &'a Contest<S>,
    span: Option<tracing::Span>,
) -> SlotCall<'a> {
    SlotCall {
        call: Some(Box::pin(async move {
            agent.vote_boxed(&context, view, contest).await
        })),
        span: span.map(Box::new),
    }
}

/// Starts `agent`'s vote about `contest` in the round's `spare` block and polls it once, under the
/// same guard as [`Guarded`] (its `span` if recorded, panic catching; no timer: the caller times a
/// pending call). An answer at once leaves the block for the next call, whoever's (one block
/// serves the whole round, always in cache; no allocation per voter); a pending call takes the
/// block with it, and the next call gets a new one.
// Always inlined into the round's vote loop (its one caller).
#[inline(always)]
pub(crate) fn start_vote_in_spare<'a, S: State>(
    agent: &'a dyn DynAgent<S>,
    ctx: &'a AgentContext,
    view: &'a Snapshot<S>,
    contest: &'a Contest<S>,
    spare: &mut Spare,
    span: Option<tracing::Span>,
    cx: &mut Context<'_>,
) -> SlotPolled<'a> {
    let polled = {
        let _entered = span.as_ref().map(tracing::Span::enter);
        agent.vote_first(ctx, view, contest, spare, cx)
    };
    match polled {
        Ok(First::Ready(Ok(vote))) => SlotPolled::Voted(vote),
        Ok(First::Ready(Err(error))) => SlotPolled::Failed(FailureKind::Errored { error }),
        Ok(First::Pending(call)) => SlotPolled::Running(SlotCall {
            call: Some(call),
            span: span.map(Box::new),
        }),
        // The call was dropped (quietly) where it stood; the block is kept.
        Err(panic) => SlotPolled::Failed(panicked(panic)),
    }
}

/// A call dropped unfinished (its round cancelled or dropped) is dropped quietly, as on a timeout.
impl<T> Drop for Guarded<'_, T> {
    fn drop(&mut self) {
        if let Some(call) = self.call.take() {
            drop_quietly(call);
        }
    }
}

impl<T> Future for Guarded<'_, T> {
    type Output = CallResult<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let _entered = this.span.enter();
        if this.call.is_none() {
            // Polled after completion: nothing more will come.
            return Poll::Pending;
        }
        if let Poll::Ready(result) = poll_caught(&mut this.call, cx) {
            // An answer that comes after the deadline (the call held its thread past it, or the
            // timer was not polled in time) is a timeout all the same.
            return Poll::Ready(match &this.timer {
                Some(timer) if Instant::now() >= timer.deadline() => Err(FailureKind::TimedOut),
                _ => result,
            });
        }
        let Some(limit) = this.limit else {
            // Timed by its owner.
            return Poll::Pending;
        };
        let timer = this.timer.get_or_insert_with(|| limit.timer());
        match poll_timer(timer.as_mut(), cx) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(())) => {
                drop_quietly(this.call.take());
                Poll::Ready(Err(FailureKind::TimedOut))
            }
            Err(failure) => {
                drop_quietly(this.call.take());
                Poll::Ready(Err(failure))
            }
        }
    }
}

/// The failure of a call whose owner stopped waiting at its deadline: timed out, or cancelled
/// once the runtime is shut down (its timers then end at once).
pub(crate) fn cut_short() -> FailureKind {
    if hivekit_runtime::is_shut_down() {
        FailureKind::Cancelled
    } else {
        FailureKind::TimedOut
    }
}

/// Polls a call's timer; once the runtime that drives it is shut down (where tokio panics) the
/// call is cut short: `Err` with [`FailureKind::Cancelled`], as a heavy call's task is.
pub(crate) fn poll_timer(
    timer: Pin<&mut Sleep>,
    cx: &mut Context<'_>,
) -> Result<Poll<()>, FailureKind> {
    hivekit_runtime::poll_sleep(timer, cx).map_err(|_| FailureKind::Cancelled)
}

/// Polls a running agent call once under the panic guard: its answer (the call is dropped), a
/// panic as [`FailureKind::Panicked`] (the call is dropped quietly), or pending (the call stays).
/// Pending once the call is gone: nothing more will come.
#[inline]
fn poll_caught<T, F>(call: &mut Option<Pin<Box<F>>>, cx: &mut Context<'_>) -> Poll<CallResult<T>>
where
    F: Future<Output = Result<T, AgentError>> + ?Sized,
{
    let Some(running) = call.as_mut() else {
        return Poll::Pending;
    };
    match catch_unwind(AssertUnwindSafe(|| running.as_mut().poll(cx))) {
        Ok(Poll::Ready(result)) => {
            *call = None;
            Poll::Ready(result.map_err(|error| FailureKind::Errored { error }))
        }
        Ok(Poll::Pending) => Poll::Pending,
        Err(panic) => {
            drop_quietly(call.take());
            Poll::Ready(Err(panicked(panic)))
        }
    }
}

/// Runs a loop that polls many agent calls (and starts them) outside tokio's cooperative budget.
///
/// A round polls thousands of calls from one task, and tokio lets a task complete 128 operations
/// on its resources (timers, channels, sockets) per poll. Once the round had spent that, every
/// timer an agent awaited answered `Pending` without being set and woke the round again, so each
/// trip of the round through the scheduler took at most 128 answers: a chunk of 50k waiting vote
/// calls needed about 390 trips, each a wake-up of a worker thread, and the round ended a second
/// above its floor. A call is a task in all but name and is not held to the round's budget; the
/// loop itself returns to the scheduler whenever no call is ready (a call that never yields holds
/// the round up either way: such an agent should be declared heavy). Applied to the whole loop,
/// not to each call, so that the light path pays for it once per poll of the round.
pub(crate) fn unbudgeted<F: Future>(calls: F) -> impl Future<Output = F::Output> {
    tokio::task::unconstrained(calls)
}

/// The failure of a call that panicked. Once the runtime is shut down, a call cut short panics
/// inside tokio (its timer or socket finds the runtime "being shutdown"): that call is
/// [`FailureKind::Cancelled`], as a heavy call's task is, not a panic of the agent's own.
pub(crate) fn panicked(panic: Box<dyn std::any::Any + Send>) -> FailureKind {
    // The payload is the agent's too: one whose destructor panics must not take the round down.
    let message = take_panic_message(panic);
    if hivekit_runtime::is_shut_down() {
        FailureKind::Cancelled
    } else {
        FailureKind::Panicked { message }
    }
}

/// Drops an agent's future (or a panic's payload, or anything else of the user's), swallowing a
/// panic from its destructor: broken user code must not take the round down.
pub(crate) fn drop_quietly<T>(value: T) {
    let _ = catch_unwind(AssertUnwindSafe(move || drop(value)));
}

/// A call polled by the round itself, or running as its own task (aborted when dropped).
pub(crate) struct Call<'a, T> {
    call: InlineOrSpawned<Guarded<'a, T>>,
    /// A spawned call's timer on the round's side (`None` for an inline call, which its
    /// [`Guarded`] times as the round polls it): a call that holds its worker (a heavy agent
    /// computing in one poll) never lets its task see its own timer.
    timer: Option<Pin<Box<Sleep>>>,
}

impl<'a, T: Send + 'static> Call<'a, T> {
    /// A heavy agent's call, run as its own task, which times itself under `limit`; the round
    /// times it as well, and takes an answer that comes after its deadline as a timeout.
    pub(crate) fn spawn(
        call: impl Future<Output = CallResult<T>> + Send + 'static,
        limit: Limit,
    ) -> Self {
        Self {
            call: InlineOrSpawned::spawn(call),
            timer: Some(limit.timer()),
        }
    }
}

impl<'a, T> Call<'a, T> {
    /// A light agent's call, polled by the round.
    pub(crate) fn inline(call: Guarded<'a, T>) -> Self {
        Self {
            call: InlineOrSpawned::Inline(call),
            timer: None,
        }
    }
}

impl<T> Future for Call<'_, T> {
    type Output = CallResult<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Poll::Ready(result) = Pin::new(&mut this.call).poll(cx) {
            return Poll::Ready(match &this.timer {
                Some(timer) if Instant::now() >= timer.deadline() => Err(FailureKind::TimedOut),
                _ => joined(result),
            });
        }
        let Some(timer) = this.timer.as_mut() else {
            return Poll::Pending;
        };
        // Past its deadline the call is dropped by its owner, which aborts its task.
        match poll_timer(timer.as_mut(), cx) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(())) => Poll::Ready(Err(FailureKind::TimedOut)),
            Err(failure) => Poll::Ready(Err(failure)),
        }
    }
}

/// What a call run as its own task answered: a panic or a cancellation of the task (the runtime
/// shutting down) becomes a [`FailureKind`].
pub(crate) fn joined<T>(joined: Result<CallResult<T>, JoinError>) -> CallResult<T> {
    joined.unwrap_or_else(|error| {
        Err(if error.is_panic() {
            FailureKind::Panicked {
                message: take_panic_message(error.into_panic()),
            }
        } else {
            FailureKind::Cancelled
        })
    })
}

/// A call tagged with its slot, which yields `None` without polling the call once its owner set
/// `cancelled` (the call is then dropped, cancelling it). The vote phase's calls have their own,
/// smaller entry (`round::vote`'s `Waiting`).
pub(crate) struct Tagged<'a, T, I = usize> {
    pub(crate) call: Call<'a, T>,
    pub(crate) slot: I,
    pub(crate) cancelled: Option<&'a AtomicBool>,
}

impl<T, I: Copy + Unpin> Future for Tagged<'_, T, I> {
    type Output = (I, Option<CallResult<T>>);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this
            .cancelled
            .is_some_and(|cancelled| cancelled.load(Ordering::Relaxed))
        {
            return Poll::Ready((this.slot, None));
        }
        Pin::new(&mut this.call)
            .poll(cx)
            .map(|result| (this.slot, Some(result)))
    }
}

/// One timer for many calls: the calls of one phase (or chunk) whose deadlines fall within the
/// same millisecond share a group, and only the earliest group's deadline is on the timer wheel.
///
/// A timer per call cost an allocation and two timer-wheel operations (insert, and remove when the
/// call answers) per waiting call, under the time driver's lock; with 100k calls in flight that
/// dominated the round. Calls start in order, so their deadlines arrive in order and the groups
/// form a queue. A group's deadline is its last call's, so a call may time out up to a millisecond
/// late: the resolution of tokio's timers anyway.
pub(crate) struct Deadlines {
    /// Each group's first deadline, the deadline it fires at (its last call's) and its id,
    /// earliest first.
    groups: VecDeque<(Instant, Instant, u32)>,
    next: u32,
    timer: Option<Pin<Box<Sleep>>>,
}

impl Deadlines {
    pub(crate) fn new() -> Self {
        Self {
            groups: VecDeque::new(),
            next: 0,
            timer: None,
        }
    }

    /// The group of a call that must answer by `at`.
    pub(crate) fn add(&mut self, at: Instant) -> u32 {
        if let Some((first, fire, id)) = self.groups.back_mut() {
            // Within a millisecond of the group's first deadline (not its last, so that a group
            // cannot keep growing).
            if at <= *first + Duration::from_millis(1) {
                *fire = (*fire).max(at);
                return *id;
            }
        }
        let id = self.next;
        self.next = self.next.wrapping_add(1);
        self.groups.push_back((at, at, id));
        id
    }

    /// The next group whose deadline has passed, if any; otherwise the timer is armed for the
    /// earliest one.
    pub(crate) fn poll_expired(&mut self, cx: &mut Context<'_>) -> Option<u32> {
        let &(_, at, id) = self.groups.front()?;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(hivekit_runtime::sleep_until(at)));
        if timer.deadline() != at {
            timer.as_mut().reset(at);
        }
        // A timer the shut-down runtime can no longer drive ends the group's wait as well: its
        // calls are recorded as the vote loop records an expiry (see `cut_short`).
        if poll_timer(timer.as_mut(), cx).map_or(true, |polled| polled.is_ready()) {
            self.groups.pop_front();
            return Some(id);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::task::Poll;
    use std::time::Duration;

    use tokio::time::Instant;

    use super::Deadlines;

    /// Polls `deadlines` once: the group that expired, if any.
    async fn expired(deadlines: &mut Deadlines) -> Option<u32> {
        poll_fn(|cx| Poll::Ready(deadlines.poll_expired(cx))).await
    }

    #[tokio::test(start_paused = true)]
    async fn deadlines_within_a_millisecond_of_a_group_share_it_and_groups_expire_in_order() {
        let start = Instant::now();
        let at = |micros: u64| start + Duration::from_micros(micros);
        let mut deadlines = Deadlines::new();
        let first = deadlines.add(at(10_000));
        assert_eq!(deadlines.add(at(10_400)), first);
        assert_eq!(
            deadlines.add(at(11_000)),
            first,
            "1 ms after the group's first deadline"
        );
        let second = deadlines.add(at(11_001));
        assert_ne!(second, first);
        assert_eq!(deadlines.add(at(11_500)), second);

        // Nothing expires before the first group's last deadline (its calls may answer until then).
        assert_eq!(expired(&mut deadlines).await, None);
        tokio::time::advance(Duration::from_micros(10_999)).await;
        assert_eq!(expired(&mut deadlines).await, None);
        tokio::time::advance(Duration::from_micros(1)).await;
        assert_eq!(expired(&mut deadlines).await, Some(first));
        assert_eq!(expired(&mut deadlines).await, None);
        // tokio's timers tick in whole milliseconds: 11.5 ms fires at 12.
        tokio::time::advance(Duration::from_micros(999)).await;
        assert_eq!(expired(&mut deadlines).await, None);
        tokio::time::advance(Duration::from_micros(1)).await;
        assert_eq!(expired(&mut deadlines).await, Some(second));
        assert_eq!(expired(&mut deadlines).await, None, "no group is left");
    }
}
