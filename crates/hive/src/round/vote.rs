//! The vote phase: a ballot on every conflict group among the voting members, asked concurrently,
//! each ballot settled as early as its outcome is known.

mod light;
#[cfg(test)]
mod runs_tests;

use std::future::{poll_fn, Future};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;

use futures::stream::{FuturesUnordered, StreamExt};
use hivekit_runtime::{take_panic_message, AbortOnDrop};
use rustc_hash::FxHashMap;
use tokio::time::Instant;
use tracing::Instrument;

use crate::agent::{Candidate, Contest, ProposalOf, Vote};
use crate::ballot::{Ballot, BallotChoices, Electorate, Tally};
use crate::call::{
    cut_short, joined, unbudgeted, waited_vote, CallResult, Deadlines, Guarded, Limit, Polled,
    SlotCall, SlotPolled,
};
use crate::context::AgentContext;
use crate::decision::{AgentFailure, BallotRecord, FailureKind, Phase};
use crate::hive::Interested;
use crate::lockfree::{ConflictGroup, Snapshot};
use crate::round::batch::batch_votes;
use crate::round::{call_span, call_spans_enabled, vote_call_span, PositionOf, Round, RoundMember};
use crate::state::State;

pub(super) use self::light::LightSpare;
use self::light::{
    general_only, one_light_type, LightStarts, Run, Shared, Slots, SLOT_PAIRS_PER_VOTER,
};

/// Starts a heavy voter's `vote` call as its own task, under its own timer, and polls it once
/// (with a context of its own if it `waited` for a slot, see [`Limit::context_for_waited`]).
/// (The vote loop starts a light voter's call itself, in the voter's reusable slot: no allocation
/// when it answers at once, the common case, as a round asks every voter about every contest.)
#[inline(never)]
fn start_heavy_vote<'a, S: State>(
    member: &'a RoundMember<S>,
    view: &'a Snapshot<S>,
    contest: &'a Arc<Contest<S>>,
    limit: Limit,
    waited: bool,
    cx: &mut std::task::Context<'_>,
) -> Polled<Vote, VoteCall<'a>> {
    let span = call_span(member.id, Phase::Vote);
    let agent = Arc::clone(&member.agent);
    let context = if waited {
        limit.context_for_waited(&member.context)
    } else {
        member.context.clone()
    };
    let view = view.clone();
    let contest = Arc::clone(contest);
    let mut task = AbortOnDrop::new(tokio::spawn(async move {
        Guarded::new(agent.vote_boxed(&context, &view, &contest), limit, span).await
    }));
    match Pin::new(&mut task).poll(cx) {
        Poll::Ready(result) => Polled::Done(joined(result)),
        Poll::Pending => Polled::Running(VoteCall::Task(task)),
    }
}

/// A vote call still running after its first poll.
enum VoteCall<'a> {
    /// A light voter's, in its slot, timed by the round's [`Deadlines`].
    Slot(SlotCall<'a>),
    /// A heavy voter's, as its own task under its own timer (aborted when dropped).
    Task(AbortOnDrop<CallResult<Vote>>),
    /// Ended by the round (its ballot settled or its deadline passed, see [`end_calls`]).
    Ended,
}

/// What a [`Waiting`] call comes to.
enum Answer {
    /// The call's answer.
    Vote(CallResult<Vote>),
    /// The round no longer waits for it (its ballot settled, or its deadline passed): its slot
    /// was freed then.
    Ended,
}

/// A vote call waiting for its answer, as the round's `FuturesUnordered` holds it: the call and
/// its ballot's position, 56 bytes (the `FuturesUnordered` moves each into a heap block of its
/// own, up to 100k at once; see [`SlotCall`]). Yields `None` without polling the call once its
/// ballot has settled (the call is then dropped, cancelling it) or once the round timed it out.
struct Waiting<'a> {
    call: VoteCall<'a>,
    /// Its ballot's flag, set when the ballot settles.
    cancelled: &'a AtomicBool,
    /// Its contest, as an index into the chunk's contests (a round's contests and voters are
    /// counted in `u32`, as the interested voters' lists are).
    group: u32,
    /// The voter's position in the contest's electorate.
    position: u32,
    /// Its group in the round's [`Deadlines`] (a heavy call times itself in its task as well).
    deadline: u32,
    /// Set by the round when the call's deadline passed (the timeout is already recorded).
    expired: bool,
}

impl Waiting<'_> {
    /// Whether the round no longer waits for this call.
    fn abandoned(&self) -> bool {
        self.expired || self.cancelled.load(Ordering::Relaxed)
    }
}

impl Future for Waiting<'_> {
    type Output = ((usize, usize), Answer);

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let slot = (this.group as usize, this.position as usize);
        if this.abandoned() {
            return Poll::Ready((slot, Answer::Ended));
        }
        match &mut this.call {
            VoteCall::Slot(call) => Pin::new(call).poll(cx),
            VoteCall::Task(task) => Pin::new(task).poll(cx).map(joined),
            VoteCall::Ended => return Poll::Ready((slot, Answer::Ended)),
        }
        .map(|result| (slot, Answer::Vote(result)))
    }
}

/// Ends the calls the round no longer waits for (their ballot settled, or their deadline
/// passed) now, before any other call starts in their slots, not when their next wake-up comes
/// (until then a settled ballot's calls went on running beside the calls started in their
/// slots, past `max_in_flight`): a light call is dropped here, a heavy call's task aborted. A
/// heavy task stops at its next await: one that computes without awaiting holds its worker
/// until it does, as the round cannot wait for it past its deadline.
#[cold]
#[inline(never)]
fn end_calls(pending: Option<&mut FuturesUnordered<Waiting<'_>>>) {
    for waiting in pending.into_iter().flat_map(FuturesUnordered::iter_mut) {
        if waiting.abandoned() && !matches!(waiting.call, VoteCall::Ended) {
            waiting.call = VoteCall::Ended;
        }
    }
}

struct GroupVote {
    ballot: Option<Ballot>,
    /// The position of the next voter to ask.
    next: usize,
    in_flight: usize,
    asked: usize,
    settled: bool,
    cancelled: usize,
}

/// What counting an answer on its group's ballot needs besides the group's [`GroupVote`].
struct Counting<'a, S: State> {
    voters: &'a [RoundMember<S>],
    contests: &'a [Asked<S>],
    /// Each group's flag, set when its ballot settles.
    cancelled: &'a [AtomicBool],
    /// Set when a ballot settled with calls in flight: [`end_calls`] ends them before the next
    /// call starts.
    to_end: AtomicBool,
}

impl<S: State> Counting<'_, S> {
    /// Counts the vote (or the failure) of the voter at `position` in `group` (whose entry is
    /// `entry`) and returns how many in-flight calls its ballot's settlement freed.
    // Always inlined into the vote loop: a call answered at once is counted where it answered,
    // without its result passed through memory to a call (about 30 instructions a vote).
    #[inline(always)]
    fn record(
        &self,
        entry: &mut GroupVote,
        group: usize,
        position: usize,
        result: CallResult<Vote>,
        failures: &mut Vec<AgentFailure>,
    ) -> usize {
        let Some(ballot) = entry.ballot.as_mut() else {
            return 0;
        };
        let failure = match result {
            Ok(vote) => ballot
                .cast_once_at(position, vote)
                .err()
                .map(|candidate| FailureKind::InvalidVote { candidate }),
            Err(kind) => Some(kind),
        };
        if let Some(kind) = failure {
            ballot.mark_absent(position);
            self.record_failure(group, position, kind, failures);
        }
        if !entry.settled && ballot.is_settled() {
            return self.settle(entry, group);
        }
        0
    }

    /// Records the failure of the voter at `position` in `group`.
    #[cold]
    #[inline(never)]
    fn record_failure(
        &self,
        group: usize,
        position: usize,
        kind: FailureKind,
        failures: &mut Vec<AgentFailure>,
    ) {
        failures.push(AgentFailure {
            agent: self.voters[self.contests[group].voter(position)].id,
            phase: Phase::Vote,
            kind,
        });
    }

    /// Marks `group`'s ballot settled; returns how many of its calls were in flight.
    #[cold]
    #[inline(never)]
    fn settle(&self, entry: &mut GroupVote, group: usize) -> usize {
        entry.settled = true;
        self.cancelled[group].store(true, Ordering::Relaxed);
        // Calls still running and voters not yet asked are no longer waited for.
        let freed = entry.in_flight;
        entry.cancelled += freed + (self.contests[group].count(self.voters.len()) - entry.asked);
        entry.in_flight = 0;
        if freed > 0 {
            self.to_end.store(true, Ordering::Relaxed);
        }
        freed
    }
}

/// A ballot's outcome, before it is paired with its key.
struct Outcome {
    tally: Tally,
    votes: usize,
    cancelled: usize,
    choices: Option<BallotChoices>,
}

/// Below this many (contest, voter) pairs, one task holds every ballot; above, the contests are
/// split into one chunk per worker, each held by its own task (a ballot never spans two tasks, so
/// settling and cancelling stay local).
const VOTE_PAIRS_PER_CHUNK: usize = 2_048;

/// How many waiting calls one group starts in a turn before the next group's voters are asked.
///
/// A ballot settles once its majority is known, about when the median voter answers, and the
/// voters not asked by then are not asked at all. Asking every voter of the first group, then
/// every voter of the next, started the last group's calls only after all the others (50k calls
/// in a chunk of the 1,000-agent, 100-pair bench), so every ballot waited for its voters' answers
/// after that and every call was started. In turns, every group has voters waiting from the start,
/// ballots settle while the calls of later turns start, and the settled groups' later voters are
/// never asked (about 35% fewer calls in that bench). Voters that answer at once do not end a
/// turn: a round of such voters asks them group by group, as before.
const WAITING_PER_TURN: usize = 16;

/// How many calls one poll of the vote loop starts before it handles the answers in (and, with
/// calls waiting, lets the runtime run its timers and other tasks): without a limit, every call of
/// a chunk started before any answer was handled, and no ballot could settle early.
const STARTS_PER_POLL: usize = 1_024;

/// What the vote phase needs to know about the round's proposals.
pub(super) struct Proposed<'p, S: State> {
    pub(super) proposals: &'p [ProposalOf<S>],
    /// Each proposal's position in `proposals`.
    pub(super) position: PositionOf<'p, S::Key, S::Change>,
    /// Each proposal's proposer, as an index into the round's members.
    pub(super) proposers: &'p [usize],
}

/// A contest and the voters asked about it.
pub(super) struct Asked<S: State> {
    pub(super) contest: Arc<Contest<S>>,
    /// The interested voters, as indices into the round's voters, lowest first; `None`: every
    /// voter.
    pub(super) voters: Option<Arc<[u32]>>,
    /// How many of them are batch voters, asked before the others (see `round::batch`).
    pub(super) batched: usize,
}

impl<S: State> Clone for Asked<S> {
    fn clone(&self) -> Self {
        Self {
            contest: Arc::clone(&self.contest),
            voters: self.voters.clone(),
            batched: self.batched,
        }
    }
}

impl<S: State> Asked<S> {
    /// How many voters are asked, of `all`.
    fn count(&self, all: usize) -> usize {
        self.voters.as_ref().map_or(all, |voters| voters.len())
    }

    /// The round's index of the voter at `position` in this contest's electorate.
    fn voter(&self, position: usize) -> usize {
        self.voters
            .as_ref()
            .map_or(position, |voters| voters[position] as usize)
    }
}

/// Pairs each contest with the voters interested in it ([`Agent::interest`](crate::Agent::interest)):
/// agents of [`Interest::All`](crate::Interest::All) in every contest, those of `Keys` through an
/// index of their keys, those of `Matching` as their predicate says. A predicate that panics is the
/// agent's failure, recorded once in `failures` (vote phase, `Panicked`), and the agent sits out
/// the round's remaining contests (its predicate is not called again this round).
///
/// The contests come from `contests`, made once each: when every voter is interested in every
/// contest (the common case) straight into the list of [`Asked`], with no list of their own
/// (an allocation and a free of a 10-agent round's 26k instructions). The pairs are appended to
/// `asked`, a list (empty) that the round's buffers keep from round to round with its capacity
/// (the vote phase empties it when its ballots are recorded).
fn interested_voters<S: State>(
    voters: &[RoundMember<S>],
    contests: impl ExactSizeIterator<Item = Arc<Contest<S>>>,
    failures: &mut Vec<AgentFailure>,
    asked: &mut Vec<Asked<S>>,
) {
    if voters
        .iter()
        .all(|voter| matches!(voter.interest, Interested::All))
    {
        asked.extend(contests.map(|contest| Asked {
            contest,
            voters: None,
            batched: 0,
        }));
        return;
    }
    let contests: Vec<Arc<Contest<S>>> = contests.collect();
    if voters
        .iter()
        .all(|voter| matches!(voter.interest, Interested::Keys(_)))
    {
        if let Some(lists) = keyed_voters(voters, &contests) {
            asked.extend(
                contests
                    .into_iter()
                    .zip(lists)
                    .map(|(contest, list)| Asked {
                        contest,
                        voters: (list.len() != voters.len()).then_some(list),
                        batched: 0,
                    }),
            );
            return;
        }
    }
    let mut everyone: Vec<u32> = Vec::new();
    let mut matching: Vec<u32> = Vec::new();
    let mut by_key: FxHashMap<&S::Key, Vec<u32>> = FxHashMap::default();
    for (index, voter) in voters.iter().enumerate() {
        let index = index as u32;
        match &voter.interest {
            Interested::All => everyone.push(index),
            Interested::Keys(keys) => {
                for key in keys.iter() {
                    by_key.entry(key).or_default().push(index);
                }
            }
            Interested::Matching => matching.push(index),
        }
    }
    // Voters whose predicate panicked this round, by position in `matching`.
    let mut panicked = vec![false; matching.len()];
    asked.extend(contests.into_iter().map(|contest| {
        let mut list = everyone.clone();
        if let Some(keyed) = by_key.get(&contest.key) {
            list.extend_from_slice(keyed);
        }
        for (slot, &voter) in matching.iter().enumerate() {
            if panicked[slot] {
                continue;
            }
            let member = &voters[voter as usize];
            match catch_unwind(AssertUnwindSafe(|| member.agent.interested_dyn(&contest))) {
                Ok(true) => list.push(voter),
                Ok(false) => {}
                Err(panic) => {
                    panicked[slot] = true;
                    failures.push(AgentFailure {
                        agent: member.id,
                        phase: Phase::Vote,
                        kind: FailureKind::Panicked {
                            message: take_panic_message(panic),
                        },
                    });
                }
            }
        }
        list.sort_unstable();
        list.dedup();
        let voters = (list.len() != voters.len()).then(|| list.into());
        Asked {
            contest,
            voters,
            batched: 0,
        }
    }));
}

/// The interested voters of each of `contests` when every voter declared its keys
/// ([`Interest::Keys`](crate::Interest::Keys)), each list lowest first and without repeats; `None`
/// if two contests share a key (a conflict report has one group per key, so never in a round).
///
/// The contests are indexed by key (one hash per contest) and each voter's keys looked up in that
/// index, so a voter key no contest is about costs one lookup and no allocation; the (contest,
/// voter) pairs found are then sorted by contest with a counting sort that keeps the voter order.
/// One allocation per contest (its list), a few for the whole round.
fn keyed_voters<S: State>(
    voters: &[RoundMember<S>],
    contests: &[Arc<Contest<S>>],
) -> Option<Vec<Arc<[u32]>>> {
    let mut by_key: FxHashMap<&S::Key, u32> =
        FxHashMap::with_capacity_and_hasher(contests.len(), Default::default());
    for (index, contest) in contests.iter().enumerate() {
        if by_key.insert(&contest.key, index as u32).is_some() {
            return None;
        }
    }
    // (contest, voter) pairs, voters in ascending order, and how many each contest got.
    let declared: usize = voters
        .iter()
        .map(|voter| match &voter.interest {
            Interested::Keys(keys) => keys.len(),
            _ => 0,
        })
        .sum();
    // Room for every declared key up to a bound (a voter may declare many keys no contest is
    // about; past the bound the list grows as usual).
    let mut pairs: Vec<(u32, u32)> =
        Vec::with_capacity(declared.min(2 * (voters.len() + contests.len())));
    let mut ends: Vec<usize> = vec![0; contests.len() + 1];
    for (voter, member) in voters.iter().enumerate() {
        let Interested::Keys(keys) = &member.interest else {
            continue;
        };
        for key in keys.iter() {
            if let Some(&contest) = by_key.get(key) {
                pairs.push((contest, voter as u32));
                ends[contest as usize + 1] += 1;
            }
        }
    }
    drop(by_key);
    for contest in 0..contests.len() {
        ends[contest + 1] += ends[contest];
    }
    // `ends[contest]` is the contest's start; filling moves it to the contest's end.
    let starts: Vec<usize> = ends[..contests.len()].to_vec();
    let mut flat = vec![0_u32; pairs.len()];
    for (contest, voter) in pairs {
        let (start, end) = (starts[contest as usize], &mut ends[contest as usize]);
        // A voter that lists a key twice is asked once.
        if *end > start && flat[*end - 1] == voter {
            continue;
        }
        flat[*end] = voter;
        *end += 1;
    }
    Some(
        starts
            .iter()
            .zip(&ends)
            .map(|(&start, &end)| Arc::from(&flat[start..end]))
            .collect(),
    )
}

impl<S: State> Round<'_, S> {
    /// The voting members, each with a context for the vote phase (its `deadline`).
    ///
    /// When every member votes and the round holds the only reference to its members (the propose
    /// phase is over), the members are the voters: their contexts are replaced in place, with no
    /// new list (a copy of every member costs an allocation for the list and three reference
    /// counts per member, and as many again to drop it).
    fn voters(&mut self, deadline: Instant) -> Arc<[RoundMember<S>]> {
        let shared = &self.shared;
        if self.members.iter().all(|member| member.votes) {
            if let Some(members) = Arc::get_mut(&mut self.members) {
                // The same round: only the deadline changes (no clone and drop of the round's
                // shared state per member).
                for member in members.iter_mut() {
                    member.context.set_deadline(deadline);
                }
                return Arc::clone(&self.members);
            }
        }
        self.members
            .iter()
            .filter(|member| member.votes)
            .map(|member| RoundMember {
                context: AgentContext::for_round(
                    member.id,
                    member.context.proposal_id(),
                    deadline,
                    shared,
                ),
                ..member.clone()
            })
            .collect()
    }

    /// Holds a ballot on every conflict group among the voting members, concurrently, and returns
    /// one record per group in the order of `groups`.
    pub(super) async fn hold_ballots(
        &mut self,
        groups: &[ConflictGroup<S::Key>],
        proposed: Proposed<'_, S>,
    ) -> Vec<BallotRecord<S::Key>> {
        let limit = self.limit;
        // Voters see the vote phase's own deadline.
        let deadline = limit.deadline_from_now();
        let voters = self.voters(deadline);
        let electorate = match &self.electorates.all {
            Some(electorate) => Ok(Arc::clone(electorate)),
            None => {
                Electorate::new(voters.iter().map(|voter| (voter.id, voter.weight))).map(Arc::new)
            }
        };
        self.electorates.all = electorate.as_ref().ok().cloned();
        let contests = groups.iter().map(|group| {
            Arc::new(Contest {
                key: group.key.clone(),
                kind: group.kind,
                // Each member's access comes from the conflict report: lockfree already
                // knows who writes the key, and a write set may be long.
                candidates: group
                    .members_with_access()
                    .map(|(id, access)| {
                        let index = proposed.position.at(id);
                        let proposal = &proposed.proposals[index];
                        Candidate {
                            id,
                            proposer: self.members[proposed.proposers[index]].id,
                            priority: proposal.priority,
                            writes_key: access.is_write(),
                            change: proposal.payload.clone(),
                        }
                    })
                    .collect(),
            })
        });
        // Empty, with the capacity an earlier round left it (given back below).
        let mut asked = std::mem::take(&mut self.buffers.asked);
        interested_voters(&voters, contests, &mut self.failures, &mut asked);
        let policy = self.config().policy;
        // Contests with the same interested voters (a pack's version and its namespace, wanted by
        // the same requirements) share one electorate, kept for the next round over the same
        // members (see `Electorates`).
        let mut electorates = asked
            .iter()
            .any(|asked| asked.voters.is_some())
            .then(|| self.electorates.interested(groups.len()));
        let ballots: Vec<Option<Ballot>> = groups
            .iter()
            .zip(&asked)
            .map(|(group, asked)| {
                let electorate = match &asked.voters {
                    None => electorate.as_ref().ok().map(Arc::clone),
                    // Only the interested voters make up the contest's electorate. (The map is
                    // always there for a contest with a list: made above.)
                    Some(list) => match electorates.as_mut()?.get(list) {
                        Some(electorate) => electorate.clone(),
                        None => {
                            let made = Electorate::new(list.iter().map(|&voter| {
                                let voter = &voters[voter as usize];
                                (voter.id, voter.weight)
                            }))
                            .ok()
                            .map(Arc::new);
                            electorates.as_mut()?.insert(Arc::clone(list), made.clone());
                            made
                        }
                    },
                };
                Ballot::new(policy, electorate?, group.members.iter().copied()).ok()
            })
            .collect();

        let max_in_flight = self.config().max_in_flight;
        let mut ballots = ballots;
        if voters.iter().any(|voter| voter.batch) {
            let failures = batch_votes(
                &voters,
                &self.view,
                &mut asked,
                &mut ballots,
                max_in_flight,
                limit,
            )
            .await;
            self.failures.extend(failures);
        }
        let pairs: usize = asked.iter().map(|asked| asked.count(voters.len())).sum();
        let chunks = (pairs / VOTE_PAIRS_PER_CHUNK)
            .min(self.workers())
            .min(groups.len())
            .min(max_in_flight)
            .max(1);
        let one_type = *self
            .electorates
            .one_light_type
            .get_or_insert_with(|| one_light_type(&voters));
        let view = &self.view;
        let mut outcomes = Vec::new();
        // What each chunk of the last round kept (see `LightSpare`), by chunk.
        // Each chunk's is taken from here and put back when the chunk is done (the list is kept,
        // not made again).
        let mut kept = std::mem::take(self.buffers.light.get_mut());
        kept.resize_with(chunks, LightSpare::default);
        if chunks == 1 {
            let (chunk_outcomes, chunk_failures, chunk_kept) = vote_groups(
                &voters,
                view,
                &asked,
                ballots,
                max_in_flight,
                limit,
                one_type,
                std::mem::take(&mut kept[0]),
            )
            .await;
            // One chunk: its outcomes are the round's, as they are.
            outcomes = chunk_outcomes;
            self.failures.extend(chunk_failures);
            kept[0] = chunk_kept;
        } else {
            outcomes.reserve_exact(groups.len());
            let bound = (max_in_flight / chunks).max(1);
            let size = groups.len().div_ceil(chunks);
            let mut ballots = ballots.into_iter();
            let mut parts: Vec<_> = asked
                .chunks(size)
                .map(|chunk| (chunk.to_vec(), ballots.by_ref().take(chunk.len()).collect()))
                .collect();
            // A thread blocked on the round votes on the first chunk itself. Inside a task every
            // chunk is spawned: a task spawned from a worker waits in that worker's LIFO slot,
            // which other workers cannot steal from, so a chunk voted on in place would run first
            // and the spawned one after it, on the same worker; a second spawn pushes the first
            // out of the slot into the stealable queue and wakes an idle worker.
            let first = tokio::task::try_id()
                .is_none()
                .then(|| (parts.remove(0), std::mem::take(&mut kept[0])));
            // The spawned chunks' indices into `kept`.
            let spawned_from = usize::from(first.is_some());
            let spawned: Vec<_> = parts
                .into_iter()
                .enumerate()
                .map(|(index, (contests, ballots))| {
                    let (voters, view) = (Arc::clone(&voters), view.clone());
                    let count = contests.len();
                    let span = tracing::Span::current();
                    let chunk = spawned_from + index;
                    let chunk_kept = std::mem::take(&mut kept[chunk]);
                    let task = AbortOnDrop::new(
                        self.handle.spawn(
                            async move {
                                let (voters, view) = (&voters, &view);
                                vote_groups(
                                    voters, view, &contests, ballots, bound, limit, one_type,
                                    chunk_kept,
                                )
                                .await
                            }
                            .instrument(span),
                        ),
                    );
                    (chunk, count, task)
                })
                .collect();
            if let Some(((first_contests, first_ballots), first_kept)) = first {
                let (first_outcomes, first_failures, first_kept) = vote_groups(
                    &voters,
                    view,
                    &first_contests,
                    first_ballots,
                    bound,
                    limit,
                    one_type,
                    first_kept,
                )
                .await;
                outcomes.extend(first_outcomes);
                self.failures.extend(first_failures);
                kept[0] = first_kept;
            }
            for (chunk, count, task) in spawned {
                match task.await {
                    Ok((chunk_outcomes, chunk_failures, chunk_kept)) => {
                        outcomes.extend(chunk_outcomes);
                        self.failures.extend(chunk_failures);
                        kept[chunk] = chunk_kept;
                    }
                    // The chunk's task cannot panic (every call is guarded), so it was cancelled:
                    // the runtime is shutting down and its ballots end without votes.
                    Err(_) => outcomes.extend((0..count).map(|_| Outcome {
                        tally: Tally::NoQuorum {
                            turnout: 0.0,
                            required: 0.0,
                        },
                        votes: 0,
                        cancelled: voters.len(),
                        choices: None,
                    })),
                }
            }
        }

        *self.buffers.light.get_mut() = kept;
        let records = groups
            .iter()
            .zip(outcomes)
            .zip(asked.drain(..))
            .map(|((group, outcome), asked)| BallotRecord {
                // A key that owns memory (a `String`) is moved out of the contest, not copied
                // again: the round holds the only reference to a contest now (its chunk's copy
                // went with its task; an agent may clone the contest, never the `Arc`). A plain
                // key (an integer) is cheaper copied than unwrapped.
                key: if std::mem::needs_drop::<S::Key>() {
                    Arc::try_unwrap(asked.contest)
                        .map_or_else(|_| group.key.clone(), |contest| contest.key)
                } else {
                    group.key.clone()
                },
                kind: group.kind,
                candidates: group.members.clone(),
                tally: outcome.tally,
                votes: outcome.votes,
                cancelled: outcome.cancelled,
                choices: outcome.choices,
            })
            .collect();
        self.buffers.asked = asked;
        records
    }
}

/// Holds the ballots of `contests` among `voters`: asks them group by group, at most `bound` calls
/// at once, and stops asking (and cancels the calls still running) for a ballot once it settles.
#[allow(clippy::too_many_arguments)]
async fn vote_groups<S: State>(
    voters: &[RoundMember<S>],
    view: &Snapshot<S>,
    contests: &[Asked<S>],
    ballots: Vec<Option<Ballot>>,
    bound: usize,
    limit: Limit,
    one_type: bool,
    kept: LightSpare,
) -> (Vec<Outcome>, Vec<AgentFailure>, LightSpare) {
    let pairs: usize = contests
        .iter()
        .map(|contest| contest.count(voters.len()))
        .sum();
    if pairs >= SLOT_PAIRS_PER_VOTER * voters.len() || !one_type {
        vote_groups_with::<S, Slots<'_, S>>(voters, view, contests, ballots, bound, limit, kept)
            .await
    } else {
        vote_groups_with::<S, Shared>(voters, view, contests, ballots, bound, limit, kept).await
    }
}

/// [`vote_groups`] with the light voters' calls started in `L`.
async fn vote_groups_with<'a, S: State, L: LightStarts<'a, S>>(
    voters: &'a [RoundMember<S>],
    view: &'a Snapshot<S>,
    contests: &'a [Asked<S>],
    ballots: Vec<Option<Ballot>>,
    bound: usize,
    limit: Limit,
    kept: LightSpare,
) -> (Vec<Outcome>, Vec<AgentFailure>, LightSpare) {
    let count = |group: usize| contests[group].count(voters.len());
    let mut failures = Vec::new();
    let mut state: Vec<GroupVote> = ballots
        .into_iter()
        .zip(contests)
        .map(|(ballot, contest)| GroupVote {
            settled: ballot.as_ref().is_none_or(Ballot::is_settled),
            ballot,
            next: 0,
            in_flight: 0,
            // Batch voters have answered already.
            asked: contest.batched,
            cancelled: 0,
        })
        .collect();
    for (index, group) in state.iter_mut().enumerate() {
        if group.settled {
            group.cancelled = count(index) - group.asked;
        }
    }
    let cancelled: Vec<AtomicBool> = state
        .iter()
        .map(|group| AtomicBool::new(group.settled))
        .collect();
    let mut light = L::new(voters.len(), kept);
    // Made when the first call is still pending after its first poll: a round of voters that
    // answer at once never needs one, and making one costs an allocation.
    let mut pending: Option<FuturesUnordered<Waiting<'_>>> = None;
    let mut deadlines = Deadlines::new();
    let mut in_flight = 0;
    // Whether the calls started from now on waited for a slot (`bound` was reached): each gets a
    // context whose deadline counts from its own start, off the fast path.
    let mut waited = false;
    {
        let counting = Counting {
            voters,
            contests,
            cancelled: &cancelled,
            to_end: AtomicBool::new(false),
        };
        // Voters are asked group by group, and a group whose voters wait hands over to the next
        // after `WAITING_PER_TURN` waiting calls; `open` counts the groups with voters left to
        // ask when the pass started (the loop ends when none is), `turn` is the group asked now.
        // A group closed since (asked in full or settled) is passed over, as it would be asked
        // nothing (a list of the open groups cost an allocation a round). At most
        // `STARTS_PER_POLL` calls start before the answers in are handled.
        let mut open = contests.len();
        let mut turn = 0;
        let mut starts = STARTS_PER_POLL;
        // Whether the loop yielded after its last batch of starts (it handles the answers in
        // before it starts the next).
        let mut yielded = false;
        unbudgeted(poll_fn(|cx| loop {
            while open > 0 && in_flight < bound && starts > 0 {
                if counting.to_end.swap(false, Ordering::Relaxed) {
                    end_calls(pending.as_mut());
                }
                if turn >= contests.len() {
                    // A new pass: count the groups not asked in full nor settled.
                    open = (0..contests.len())
                        .filter(|&group| state[group].next < count(group) && !state[group].settled)
                        .count();
                    turn = 0;
                    continue;
                }
                let group = turn;
                let contest = &contests[group];
                let asked = contest.count(voters.len());
                let entry = &mut state[group];
                let mut waiting = WAITING_PER_TURN;
                // The counters in locals for the turn: the closure holds `starts` and `in_flight`
                // by reference, and through a reference every call between their uses made the
                // compiler store and reload them.
                let (mut starts_left, mut flying) = (starts, in_flight);
                let spans = call_spans_enabled();
                // Runs of calls that answer at once, counted in `L::run` (not for calls that
                // waited for a slot: each of those gets a context of its own).
                let runs = L::RUNS && !spans && !general_only() && !waited;
                // Asks this group's voters until it settles, the bound is reached, all are asked
                // or its turn is over (the group's data looked up once, not per voter).
                'ask: while entry.next < asked
                    && flying < bound
                    && waiting > 0
                    && starts_left > 0
                    && !entry.settled
                {
                    let (position, call) = 'call: {
                        if runs {
                            let from = entry.next;
                            let budget = (asked - from).min(starts_left);
                            let run = light.run(contest, entry, budget, cx);
                            starts_left -= entry.next - from;
                            match run {
                                Run::Counted => continue 'ask,
                                Run::MaySettle => {
                                    flying -= counting.settle(entry, group);
                                    continue 'ask;
                                }
                                Run::General => {}
                                Run::Answered { position, polled } => match polled {
                                    SlotPolled::Voted(vote) => {
                                        flying -= counting.record(
                                            entry,
                                            group,
                                            position,
                                            Ok(vote),
                                            &mut failures,
                                        );
                                        continue 'ask;
                                    }
                                    SlotPolled::Failed(kind) => {
                                        flying -= counting.record(
                                            entry,
                                            group,
                                            position,
                                            Err(kind),
                                            &mut failures,
                                        );
                                        continue 'ask;
                                    }
                                    SlotPolled::Running(call) => {
                                        break 'call (position, VoteCall::Slot(call))
                                    }
                                },
                            }
                        }
                        let position = entry.next;
                        entry.next += 1;
                        let voter = contest.voter(position);
                        if voters[voter].batch {
                            continue 'ask;
                        }
                        entry.asked += 1;
                        starts_left -= 1;
                        let member = &voters[voter];
                        // A heavy voter's call runs as its own task; a light voter's in its slot,
                        // without a timer (the round times it through its `Deadlines`).
                        let call = if member.heavy {
                            match start_heavy_vote(
                                member,
                                view,
                                &contest.contest,
                                limit,
                                waited,
                                cx,
                            ) {
                                Polled::Done(result) => {
                                    flying -= counting.record(
                                        entry,
                                        group,
                                        position,
                                        result,
                                        &mut failures,
                                    );
                                    continue 'ask;
                                }
                                Polled::Running(call) => call,
                            }
                        } else if waited {
                            VoteCall::Slot(waited_vote(
                                &*member.agent,
                                limit.context_for_waited(&member.context),
                                view,
                                &contest.contest,
                                vote_call_span(member.id, spans),
                            ))
                        } else {
                            let polled =
                                light.start(voter, member, view, &contest.contest, spans, cx);
                            match polled {
                                // The common case: counted straight from the agent's answer.
                                SlotPolled::Voted(vote) => {
                                    flying -= counting.record(
                                        entry,
                                        group,
                                        position,
                                        Ok(vote),
                                        &mut failures,
                                    );
                                    continue 'ask;
                                }
                                SlotPolled::Failed(kind) => {
                                    flying -= counting.record(
                                        entry,
                                        group,
                                        position,
                                        Err(kind),
                                        &mut failures,
                                    );
                                    continue 'ask;
                                }
                                SlotPolled::Running(call) => VoteCall::Slot(call),
                            }
                        };
                        (position, call)
                    };
                    entry.in_flight += 1;
                    flying += 1;
                    waiting -= 1;
                    // A heavy call times itself in its task, and the round times it too: a
                    // call that holds its worker never lets its task see its own timer.
                    let deadline = deadlines.add(limit.deadline_from_now());
                    pending
                        .get_or_insert_with(FuturesUnordered::new)
                        .push(Waiting {
                            call,
                            cancelled: &cancelled[group],
                            group: group as u32,
                            position: position as u32,
                            deadline,
                            expired: false,
                        });
                }
                (starts, in_flight) = (starts_left, flying);
                if waiting == 0 || entry.next >= asked || entry.settled {
                    turn += 1;
                }
            }
            if counting.to_end.swap(false, Ordering::Relaxed) {
                end_calls(pending.as_mut());
            }
            // Calls started from now on, if any, waited for a slot.
            waited |= in_flight >= bound;
            let all_asked = open == 0;
            let polled = match pending.as_mut() {
                Some(pending) => pending.poll_next_unpin(cx),
                None => Poll::Ready(None),
            };
            match polled {
                Poll::Ready(Some(((group, position), Answer::Vote(result)))) => {
                    state[group].in_flight -= 1;
                    in_flight -= 1;
                    in_flight -=
                        counting.record(&mut state[group], group, position, result, &mut failures);
                }
                // A call the round ended: its slot was freed then.
                Poll::Ready(Some((_, Answer::Ended))) => {}
                Poll::Ready(None) if all_asked => return Poll::Ready(()),
                // Nothing is in flight: the next calls may start at once.
                Poll::Ready(None) => (starts, yielded) = (STARTS_PER_POLL, false),
                Poll::Pending if in_flight == 0 && all_asked => return Poll::Ready(()),
                Poll::Pending => {
                    let Some(expired) = deadlines.poll_expired(cx) else {
                        if starts == 0 && !all_asked && in_flight < bound {
                            if yielded {
                                // The answers that came in are handled: the next batch starts.
                                (starts, yielded) = (STARTS_PER_POLL, false);
                                continue;
                            }
                            // More calls to start once the runtime has run its timers and its
                            // other tasks, and this loop has handled the answers in.
                            yielded = true;
                            if pin!(tokio::task::yield_now()).poll(cx).is_ready() {
                                continue;
                            }
                        }
                        return Poll::Pending;
                    };
                    // Every call of the group still waited for times out; a call whose ballot
                    // settled was freed then.
                    for waiting in pending.iter_mut().flat_map(FuturesUnordered::iter_mut) {
                        let (group, position) = (waiting.group as usize, waiting.position as usize);
                        if waiting.expired || waiting.deadline != expired || state[group].settled {
                            continue;
                        }
                        waiting.expired = true;
                        counting.to_end.store(true, Ordering::Relaxed);
                        state[group].in_flight -= 1;
                        in_flight -= 1;
                        in_flight -= counting.record(
                            &mut state[group],
                            group,
                            position,
                            Err(cut_short()),
                            &mut failures,
                        );
                    }
                }
            }
        }))
        .await;
    }
    drop(pending);
    let kept = light.finish();
    // A new list of the outcomes' size: collected in place from `state`'s list (larger
    // entries), it was shrunk by a reallocation, an allocation, a copy and a free (about 400
    // instructions of a 10-agent round).
    let mut outcomes = Vec::with_capacity(state.len());
    outcomes.extend(state.into_iter().map(|entry| match entry.ballot {
        Some(ballot) => Outcome {
            tally: ballot.tally(),
            votes: ballot.votes_cast(),
            cancelled: entry.cancelled,
            choices: Some(ballot.into_choices()),
        },
        None => Outcome {
            tally: Tally::NoQuorum {
                turnout: 0.0,
                required: 0.0,
            },
            votes: 0,
            cancelled: entry.cancelled,
            choices: None,
        },
    }));
    (outcomes, failures, kept)
}

#[cfg(test)]
mod tests {
    use super::Waiting;

    #[test]
    fn a_waiting_vote_call_stays_small_enough_to_move_without_memcpy() {
        // The round's `FuturesUnordered` moves every waiting call into a heap block of its own (up
        // to 100k at once): the 140-byte entry before (a `Call` in `Tagged`) cost a `memcpy` per
        // push and glibc's slower size classes (see `SlotCall`). 56 bytes now.
        assert!(
            std::mem::size_of::<Waiting<'static>>() <= 56,
            "{} bytes",
            std::mem::size_of::<Waiting<'static>>()
        );
    }
}
