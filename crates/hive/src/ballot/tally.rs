//! A ballot's outcome.

use std::fmt;

use crate::context::label;
use crate::lockfree::ProposalId;

/// The outcome of a [`Ballot`](crate::Ballot) if it closed now.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Tally {
    /// A winner with enough support.
    Decided {
        /// The winning proposal.
        winner: ProposalId,
        /// The winner's share of the votes cast for candidates, in (0, 1].
        support: f64,
    },
    /// Too few voters took part.
    NoQuorum {
        /// Weight (or count) that took part.
        turnout: f64,
        /// Weight (or count) the quorum needs.
        required: f64,
    },
    /// Candidates tied at the top and the policy's tie-break is [`TieBreak::NoDecision`](crate::TieBreak::NoDecision).
    /// Supports count as tied when they differ by no more than rounding (a millionth of a millionth
    /// of the electorate's weight), so weights of 0.1 and 0.2 tie with one of 0.3.
    Tie {
        /// The tied candidates, lowest id first.
        candidates: Vec<ProposalId>,
    },
    /// The quorum was met but no candidate reached the threshold.
    Undecided,
}

impl Tally {
    /// The winner, when decided.
    pub fn winner(&self) -> Option<ProposalId> {
        match self {
            Tally::Decided { winner, .. } => Some(*winner),
            _ => None,
        }
    }

    /// The same outcome regardless of the exact support figures (what early settlement promises).
    pub fn same_outcome(&self, other: &Tally) -> bool {
        match (self, other) {
            (Tally::Decided { winner: a, .. }, Tally::Decided { winner: b, .. }) => a == b,
            (Tally::NoQuorum { .. }, Tally::NoQuorum { .. }) => true,
            (Tally::Tie { candidates: a }, Tally::Tie { candidates: b }) => a == b,
            (Tally::Undecided, Tally::Undecided) => true,
            _ => false,
        }
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tally::Decided { winner, support } => {
                let winner = label(*winner);
                write!(
                    f,
                    "decided for {winner} with {:.0}% support",
                    support * 100.0
                )
            }
            Tally::NoQuorum { turnout, required } => {
                write!(f, "no quorum (turnout {turnout} of {required} required)")
            }
            Tally::Tie { candidates } => {
                f.write_str("tie between ")?;
                for (index, candidate) in candidates.iter().enumerate() {
                    let separator = if index == 0 { "" } else { ", " };
                    write!(f, "{separator}{}", label(*candidate))?;
                }
                Ok(())
            }
            Tally::Undecided => f.write_str("undecided (no candidate reached the threshold)"),
        }
    }
}
