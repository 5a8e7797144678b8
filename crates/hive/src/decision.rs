//! What a round decided: accepted and rejected proposals, ballots, and the agents that failed.

use std::fmt;
use std::time::Duration;

use crate::agent::{AgentError, AgentId};
use crate::ballot::Tally;
use crate::lockfree::{ConflictKind, ProposalId};
use crate::state::State;

/// How a round settles a group of conflicting proposals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ResolutionStrategy {
    /// A [`Ballot`](crate::Ballot) among the hive's voting agents, under the hive's
    /// [`ConsensusPolicy`](crate::ConsensusPolicy).
    #[default]
    Vote,
    /// The highest priority wins; equal priorities go to the lowest proposal id.
    HighestPriority,
    /// The proposal that reached the round first wins.
    FirstProposed,
    /// Every proposal in a conflict is rejected.
    RejectAll,
}

/// Why a proposal was not applied.
#[derive(Debug, Clone, PartialEq)]
pub enum RejectReason {
    /// Another proposal won the vote on a key they share.
    LostVote {
        /// The winner.
        winner: ProposalId,
    },
    /// The vote on a key it shares did not reach the quorum.
    NoQuorum,
    /// The vote on a key it shares ended in a tie (with [`TieBreak::NoDecision`](crate::TieBreak)).
    Tie,
    /// The vote on a key it shares reached the quorum but no candidate reached the threshold.
    Undecided,
    /// Another proposal won a conflict settled by priority or arrival order.
    ConflictWith {
        /// The winner.
        winner: ProposalId,
    },
    /// It conflicted with another proposal under [`ResolutionStrategy::RejectAll`].
    Contested,
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RejectReason::LostVote { winner } => write!(f, "lost the vote to proposal {winner}"),
            RejectReason::NoQuorum => f.write_str("the vote did not reach its quorum"),
            RejectReason::Tie => f.write_str("the vote ended in a tie"),
            RejectReason::Undecided => f.write_str("no candidate reached the threshold"),
            RejectReason::ConflictWith { winner } => {
                write!(f, "conflicts with accepted proposal {winner}")
            }
            RejectReason::Contested => f.write_str("conflicting proposals are all rejected"),
        }
    }
}

/// Which call an agent failed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// `Agent::propose`.
    Propose,
    /// `Agent::vote`.
    Vote,
}

/// How an agent failed.
#[derive(Debug, Clone, PartialEq)]
pub enum FailureKind {
    /// The call did not finish within the hive's `agent_timeout`.
    TimedOut,
    /// The call panicked.
    Panicked {
        /// The panic message, when it was a string.
        message: String,
    },
    /// The call returned an error.
    Errored {
        /// The error.
        error: AgentError,
    },
    /// The call was cancelled before it finished (the runtime is shutting down).
    Cancelled,
    /// The agent proposed an id another agent's proposal of the round already has; the proposal
    /// was dropped.
    DuplicateProposal {
        /// The id.
        id: ProposalId,
        /// The agent whose proposal holds the id.
        holder: AgentId,
    },
    /// The agent voted for a proposal that is not a candidate in the contest; the vote was dropped.
    InvalidVote {
        /// The proposal voted for.
        candidate: ProposalId,
    },
}

/// One agent's failure in a round.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentFailure {
    /// The agent.
    pub agent: AgentId,
    /// The call.
    pub phase: Phase,
    /// What went wrong.
    pub kind: FailureKind,
}

/// The ballot held on one contested key.
#[derive(Debug, Clone)]
pub struct BallotRecord<K> {
    /// The contested key.
    pub key: K,
    /// How the candidates conflicted.
    pub kind: ConflictKind,
    /// The candidates.
    pub candidates: Vec<ProposalId>,
    /// The outcome.
    pub tally: Tally,
    /// Voters whose vote was counted (abstentions included).
    pub votes: usize,
    /// Voters the round stopped waiting for because the outcome could no longer change.
    pub cancelled: usize,
}

/// The outcome of one round, [`Hive::decide`](crate::Hive::decide).
#[derive(Clone)]
pub struct Decision<S: State> {
    /// Identifies the decision across processes: the id its commit carried to the memory
    /// ([`CommitRequest::decision_id`](crate::CommitRequest)).
    pub id: u128,
    /// The round's number in this hive, from 1.
    pub round: u64,
    /// The memory version the agents saw.
    pub base_version: u64,
    /// The memory version holding this round's changes (equal to `base_version` when nothing was
    /// accepted).
    pub version: u64,
    /// True when another round committed after this one took its snapshot, so the accepted changes
    /// were applied on top of that newer state instead (see `Hive::decide`).
    pub rebased: bool,
    /// Agents asked to propose.
    pub agents: usize,
    /// Proposals received.
    pub proposals: usize,
    /// Who proposed what: every proposal received (accepted or not), with its proposer, in arrival
    /// order.
    pub proposers: Vec<(ProposalId, AgentId)>,
    /// Accepted proposals, by id, in the order they were applied.
    pub accepted: Vec<ProposalId>,
    /// Rejected proposals, with the first reason found for each.
    pub rejected: Vec<(ProposalId, RejectReason)>,
    /// The ballot of every contested key (strategy [`ResolutionStrategy::Vote`]).
    pub ballots: Vec<BallotRecord<S::Key>>,
    /// Agents that timed out, panicked, erred or answered invalidly.
    pub failures: Vec<AgentFailure>,
    /// How long the round took, on tokio's clock (so a test with paused time sees the simulated
    /// time: a round that waited for a timeout reports exactly that timeout).
    pub elapsed: Duration,
}

impl<S: State> fmt::Debug for Decision<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decision")
            .field("id", &format_args!("{:032x}", self.id))
            .field("round", &self.round)
            .field("base_version", &self.base_version)
            .field("version", &self.version)
            .field("rebased", &self.rebased)
            .field("agents", &self.agents)
            .field("proposals", &self.proposals)
            .field("proposers", &self.proposers)
            .field("accepted", &self.accepted)
            .field("rejected", &self.rejected)
            .field("ballots", &self.ballots)
            .field("failures", &self.failures)
            .field("elapsed", &self.elapsed)
            .finish()
    }
}

impl<S: State> Decision<S> {
    /// True when the proposal was accepted.
    pub fn is_accepted(&self, id: ProposalId) -> bool {
        self.accepted.contains(&id)
    }

    /// The agent that proposed `id`, if a proposal of the round has that id.
    pub fn proposer(&self, id: ProposalId) -> Option<AgentId> {
        self.proposers
            .iter()
            .find(|(proposal, _)| *proposal == id)
            .map(|(_, agent)| *agent)
    }

    /// The reason the proposal was rejected, if it was.
    pub fn rejection(&self, id: ProposalId) -> Option<&RejectReason> {
        self.rejected
            .iter()
            .find(|(rejected, _)| *rejected == id)
            .map(|(_, reason)| reason)
    }
}
