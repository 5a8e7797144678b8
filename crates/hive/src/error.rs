//! The hive's error type.

use crate::agent::AgentId;
use crate::lockfree::ProposalError;
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
    /// A round in a hive without agents.
    #[error("the hive has no agents to decide")]
    NoAgents,
    /// `decide` polled outside a tokio runtime (it needs tokio's timers).
    #[error("decide must run inside a tokio runtime with timers enabled")]
    NoRuntime,
    /// The round's proposals could not be checked for conflicts.
    #[error("invalid proposals: {0}")]
    Proposals(#[from] ProposalError),
    /// An operation named an agent that is not in the hive.
    #[error("{agent} is not in the hive")]
    UnknownAgent {
        /// The agent.
        agent: AgentId,
    },
}
