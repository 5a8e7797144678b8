//! The hive's error type.

use hivekit_runtime::ConcurrencyLimitError;

use crate::agent::AgentId;
use crate::lockfree::ProposalError;
use crate::memory::MemoryError;
use crate::policy::PolicyError;

/// Why a hive could not be built, could not take an agent, or could not hold a round.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HiveError {
    /// The consensus policy is invalid.
    #[error("invalid consensus policy: {0}")]
    Policy(#[from] PolicyError),
    /// A NaN, infinite or negative agent weight.
    #[error("agent weight {weight} is invalid (weights must be finite and not negative)")]
    InvalidWeight {
        /// The weight given.
        weight: f64,
    },
    /// An agent timeout of zero.
    #[error("agent timeout must be longer than zero")]
    ZeroTimeout,
    /// A `max_in_flight` of zero or a negative number, which would never ask any agent.
    #[error("invalid max_in_flight: {0}")]
    MaxInFlight(ConcurrencyLimitError),
    /// A round in a hive without agents.
    #[error("the hive has no agents to decide")]
    NoAgents,
    /// `decide` polled outside a tokio runtime, and hivekit's global runtime (its fallback) could
    /// not be built.
    #[error("decide found no tokio runtime and cannot build the global one: {reason}")]
    NoRuntime {
        /// Why the global runtime could not be built.
        reason: String,
    },
    /// The round's proposals could not be checked for conflicts.
    #[error("invalid proposals: {0}")]
    Proposals(#[from] ProposalError),
    /// The memory could not commit the round's decision; nothing of it was applied.
    #[error("cannot commit the decision: {0}")]
    Memory(#[from] MemoryError),
    /// The round was cancelled through [`DecideOptions::cancel`](crate::DecideOptions) before it
    /// committed; nothing was committed.
    #[error("round {round} was cancelled before it committed")]
    Cancelled {
        /// The round's number.
        round: u64,
    },
    /// An operation named an agent that is not in the hive.
    #[error("{agent} is not in the hive")]
    UnknownAgent {
        /// The agent.
        agent: AgentId,
    },
}
