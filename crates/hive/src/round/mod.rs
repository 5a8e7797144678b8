//! One round: propose, detect conflicts, settle them, apply and commit.
//!
//! A [`Round`] holds what every phase of one round shares (its members, their contexts, the
//! snapshot, the limits, the failures so far); the phases are its methods, one file each:
//! [`decide`] holds a round (the entry points, the runtime, cancellation, the members),
//! [`propose`] asks the members, [`settle`] settles the conflicts ([`vote`] holds the ballots,
//! [`batch`] asks batch voters), [`commit`] applies and commits, [`supervise`] keeps the agents'
//! health.

mod batch;
mod commit;
mod decide;
mod propose;
mod settle;
mod supervise;
mod vote;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use hivekit_runtime::Spare;
use parking_lot::Mutex;
use rustc_hash::FxHashMap;
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::time::Instant;

use crate::agent::{AgentId, DynAgent, ProposalOf};
use crate::ballot::Electorate;
use crate::call::{CallResult, Limit};
use crate::context::{AgentContext, RoundShared};
use crate::decision::{AgentFailure, BallotRecord, FailureKind, Phase, RejectReason};
use crate::error::HiveError;
use crate::events::{HiveEvent, HiveEventSink};
use crate::hive::{Config, Counters, Hive, Interested};
use crate::lockfree::{Proposal, ProposalId, Snapshot};
use crate::roster::Listed;
use crate::round::vote::{Asked, LightSpare};
use crate::state::State;
use crate::supervision::{counts, supervise};

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

/// The propose phase's answers: `(member index, answer)` in arrival order.
type Answers<S> = Vec<(usize, CallResult<Option<ProposalOf<S>>>)>;

/// The electorates a round's ballots were held over, kept for the next round over the same
/// members: the same voters (their ids and weights) make the same electorates; and, as the
/// same members have the same types, whether the light voters are of one type.
#[derive(Default)]
struct Electorates {
    /// Every voter's, if a round with conflicts made it (making one costs an allocation and a pass
    /// over the voters: about 600 instructions of a 10-agent round with a ballot).
    all: Option<Arc<Electorate>>,
    /// Those of contests asked of their interested voters only, by the voters' list (indices into
    /// the round's voters, as `vote::Asked` holds them); `None`: the list makes no electorate.
    /// Making one costs a few allocations and a map of the voters' ids (about 1,000 instructions
    /// each, 90 of them a round in the 200-pack configuration analysis, whose contests and their
    /// interested voters repeat from round to round). Boxed: most rounds have none, and the
    /// spare moves with every round.
    interested: Option<Box<InterestedElectorates>>,
    /// Whether the light voters are agents of one type (`vote::one_light_type`), once a round
    /// with conflicts asked: one dynamic call per voter, made once per member array.
    one_light_type: Option<bool>,
}

/// The electorates of contests asked of their interested voters only, by the voters' list.
type InterestedElectorates = FxHashMap<Arc<[u32]>, Option<Arc<Electorate>>>;

impl Electorates {
    /// The interested voters' electorates, for a round of `contests` contests: emptied first when
    /// there are many more of them than such a round can use (rounds whose contests change keep
    /// no more than that).
    fn interested(&mut self, contests: usize) -> &mut InterestedElectorates {
        let interested = self.interested.get_or_insert_with(Box::default);
        if interested.len() > 2 * contests + 64 {
            interested.clear();
        }
        interested
    }
}

/// A round's working vectors, empty, kept from round to round with their capacity: each was an
/// allocation and a free per round (about 100 instructions each in a 10-agent round, where
/// glibc's allocator often consolidates its free blocks on the way; for 1,000 agents the
/// proposals' vector alone is 72 KB).
struct Buffers<S: State> {
    /// The propose phase's answers.
    answers: Answers<S>,
    /// The valid proposals ([`Proposals::proposals`]).
    proposals: Vec<ProposalOf<S>>,
    /// Their proposers ([`Proposals::proposers`]).
    proposers: Vec<usize>,
    /// Each proposal's rejection, if any ([`Settled::rejected`]).
    rejected: Vec<Option<RejectReason>>,
    /// The vote phase's contests and the voters asked about each (`vote::interested_voters`).
    asked: Vec<Asked<S>>,
    /// The block the propose calls' futures are built in (see [`propose::run_calls_in`]).
    /// Behind a lock only because a `Spare` is not `Sync` (the round is shared across its
    /// awaits); only ever reached through `get_mut`, without locking.
    spare: Mutex<Spare>,
    /// What each chunk of the vote phase keeps for the next round (its voters' slot blocks, its
    /// shared block), by chunk; behind a lock as `spare`.
    light: Mutex<Vec<LightSpare>>,
}

// Manual impl: a derive would require `S: Default`.
impl<S: State> Default for Buffers<S> {
    fn default() -> Self {
        Self {
            answers: Vec::new(),
            proposals: Vec::new(),
            proposers: Vec::new(),
            rejected: Vec::new(),
            asked: Vec::new(),
            spare: Mutex::new(Spare::new()),
            light: Mutex::new(Vec::new()),
        }
    }
}

impl<S: State> Buffers<S> {
    /// Empties every vector, keeping its capacity.
    fn clear(&mut self) {
        self.answers.clear();
        self.proposals.clear();
        self.proposers.clear();
        self.rejected.clear();
        self.asked.clear();
    }
}

/// What a finished round leaves to the next round over the same roster list (kept in the
/// [`Roster`](crate::roster::Roster)): its member array, rewritten in place with the next round's
/// contexts (no clone of each agent's handle and interest, no 100 KB allocation for 1,000
/// members), its working vectors, empty, and its voters' electorates.
pub(crate) struct RoundSpare<S: State> {
    members: Arc<[RoundMember<S>]>,
    /// Boxed: the spare and the round move it whole several times a round (out of the roster,
    /// into the round, back into the roster), and each move of the vectors themselves was a
    /// copy of about 200 bytes.
    buffers: Box<Buffers<S>>,
    electorates: Electorates,
}

impl<S: State> RoundSpare<S> {
    /// Leaves a finished round's member array (read from `roster`) and its working vectors
    /// (emptied here) to the next round over the same roster list, when nothing else holds the
    /// array any more.
    fn leave(
        hive: &Hive<S>,
        roster: &Arc<[Listed<S>]>,
        mut members: Arc<[RoundMember<S>]>,
        mut buffers: Box<Buffers<S>>,
        electorates: Electorates,
    ) {
        if Arc::get_mut(&mut members).is_none() {
            return;
        }
        buffers.clear();
        hive.inner.roster.keep(
            roster,
            RoundSpare {
                members,
                buffers,
                electorates,
            },
        );
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

/// A started round that has not sent its terminal event: dropped before [`ended`](Self::ended)
/// (its future dropped, or a panic unwinding through it), it sends [`HiveEvent::RoundFailed`], so
/// that whoever watches the events sees every round end, once.
struct Unended<'a, K> {
    events: Option<&'a HiveEventSink<K>>,
    round: u64,
    /// Set (only by the round's own future) once the terminal event goes out; atomic only so that
    /// the round stays `Sync`.
    ended: AtomicBool,
}

impl<'a, K> Unended<'a, K> {
    fn new(events: Option<&'a HiveEventSink<K>>, round: u64) -> Self {
        Self {
            events,
            round,
            ended: AtomicBool::new(false),
        }
    }

    /// The round is about to send its terminal event: a panic after it adds none.
    fn ended(&self) {
        self.ended.store(true, Ordering::Relaxed);
    }
}

impl<K> Drop for Unended<'_, K> {
    #[cold]
    fn drop(&mut self) {
        let Some(events) = self.events.filter(|_| !*self.ended.get_mut()) else {
            return;
        };
        let error = if std::thread::panicking() {
            "the round panicked before it ended"
        } else {
            "the round's future was dropped before it ended"
        };
        events.emit(HiveEvent::RoundFailed {
            round: self.round,
            error: error.to_string(),
        });
    }
}

/// Counts one agent failure in the hive's stats, by kind.
fn count_failure(counters: &Counters, kind: &FailureKind) {
    let counter = match kind {
        FailureKind::TimedOut | FailureKind::Cancelled => &counters.timeouts,
        FailureKind::Panicked { .. } => &counters.panics,
        FailureKind::Errored { .. } => &counters.errors,
        FailureKind::DuplicateProposal { .. }
        | FailureKind::InvalidVote { .. }
        | FailureKind::WrongVoteCount { .. } => &counters.invalid,
    };
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The failures a round reported (sent as `AgentFailed`) while it has not yet run supervision:
/// dropped with some (the round's future dropped, or a panic unwinding through it), it hands them
/// to supervision as a round that returns an error does. Only the agents with a failure that
/// supervision counts are struck; nobody's record is cleared by a round that did not end.
struct Unsupervised<'h, S: State> {
    hive: &'h Hive<S>,
    round: u64,
    /// `None` once the round ran supervision itself (or without a supervision policy).
    failures: Mutex<Option<Vec<AgentFailure>>>,
    /// The runtime the round runs on (under a supervision policy): entered for the restart hook
    /// when the round's future is dropped outside it (by another executor), as the round's own
    /// polls enter it.
    handle: Option<Handle>,
}

impl<'h, S: State> Unsupervised<'h, S> {
    fn new(hive: &'h Hive<S>, round: u64, handle: &Handle) -> Self {
        let failures = hive.inner.config.supervision.map(|_| Vec::new());
        Self {
            hive,
            round,
            handle: failures.as_ref().map(|_| handle.clone()),
            failures: Mutex::new(failures),
        }
    }

    fn reported(&self, failures: &[AgentFailure]) {
        if failures.is_empty() {
            return;
        }
        if let Some(kept) = self.failures.lock().as_mut() {
            kept.extend_from_slice(failures);
        }
    }

    /// The round runs supervision itself.
    fn disarm(&self) {
        self.failures.lock().take();
    }
}

impl<S: State> Unsupervised<'_, S> {
    /// Hands the failures reported so far to supervision, once (a round stopped before its phases
    /// ended: its token cancelled, or its future dropped): only agents with a failure that
    /// supervision counts are struck, and nobody's record is cleared.
    fn hand_over(&self) {
        let Some(policy) = self.hive.inner.config.supervision else {
            return;
        };
        let Some(failures) = self.failures.lock().take() else {
            return;
        };
        // Only failures supervision counts strike: an agent whose failures were all invalid
        // answers (or calls cut short) keeps its record, as a member that did not fail does.
        let mut failed: Vec<AgentId> = failures
            .iter()
            .filter(|failure| counts(&failure.kind))
            .map(|failure| failure.agent)
            .collect();
        if failed.is_empty() {
            return;
        }
        failed.sort_unstable();
        failed.dedup();
        // Each failed member is passed with a nonzero count so that supervision looks it up.
        let members = failed.into_iter().map(|agent| (agent, 1));
        let done = supervise(self.hive, policy, self.round, members, &failures);
        supervise::act(self.hive, self.round, &done);
    }
}

impl<S: State> Drop for Unsupervised<'_, S> {
    #[cold]
    fn drop(&mut self) {
        if self.failures.get_mut().as_ref().is_none_or(Vec::is_empty) {
            return;
        }
        // The hook runs in the round's runtime, as it does from the round's own polls. (A round
        // dropped after its thread's tokio context was torn down cannot enter it.)
        let _entered = self
            .handle
            .as_ref()
            .and_then(|handle| std::panic::catch_unwind(|| handle.enter()).ok());
        self.hand_over();
    }
}

/// One round in progress: what its phases share.
struct Round<'h, S: State> {
    /// Hands the reported failures to supervision if the round ends without running it (declared
    /// before `unended`: its events come before `RoundFailed`).
    unsupervised: Unsupervised<'h, S>,
    /// Sends `RoundFailed` if the round ends without its terminal event.
    unended: Unended<'h, S::Key>,
    hive: &'h Hive<S>,
    number: u64,
    handle: Handle,
    started: Instant,
    /// The roster list the members were read from.
    roster: Arc<[Listed<S>]>,
    members: Arc<[RoundMember<S>]>,
    /// Empty working vectors (kept from the last round when they can be).
    buffers: Box<Buffers<S>>,
    /// The electorates of the voters (kept from the last round over the same members, else made
    /// by the vote phase).
    electorates: Electorates,
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
    /// Each proposal's position in `proposals`, by id.
    position: Positions,
}

/// Each proposal's position in a round's proposals, by id.
///
/// Proposals whose ids arrived in increasing order (hive-assigned ids, most counters) are sorted
/// by id, and a round with few lookups finds them by binary search; the others hash the ids on
/// first use, unless the propose phase built that map already (to find duplicate ids). A map
/// cost a round with conflicts an allocation and an insert per proposal (about 1,000
/// instructions of a 10-agent round's 33k, 78k for 1,000 proposals) for a few lookups per
/// conflict group, while a round with many lookups (the 200-pack analysis) pays less for the map
/// than for searching.
struct Positions {
    map: OnceLock<FxHashMap<ProposalId, usize>>,
    /// True when the proposals are sorted by id (the map is then built only when looked up often).
    sorted: bool,
}

impl Positions {
    /// The lookup for `proposals` (the proposals these positions are of), to find about
    /// `lookups` of them.
    fn of<'p, K, P>(
        &'p self,
        proposals: &'p [Proposal<K, P>],
        lookups: usize,
    ) -> PositionOf<'p, K, P> {
        // A search costs about a hash per halving, and a map's insert a few hashes.
        let search = self.sorted
            && self.map.get().is_none()
            && lookups * (proposals.len().checked_ilog2().unwrap_or(0) as usize + 1)
                <= 4 * proposals.len();
        PositionOf {
            proposals,
            map: (!search).then(|| self.map.get_or_init(|| propose::positions(proposals))),
        }
    }
}

/// Finds a round's proposals by id (see [`Positions`]).
struct PositionOf<'p, K, P> {
    proposals: &'p [Proposal<K, P>],
    /// `None`: the proposals are sorted by id.
    map: Option<&'p FxHashMap<ProposalId, usize>>,
}

impl<K, P> Clone for PositionOf<'_, K, P> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K, P> Copy for PositionOf<'_, K, P> {}

impl<K, P> PositionOf<'_, K, P> {
    /// The position of proposal `id`, one of the round's proposals (a conflict group's member or
    /// candidate).
    ///
    /// # Panics
    ///
    /// When `id` is none of the round's proposals, as indexing the map did: the conflict report
    /// and the ballots name only proposals of the round.
    fn at(self, id: ProposalId) -> usize {
        let found = match self.map {
            Some(map) => map.get(&id).copied(),
            None => self
                .proposals
                .binary_search_by_key(&id, |proposal| proposal.id)
                .ok(),
        };
        found.unwrap_or_else(|| panic!("proposal {id} is not one of the round's proposals"))
    }
}

/// How the round settled its conflicts.
struct Settled<K> {
    rejected: Vec<Option<RejectReason>>,
    ballots: Vec<BallotRecord<K>>,
    conflicts: usize,
    votes_counted: usize,
    votes_cancelled: usize,
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

    /// Logs and reports the failures recorded since `from`, and counts them in the hive's stats
    /// (as they are reported, so that a round whose future is dropped later counts what its
    /// events said).
    fn report_failures(&self, from: usize) {
        let reported = &self.failures[from..];
        for failure in reported {
            tracing::warn!(agent = failure.agent.0, phase = %failure.phase, "{failure}");
            count_failure(&self.hive.inner.counters, &failure.kind);
            self.emit(|| HiveEvent::AgentFailed {
                round: self.number,
                failure: failure.clone(),
            });
        }
        self.unsupervised.reported(reported);
    }

    /// The propose and settle phases: everything before the commit, which cancellation may stop.
    async fn gather(&mut self) -> Result<(Proposals<S>, Settled<S::Key>), HiveError> {
        let proposals = self.propose().await;
        let settled = self.settle(&proposals).await?;
        Ok((proposals, settled))
    }
}

fn call_span(agent: AgentId, phase: Phase) -> tracing::Span {
    tracing::debug_span!("agent_call", agent = agent.0, ?phase)
}

/// Whether a subscriber may want the agent calls' spans (DEBUG): one load, read by the vote loop
/// once per group's turn instead of once per call.
#[inline]
fn call_spans_enabled() -> bool {
    use tracing::level_filters::{LevelFilter, STATIC_MAX_LEVEL};
    let level = tracing::Level::DEBUG;
    level <= STATIC_MAX_LEVEL && level <= LevelFilter::current()
}

/// The span of one light vote call, or `None` when nothing records it (`enabled`: what
/// [`call_spans_enabled`] answered for the call's turn).
///
/// The vote loop makes a call per (contest, voter) pair, 25k in a 1,000-agent round with 50
/// contests: a disabled span built out of line, carried through the call (40 bytes) and entered
/// cost about 12 instructions of the call's 336, and the level's load 4 more. Once the level is
/// on, `call_span` checks the callsite as before, so a subscriber sees the same spans.
#[inline]
fn vote_call_span(agent: AgentId, enabled: bool) -> Option<tracing::Span> {
    if !enabled {
        return None;
    }
    Some(call_span(agent, Phase::Vote)).filter(|span| !span.is_disabled())
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use super::Positions;
    use crate::lockfree::{Proposal, ProposalId};

    fn proposals(ids: &[u64]) -> Vec<Proposal<u64, ()>> {
        ids.iter()
            .map(|&id| Proposal::new(ProposalId(id), ()))
            .collect()
    }

    #[test]
    fn sorted_proposals_are_found_by_search_and_others_through_the_map_at_the_same_positions() {
        let sorted = proposals(&[2, 5, 9, 14, 30, 31, 70]);
        let positions = Positions {
            map: OnceLock::new(),
            sorted: true,
        };
        let search = positions.of(&sorted, 2);
        assert!(search.map.is_none(), "few lookups search");
        for (index, proposal) in sorted.iter().enumerate() {
            assert_eq!(search.at(proposal.id), index);
        }
        // Many lookups: the map is built, and gives the same positions.
        let hashed = positions.of(&sorted, 1_000);
        assert!(hashed.map.is_some());
        for (index, proposal) in sorted.iter().enumerate() {
            assert_eq!(hashed.at(proposal.id), index);
        }

        let unsorted = proposals(&[9, 2, 70, 5]);
        let positions = Positions {
            map: OnceLock::new(),
            sorted: false,
        };
        let lookup = positions.of(&unsorted, 1);
        assert!(lookup.map.is_some(), "unsorted ids are never searched");
        for (index, proposal) in unsorted.iter().enumerate() {
            assert_eq!(lookup.at(proposal.id), index);
        }
    }
}
