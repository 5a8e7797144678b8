//! The propose phase: every member is asked once, concurrently, under the round's limits.

use std::future::{poll_fn, Future};
use std::ops::Range;
use std::pin::{pin, Pin};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use hivekit_runtime::{AbortOnDrop, First, Spare};
use rustc_hash::FxHashMap;
use tracing::Instrument;

use crate::agent::ProposalOf;
use crate::call::{panicked, unbudgeted, Call, CallResult, Guarded, Limit, Started, Tagged};
use crate::context::AgentContext;
use crate::decision::{AgentFailure, FailureKind, Phase};
use crate::events::HiveEvent;
use crate::lockfree::{Proposal, ProposalId, Snapshot};
use crate::round::{
    call_span, call_spans_enabled, Answers, Positions, Proposals, Round, RoundMember,
};
use crate::state::State;

/// Below this many light agents per worker thread, one task polls them all; above, the round splits
/// them into one chunk per worker so that their polling uses every core.
const LIGHT_AGENTS_PER_CHUNK: usize = 256;

/// The least time the rest of a large hive's agents must be expected to take (judged from the
/// first [`LIGHT_AGENTS_PER_CHUNK`]) for the round to split them over the workers. Waking a worker
/// and being woken back costs tens of microseconds each on a virtual machine, and a split round of
/// agents that answer at once measured slower than one thread up to 10,000 of them (2.09 ms split
/// against 1.93 ms, whose rest is about 1 ms of proposals).
const SPLIT_WORTH: Duration = Duration::from_millis(2);

/// Starts one `propose` call and polls it once: inline for light agents (and for the heavy one
/// the caller's thread runs itself, `in_place`), built in `spare`'s block so that an answer at once
/// costs no allocation (see [`start_in_spare`](hivekit_runtime::start_in_spare)); as its own task for
/// heavy ones.
fn start_propose<'a, S: State>(
    member: &'a RoundMember<S>,
    view: &'a Snapshot<S>,
    limit: Limit,
    in_place: bool,
    spare: &mut Spare,
    cx: &mut Context<'_>,
) -> Started<'a, Option<ProposalOf<S>>> {
    let span = propose_span(member);
    if member.heavy && !in_place {
        return spawn_propose(member, member.context.clone(), view, limit, span, cx);
    }
    let first = {
        let _entered = span.enter();
        member.agent.propose_first(&member.context, view, spare, cx)
    };
    match first {
        Ok(First::Ready(answer)) => {
            Started::Done(answer.map_err(|error| FailureKind::Errored { error }))
        }
        // Guarded from its next poll on, which starts its timer (the `FuturesUnordered` it joins
        // polls it at once).
        Ok(First::Pending(call)) => Started::Running(Call::inline(Guarded::new(call, limit, span))),
        Err(panic) => Started::Done(Err(panicked(panic))),
    }
}

/// Starts one `propose` call that waited for a slot (`max_in_flight`), with a context of its own
/// whose deadline counts from now, as its timer does (see [`Limit::context_for_waited`]): a heavy
/// agent's as its own task, a light agent's polled (and its timer started) by the
/// `FuturesUnordered` it joins. Kept out of line: only a round whose calls filled `max_in_flight`
/// starts one.
#[cold]
#[inline(never)]
fn start_waited_propose<'a, S: State>(
    member: &'a RoundMember<S>,
    view: &'a Snapshot<S>,
    limit: Limit,
    cx: &mut Context<'_>,
) -> Started<'a, Option<ProposalOf<S>>> {
    let span = propose_span(member);
    let context = limit.context_for_waited(&member.context);
    if member.heavy {
        return spawn_propose(member, context, view, limit, span, cx);
    }
    let agent = &member.agent;
    let call = Box::pin(async move { agent.propose_boxed(&context, view).await });
    Started::Running(Call::inline(Guarded::new(call, limit, span)))
}

/// The span of a `propose` call, built only when a subscriber may record it (one load of the
/// level): otherwise a span that is none, as `call_span` would give, without its call and
/// callsite check per agent.
fn propose_span<S: State>(member: &RoundMember<S>) -> tracing::Span {
    if call_spans_enabled() {
        call_span(member.id, Phase::Propose)
    } else {
        tracing::Span::none()
    }
}

/// Starts a heavy agent's `propose` call with `context` as its own task and polls it once (out of
/// line: a task's spawn dwarfs the call).
#[inline(never)]
fn spawn_propose<'a, S: State>(
    member: &'a RoundMember<S>,
    context: AgentContext,
    view: &'a Snapshot<S>,
    limit: Limit,
    span: tracing::Span,
    cx: &mut Context<'_>,
) -> Started<'a, Option<ProposalOf<S>>> {
    let agent = Arc::clone(&member.agent);
    let view = view.clone();
    let mut call = Call::spawn(
        async move { Guarded::new(agent.propose_boxed(&context, &view), limit, span).await },
        limit,
    );
    match Pin::new(&mut call).poll(cx) {
        Poll::Ready(result) => Started::Done(result),
        Poll::Pending => Started::Running(call),
    }
}

/// The member whose heavy call the round's own thread runs in place of a task, if any: the last
/// one, when every member is heavy and the round is polled outside any runtime task.
///
/// Outside a task the round is polled by a thread blocked on it (`block_on`, `execute`, a test's
/// body), which would only wait while the workers run the heavy calls. Handing a call to a worker
/// costs a wake-up to start it and another to report back, each tens of microseconds on a virtual
/// machine; a caller that runs one call itself saves both for that call, and starts it only after
/// every other call has gone to the workers. Inside a task the round runs on a worker, and the
/// last task it spawns waits in that worker's LIFO slot, which other workers cannot steal from:
/// running a call in place there would put the two calls one after the other.
fn heavy_in_place<S: State>(members: &[RoundMember<S>]) -> Option<usize> {
    let all_heavy = !members.is_empty() && members.iter().all(|member| member.heavy);
    (all_heavy && tokio::task::try_id().is_none()).then(|| members.len() - 1)
}

impl<S: State> Round<'_, S> {
    /// Asks every member to propose; returns `(member index, answer)` in arrival order, in
    /// `answers` (empty; its capacity is reused). A round of one chunk builds its calls'
    /// futures in `spare`'s block (kept from round to round).
    pub(super) async fn ask_proposals(&self, answers: Answers<S>, spare: &mut Spare) -> Answers<S> {
        let members = &self.members;
        let view = &self.view;
        let limit = self.limit;
        let max_in_flight = self.config().max_in_flight;
        // Never more chunks than calls allowed in flight, so the chunks' bounds add up to at most
        // `max_in_flight`.
        let chunks = (members.len() / LIGHT_AGENTS_PER_CHUNK)
            .min(self.workers())
            .min(max_in_flight)
            .max(1);
        if chunks == 1 {
            let in_place = heavy_in_place(members);
            return run_calls_in(
                answers,
                spare,
                0..members.len(),
                max_in_flight,
                |index, spare, cx| {
                    start_propose(
                        &members[index],
                        view,
                        limit,
                        Some(index) == in_place,
                        spare,
                        cx,
                    )
                },
                |index, cx| start_waited_propose(&members[index], view, limit, cx),
            )
            .await;
        }
        // Large hives: the first agents are asked here, timed, and the others are split over the
        // workers only when what they will cost, judged from those, is worth the split. Each chunk
        // (this one included) gets its share of `max_in_flight`.
        let bound = (max_in_flight / chunks).max(1);
        let probed = LIGHT_AGENTS_PER_CHUNK.min(members.len());
        let probe_started = Instant::now();
        let mut probe = pin!(run_calls(
            answers,
            0..probed,
            bound,
            |index, spare, cx| start_propose(&members[index], view, limit, false, spare, cx),
            |index, cx| start_waited_propose(&members[index], view, limit, cx),
        ));
        let first = poll_fn(|cx| Poll::Ready(probe.as_mut().poll(cx))).await;
        let rest = probed..members.len();
        let answers = match first {
            Poll::Ready(answers) => answers,
            // Some of the first agents wait: their time says nothing of what a call costs. The
            // others go to the workers while this task waits for those.
            Poll::Pending => return self.ask_split(probe, rest, chunks - 1, bound).await,
        };
        let estimate = probe_started
            .elapsed()
            .mul_f64(rest.len() as f64 / probed as f64);
        if estimate < SPLIT_WORTH {
            return run_calls(
                answers,
                rest,
                max_in_flight,
                |index, spare, cx| start_propose(&members[index], view, limit, false, spare, cx),
                |index, cx| start_waited_propose(&members[index], view, limit, cx),
            )
            .await;
        }
        if tokio::task::try_id().is_some() {
            // Inside a task every chunk is spawned (see `ask_split`).
            return self
                .ask_split(std::future::ready(answers), rest, chunks, bound)
                .await;
        }
        // A thread blocked on the round polls the first chunk itself.
        let own = rest.start..rest.start + rest.len().div_ceil(chunks);
        let rest = own.end..rest.end;
        let own = run_calls(
            answers,
            own,
            bound,
            |index, spare, cx| start_propose(&members[index], view, limit, false, spare, cx),
            |index, cx| start_waited_propose(&members[index], view, limit, cx),
        );
        self.ask_split(own, rest, chunks - 1, bound).await
    }

    /// Asks the members in `rest` in `pieces` chunks, each polled by a task of its own with at most
    /// `bound` calls in flight, while this task awaits `own` (its own share); returns `own`'s
    /// answers with the chunks' appended, `(member index, answer)`.
    ///
    /// A round inside a task gives it none of the chunks of agents that answer at once: a task
    /// spawned from a worker goes to that worker's LIFO slot, which other workers cannot steal
    /// from, so a chunk polled in place would run first and the spawned one after it, on the same
    /// worker; a second spawn pushes the first out of the slot into the worker's stealable queue
    /// and wakes an idle worker.
    async fn ask_split(
        &self,
        own: impl Future<Output = Answers<S>>,
        rest: Range<usize>,
        pieces: usize,
        bound: usize,
    ) -> Answers<S> {
        let size = rest.len().div_ceil(pieces.max(1));
        let spawned: Vec<_> = (0..pieces)
            .map(|piece| {
                let start = (rest.start + piece * size).min(rest.end);
                let range = start..(start + size).min(rest.end);
                let indices = range.clone();
                let members = Arc::clone(&self.members);
                let view = self.view.clone();
                let limit = self.limit;
                let span = tracing::Span::current();
                let task = AbortOnDrop::new(
                    self.handle.spawn(
                        async move {
                            run_calls(
                                Vec::new(),
                                indices,
                                bound,
                                |index, spare, cx| {
                                    start_propose(&members[index], &view, limit, false, spare, cx)
                                },
                                |index, cx| start_waited_propose(&members[index], &view, limit, cx),
                            )
                            .await
                        }
                        .instrument(span),
                    ),
                );
                (range, task)
            })
            .collect();
        let mut answers = own.await;
        for (range, task) in spawned {
            match task.await {
                Ok(more) => answers.extend(more),
                // The chunk's task cannot panic (every call is guarded), so it was cancelled: the
                // runtime is shutting down. Its agents are reported, not silently dropped.
                Err(_) => answers.extend(range.map(|index| (index, Err(FailureKind::Cancelled)))),
            }
        }
        answers
    }
}

/// Runs the calls of `indices`, at most `bound` at once, each started and polled once by
/// `start(index, spare, cx)`, or by `start_waited(index, cx)` once calls wait for a slot; appends `(index, result)` in completion order to `results` (its
/// capacity is reused). Calls that answer at
/// once never enter the `FuturesUnordered`, and reuse one heap block for their futures (`spare`):
/// no allocation for them.
pub(super) async fn run_calls<'a, T: 'a>(
    results: Vec<(usize, CallResult<T>)>,
    indices: Range<usize>,
    bound: usize,
    start: impl FnMut(usize, &mut Spare, &mut Context<'_>) -> Started<'a, T>,
    start_waited: impl FnMut(usize, &mut Context<'_>) -> Started<'a, T>,
) -> Vec<(usize, CallResult<T>)> {
    let mut spare = Spare::new();
    run_calls_in(results, &mut spare, indices, bound, start, start_waited).await
}

/// [`run_calls`] with the futures' block taken from `spare` and left there: a round's block is
/// kept from round to round, as its other working vectors (an allocation and a free per round
/// otherwise, about 150 instructions of a 10-agent round).
pub(super) async fn run_calls_in<'a, T: 'a>(
    mut results: Vec<(usize, CallResult<T>)>,
    spare: &mut Spare,
    indices: Range<usize>,
    bound: usize,
    mut start: impl FnMut(usize, &mut Spare, &mut Context<'_>) -> Started<'a, T>,
    mut start_waited: impl FnMut(usize, &mut Context<'_>) -> Started<'a, T>,
) -> Vec<(usize, CallResult<T>)> {
    let count = indices.end;
    results.reserve(indices.len());
    // Made when the first call is still pending after its first poll: most rounds never need
    // one, and making one costs an allocation.
    let mut pending: Option<FuturesUnordered<Tagged<'a, T>>> = None;
    let mut next = indices.start;
    // Whether the calls started from now on waited for a slot: `bound` was reached.
    let mut waited = false;
    let room = |pending: &Option<FuturesUnordered<Tagged<'a, T>>>| {
        pending.as_ref().map_or(0, FuturesUnordered::len) < bound
    };
    unbudgeted(poll_fn(|cx| loop {
        // Two loops, so that the first calls' (most rounds': all calls') loop does not test
        // `waited` per call.
        if waited {
            while next < count && room(&pending) {
                keep(next, start_waited(next, cx), &mut results, &mut pending);
                next += 1;
            }
        } else {
            while next < count && room(&pending) {
                keep(next, start(next, spare, cx), &mut results, &mut pending);
                next += 1;
            }
            waited = next < count;
        }
        // Without a pending call the loop above ran to the end.
        let Some(running) = pending.as_mut() else {
            return Poll::Ready(());
        };
        match running.poll_next_unpin(cx) {
            Poll::Ready(Some((slot, Some(result)))) => results.push((slot, result)),
            Poll::Ready(Some((_, None))) => {}
            Poll::Ready(None) if next >= count => return Poll::Ready(()),
            Poll::Ready(None) => {}
            Poll::Pending => return Poll::Pending,
        }
    }))
    .await;
    results
}

/// Keeps a call `run_calls_in` started: its result if it answered at once, else the call among
/// the `pending` ones.
#[inline(always)]
fn keep<'a, T>(
    slot: usize,
    started: Started<'a, T>,
    results: &mut Vec<(usize, CallResult<T>)>,
    pending: &mut Option<FuturesUnordered<Tagged<'a, T>>>,
) {
    match started {
        Started::Done(result) => results.push((slot, result)),
        Started::Running(call) => pending
            .get_or_insert_with(FuturesUnordered::new)
            .push(Tagged {
                call,
                slot,
                cancelled: None,
            }),
    }
}

/// Each proposal's position in `proposals`, by id.
pub(super) fn positions<K, P>(proposals: &[Proposal<K, P>]) -> FxHashMap<ProposalId, usize> {
    let mut position = FxHashMap::with_capacity_and_hasher(proposals.len(), Default::default());
    for (index, proposal) in proposals.iter().enumerate() {
        position.insert(proposal.id, index);
    }
    position
}

impl<S: State> Round<'_, S> {
    /// Asks every member to propose and keeps the valid proposals.
    pub(super) async fn propose(&mut self) -> Proposals<S> {
        let kept = std::mem::take(&mut self.buffers.answers);
        let mut spare = std::mem::take(self.buffers.spare.get_mut());
        let mut answers = self.ask_proposals(kept, &mut spare).await;
        *self.buffers.spare.get_mut() = spare;
        // Empty, with the capacity an earlier round left them.
        let mut proposals = std::mem::take(&mut self.buffers.proposals);
        let mut proposers = std::mem::take(&mut self.buffers.proposers);
        proposals.reserve(answers.len());
        proposers.reserve(answers.len());
        // Ids in increasing order (as hive-assigned ids and most counters hand them out) are
        // distinct without hashing: the map is built only when an id breaks the order.
        let mut seen: Option<FxHashMap<ProposalId, usize>> = None;
        for (member, answer) in answers.drain(..) {
            match answer {
                Ok(Some(proposal)) => {
                    let in_order =
                        seen.is_none() && proposals.last().is_none_or(|last| last.id < proposal.id);
                    if !in_order {
                        let seen = seen.get_or_insert_with(|| positions(&proposals));
                        if let Some(&held) = seen.get(&proposal.id) {
                            self.failures.push(AgentFailure {
                                agent: self.members[member].id,
                                phase: Phase::Propose,
                                kind: FailureKind::DuplicateProposal {
                                    id: proposal.id,
                                    holder: self.members[proposers[held]].id,
                                },
                            });
                            continue;
                        }
                        seen.insert(proposal.id, proposals.len());
                    }
                    proposals.push(proposal);
                    proposers.push(member);
                }
                Ok(None) => {}
                Err(kind) => self.failures.push(AgentFailure {
                    agent: self.members[member].id,
                    phase: Phase::Propose,
                    kind,
                }),
            }
        }
        // Empty, kept for the next round.
        self.buffers.answers = answers;
        self.report_failures(0);
        tracing::debug!(proposals = proposals.len(), "proposals in");
        self.emit(|| HiveEvent::ProposalsIn {
            round: self.number,
            proposals: proposals.len(),
        });
        Proposals {
            proposals,
            proposers,
            position: Positions {
                sorted: seen.is_none(),
                map: seen.map_or_else(OnceLock::new, OnceLock::from),
            },
        }
    }
}
