//! Agents: what they are asked (propose, vote), how they are identified, and the object-safe adapter
//! that lets agents of different types live in one hive.

use std::borrow::Cow;
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hivekit_lockfree::{Priority, ResourceCost};
use hivekit_runtime::{start_in_spare, First, Spare};

use crate::context::AgentContext;
use crate::lockfree::{ConflictKind, Proposal, ProposalId, Snapshot};
use crate::slot_block::SlotBlock;
use crate::state::State;

/// Identifies an agent within its hive; ids are never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct AgentId(pub u64);

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "agent {}", self.0)
    }
}

/// What an agent is for; users filter agents by role (see `Hive::agents_with_role`) and choose which
/// roles vote (see `HiveBuilder::voting_roles`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Role {
    /// Reads the state and proposes changes (the default).
    #[default]
    Analyzer,
    /// Settles disagreements.
    Resolver,
    /// Looks for conflicting requirements.
    ConflictDetector,
    /// Checks proposals.
    Validator,
    /// Improves accepted plans.
    Optimizer,
    /// Anything else, by name.
    Custom(Cow<'static, str>),
}

/// An agent's answer in a ballot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Vote {
    /// Support for one candidate proposal.
    For(ProposalId),
    /// Takes part (counts towards the quorum) without supporting anyone.
    Abstain,
}

/// An error an agent reports from `propose` or `vote`; the round records it in the decision's
/// failures and goes on without that agent's answer.
///
/// Cheap to clone (the source is shared).
///
/// # Examples
///
/// ```
/// use hivekit_hive::AgentError;
///
/// let error = AgentError::msg("model endpoint unavailable");
/// assert_eq!(error.to_string(), "model endpoint unavailable");
/// let io = AgentError::new(std::io::Error::other("disk full"));
/// assert_eq!(io.to_string(), "disk full");
/// ```
#[derive(Clone)]
pub struct AgentError {
    source: Arc<dyn Error + Send + Sync + 'static>,
}

impl AgentError {
    /// Wraps any error.
    pub fn new(error: impl Error + Send + Sync + 'static) -> Self {
        Self {
            source: Arc::new(error),
        }
    }

    /// An error that is only a message.
    pub fn msg(message: impl Into<String>) -> Self {
        Self {
            source: Arc::new(Message(message.into())),
        }
    }

    /// The wrapped error.
    pub fn inner(&self) -> &(dyn Error + Send + Sync + 'static) {
        &*self.source
    }
}

impl fmt::Debug for AgentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AgentError")
            .field(&self.source.to_string())
            .finish()
    }
}

impl fmt::Display for AgentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.source, f)
    }
}

impl Error for AgentError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.source()
    }
}

impl PartialEq for AgentError {
    /// Two errors are equal when they print the same.
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

#[derive(Debug)]
struct Message(String);

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for Message {}

/// One proposal standing in a [`Contest`].
#[derive(Clone)]
pub struct Candidate<S: State> {
    /// The proposal's id; vote for it with `Vote::For(id)`.
    pub id: ProposalId,
    /// The agent that proposed it.
    pub proposer: AgentId,
    /// The proposal's priority.
    pub priority: Priority,
    /// True when the proposal writes the contested key (false: it only reads it).
    pub writes_key: bool,
    /// The change it would apply.
    pub change: S::Change,
}

/// A conflict put to a vote: proposals that touch the same key, at most one kind of which can win.
#[derive(Clone)]
pub struct Contest<S: State> {
    /// The contested key.
    pub key: S::Key,
    /// How the candidates conflict on it.
    pub kind: ConflictKind,
    /// The candidates, in the order they were proposed.
    pub candidates: Vec<Candidate<S>>,
}

impl<S: State> fmt::Debug for Candidate<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The change is not required to be `Debug`.
        f.debug_struct("Candidate")
            .field("id", &self.id)
            .field("proposer", &self.proposer)
            .field("priority", &self.priority)
            .field("writes_key", &self.writes_key)
            .finish_non_exhaustive()
    }
}

impl<S: State> fmt::Debug for Contest<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Contest")
            .field("key", &self.key)
            .field("kind", &self.kind)
            .field("candidates", &self.candidates)
            .finish()
    }
}

impl<S: State> Contest<S> {
    /// The candidate an agent without an opinion supports: the highest priority, then the lowest id.
    pub fn preferred(&self) -> Option<ProposalId> {
        self.candidates
            .iter()
            .max_by(|a, b| a.priority.cmp(&b.priority).then(b.id.cmp(&a.id)))
            .map(|candidate| candidate.id)
    }

    /// The candidate `agent` proposed, if it stands in this contest (see also [`AgentContext::own`]).
    pub fn candidate_of(&self, agent: AgentId) -> Option<&Candidate<S>> {
        self.candidates
            .iter()
            .find(|candidate| candidate.proposer == agent)
    }

    /// The candidate with this id, if it stands in this contest.
    pub fn candidate(&self, id: ProposalId) -> Option<&Candidate<S>> {
        self.candidates.iter().find(|candidate| candidate.id == id)
    }
}

/// The proposal type of a state: keys it reads and writes, and its change.
pub type ProposalOf<S> = Proposal<<S as State>::Key, <S as State>::Change>;

/// A member of a hive: proposes changes to the shared state and votes on conflicts.
///
/// Write the methods as `async fn` in your impl. Each call gets an [`AgentContext`]: the agent's own
/// id, the round, the call's deadline, a cancellation token, and a proposal id the hive assigned
/// ([`AgentContext::proposal`]). Agents of different types live in one hive; the hive keeps them
/// behind an internal object-safe adapter and asks them concurrently, each call under the hive's
/// `agent_timeout`. A call that panics, errs or times out is recorded as a failure of that agent and
/// the round goes on. An agent whose `Drop` panics is dropped under `catch_unwind` wherever its last
/// handle goes (a removal, the end of a round that still held it, the hive's drop): the panic is
/// logged and neither a round nor the hive's other agents are affected.
///
/// # Examples
///
/// ```
/// use hivekit_hive::{Agent, AgentContext, AgentError, Hive, ProposalOf, Snapshot, State};
///
/// #[derive(Clone, Default)]
/// struct Counter(u64);
///
/// impl State for Counter {
///     type Key = &'static str;
///     type Change = u64;
///     fn apply(&mut self, change: &u64) {
///         self.0 += change;
///     }
/// }
///
/// struct Incrementer;
///
/// impl Agent<Counter> for Incrementer {
///     async fn propose(
///         &self,
///         ctx: &AgentContext,
///         _view: &Snapshot<Counter>,
///     ) -> Result<Option<ProposalOf<Counter>>, AgentError> {
///         Ok(Some(ctx.proposal(1).writes(["count"])))
///     }
/// }
///
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// let hive = Hive::builder(Counter::default()).build()?;
/// let agent = hive.spawn(Incrementer);
/// let decision = hive.decide().await?;
/// assert_eq!(decision.accepted.len(), 1);
/// assert_eq!(decision.proposer(decision.accepted[0]), Some(agent));
/// assert_eq!(hive.memory().load().0, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Agent<S: State>: Send + Sync + 'static {
    /// Looks at the state and proposes at most one change (`Ok(None)`: nothing to propose).
    ///
    /// Use the id the hive assigned ([`AgentContext::proposal`]), or choose one below 2^52: ids
    /// must be unique within a round, and a proposal whose id another agent already used in the
    /// same round is dropped and recorded as this agent's failure
    /// ([`FailureKind::DuplicateProposal`](crate::FailureKind::DuplicateProposal), naming both
    /// agents).
    fn propose(
        &self,
        ctx: &AgentContext,
        view: &Snapshot<S>,
    ) -> impl Future<Output = Result<Option<ProposalOf<S>>, AgentError>> + Send;

    /// Votes in a contest between conflicting proposals ([`AgentContext::own`] tells which
    /// candidate, if any, is this agent's own). The default supports [`Contest::preferred`]
    /// (highest priority, then lowest id).
    fn vote(
        &self,
        ctx: &AgentContext,
        view: &Snapshot<S>,
        contest: &Contest<S>,
    ) -> impl Future<Output = Result<Vote, AgentError>> + Send {
        let _ = (ctx, view);
        let vote = contest.preferred().map_or(Vote::Abstain, Vote::For);
        std::future::ready(Ok(vote))
    }

    /// Whether the round asks this agent about all of its contests in one call
    /// ([`Agent::vote_all`]) instead of one call per contest, read once when it is spawned.
    /// Defaults to `false`. An agent whose every call costs a prompt or a request answers a round
    /// in one call this way. Batch voters are asked first, all at once; the other voters then vote
    /// on the ballots the batch votes have not settled.
    fn batch_votes(&self) -> bool {
        false
    }

    /// Votes in every one of `contests` in one call: one vote per contest, in the same order
    /// (called instead of [`Agent::vote`] when [`Agent::batch_votes`] is true). The default asks
    /// [`Agent::vote`] about each contest, one after another. An answer with too few or too many
    /// votes is recorded as [`FailureKind::WrongVoteCount`](crate::FailureKind::WrongVoteCount)
    /// (the votes given for the first contests still count).
    fn vote_all(
        &self,
        ctx: &AgentContext,
        view: &Snapshot<S>,
        contests: &[&Contest<S>],
    ) -> impl Future<Output = Result<Vec<Vote>, AgentError>> + Send {
        async move {
            let mut votes = Vec::with_capacity(contests.len());
            for contest in contests {
                votes.push(self.vote(ctx, view, contest).await?);
            }
            Ok(votes)
        }
    }

    /// The agent's role, read once when it is spawned. Defaults to [`Role::Analyzer`].
    fn role(&self) -> Role {
        Role::Analyzer
    }

    /// What one call to this agent costs, read once when it is spawned. Agents of
    /// [`ResourceCost::Moderate`] or [`ResourceCost::Heavy`] cost run as their own runtime tasks, so a
    /// round spreads them over every worker thread; cheaper agents are polled by the round itself,
    /// which is far cheaper than a task each. When every agent of a round is heavy and the round is
    /// polled by a thread blocked on it (`block_on`, `hivekit_runtime::execute`) rather than by a
    /// task, that thread runs the last agent's call itself instead of waiting idle for the workers.
    /// Defaults to [`ResourceCost::Light`].
    fn cost(&self) -> ResourceCost {
        ResourceCost::Light
    }

    /// Which contests this agent votes in, read once when it is spawned. Defaults to
    /// [`Interest::All`]: asked about every contest. An agent is never asked about a contest it
    /// has no interest in, and is not in that contest's electorate (the quorum and threshold count
    /// only the interested voters; a contest nobody is interested in ends without quorum).
    fn interest(&self) -> Interest<S::Key> {
        Interest::All
    }

    /// For an agent of [`Interest::Matching`]: whether to ask it about `contest` (called once per
    /// contest, before the round asks it to vote). Defaults to `true`. A predicate that panics is
    /// the agent's failure in the round's vote phase ([`FailureKind::Panicked`](crate::FailureKind::Panicked)
    /// in [`Decision::failures`](crate::Decision::failures), counted by supervision), and the agent
    /// sits out the round's remaining contests.
    fn interested(&self, contest: &Contest<S>) -> bool {
        let _ = contest;
        true
    }
}

/// Which contests an agent votes in ([`Agent::interest`]).
///
/// # Examples
///
/// ```
/// use hivekit_hive::{Agent, AgentContext, AgentError, Contest, Hive, Interest, ProposalOf, Snapshot, State};
///
/// #[derive(Clone, Default)]
/// struct Settings;
/// impl State for Settings {
///     type Key = &'static str;
///     type Change = u8;
///     fn apply(&mut self, _: &u8) {}
/// }
///
/// /// Proposes `level` for `key`, and votes only on `key`.
/// struct Owner { key: &'static str, level: u8 }
///
/// impl Agent<Settings> for Owner {
///     async fn propose(&self, ctx: &AgentContext, _: &Snapshot<Settings>)
///         -> Result<Option<ProposalOf<Settings>>, AgentError>
///     {
///         Ok(Some(ctx.proposal(self.level).writes([self.key])))
///     }
///     fn interest(&self) -> Interest<&'static str> {
///         Interest::Keys(vec![self.key])
///     }
/// }
///
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// let hive = Hive::new(Settings);
/// hive.spawn(Owner { key: "threads", level: 4 });
/// hive.spawn(Owner { key: "threads", level: 8 });
/// hive.spawn(Owner { key: "cache", level: 1 });
/// let decision = hive.decide().await?;
/// // Only the two agents interested in "threads" voted on it.
/// assert_eq!(decision.ballots[0].voters().count(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Interest<K> {
    /// Every contest (the default).
    #[default]
    All,
    /// Only contests on one of these keys (the round finds them through an index: no call per
    /// contest).
    Keys(Vec<K>),
    /// The contests [`Agent::interested`] accepts (one call per contest, before asking).
    Matching,
}

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The object-safe face of [`Agent`], implemented for every agent.
pub(crate) trait DynAgent<S: State>: Send + Sync + 'static {
    fn propose_boxed<'a>(
        &'a self,
        ctx: &'a AgentContext,
        view: &'a Snapshot<S>,
    ) -> BoxFuture<'a, Result<Option<ProposalOf<S>>, AgentError>>;

    /// Starts a `propose` call in `spare`'s block and polls it once (see [`start_in_spare`]).
    fn propose_first<'a>(
        &'a self,
        ctx: &'a AgentContext,
        view: &'a Snapshot<S>,
        spare: &mut Spare,
        cx: &mut Context<'_>,
    ) -> std::thread::Result<First<'a, Result<Option<ProposalOf<S>>, AgentError>>>;

    fn vote_boxed<'a>(
        &'a self,
        ctx: &'a AgentContext,
        view: &'a Snapshot<S>,
        contest: &'a Contest<S>,
    ) -> BoxFuture<'a, Result<Vote, AgentError>>;

    /// Starts a `vote` call in `spare`'s block and polls it once (see [`start_in_spare`]).
    fn vote_first<'a>(
        &'a self,
        ctx: &'a AgentContext,
        view: &'a Snapshot<S>,
        contest: &'a Contest<S>,
        spare: &mut Spare,
        cx: &mut Context<'_>,
    ) -> std::thread::Result<First<'a, Result<Vote, AgentError>>>;

    fn interested_dyn(&self, contest: &Contest<S>) -> bool;

    /// The agent's type: agents of one type make vote calls of one layout.
    fn agent_type(&self) -> std::any::TypeId;

    fn vote_all_boxed<'a>(
        &'a self,
        ctx: &'a AgentContext,
        view: &'a Snapshot<S>,
        contests: &'a [&'a Contest<S>],
    ) -> BoxFuture<'a, Result<Vec<Vote>, AgentError>>;

    /// An empty [`VoteSlot`] for this agent's vote calls on `view`, in `block` if it has the
    /// slot's layout (the block of this agent's slot in an earlier round).
    fn vote_slot_in<'a>(
        &'a self,
        ctx: &'a AgentContext,
        view: &'a Snapshot<S>,
        block: &mut SlotBlock,
    ) -> Pin<Box<dyn VoteSlot<'a, S> + 'a>>;
}

/// A reusable home for one light voter's `vote` calls in a round.
///
/// A round asks every voter about every contest, and most calls answer at once; boxing each call's
/// future cost one heap allocation and free per (contest, voter) pair, a large part of a round with
/// many contests. A slot is allocated once and holds one call at a time:
/// [`VoteSlot::start_poll`] puts a new call in place of the finished one, reusing the allocation.
/// The slot is itself the call's future (it yields the call's answer), so a call that is still
/// pending after its first poll takes the whole slot with it and the voter gets a new slot for its
/// next call. The call lives inside the slot's one allocation (the slot is pinned), so a waiting
/// call costs one allocation, not one for the slot and one for its future.
pub(crate) trait VoteSlot<'a, S: State>:
    Future<Output = Result<Vote, AgentError>> + Send + 'a
{
    /// Starts a call about `contest`, dropping the previous call if it has not finished, and polls
    /// it once (one dynamic call for both: most calls answer at once).
    fn start_poll(
        self: Pin<&mut Self>,
        contest: &'a Contest<S>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Vote, AgentError>>;
}

pin_project_lite::pin_project! {
    /// The [`VoteSlot`] of an agent type: `make` starts a call, `call` holds the current one
    /// (pinned with the slot; `None` once it has answered).
    struct Slot<M, F> {
        make: M,
        // Structurally pinned: replaced only in place (`Pin::set` drops the old call where it lies).
        #[pin]
        call: Option<F>,
    }
}

impl<M, F: Future> Slot<M, F> {
    /// Polls the current call, dropping it once it has answered.
    fn poll_call(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let mut call = self.project().call;
        let Some(running) = call.as_mut().as_pin_mut() else {
            // Nothing started, or polled after the answer: nothing more will come.
            return Poll::Pending;
        };
        let answer = std::task::ready!(running.poll(cx));
        // Drop the finished call now, so that the slot holds no borrow of its contest.
        call.set(None);
        Poll::Ready(answer)
    }
}

impl<'a, S, M, F> VoteSlot<'a, S> for Slot<M, F>
where
    S: State,
    M: Fn(&'a Contest<S>) -> F + Send + 'a,
    F: Future<Output = Result<Vote, AgentError>> + Send + 'a,
{
    fn start_poll(
        mut self: Pin<&mut Self>,
        contest: &'a Contest<S>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Vote, AgentError>> {
        let mut this = self.as_mut().project();
        this.call.set(Some((this.make)(contest)));
        self.poll_call(cx)
    }
}

impl<M, F: Future> Future for Slot<M, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.poll_call(cx)
    }
}

/// An agent as the hive holds it: its destructor runs under `catch_unwind`. The last handle on
/// an agent is dropped wherever it happens to be (a round's end, [`Hive::remove`](crate::Hive::remove),
/// a roster rebuild, the hive's own drop); an agent whose `Drop` panics would unwind from there,
/// failing a round that had already committed, or leaving the rest of the hive's agents undropped.
/// The panic is logged instead, like a panic in any other call of the agent's.
pub(crate) struct Held<A>(ManuallyDrop<A>);

impl<A> Held<A> {
    pub(crate) fn new(agent: A) -> Self {
        Held(ManuallyDrop::new(agent))
    }
}

impl<A> Deref for Held<A> {
    type Target = A;

    fn deref(&self) -> &A {
        &self.0
    }
}

impl<A> Drop for Held<A> {
    fn drop(&mut self) {
        let agent = &mut self.0;
        // SAFETY: the agent is dropped once, here, and never used again: `Held` is being dropped
        // and gives no other access to it.
        let dropped = catch_unwind(AssertUnwindSafe(|| unsafe { ManuallyDrop::drop(agent) }));
        if dropped.is_err() {
            tracing::error!(
                agent = std::any::type_name::<A>(),
                "an agent panicked while being dropped; the panic was caught"
            );
        }
    }
}

impl<S: State, A: Agent<S>> DynAgent<S> for Held<A> {
    fn propose_boxed<'a>(
        &'a self,
        ctx: &'a AgentContext,
        view: &'a Snapshot<S>,
    ) -> BoxFuture<'a, Result<Option<ProposalOf<S>>, AgentError>> {
        Box::pin(self.propose(ctx, view))
    }

    fn propose_first<'a>(
        &'a self,
        ctx: &'a AgentContext,
        view: &'a Snapshot<S>,
        spare: &mut Spare,
        cx: &mut Context<'_>,
    ) -> std::thread::Result<First<'a, Result<Option<ProposalOf<S>>, AgentError>>> {
        start_in_spare(self.propose(ctx, view), spare, cx)
    }

    fn vote_boxed<'a>(
        &'a self,
        ctx: &'a AgentContext,
        view: &'a Snapshot<S>,
        contest: &'a Contest<S>,
    ) -> BoxFuture<'a, Result<Vote, AgentError>> {
        Box::pin(self.vote(ctx, view, contest))
    }

    fn vote_first<'a>(
        &'a self,
        ctx: &'a AgentContext,
        view: &'a Snapshot<S>,
        contest: &'a Contest<S>,
        spare: &mut Spare,
        cx: &mut Context<'_>,
    ) -> std::thread::Result<First<'a, Result<Vote, AgentError>>> {
        start_in_spare(self.vote(ctx, view, contest), spare, cx)
    }

    fn agent_type(&self) -> std::any::TypeId {
        std::any::TypeId::of::<A>()
    }

    fn interested_dyn(&self, contest: &Contest<S>) -> bool {
        self.interested(contest)
    }

    fn vote_all_boxed<'a>(
        &'a self,
        ctx: &'a AgentContext,
        view: &'a Snapshot<S>,
        contests: &'a [&'a Contest<S>],
    ) -> BoxFuture<'a, Result<Vec<Vote>, AgentError>> {
        Box::pin(self.vote_all(ctx, view, contests))
    }

    fn vote_slot_in<'a>(
        &'a self,
        ctx: &'a AgentContext,
        view: &'a Snapshot<S>,
        block: &mut SlotBlock,
    ) -> Pin<Box<dyn VoteSlot<'a, S> + 'a>> {
        block.boxed(Slot {
            make: move |contest: &'a Contest<S>| self.vote(ctx, view, contest),
            call: None,
        })
    }
}
