//! One round: propose, detect conflicts, settle them, apply and commit.
//!
//! A [`Round`] holds what every phase of one round shares (its members, their contexts, the
//! snapshot, the limits, the failures so far); the phases are its methods: [`propose`] asks the
//! members, [`vote`] holds the ballots, and this module settles and commits.

mod batch;
mod propose;
mod supervise;
mod vote;

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;

use rustc_hash::FxHashMap;
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::time::Instant;
use tracing::Instrument;

use crate::agent::{AgentId, DynAgent, ProposalOf};
use crate::ballot::Tally;
use crate::call::{later, Limit};
use crate::context::{assigned_proposal_id, AgentContext, DecideOptions, RoundShared};
use crate::decision::{
    AgentFailure, BallotRecord, Decision, FailureKind, Phase, RejectReason, ResolutionStrategy,
};
use crate::error::HiveError;
use crate::events::HiveEvent;
use crate::hive::{Config, Hive, Interested};
use crate::lockfree::{
    self, detect_conflicts, resolve_conflicts, ConflictGroup, ProposalId, Resolution, Snapshot,
};
use crate::memory::{new_decision_id, AcceptedChange, CommitRequest};
use crate::state::State;

use self::vote::Proposed;

/// A member as a round sees it.
struct RoundMember<S: State> {
    id: AgentId,
    agent: Arc<dyn DynAgent<S>>,
    weight: f64,
    heavy: bool,
    votes: bool,
    /// Its failed rounds in a row when the round started (see [`Supervision`](crate::Supervision)).
    strikes: u32,
    /// The contests it votes in.
    interest: Interested<S::Key>,
    /// True when it answers all its contests in one call (`Agent::batch_votes`).
    batch: bool,
    /// What the member's calls in the current phase see.
    context: AgentContext,
}

impl<S: State> Clone for RoundMember<S> {
    fn clone(&self) -> Self {
        Self {
            id: self.id,
            agent: Arc::clone(&self.agent),
            weight: self.weight,
            heavy: self.heavy,
            votes: self.votes,
            strikes: self.strikes,
            interest: self.interest.clone(),
            batch: self.batch,
            context: self.context.clone(),
        }
    }
}

/// Ends the round's shared state when the round ends, however it ends (agents' tokens are
/// cancelled then).
struct EndOnDrop(Arc<RoundShared>);

impl Drop for EndOnDrop {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// One round in progress: what its phases share.
struct Round<'h, S: State> {
    hive: &'h Hive<S>,
    number: u64,
    handle: Handle,
    started: Instant,
    members: Arc<[RoundMember<S>]>,
    view: Snapshot<S>,
    shared: Arc<RoundShared>,
    limit: Limit,
    failures: Vec<AgentFailure>,
}

/// The proposals a round received, in arrival order.
struct Proposals<S: State> {
    proposals: Vec<ProposalOf<S>>,
    /// Each proposal's proposer, as an index into the round's members.
    proposers: Vec<usize>,
    /// Each proposal's position in `proposals`.
    position: FxHashMap<ProposalId, usize>,
}

/// How the round settled its conflicts.
struct Settled<K> {
    rejected: Vec<Option<RejectReason>>,
    ballots: Vec<BallotRecord<K>>,
    conflicts: usize,
    votes_counted: usize,
    votes_cancelled: usize,
}

impl<S: State> Hive<S> {
    /// Holds one round: snapshot the memory, ask every agent to propose, settle conflicts, apply the
    /// accepted changes and commit them as a new version.
    ///
    /// Agents are asked concurrently, at most `max_in_flight` at once, each call under
    /// `agent_timeout`; an agent that panics, errs or times out is recorded in
    /// [`Decision::failures`] and the round goes on. Proposals that conflict with no other are
    /// accepted; each conflict group is settled by the hive's [`ResolutionStrategy`]. Under
    /// [`ResolutionStrategy::Vote`] every voting agent is asked about every contested key, and the
    /// round stops waiting for a ballot's remaining voters (and cancels their calls) as soon as they
    /// can no longer change its outcome; a quorum that cannot be met ends with
    /// [`RejectReason::NoQuorum`] once the missing voters have failed or timed out, never a hang.
    ///
    /// A proposal in several conflict groups is accepted only if no group rejects it, so the accepted
    /// set never contains two conflicting proposals.
    ///
    /// **Concurrent rounds.** The accepted changes go to the hive's [`Memory`](crate::Memory) in one
    /// [`CommitRequest`] against the snapshot's version. If another round (here or, for a shared
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
        let number = self.inner.counters.rounds.fetch_add(1, Ordering::Relaxed) + 1;
        let span =
            tracing::info_span!("hive_round", hive = %self.inner.config.name, round = number);
        // Timers and spawned calls need a tokio runtime: the caller's, else hivekit's global one,
        // entered for the duration of each poll (so a round runs on any executor), as a swarm run.
        if let Ok(handle) = Handle::try_current() {
            return self
                .run_round(number, options, handle)
                .instrument(span)
                .await;
        }
        let global = hivekit_runtime::try_handle().map_err(|error| HiveError::NoRuntime {
            reason: error.to_string(),
        })?;
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
            deadline: options.deadline.map(|deadline| later(started, deadline)),
        };
        let cancel = options.cancel;
        let shared = Arc::new(RoundShared::new(number, cancel.clone()));
        let _end = EndOnDrop(Arc::clone(&shared));
        let members = self.round_members(number, &shared, limit.deadline_from_now());
        if members.is_empty() {
            return Err(HiveError::NoAgents);
        }
        let view = self.inner.memory.load();
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
        let mut round = Round {
            hive: self,
            number,
            handle,
            started,
            members,
            view,
            shared,
            limit,
            failures: Vec::new(),
        };
        // Cancellation stops the gathering of answers, never a commit in flight.
        let gathered = match &cancel {
            None => round.gather().await,
            Some(token) => {
                let mut gather = pin!(round.gather());
                let mut cancelled = pin!(token.cancelled());
                let gathered = poll_fn(|cx| {
                    if cancelled.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(None);
                    }
                    gather.as_mut().poll(cx).map(Some)
                })
                .await;
                gathered.ok_or_else(|| {
                    tracing::info!("round cancelled");
                    HiveError::Cancelled { round: number }
                })?
            }
        }?;
        round.commit(gathered).await
    }

    /// The members, lowest id first (so that rounds over the same agents are reproducible), each
    /// with its context for the propose phase and its hive-assigned proposal id; under supervision,
    /// without the members quarantined for round `number`.
    fn round_members(
        &self,
        number: u64,
        shared: &Arc<RoundShared>,
        deadline: Instant,
    ) -> Arc<[RoundMember<S>]> {
        // Sorted before the contexts are made: sorting small entries moves far less memory.
        let mut entries: Vec<MemberEntry<S>> = Vec::with_capacity(self.inner.agents.len());
        let supervised = self.inner.config.supervision.is_some();
        for entry in self.inner.agents.iter() {
            let member = entry.value();
            let strikes = if supervised {
                let health = &member.health;
                if health.quarantined_until.load(Ordering::Relaxed) >= number {
                    continue;
                }
                health.failures.load(Ordering::Relaxed)
            } else {
                0
            };
            entries.push((
                *entry.key(),
                Arc::clone(&member.agent),
                member.weight,
                member.heavy,
                member.votes,
                strikes,
                member.interest.clone(),
                member.batch,
            ));
        }
        entries.sort_unstable_by_key(|entry| entry.0);
        // Hive-assigned proposal ids: a block per round, one id per member, unique in the hive.
        let base = next_ids(&self.inner.next_proposal, entries.len());
        entries
            .into_iter()
            .enumerate()
            .map(
                |(offset, (id, agent, weight, heavy, votes, strikes, interest, batch))| {
                    let proposal_id = assigned_proposal_id(base.wrapping_add(offset as u64));
                    RoundMember {
                        id,
                        agent,
                        weight,
                        heavy,
                        votes,
                        strikes,
                        interest,
                        batch,
                        context: AgentContext::for_round(id, proposal_id, deadline, shared),
                    }
                },
            )
            .collect()
    }
}

/// A member before its context is made: id, agent, weight, heavy, votes, strikes, interest,
/// batch.
type MemberEntry<S> = (
    AgentId,
    Arc<dyn DynAgent<S>>,
    f64,
    bool,
    bool,
    u32,
    Interested<<S as State>::Key>,
    bool,
);

/// Reserves `count` consecutive ids from `counter` and returns the first.
fn next_ids(counter: &AtomicU64, count: usize) -> u64 {
    counter.fetch_add(count as u64, Ordering::Relaxed)
}

impl<'h, S: State> Round<'h, S> {
    fn config(&self) -> &'h Config {
        &self.hive.inner.config
    }

    /// The runtime's worker threads (the round splits large phases into one chunk per worker).
    fn workers(&self) -> usize {
        match self.handle.runtime_flavor() {
            RuntimeFlavor::CurrentThread => 1,
            _ => self.handle.metrics().num_workers().max(1),
        }
    }

    /// Sends an event, built only when the hive has a sink.
    fn emit(&self, event: impl FnOnce() -> HiveEvent<S::Key>) {
        if let Some(events) = &self.hive.inner.events {
            events.emit(event());
        }
    }

    /// Logs and reports the failures recorded since `from`.
    fn report_failures(&self, from: usize) {
        for failure in &self.failures[from..] {
            tracing::warn!(agent = failure.agent.0, phase = %failure.phase, "{failure}");
            self.emit(|| HiveEvent::AgentFailed {
                round: self.number,
                failure: failure.clone(),
            });
        }
    }

    /// The propose and settle phases: everything before the commit, which cancellation may stop.
    async fn gather(&mut self) -> Result<(Proposals<S>, Settled<S::Key>), HiveError> {
        let proposals = self.propose().await;
        let settled = self.settle(&proposals).await?;
        Ok((proposals, settled))
    }

    /// Asks every member to propose and keeps the valid proposals.
    async fn propose(&mut self) -> Proposals<S> {
        let answers = self.ask_proposals().await;
        let mut proposals: Vec<ProposalOf<S>> = Vec::with_capacity(answers.len());
        let mut proposers: Vec<usize> = Vec::with_capacity(answers.len());
        let mut position: FxHashMap<ProposalId, usize> =
            FxHashMap::with_capacity_and_hasher(answers.len(), Default::default());
        for (member, answer) in answers {
            match answer {
                Ok(Some(proposal)) => {
                    if let Some(&held) = position.get(&proposal.id) {
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
                    position.insert(proposal.id, proposals.len());
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
        self.report_failures(0);
        tracing::debug!(proposals = proposals.len(), "proposals in");
        self.emit(|| HiveEvent::ProposalsIn {
            round: self.number,
            proposals: proposals.len(),
        });
        Proposals {
            proposals,
            proposers,
            position,
        }
    }

    /// Detects the conflicts among the proposals and settles each group.
    async fn settle(&mut self, proposed: &Proposals<S>) -> Result<Settled<S::Key>, HiveError> {
        let Proposals {
            proposals,
            proposers,
            position,
        } = proposed;
        let report = detect_conflicts(proposals)?;
        let mut settled = Settled {
            rejected: vec![None; proposals.len()],
            ballots: Vec::new(),
            conflicts: report.groups.len(),
            votes_counted: 0,
            votes_cancelled: 0,
        };
        if report.groups.is_empty() {
            return Ok(settled);
        }
        for group in &report.groups {
            tracing::debug!(key = ?group.key, kind = %group.kind, candidates = group.members.len(), "conflict found");
            self.emit(|| HiveEvent::ConflictFound {
                round: self.number,
                key: group.key.clone(),
                kind: group.kind,
                candidates: group.members.clone(),
            });
        }
        let rejected = &mut settled.rejected;
        match self.config().resolution {
            ResolutionStrategy::Vote => {
                let failed_before = self.failures.len();
                let records = self
                    .hold_ballots(
                        &report.groups,
                        Proposed {
                            proposals,
                            position,
                            proposers,
                        },
                    )
                    .await;
                self.report_failures(failed_before);
                for (group, record) in report.groups.iter().zip(records) {
                    tracing::debug!(key = ?record.key, tally = %record.tally, votes = record.votes, "ballot settled");
                    self.emit(|| HiveEvent::BallotSettled {
                        round: self.number,
                        key: record.key.clone(),
                        tally: record.tally.clone(),
                        votes: record.votes,
                    });
                    settled.votes_counted += record.votes;
                    settled.votes_cancelled += record.cancelled;
                    match record.tally.winner() {
                        Some(winner) => settle(
                            group,
                            winner,
                            RejectReason::LostVote { winner },
                            position,
                            rejected,
                        ),
                        None => {
                            let reason = match record.tally {
                                Tally::NoQuorum { .. } => RejectReason::NoQuorum,
                                Tally::Tie { .. } => RejectReason::Tie,
                                _ => RejectReason::Undecided,
                            };
                            reject_all(group, &reason, position, rejected);
                        }
                    }
                    settled.ballots.push(record);
                }
            }
            ResolutionStrategy::HighestPriority
            | ResolutionStrategy::FirstProposed
            | ResolutionStrategy::RejectAll => {
                let policy = match self.config().resolution {
                    ResolutionStrategy::HighestPriority => Resolution::HighestPriority,
                    ResolutionStrategy::FirstProposed => Resolution::FirstSubmitted,
                    _ => Resolution::RejectAll,
                };
                let priority_of = |id: ProposalId| proposals[position[&id]].priority;
                for (id, reason) in resolve_conflicts(&report.groups, policy, priority_of) {
                    let reason = match reason {
                        lockfree::RejectReason::LostTo { winner, .. } => {
                            RejectReason::ConflictWith { winner }
                        }
                        _ => RejectReason::Contested,
                    };
                    rejected[position[&id]].get_or_insert(reason);
                }
            }
        }
        Ok(settled)
    }

    /// Applies and commits the accepted changes, counts the round, and writes its decision.
    async fn commit(
        self,
        (proposed, settled): (Proposals<S>, Settled<S::Key>),
    ) -> Result<Decision<S>, HiveError> {
        let Proposals {
            proposals,
            proposers,
            ..
        } = &proposed;
        let mut accepted = Vec::with_capacity(proposals.len());
        let mut rejections = Vec::new();
        for (index, (proposal, rejection)) in proposals.iter().zip(settled.rejected).enumerate() {
            match rejection {
                None => accepted.push(AcceptedChange {
                    proposal,
                    proposer: Some(self.members[proposers[index]].id),
                }),
                Some(reason) => rejections.push((proposal.id, reason)),
            }
        }
        let base_version = self.view.version();
        let id = new_decision_id();
        let (version, rebased) = if accepted.is_empty() {
            (base_version, false)
        } else {
            let request = CommitRequest {
                decision_id: id,
                round: self.number,
                base: base_version,
                accepted: &accepted,
            };
            let committed = match self.hive.inner.memory.commit(request).await {
                Ok(committed) => committed,
                Err(error) => {
                    if error.may_have_committed() {
                        // Not retried here: a retry would commit the decision a second time.
                        tracing::warn!(%error, decision = id, "commit outcome unknown; it may have applied");
                    } else {
                        tracing::warn!(%error, "commit failed; nothing applied");
                    }
                    return Err(error.into());
                }
            };
            (committed.version, committed.rebased)
        };
        if accepted.is_empty() {
            tracing::info!(proposals = proposals.len(), "nothing to commit");
            self.emit(|| HiveEvent::NothingToCommit { round: self.number });
        } else {
            tracing::info!(version, accepted = accepted.len(), rebased, "committed");
            self.emit(|| HiveEvent::Committed {
                round: self.number,
                version,
                accepted: accepted.len(),
                rebased,
            });
        }

        let counters = &self.hive.inner.counters;
        let add = |counter: &AtomicU64, value: usize| {
            if value > 0 {
                counter.fetch_add(value as u64, Ordering::Relaxed);
            }
        };
        add(&counters.commits, usize::from(!accepted.is_empty()));
        add(&counters.rebases, usize::from(rebased));
        add(&counters.proposals, proposals.len());
        add(&counters.accepted, accepted.len());
        add(&counters.rejected, rejections.len());
        add(&counters.conflicts, settled.conflicts);
        add(&counters.votes, settled.votes_counted);
        add(&counters.cancelled_votes, settled.votes_cancelled);
        for failure in &self.failures {
            let counter = match failure.kind {
                FailureKind::TimedOut | FailureKind::Cancelled => &counters.timeouts,
                FailureKind::Panicked { .. } => &counters.panics,
                FailureKind::Errored { .. } => &counters.errors,
                FailureKind::DuplicateProposal { .. }
                | FailureKind::InvalidVote { .. }
                | FailureKind::WrongVoteCount { .. } => &counters.invalid,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }

        let supervised = self.supervise();

        let decision = Decision {
            id,
            round: self.number,
            base_version,
            version,
            rebased,
            agents: self.members.len(),
            proposals: proposals.len(),
            proposers: proposals
                .iter()
                .zip(proposers)
                .map(|(proposal, &member)| (proposal.id, self.members[member].id))
                .collect(),
            accepted: accepted.iter().map(|change| change.proposal.id).collect(),
            rejected: rejections,
            ballots: settled.ballots,
            failures: self.failures,
            supervised,
            elapsed: self.started.elapsed(),
        };
        let memory = &self.hive.inner.memory;
        if !accepted.is_empty() && memory.depth() > 0 {
            memory.remember(memory.load(), &decision);
        }
        Ok(decision)
    }
}

/// Rejects every member of `group` that conflicts with `winner` on the group's key (lockfree's
/// resolution rule, [`ConflictGroup::losers_to`]): all of them if the winner writes the key, the
/// other writers if it only reads it.
fn settle<K>(
    group: &ConflictGroup<K>,
    winner: ProposalId,
    reason: RejectReason,
    position: &FxHashMap<ProposalId, usize>,
    rejected: &mut [Option<RejectReason>],
) {
    for member in group.losers_to(winner) {
        rejected[position[&member]].get_or_insert_with(|| reason.clone());
    }
}

fn reject_all<K>(
    group: &ConflictGroup<K>,
    reason: &RejectReason,
    position: &FxHashMap<ProposalId, usize>,
    rejected: &mut [Option<RejectReason>],
) {
    for member in &group.members {
        let slot = &mut rejected[position[member]];
        if slot.is_none() {
            *slot = Some(reason.clone());
        }
    }
}

fn call_span(agent: AgentId, phase: Phase) -> tracing::Span {
    tracing::debug_span!("agent_call", agent = agent.0, ?phase)
}
