//! The error of the ballot area.

use crate::agent::AgentId;
use crate::lockfree::ProposalId;
use crate::policy::PolicyError;

/// Bad input to a [`Ballot`](crate::Ballot) or an [`Electorate`](crate::Electorate).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BallotError {
    /// The policy is invalid.
    #[error("invalid consensus policy: {0}")]
    Policy(#[from] PolicyError),
    /// A voter weight that is NaN, infinite or negative.
    #[error("voter {voter} has invalid weight {weight} (weights must be finite and not negative)")]
    InvalidWeight {
        /// The voter.
        voter: AgentId,
        /// The weight given.
        weight: f64,
    },
    /// The same voter listed twice in an electorate.
    #[error("voter {voter} is listed twice in the electorate")]
    DuplicateVoter {
        /// The voter.
        voter: AgentId,
    },
    /// An electorate with nobody in it.
    #[error("the electorate is empty")]
    EmptyElectorate,
    /// A weighted ballot whose voters all weigh zero.
    #[error("the electorate's total weight is zero, so no quorum can be measured")]
    ZeroTotalWeight,
    /// A ballot with no candidates.
    #[error("the ballot has no candidates")]
    NoCandidates,
    /// The same candidate listed twice.
    #[error("candidate {candidate} is listed twice on the ballot")]
    DuplicateCandidate {
        /// The candidate.
        candidate: ProposalId,
    },
    /// A vote for a proposal that is not on the ballot.
    #[error("vote for unknown candidate {candidate}")]
    UnknownCandidate {
        /// The candidate voted for.
        candidate: ProposalId,
    },
    /// A vote from someone outside the electorate.
    #[error("{voter} is not in the electorate")]
    NotAVoter {
        /// The voter.
        voter: AgentId,
    },
}
