//! One round: propose, detect conflicts, settle them, apply and commit.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use hivekit_runtime::AbortOnDrop;
use rustc_hash::FxHashMap;
use tokio::runtime::{Handle, RuntimeFlavor};
use tracing::Instrument;

use crate::agent::{AgentId, Candidate, Contest, DynAgent, ProposalOf, Vote, VoteSlot};
use crate::ballot::{Ballot, BallotError, Electorate, Tally};
use crate::call::{start_in_slot, Call, CallResult, Guarded, Started, Tagged};
use crate::decision::{
    AgentFailure, BallotRecord, Decision, FailureKind, Phase, RejectReason, ResolutionStrategy,
};
use crate::error::HiveError;
use crate::hive::{Config, Hive};
use crate::lockfree::{detect_conflicts, ConflictGroup, ProposalId, Snapshot};
use crate::state::State;

/// Below this many light agents per worker thread, one task polls them all; above, the round splits
/// them into one chunk per worker so that their polling uses every core.
const LIGHT_AGENTS_PER_CHUNK: usize = 256;

/// A member as a round sees it.
struct RoundMember<S: State> {
    id: AgentId,
    agent: Arc<dyn DynAgent<S>>,
    weight: f64,
    heavy: bool,
    votes: bool,
}

impl<S: State> Clone for RoundMember<S> {
    fn clone(&self) -> Self {
        Self {
            id: self.id,
            agent: Arc::clone(&self.agent),
            weight: self.weight,
            heavy: self.heavy,
            votes: self.votes,
        }
    }
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
    /// **Concurrent rounds.** The new state is the snapshot with the accepted changes applied,
    /// committed against the snapshot's version. If another round committed in between, the accepted
    /// changes are re-applied on top of the newer state instead (read-copy-update) and
    /// [`Decision::rebased`] is set: no committed change is ever lost, and every accepted change is
    /// applied exactly once.
    ///
    /// # Errors
    ///
    /// [`HiveError::NoAgents`] for a hive without agents, [`HiveError::NoRuntime`] outside a tokio
    /// runtime.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes abandons the round: nothing is committed, and agent
    /// calls running as their own tasks are aborted. Once the future has committed it completes
    /// without awaiting anything else.
    pub async fn decide(&self) -> Result<Decision<S>, HiveError> {
        let round = self.inner.counters.rounds.fetch_add(1, Ordering::Relaxed) + 1;
        let span = tracing::debug_span!("hive_round", round);
        self.run_round(round).instrument(span).await
    }

    async fn run_round(&self, round: u64) -> Result<Decision<S>, HiveError> {
        let started = tokio::time::Instant::now();
        let handle = Handle::try_current().map_err(|_| HiveError::NoRuntime)?;
        let members = self.round_members();
        if members.is_empty() {
            return Err(HiveError::NoAgents);
        }
        let config = &self.inner.config;
        let view = self.inner.memory.load();
        let base_version = view.version();
        let mut failures = Vec::new();

        // Propose.
        let answers = propose_all(&handle, &members, &view, config).await;
        let mut proposals: Vec<ProposalOf<S>> = Vec::with_capacity(answers.len());
        let mut proposers: Vec<usize> = Vec::with_capacity(answers.len());
        let mut position: FxHashMap<ProposalId, usize> =
            FxHashMap::with_capacity_and_hasher(answers.len(), Default::default());
        for (member, answer) in answers {
            match answer {
                Ok(Some(proposal)) => {
                    if position.contains_key(&proposal.id) {
                        failures.push(AgentFailure {
                            agent: members[member].id,
                            phase: Phase::Propose,
                            kind: FailureKind::DuplicateProposal { id: proposal.id },
                        });
                        continue;
                    }
                    position.insert(proposal.id, proposals.len());
                    proposals.push(proposal);
                    proposers.push(member);
                }
                Ok(None) => {}
                Err(kind) => failures.push(AgentFailure {
                    agent: members[member].id,
                    phase: Phase::Propose,
                    kind,
                }),
            }
        }

        // Detect and settle conflicts.
        let report = detect_conflicts(&proposals)?;
        let conflicts = report.groups.len();
        let mut rejected: Vec<Option<RejectReason>> = vec![None; proposals.len()];
        let mut ballots = Vec::new();
        let mut votes_counted = 0;
        let mut votes_cancelled = 0;
        if !report.groups.is_empty() {
            match config.resolution {
                ResolutionStrategy::Vote => {
                    let settled = vote_all(
                        &handle,
                        &members,
                        &view,
                        config,
                        &report.groups,
                        &proposals,
                        &position,
                        &proposers,
                        &mut failures,
                    )
                    .await;
                    for (group, record) in report.groups.iter().zip(settled) {
                        votes_counted += record.votes;
                        votes_cancelled += record.cancelled;
                        match record.tally.winner() {
                            Some(winner) => settle::<S>(
                                group,
                                winner,
                                RejectReason::LostVote { winner },
                                &proposals,
                                &position,
                                &mut rejected,
                            ),
                            None => {
                                let reason = match record.tally {
                                    Tally::NoQuorum { .. } => RejectReason::NoQuorum,
                                    Tally::Tie { .. } => RejectReason::Tie,
                                    _ => RejectReason::Undecided,
                                };
                                reject_all(group, &reason, &position, &mut rejected);
                            }
                        }
                        ballots.push(record);
                    }
                }
                ResolutionStrategy::HighestPriority | ResolutionStrategy::FirstProposed => {
                    for group in &report.groups {
                        let winner = if config.resolution == ResolutionStrategy::HighestPriority {
                            group.members.iter().copied().max_by(|a, b| {
                                let (pa, pb) = (&proposals[position[a]], &proposals[position[b]]);
                                pa.priority.cmp(&pb.priority).then(b.cmp(a))
                            })
                        } else {
                            group.members.iter().copied().min_by_key(|id| position[id])
                        };
                        if let Some(winner) = winner {
                            settle::<S>(
                                group,
                                winner,
                                RejectReason::ConflictWith { winner },
                                &proposals,
                                &position,
                                &mut rejected,
                            );
                        }
                    }
                }
                ResolutionStrategy::RejectAll => {
                    for group in &report.groups {
                        reject_all(group, &RejectReason::Contested, &position, &mut rejected);
                    }
                }
            }
        }

        // Apply and commit.
        let mut accepted = Vec::with_capacity(proposals.len());
        let mut rejections = Vec::new();
        for (proposal, rejection) in proposals.iter().zip(rejected) {
            match rejection {
                None => accepted.push(proposal),
                Some(reason) => rejections.push((proposal.id, reason)),
            }
        }
        let (version, rebased) = if accepted.is_empty() {
            (base_version, false)
        } else {
            self.commit(&view, &accepted)
        };

        let counters = &self.inner.counters;
        let add = |counter: &std::sync::atomic::AtomicU64, value: usize| {
            if value > 0 {
                counter.fetch_add(value as u64, Ordering::Relaxed);
            }
        };
        add(&counters.commits, usize::from(!accepted.is_empty()));
        add(&counters.rebases, usize::from(rebased));
        add(&counters.proposals, proposals.len());
        add(&counters.accepted, accepted.len());
        add(&counters.rejected, rejections.len());
        add(&counters.conflicts, conflicts);
        add(&counters.votes, votes_counted);
        add(&counters.cancelled_votes, votes_cancelled);
        for failure in &failures {
            let counter = match failure.kind {
                FailureKind::TimedOut | FailureKind::Cancelled => &counters.timeouts,
                FailureKind::Panicked { .. } => &counters.panics,
                FailureKind::Errored { .. } => &counters.errors,
                FailureKind::DuplicateProposal { .. } | FailureKind::InvalidVote { .. } => {
                    &counters.invalid
                }
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }

        Ok(Decision {
            round,
            base_version,
            version,
            rebased,
            agents: members.len(),
            proposals: proposals.len(),
            accepted: accepted.iter().map(|proposal| proposal.id).collect(),
            rejected: rejections,
            ballots,
            failures,
            elapsed: started.elapsed(),
        })
    }

    /// The members, lowest id first, so that rounds over the same agents are reproducible.
    fn round_members(&self) -> Arc<[RoundMember<S>]> {
        let mut members: Vec<RoundMember<S>> = self
            .inner
            .agents
            .iter()
            .map(|entry| {
                let member = entry.value();
                RoundMember {
                    id: *entry.key(),
                    agent: Arc::clone(&member.agent),
                    weight: member.weight,
                    heavy: member.heavy,
                    votes: member.votes,
                }
            })
            .collect();
        members.sort_unstable_by_key(|member| member.id);
        members.into()
    }

    /// Commits the accepted changes applied to `view`, or rebases them on a newer version.
    fn commit(&self, view: &Snapshot<S>, accepted: &[&ProposalOf<S>]) -> (u64, bool) {
        let apply = |base: &S| {
            let mut next = base.clone();
            for proposal in accepted {
                next.apply(&proposal.payload);
            }
            next
        };
        let memory = &self.inner.memory;
        let staged = view.stage(apply(view));
        match memory.commit(staged) {
            Ok(version) => (version, false),
            Err(_) => (memory.update(apply), true),
        }
    }
}

/// Rejects every member of `group` that conflicts with `winner` on the group's key: all of them if
/// the winner writes the key, the other writers if it only reads it.
fn settle<S: State>(
    group: &ConflictGroup<S::Key>,
    winner: ProposalId,
    reason: RejectReason,
    proposals: &[ProposalOf<S>],
    position: &FxHashMap<ProposalId, usize>,
    rejected: &mut [Option<RejectReason>],
) {
    let writes = |id: ProposalId| proposals[position[&id]].writes.contains(&group.key);
    let winner_writes = writes(winner);
    for &member in &group.members {
        if member == winner || !(winner_writes || writes(member)) {
            continue;
        }
        let slot = &mut rejected[position[&member]];
        if slot.is_none() {
            *slot = Some(reason.clone());
        }
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

/// Starts one `propose` call: polled inline for light agents, as its own task for heavy ones.
fn propose_call<'a, S: State>(
    member: &'a RoundMember<S>,
    view: &'a Snapshot<S>,
    timeout: Duration,
) -> Call<'a, Option<ProposalOf<S>>> {
    let span = call_span(member.id, Phase::Propose);
    if member.heavy {
        let agent = Arc::clone(&member.agent);
        let view = view.clone();
        Call::spawn(async move { Guarded::new(agent.propose_boxed(&view), timeout, span).await })
    } else {
        Call::inline(Guarded::new(
            member.agent.propose_boxed(view),
            timeout,
            span,
        ))
    }
}

/// Asks every member to propose; returns `(member index, answer)` in arrival order.
async fn propose_all<S: State>(
    handle: &Handle,
    members: &Arc<[RoundMember<S>]>,
    view: &Snapshot<S>,
    config: &Config,
) -> Vec<(usize, CallResult<Option<ProposalOf<S>>>)> {
    let timeout = config.agent_timeout;
    let workers = match handle.runtime_flavor() {
        RuntimeFlavor::CurrentThread => 1,
        _ => handle.metrics().num_workers().max(1),
    };
    // Never more chunks than calls allowed in flight, so the chunks' bounds add up to at most
    // `max_in_flight`.
    let chunks = (members.len() / LIGHT_AGENTS_PER_CHUNK)
        .min(workers)
        .min(config.max_in_flight)
        .max(1);
    if chunks == 1 {
        return run_calls(members.len(), config.max_in_flight, |index| {
            propose_call(&members[index], view, timeout)
        })
        .await;
    }
    // Large hives: one chunk per worker, each polled by its own task, this one included.
    let bound = (config.max_in_flight / chunks).max(1);
    let size = members.len().div_ceil(chunks);
    let spawned: Vec<_> = (1..chunks)
        .map(|chunk| {
            let members = Arc::clone(members);
            let view = view.clone();
            let span = tracing::Span::current();
            let range = chunk * size..((chunk + 1) * size).min(members.len());
            let offset = range.start;
            let count = range.len();
            let task = AbortOnDrop::new(
                handle.spawn(
                    async move {
                        run_calls(count, bound, |index| {
                            propose_call(&members[offset + index], &view, timeout)
                        })
                        .await
                    }
                    .instrument(span),
                ),
            );
            (range, task)
        })
        .collect();
    let mut answers = run_calls(size.min(members.len()), bound, |index| {
        propose_call(&members[index], view, timeout)
    })
    .await;
    for (range, task) in spawned {
        match task.await {
            Ok(more) => answers.extend(
                more.into_iter()
                    .map(|(index, answer)| (range.start + index, answer)),
            ),
            // The chunk's task cannot panic (every call is guarded), so it was cancelled: the
            // runtime is shutting down. Its agents are reported, not silently dropped.
            Err(_) => answers.extend(range.map(|index| (index, Err(FailureKind::Cancelled)))),
        }
    }
    answers
}

/// Runs `count` calls, at most `bound` at once, each started by `start(index)`; returns
/// `(index, result)` in completion order. Each call is polled once as it starts, so calls that
/// answer at once never enter the `FuturesUnordered` (no allocation for them).
async fn run_calls<'a, T: 'a>(
    count: usize,
    bound: usize,
    mut start: impl FnMut(usize) -> Call<'a, T>,
) -> Vec<(usize, CallResult<T>)> {
    let mut results = Vec::with_capacity(count);
    let mut pending = FuturesUnordered::new();
    let mut next = 0;
    poll_fn(|cx| loop {
        while next < count && pending.len() < bound {
            let mut call = start(next);
            match Pin::new(&mut call).poll(cx) {
                Poll::Ready(result) => results.push((next, result)),
                Poll::Pending => pending.push(Tagged {
                    call,
                    slot: next,
                    cancelled: None,
                }),
            }
            next += 1;
        }
        match pending.poll_next_unpin(cx) {
            Poll::Ready(Some((slot, Some(result)))) => results.push((slot, result)),
            Poll::Ready(Some((_, None))) => {}
            Poll::Ready(None) if next >= count => return Poll::Ready(()),
            Poll::Ready(None) => {}
            Poll::Pending => return Poll::Pending,
        }
    })
    .await;
    results
}

/// A light voter's reusable [`VoteSlot`], if it has one now.
type SlotOf<'a, S> = Option<Box<dyn VoteSlot<'a, S> + 'a>>;

/// Starts one `vote` call and polls it once: a heavy voter's call as its own task, a light voter's
/// in its reusable `slot` (no allocation when it answers at once, the common case: a round asks
/// every voter about every contest).
fn start_vote<'a, S: State>(
    member: &'a RoundMember<S>,
    slot: &mut SlotOf<'a, S>,
    view: &'a Snapshot<S>,
    contest: &'a Arc<Contest<S>>,
    timeout: Duration,
    cx: &mut std::task::Context<'_>,
) -> Started<'a, Vote> {
    let span = call_span(member.id, Phase::Vote);
    if member.heavy {
        let agent = Arc::clone(&member.agent);
        let view = view.clone();
        let contest = Arc::clone(contest);
        let mut call = Call::spawn(async move {
            Guarded::new(agent.vote_boxed(&view, &contest), timeout, span).await
        });
        match Pin::new(&mut call).poll(cx) {
            Poll::Ready(result) => Started::Done(result),
            Poll::Pending => Started::Running(call),
        }
    } else {
        start_in_slot(
            slot,
            || member.agent.vote_slot(view),
            contest,
            timeout,
            span,
            cx,
        )
    }
}

struct GroupVote {
    ballot: Option<Ballot>,
    in_flight: usize,
    asked: usize,
    settled: bool,
    cancelled: usize,
}

/// A ballot's outcome, before it is paired with its key.
struct Outcome {
    tally: Tally,
    votes: usize,
    cancelled: usize,
}

/// Below this many (contest, voter) pairs, one task holds every ballot; above, the contests are
/// split into one chunk per worker, each held by its own task (a ballot never spans two tasks, so
/// settling and cancelling stay local).
const VOTE_PAIRS_PER_CHUNK: usize = 2_048;

/// Holds a ballot on every conflict group among the voting members, concurrently, and returns one
/// record per group in the order of `groups`.
#[allow(clippy::too_many_arguments)] // The round's state, passed explicitly rather than bundled.
async fn vote_all<S: State>(
    handle: &Handle,
    members: &[RoundMember<S>],
    view: &Snapshot<S>,
    config: &Config,
    groups: &[ConflictGroup<S::Key>],
    proposals: &[ProposalOf<S>],
    position: &FxHashMap<ProposalId, usize>,
    proposers: &[usize],
    failures: &mut Vec<AgentFailure>,
) -> Vec<BallotRecord<S::Key>> {
    let voters: Arc<[RoundMember<S>]> = members
        .iter()
        .filter(|member| member.votes)
        .cloned()
        .collect();
    let electorate =
        Electorate::new(voters.iter().map(|voter| (voter.id, voter.weight))).map(Arc::new);
    let contests: Vec<Arc<Contest<S>>> = groups
        .iter()
        .map(|group| {
            Arc::new(Contest {
                key: group.key.clone(),
                kind: group.kind,
                candidates: group
                    .members
                    .iter()
                    .map(|id| {
                        let index = position[id];
                        let proposal = &proposals[index];
                        Candidate {
                            id: *id,
                            proposer: members[proposers[index]].id,
                            priority: proposal.priority,
                            writes_key: proposal.writes.contains(&group.key),
                            change: proposal.payload.clone(),
                        }
                    })
                    .collect(),
            })
        })
        .collect();
    let ballots: Vec<Option<Ballot>> = groups
        .iter()
        .map(|group| match &electorate {
            Ok(electorate) => Ballot::new(
                config.policy,
                Arc::clone(electorate),
                group.members.iter().copied(),
            )
            .ok(),
            Err(_) => None,
        })
        .collect();

    let workers = match handle.runtime_flavor() {
        RuntimeFlavor::CurrentThread => 1,
        _ => handle.metrics().num_workers().max(1),
    };
    let pairs = groups.len().saturating_mul(voters.len());
    let chunks = (pairs / VOTE_PAIRS_PER_CHUNK)
        .min(workers)
        .min(groups.len())
        .min(config.max_in_flight)
        .max(1);
    let timeout = config.agent_timeout;
    let mut outcomes = Vec::with_capacity(groups.len());
    if chunks == 1 {
        let (chunk_outcomes, chunk_failures) = vote_groups(
            &voters,
            view,
            &contests,
            ballots,
            config.max_in_flight,
            timeout,
        )
        .await;
        outcomes.extend(chunk_outcomes);
        failures.extend(chunk_failures);
    } else {
        let bound = (config.max_in_flight / chunks).max(1);
        let size = groups.len().div_ceil(chunks);
        let mut ballots = ballots.into_iter();
        let mut parts: Vec<_> = contests
            .chunks(size)
            .map(|chunk| (chunk.to_vec(), ballots.by_ref().take(chunk.len()).collect()))
            .collect();
        let (first_contests, first_ballots) = parts.remove(0);
        let spawned: Vec<_> = parts
            .into_iter()
            .map(|(contests, ballots)| {
                let (voters, view) = (Arc::clone(&voters), view.clone());
                let count = contests.len();
                let span = tracing::Span::current();
                let task = AbortOnDrop::new(
                    handle.spawn(
                        async move {
                            vote_groups(&voters, &view, &contests, ballots, bound, timeout).await
                        }
                        .instrument(span),
                    ),
                );
                (count, task)
            })
            .collect();
        let (first_outcomes, first_failures) = vote_groups(
            &voters,
            view,
            &first_contests,
            first_ballots,
            bound,
            timeout,
        )
        .await;
        outcomes.extend(first_outcomes);
        failures.extend(first_failures);
        for (count, task) in spawned {
            match task.await {
                Ok((chunk_outcomes, chunk_failures)) => {
                    outcomes.extend(chunk_outcomes);
                    failures.extend(chunk_failures);
                }
                // The chunk's task cannot panic (every call is guarded), so it was cancelled: the
                // runtime is shutting down and its ballots end without votes.
                Err(_) => outcomes.extend((0..count).map(|_| Outcome {
                    tally: Tally::NoQuorum {
                        turnout: 0.0,
                        required: 0.0,
                    },
                    votes: 0,
                    cancelled: voters.len(),
                })),
            }
        }
    }

    groups
        .iter()
        .zip(outcomes)
        .map(|(group, outcome)| BallotRecord {
            key: group.key.clone(),
            kind: group.kind,
            candidates: group.members.clone(),
            tally: outcome.tally,
            votes: outcome.votes,
            cancelled: outcome.cancelled,
        })
        .collect()
}

/// Holds the ballots of `contests` among `voters`: asks them group by group, at most `bound` calls
/// at once, and stops asking (and cancels the calls still running) for a ballot once it settles.
async fn vote_groups<S: State>(
    voters: &[RoundMember<S>],
    view: &Snapshot<S>,
    contests: &[Arc<Contest<S>>],
    ballots: Vec<Option<Ballot>>,
    bound: usize,
    timeout: Duration,
) -> (Vec<Outcome>, Vec<AgentFailure>) {
    let mut failures = Vec::new();
    let mut state: Vec<GroupVote> = ballots
        .into_iter()
        .map(|ballot| GroupVote {
            settled: ballot.as_ref().is_none_or(Ballot::is_settled),
            ballot,
            in_flight: 0,
            asked: 0,
            cancelled: 0,
        })
        .collect();
    for group in &mut state {
        if group.settled {
            group.cancelled = voters.len();
        }
    }
    let cancelled: Vec<AtomicBool> = state
        .iter()
        .map(|group| AtomicBool::new(group.settled))
        .collect();
    let mut slots: Vec<SlotOf<'_, S>> = voters.iter().map(|_| None).collect();
    let mut pending = FuturesUnordered::new();
    let mut in_flight = 0;
    {
        // Counts a vote (or a failure) and returns how many in-flight calls its ballot's settlement
        // freed.
        let record = |group: usize,
                      voter: usize,
                      result: CallResult<Vote>,
                      state: &mut [GroupVote],
                      failures: &mut Vec<AgentFailure>|
         -> usize {
            let entry = &mut state[group];
            let Some(ballot) = entry.ballot.as_mut() else {
                return 0;
            };
            let failure = match result {
                Ok(vote) => match ballot.cast_at(voter, vote) {
                    Ok(_) => None,
                    Err(BallotError::UnknownCandidate { candidate }) => {
                        Some(FailureKind::InvalidVote { candidate })
                    }
                    Err(_) => None,
                },
                Err(kind) => Some(kind),
            };
            if let Some(kind) = failure {
                ballot.mark_absent(voter);
                failures.push(AgentFailure {
                    agent: voters[voter].id,
                    phase: Phase::Vote,
                    kind,
                });
            }
            if !entry.settled && ballot.is_settled() {
                entry.settled = true;
                cancelled[group].store(true, Ordering::Relaxed);
                // Calls still running and voters not yet asked are no longer waited for.
                let freed = entry.in_flight;
                entry.cancelled += freed + (voters.len() - entry.asked);
                entry.in_flight = 0;
                return freed;
            }
            0
        };
        // Voters are asked group by group, so that early ballots settle while later ones start.
        let (mut next_group, mut next_voter) = (0, 0);
        poll_fn(|cx| loop {
            while next_group < contests.len() && in_flight < bound {
                let (group, voter) = (next_group, next_voter);
                if state[group].settled || voters.is_empty() {
                    (next_group, next_voter) = (group + 1, 0);
                    continue;
                }
                next_voter += 1;
                if next_voter == voters.len() {
                    (next_group, next_voter) = (group + 1, 0);
                }
                state[group].asked += 1;
                let started = start_vote(
                    &voters[voter],
                    &mut slots[voter],
                    view,
                    &contests[group],
                    timeout,
                    cx,
                );
                match started {
                    Started::Done(result) => {
                        in_flight -= record(group, voter, result, &mut state, &mut failures);
                    }
                    Started::Running(call) => {
                        state[group].in_flight += 1;
                        in_flight += 1;
                        pending.push(Tagged {
                            call,
                            slot: group * voters.len() + voter,
                            cancelled: Some(&cancelled[group]),
                        });
                    }
                }
            }
            let all_asked = next_group >= contests.len();
            match pending.poll_next_unpin(cx) {
                Poll::Ready(Some((slot, Some(result)))) => {
                    let (group, voter) = (slot / voters.len(), slot % voters.len());
                    state[group].in_flight -= 1;
                    in_flight -= 1;
                    in_flight -= record(group, voter, result, &mut state, &mut failures);
                }
                // A cancelled call: its slot was freed when its ballot settled.
                Poll::Ready(Some((_, None))) => {}
                Poll::Ready(None) if all_asked => return Poll::Ready(()),
                Poll::Ready(None) => {}
                Poll::Pending if in_flight == 0 && all_asked => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        })
        .await;
    }
    drop(pending);
    let outcomes = state
        .into_iter()
        .map(|entry| Outcome {
            tally: entry.ballot.as_ref().map_or(
                Tally::NoQuorum {
                    turnout: 0.0,
                    required: 0.0,
                },
                Ballot::tally,
            ),
            votes: entry.ballot.as_ref().map_or(0, Ballot::votes_cast),
            cancelled: entry.cancelled,
        })
        .collect();
    (outcomes, failures)
}
