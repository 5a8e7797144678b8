//! Holding a round: [`Hive::decide`], its runtime, cancellation, and the round's members.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;

use hivekit_runtime::instant_after;
use tokio::runtime::Handle;
use tokio::time::Instant;
use tracing::Instrument;

use crate::call::Limit;
use crate::context::{assigned_proposal_id, AgentContext, DecideOptions, RoundShared};
use crate::decision::Decision;
use crate::error::HiveError;
use crate::events::HiveEvent;
use crate::hive::Hive;
use crate::roster::Listed;
use crate::state::State;

use crate::round::{Electorates, EndOnDrop, Round, RoundMember, RoundSpare, Unended, Unsupervised};

impl<S: State> Hive<S> {
    /// Holds one round: snapshot the memory, ask every agent to propose, settle conflicts, apply the
    /// accepted changes and commit them as a new version.
    ///
    /// Agents are asked concurrently, at most `max_in_flight` at once, each call under
    /// `agent_timeout`; an agent that panics, errs or times out is recorded in
    /// [`Decision::failures`] and the round goes on. Proposals that conflict with no other are
    /// accepted; each conflict group is settled by the hive's [`ResolutionStrategy`](crate::ResolutionStrategy). Under
    /// [`ResolutionStrategy::Vote`](crate::ResolutionStrategy::Vote) every voting agent is asked about every contested key, and the
    /// round stops waiting for a ballot's remaining voters (and cancels their calls) as soon as they
    /// can no longer change its outcome; a quorum that cannot be met ends with
    /// [`RejectReason::NoQuorum`](crate::RejectReason::NoQuorum) once the missing voters have failed or timed out, never a hang.
    ///
    /// A proposal in several conflict groups is accepted only if no group rejects it, so the accepted
    /// set never contains two conflicting proposals.
    ///
    /// **Concurrent rounds.** The accepted changes go to the hive's [`Memory`](crate::Memory) in one
    /// [`CommitRequest`](crate::CommitRequest) against the snapshot's version. If another round (here or, for a shared
    /// backend, in another process) committed in between, the accepted changes are re-applied on
    /// top of the newer state instead (read-copy-update) and [`Decision::rebased`] is set: no
    /// committed change is ever lost, and every accepted change is applied exactly once.
    ///
    /// **Runtime.** The round runs on the caller's tokio runtime; outside one (a plain thread, or
    /// another executor) it uses hivekit's global runtime for its timers and tasks, as a swarm run
    /// does.
    ///
    /// # Errors
    ///
    /// [`HiveError::NoAgents`] for a hive without agents; [`HiveError::Memory`] when the memory
    /// cannot commit (nothing of the decision was applied); [`HiveError::NoRuntime`] outside a tokio
    /// runtime when the global runtime cannot be built.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it commits abandons the round: nothing is committed, and agent
    /// calls running as their own tasks are aborted. For the in-process memory the commit and the
    /// end of the future happen in one poll; for a remote memory, dropping the future while its
    /// commit is in flight leaves the outcome to the memory (it either committed the whole decision
    /// or none of it). To stop a round cleanly use [`Hive::decide_with`] and a cancellation token.
    ///
    /// The agent failures a stopped round had reported ([`HiveEvent::AgentFailed`]) are counted
    /// in [`Hive::stats`] and handed to supervision, whether its token stopped it or its future
    /// was dropped; such a round clears nobody's supervision record. A phase reports its failures
    /// when it ends: the failures of calls that ended in the phase the round was stopped in (a
    /// `propose` that panicked beside one that never answers) are not reported, counted or
    /// supervised. (A round whose deadline passes is not stopped: its calls still running time
    /// out, and it decides and commits.)
    ///
    /// [`HiveEvent::AgentFailed`]: crate::HiveEvent::AgentFailed
    pub async fn decide(&self) -> Result<Decision<S>, HiveError> {
        self.decide_with(DecideOptions::default()).await
    }

    /// [`Hive::decide`] with a deadline for the round's agent calls and a cancellation token.
    ///
    /// # Errors
    ///
    /// Those of [`Hive::decide`], and [`HiveError::Cancelled`] when the token is cancelled before
    /// the round commits (then nothing is committed; agent calls still running are dropped and the
    /// agents' [`AgentContext::cancellation`] is cancelled).
    ///
    /// # Cancel safety
    ///
    /// As [`Hive::decide`].
    ///
    /// # Examples
    ///
    /// ```
    /// use hivekit_hive::{CancellationToken, DecideOptions, Hive, HiveError, State};
    /// # use hivekit_hive::{Agent, AgentContext, AgentError, ProposalOf, Snapshot};
    /// # #[derive(Clone, Default)]
    /// # struct Counter(u64);
    /// # impl State for Counter {
    /// #     type Key = ();
    /// #     type Change = u64;
    /// #     fn apply(&mut self, change: &u64) { self.0 += change; }
    /// # }
    /// # struct Bump;
    /// # impl Agent<Counter> for Bump {
    /// #     async fn propose(&self, ctx: &AgentContext, _: &Snapshot<Counter>)
    /// #         -> Result<Option<ProposalOf<Counter>>, AgentError> { Ok(Some(ctx.proposal(1))) }
    /// # }
    ///
    /// # tokio::runtime::Runtime::new()?.block_on(async {
    /// let hive = Hive::builder(Counter::default()).build()?;
    /// hive.spawn(Bump);
    /// let cancel = CancellationToken::new();
    /// cancel.cancel();
    /// let outcome = hive.decide_with(DecideOptions::default().with_cancel(cancel)).await;
    /// assert_eq!(outcome.unwrap_err(), HiveError::Cancelled { round: 1 });
    /// assert_eq!(hive.memory().version(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn decide_with(&self, options: DecideOptions) -> Result<Decision<S>, HiveError> {
        // Timers and spawned calls need a tokio runtime: the caller's, else hivekit's global one,
        // entered for the duration of each poll (so a round runs on any executor), as a swarm run.
        // Looked up before the round is numbered: a round that cannot start is no round (no
        // number, no events, not counted).
        let (handle, entered) = match Handle::try_current() {
            Ok(handle) => (handle, false),
            Err(_) => {
                let global =
                    hivekit_runtime::try_handle().map_err(|error| HiveError::NoRuntime {
                        reason: error.to_string(),
                    })?;
                (global.clone(), true)
            }
        };
        let number = self.inner.counters.rounds.fetch_add(1, Ordering::Relaxed) + 1;
        let span =
            tracing::info_span!("hive_round", hive = %self.inner.config.name, round = number);
        if !entered {
            return self
                .run_round(number, options, handle)
                .instrument(span)
                .await;
        }
        let global = &handle;
        let mut running = pin!(self
            .run_round(number, options, global.clone())
            .instrument(span));
        poll_fn(|cx| {
            let _entered = global.enter();
            running.as_mut().poll(cx)
        })
        .await
    }

    async fn run_round(
        &self,
        number: u64,
        options: DecideOptions,
        handle: Handle,
    ) -> Result<Decision<S>, HiveError> {
        let started = Instant::now();
        let config = &self.inner.config;
        let limit = Limit {
            timeout: config.agent_timeout,
            deadline: options
                .deadline
                .map(|deadline| instant_after(started, deadline)),
        };
        let cancel = options.cancel;
        let shared = Arc::new(RoundShared::new(number, cancel.clone()));
        let _end = EndOnDrop(Arc::clone(&shared));
        let (
            roster,
            RoundSpare {
                members,
                buffers,
                electorates,
            },
        ) = self.round_members(number, &shared, limit.deadline_from_now());
        let view = self.inner.memory.load();
        if members.is_empty() {
            // A numbered round that returns: its events start and end as every round's do.
            if let Some(events) = &self.inner.events {
                events.emit(HiveEvent::RoundStarted {
                    round: number,
                    agents: 0,
                    version: view.version(),
                });
                events.emit(HiveEvent::RoundFailed {
                    round: number,
                    error: HiveError::NoAgents.to_string(),
                });
            }
            return Err(HiveError::NoAgents);
        }
        tracing::debug!(
            agents = members.len(),
            version = view.version(),
            "round started"
        );
        if let Some(events) = &self.inner.events {
            events.emit(HiveEvent::RoundStarted {
                round: number,
                agents: members.len(),
                version: view.version(),
            });
        }
        // From here the round's events end with a terminal event, also when its future is dropped
        // or a panic (a memory's commit) unwinds through it.
        let mut round = Round {
            unsupervised: Unsupervised::new(self, number, &handle),
            unended: Unended::new(self.inner.events.as_ref(), number),
            hive: self,
            number,
            handle,
            started,
            roster,
            members,
            buffers,
            electorates,
            view,
            shared,
            limit,
            failures: Vec::new(),
        };
        // Cancellation stops the gathering of answers, never a commit in flight.
        let gathered = match &cancel {
            None => round.gather().await,
            Some(token) => {
                let gathered = {
                    let mut gather = pin!(round.gather());
                    let mut cancelled = pin!(token.cancelled());
                    poll_fn(|cx| {
                        if cancelled.as_mut().poll(cx).is_ready() {
                            return Poll::Ready(None);
                        }
                        gather.as_mut().poll(cx).map(Some)
                    })
                    .await
                };
                // A token cancelled in the very poll that gathered the last answers (by an agent,
                // or an event callback) still cancels the round: nothing is committed.
                match gathered.filter(|_| !token.is_cancelled()) {
                    Some(gathered) => gathered,
                    None => {
                        tracing::info!("round cancelled");
                        return Err(round.end_cancelled(HiveError::Cancelled { round: number }));
                    }
                }
            }
        };
        let gathered = match gathered {
            Ok(gathered) => gathered,
            Err(error) => return Err(round.end_failed(error)),
        };
        round.commit(gathered).await
    }

    /// The members, lowest id first (so that rounds over the same agents are reproducible), each
    /// with its context for the propose phase and its hive-assigned proposal id; under supervision,
    /// without the members quarantined for round `number`; with the roster list they were read
    /// from and empty working vectors.
    ///
    /// Without supervision, the member array and the working vectors the last round over the same
    /// roster list left are reused ([`RoundSpare`]): only each member's context is rewritten.
    fn round_members(
        &self,
        number: u64,
        shared: &Arc<RoundShared>,
        deadline: Instant,
    ) -> (Arc<[Listed<S>]>, RoundSpare<S>) {
        // The roster is sorted once per change of the membership, not once per round.
        let (roster, spare) = self.inner.roster.current(&self.inner.agents);
        let member = |listed: &Listed<S>, strikes: u32, proposal_id| RoundMember {
            id: listed.id,
            agent: Arc::clone(&listed.agent),
            weight: listed.weight,
            heavy: listed.heavy,
            votes: listed.votes,
            strikes,
            interest: listed.interest.clone(),
            batch: listed.batch,
            context: AgentContext::for_round(listed.id, proposal_id, deadline, shared),
        };
        // Hive-assigned proposal ids: a block per round, one id per member, unique in the hive.
        if self.inner.config.supervision.is_none() {
            let base = next_ids(&self.inner.next_proposal, roster.len());
            let id_of = |offset: usize| assigned_proposal_id(base.wrapping_add(offset as u64));
            if let Some(RoundSpare {
                mut members,
                buffers,
                electorates,
            }) = spare
            {
                if let Some(reused) = Arc::get_mut(&mut members) {
                    if reused.len() == roster.len() {
                        for (offset, member) in reused.iter_mut().enumerate() {
                            member.context =
                                AgentContext::for_round(member.id, id_of(offset), deadline, shared);
                        }
                        // The same members: the same voters, so the same electorates.
                        let spare = RoundSpare {
                            members,
                            buffers,
                            electorates,
                        };
                        return (roster, spare);
                    }
                }
            }
            let members = roster
                .iter()
                .enumerate()
                .map(|(offset, listed)| member(listed, 0, id_of(offset)))
                .collect();
            let spare = RoundSpare {
                members,
                buffers: Box::default(),
                electorates: Electorates::default(),
            };
            return (roster, spare);
        }
        // Under supervision each member's health is read now: its strikes, and whether it sits
        // this round out. A member removed since the roster was read is left out.
        let present: Vec<(&Listed<S>, u32)> = roster
            .iter()
            .filter_map(|listed| {
                let entry = self.inner.agents.get(&listed.id)?;
                let health = &entry.health;
                (health.quarantined_until.load(Ordering::Relaxed) < number)
                    .then(|| (listed, health.failures.load(Ordering::Relaxed)))
            })
            .collect();
        let base = next_ids(&self.inner.next_proposal, present.len());
        let members = present
            .into_iter()
            .enumerate()
            .map(|(offset, (listed, strikes))| {
                member(
                    listed,
                    strikes,
                    assigned_proposal_id(base.wrapping_add(offset as u64)),
                )
            })
            .collect();
        let spare = RoundSpare {
            members,
            buffers: Box::default(),
            electorates: Electorates::default(),
        };
        (roster, spare)
    }
}

/// Reserves `count` consecutive ids from `counter` and returns the first.
fn next_ids(counter: &AtomicU64, count: usize) -> u64 {
    counter.fetch_add(count as u64, Ordering::Relaxed)
}
