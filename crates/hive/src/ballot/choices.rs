//! Every voter's part in a ballot: the records a decision keeps.

use std::fmt;
use std::sync::Arc;

use crate::agent::AgentId;
#[cfg(feature = "serde")]
use crate::ballot::BallotError;
use crate::ballot::{Ballot, Codes, Electorate, ABSENT, ABSTAINED, NOT_VOTED};
use crate::context::label;
use crate::lockfree::ProposalId;

/// How one voter took part in a ballot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum VoterChoice {
    /// Voted for this candidate.
    For(ProposalId),
    /// Took part without supporting anyone.
    Abstain,
    /// Was asked and failed (timed out, panicked, erred or voted for a non-candidate): counted as
    /// absent; the decision's failures say how.
    Failed,
    /// Not counted: the ballot settled before this voter answered (or was asked).
    NotCounted,
}

/// One voter's part in a ballot: who, with what weight (1 in an unweighted ballot), and how.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct VoterRecord {
    /// The voter.
    pub voter: AgentId,
    /// The weight the voter's choice counts with.
    pub weight: f64,
    /// What the voter did.
    pub choice: VoterChoice,
}

impl fmt::Display for VoterRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.choice {
            VoterChoice::For(candidate) => write!(f, "{} for {}", self.voter, label(candidate))?,
            VoterChoice::Abstain => write!(f, "{} abstained", self.voter)?,
            VoterChoice::Failed => write!(f, "{} failed", self.voter)?,
            VoterChoice::NotCounted => write!(f, "{} not counted", self.voter)?,
        }
        if self.weight != 1.0 {
            write!(f, " (weight {})", self.weight)?;
        }
        Ok(())
    }
}

/// Every voter's choice in a closed ballot, kept as the ballot kept them (no copy per voter).
#[derive(Debug, Clone)]
pub(crate) struct BallotChoices {
    electorate: Arc<Electorate>,
    weighted: bool,
    codes: Codes,
}

impl BallotChoices {
    /// Rebuilds the choices from their records (for deserialized decisions).
    #[cfg(feature = "serde")]
    pub(crate) fn from_records(
        records: &[VoterRecord],
        candidates: &[ProposalId],
    ) -> Result<Self, BallotError> {
        let weighted = records.iter().any(|record| record.weight != 1.0);
        let electorate = Arc::new(Electorate::new(
            records.iter().map(|record| (record.voter, record.weight)),
        )?);
        let codes: Vec<u32> = records
            .iter()
            .map(|record| match record.choice {
                VoterChoice::For(candidate) => candidates
                    .iter()
                    .position(|&c| c == candidate)
                    .map(|position| position as u32)
                    .ok_or(BallotError::UnknownCandidate { candidate }),
                VoterChoice::Abstain => Ok(ABSTAINED),
                VoterChoice::Failed => Ok(ABSENT),
                VoterChoice::NotCounted => Ok(NOT_VOTED),
            })
            .collect::<Result<_, _>>()?;
        Ok(BallotChoices {
            electorate,
            weighted,
            codes: Codes::from_codes(codes, candidates.len()),
        })
    }

    pub(crate) fn records<'a>(
        &'a self,
        candidates: &'a [ProposalId],
    ) -> impl ExactSizeIterator<Item = VoterRecord> + 'a {
        self.electorate
            .voters
            .iter()
            .zip(self.codes.iter())
            .map(move |(&(voter, weight), code)| VoterRecord {
                voter,
                weight: if self.weighted { weight } else { 1.0 },
                choice: decode(code, candidates),
            })
    }
}

fn decode(code: u32, candidates: &[ProposalId]) -> VoterChoice {
    match code {
        NOT_VOTED => VoterChoice::NotCounted,
        ABSTAINED => VoterChoice::Abstain,
        ABSENT => VoterChoice::Failed,
        candidate => VoterChoice::For(candidates[candidate as usize]),
    }
}

impl Ballot {
    /// Every voter's choice so far, in the electorate's order.
    ///
    /// # Examples
    ///
    /// ```
    /// use hivekit_hive::{AgentId, Ballot, ConsensusPolicy, Electorate, ProposalId, Vote, VoterChoice};
    ///
    /// let electorate = Electorate::equal([AgentId(0), AgentId(1)])?;
    /// let mut ballot = Ballot::new(ConsensusPolicy::majority(), electorate, [ProposalId(7)])?;
    /// ballot.cast(AgentId(1), Vote::For(ProposalId(7)))?;
    /// let choices: Vec<VoterChoice> = ballot.choices().map(|record| record.choice).collect();
    /// assert_eq!(choices, [VoterChoice::NotCounted, VoterChoice::For(ProposalId(7))]);
    /// # Ok::<(), hivekit_hive::BallotError>(())
    /// ```
    pub fn choices(&self) -> impl ExactSizeIterator<Item = VoterRecord> + '_ {
        let weighted = self.policy.weighted;
        self.electorate
            .voters
            .iter()
            .zip(self.votes.iter())
            .map(move |(&(voter, weight), code)| VoterRecord {
                voter,
                weight: if weighted { weight } else { 1.0 },
                choice: decode(code, &self.candidates),
            })
    }

    /// The choices, kept for the ballot's record once it closed.
    pub(crate) fn into_choices(self) -> BallotChoices {
        BallotChoices {
            electorate: self.electorate,
            weighted: self.policy.weighted,
            codes: self.votes,
        }
    }
}
