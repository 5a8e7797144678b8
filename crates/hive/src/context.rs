//! What an agent knows about the call it answers: who it is, which round, until when, and whether the
//! round still wants the answer; and the options of one round ([`DecideOptions`]).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use hivekit_runtime::LazyCancel;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use crate::agent::{AgentId, Candidate, Contest};
use crate::hive::DEFAULT_AGENT_TIMEOUT;
use crate::lockfree::{Proposal, ProposalId};
use crate::state::State;

/// Hive-assigned proposal ids are this plus a serial below it: in [2^52, 2^53), so they never
/// clash with ids agents choose below 2^52, and stay exact as JSON numbers (which lose precision
/// past 2^53).
pub(crate) const ASSIGNED_PROPOSAL_ID: u64 = 1 << 52;

/// A hive-assigned id for `serial` (wrapping past 2^52 serials, far more than a hive proposes).
pub(crate) fn assigned_proposal_id(serial: u64) -> ProposalId {
    ProposalId(ASSIGNED_PROPOSAL_ID | (serial & (ASSIGNED_PROPOSAL_ID - 1)))
}

/// Shows a proposal id as its `Display` does (`#7`), and a hive-assigned one by its serial
/// (`#h7`) instead of a 19-digit number.
pub(crate) fn label(id: ProposalId) -> impl fmt::Display {
    struct Label(ProposalId);
    impl fmt::Display for Label {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            if self.0 .0 >> 52 == 1 {
                write!(f, "#h{}", self.0 .0 & (ASSIGNED_PROPOSAL_ID - 1))
            } else {
                write!(f, "{}", self.0)
            }
        }
    }
    Label(id)
}

/// What every call of one round shares: its number, and whether the round still wants answers
/// (cancelled when it ends, or by the caller's token, [`DecideOptions::cancel`]; the agents' token
/// is made only when one asks for it).
pub(crate) struct RoundShared {
    round: u64,
    cancel: LazyCancel,
}

impl RoundShared {
    pub(crate) fn new(round: u64, parent: Option<CancellationToken>) -> Self {
        RoundShared {
            round,
            cancel: parent.map_or_else(LazyCancel::new, LazyCancel::child_of),
        }
    }

    fn token(&self) -> &CancellationToken {
        self.cancel.token()
    }

    fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// The round is over: nobody waits for an answer any more.
    pub(crate) fn end(&self) {
        self.cancel.cancel();
    }
}

/// The context of one agent call (`propose` or `vote`): the agent's own id, the round, the call's
/// deadline, a cancellation token, and the id the hive assigned to the agent's proposal.
///
/// Cheap to pass: the hive builds one per agent per phase and lends it to every call (a call that
/// waited for a slot under `max_in_flight` gets one of its own, with its own deadline).
///
/// # Examples
///
/// ```
/// use hivekit_hive::{AgentContext, AgentId};
///
/// // Outside a hive (to test an agent on its own):
/// let ctx = AgentContext::new(AgentId(4), 1);
/// assert_eq!((ctx.agent(), ctx.round()), (AgentId(4), 1));
/// assert!(!ctx.is_cancelled());
/// let proposal = ctx.proposal::<&str, u32>(8).writes(["threads"]);
/// assert_eq!(proposal.id, ctx.proposal_id());
/// ```
#[derive(Clone)]
pub struct AgentContext {
    agent: AgentId,
    proposal_id: ProposalId,
    deadline: Instant,
    shared: Arc<RoundShared>,
}

impl fmt::Debug for AgentContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentContext")
            .field("agent", &self.agent)
            .field("round", &self.shared.round)
            .field("proposal_id", &self.proposal_id)
            .field("deadline", &self.deadline)
            .field("cancelled", &self.shared.is_cancelled())
            .finish()
    }
}

impl AgentContext {
    /// A context for calling an agent outside a hive (in its own tests): `agent` in round `round`,
    /// with the default agent timeout from now and a token nobody cancels.
    pub fn new(agent: AgentId, round: u64) -> Self {
        let shared = Arc::new(RoundShared::new(round, None));
        AgentContext::for_round(
            agent,
            assigned_proposal_id(agent.0),
            Instant::now() + DEFAULT_AGENT_TIMEOUT,
            &shared,
        )
    }

    pub(crate) fn for_round(
        agent: AgentId,
        proposal_id: ProposalId,
        deadline: Instant,
        shared: &Arc<RoundShared>,
    ) -> Self {
        AgentContext {
            agent,
            proposal_id,
            deadline,
            shared: Arc::clone(shared),
        }
    }

    /// This context for the next phase of the same round, which has its own deadline.
    pub(crate) fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = deadline;
    }

    /// The agent's own id in its hive.
    pub fn agent(&self) -> AgentId {
        self.agent
    }

    /// The round's number in its hive, from 1.
    pub fn round(&self) -> u64 {
        self.shared.round
    }

    /// When the call stops counting: the call's start plus the hive's agent timeout, or the
    /// round's deadline ([`DecideOptions::deadline`]) if that is earlier. A call that the hive's
    /// `max_in_flight` made wait for a slot is timed, and told its deadline, from when it got its
    /// slot: it has a whole agent timeout (still capped by the round's deadline).
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The time left until [`AgentContext::deadline`] (zero once it passed).
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Cancelled when the round is cancelled ([`DecideOptions::cancel`]) and when the round ends,
    /// so that work an agent started for the round (a spawned request, a child process) can stop.
    /// A call the round stops waiting for (its ballot settled, its timeout passed) is dropped.
    pub fn cancellation(&self) -> &CancellationToken {
        self.shared.token()
    }

    /// True once [`AgentContext::cancellation`] is cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.shared.is_cancelled()
    }

    /// Completes when [`AgentContext::cancellation`] is cancelled.
    pub fn cancelled(&self) -> WaitForCancellationFuture<'_> {
        self.shared.token().cancelled()
    }

    /// The id the hive assigned to this agent's proposal in this round: unique in the hive, and
    /// never equal to an id below 2^52 that an agent chooses itself. A decision's `Display` shows
    /// it as `#h` and its serial (`#h12`).
    pub fn proposal_id(&self) -> ProposalId {
        self.proposal_id
    }

    /// A proposal of `change` under [`AgentContext::proposal_id`]; name its keys with
    /// [`Proposal::reads`] and [`Proposal::writes`].
    pub fn proposal<K, C>(&self, change: C) -> Proposal<K, C> {
        Proposal::new(self.proposal_id, change)
    }

    /// True when `candidate` is this agent's own proposal.
    pub fn is_own<S: State>(&self, candidate: &Candidate<S>) -> bool {
        candidate.proposer == self.agent
    }

    /// This agent's own candidate in `contest`, if it stands in it.
    pub fn own<'c, S: State>(&self, contest: &'c Contest<S>) -> Option<&'c Candidate<S>> {
        contest.candidate_of(self.agent)
    }
}

/// Options of one round, for [`Hive::decide_with`](crate::Hive::decide_with);
/// `DecideOptions::default()` is what [`Hive::decide`](crate::Hive::decide) uses: no deadline
/// beyond the agent timeout, no cancellation.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hivekit_hive::DecideOptions;
/// use hivekit_hive::CancellationToken;
///
/// let cancel = CancellationToken::new();
/// let options = DecideOptions::default()
///     .with_deadline(Duration::from_secs(2))
///     .with_cancel(cancel.clone());
/// assert_eq!(options.deadline, Some(Duration::from_secs(2)));
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct DecideOptions {
    /// The longest the round's agent calls may take, from the round's start: calls still running
    /// then count as timed out and the round settles with the answers it has.
    pub deadline: Option<Duration>,
    /// Cancels the round from outside: `decide_with` returns
    /// [`HiveError::Cancelled`](crate::HiveError::Cancelled) and nothing is committed (a commit
    /// already sent to the memory is awaited, so a decision is never half-applied).
    pub cancel: Option<CancellationToken>,
}

impl DecideOptions {
    /// These options with a deadline for the round's agent calls.
    pub fn with_deadline(self, deadline: Duration) -> Self {
        Self {
            deadline: Some(deadline),
            ..self
        }
    }

    /// These options with a cancellation token.
    pub fn with_cancel(self, cancel: CancellationToken) -> Self {
        Self {
            cancel: Some(cancel),
            ..self
        }
    }
}
