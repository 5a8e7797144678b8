//! Consensus policies: what a ballot needs before it decides.

/// How much support the leading candidate needs, measured against the votes cast for candidates
/// (abstentions count towards the quorum, not here).
///
/// Comparisons allow for floating-point rounding of sums of weights: a support within a relative
/// 1e-12 of the bound counts as meeting it (as supports that close count as tied, see
/// [`Tally::Tie`](crate::Tally::Tie)). So "more than half" and "at least `num / den`" are exact up
/// to that precision: weights near 1e12 apart by a margin of 1 may fall either side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Threshold {
    /// The most support wins; a tie at the top goes to the [`TieBreak`].
    #[default]
    Plurality,
    /// More than half of the votes cast.
    Majority,
    /// At least `num / den` of the votes cast (`2 / 3`: two thirds). Any `u32` values with
    /// `1 <= num <= den` are valid (`u32::MAX / u32::MAX` is unanimity among the votes cast); a zero
    /// denominator is [`PolicyError::ZeroDenominator`], `num = 0` or `num > den`
    /// [`PolicyError::FractionOutOfRange`].
    Supermajority {
        /// Numerator, at least 1.
        num: u32,
        /// Denominator, at least `num`.
        den: u32,
    },
    /// Every vote cast for the same candidate.
    Unanimous,
}

/// What a ballot does when candidates tie at the top with enough support.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum TieBreak {
    /// The lowest proposal id wins (deterministic).
    #[default]
    LowestId,
    /// Nobody wins: the tally is [`Tally::Tie`](crate::Tally::Tie).
    NoDecision,
}

/// An invalid [`ConsensusPolicy`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum PolicyError {
    /// A supermajority with a zero denominator.
    #[error("supermajority {num}/{den} has a zero denominator")]
    ZeroDenominator {
        /// The numerator.
        num: u32,
        /// The denominator (zero).
        den: u32,
    },
    /// A supermajority that asks for more than every vote, or for none.
    #[error("supermajority {num}/{den} must be a fraction in (0, 1]")]
    FractionOutOfRange {
        /// The numerator.
        num: u32,
        /// The denominator.
        den: u32,
    },
    /// A quorum that is not a fraction of the electorate in (0, 1].
    #[error("quorum {quorum} must be a fraction of the electorate in (0, 1]")]
    QuorumOutOfRange {
        /// The quorum given.
        quorum: f64,
    },
}

/// What a ballot needs before it decides: a threshold of support, a quorum of turnout, whether votes
/// are weighted, and how ties are broken.
///
/// The fields are public for reading and pattern matching; build policies with [`ConsensusPolicy::new`]
/// and the `with_*` methods, which validate. Ballots and hives validate again, so a policy assembled by
/// hand is checked before it is used.
///
/// # Examples
///
/// ```
/// use hivekit_hive::{ConsensusPolicy, PolicyError, Threshold, TieBreak};
///
/// let two_thirds = ConsensusPolicy::new(Threshold::Supermajority { num: 2, den: 3 }, 0.75)?
///     .with_weighted(true)
///     .with_tie_break(TieBreak::NoDecision);
/// assert!(two_thirds.weighted);
///
/// let impossible = ConsensusPolicy::new(Threshold::Supermajority { num: 4, den: 3 }, 0.5);
/// assert_eq!(impossible, Err(PolicyError::FractionOutOfRange { num: 4, den: 3 }));
/// assert!(ConsensusPolicy::new(Threshold::Majority, f64::NAN).is_err());
/// # Ok::<(), PolicyError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ConsensusPolicy {
    /// Support the winner needs.
    pub threshold: Threshold,
    /// Fraction of the electorate (by weight when `weighted`) that must take part, in (0, 1]: 1 is
    /// everyone, a subnormal quorum is any turnout at all; 0, negative, above 1, infinite and NaN
    /// quorums are [`PolicyError::QuorumOutOfRange`].
    pub quorum: f64,
    /// Count each voter's weight (true) or one vote per voter (false).
    pub weighted: bool,
    /// What happens when candidates tie at the top.
    pub tie_break: TieBreak,
}

impl Default for ConsensusPolicy {
    /// Plurality, a quorum of half the electorate, weighted votes, ties to the lowest id.
    fn default() -> Self {
        Self {
            threshold: Threshold::Plurality,
            quorum: 0.5,
            weighted: true,
            tie_break: TieBreak::LowestId,
        }
    }
}

impl ConsensusPolicy {
    /// A policy with this threshold and quorum, weighted votes and ties to the lowest id.
    ///
    /// # Errors
    ///
    /// [`PolicyError`] when the supermajority fraction is not in (0, 1] or its denominator is zero, or
    /// when the quorum is not in (0, 1] (NaN included).
    pub fn new(threshold: Threshold, quorum: f64) -> Result<Self, PolicyError> {
        let policy = Self {
            threshold,
            quorum,
            ..Self::default()
        };
        policy.validate()?;
        Ok(policy)
    }

    /// A simple majority of the votes cast, with a quorum of half the electorate.
    pub fn majority() -> Self {
        Self {
            threshold: Threshold::Majority,
            ..Self::default()
        }
    }

    /// Every vote cast for the same candidate, with the whole electorate taking part.
    pub fn unanimous() -> Self {
        Self {
            threshold: Threshold::Unanimous,
            quorum: 1.0,
            ..Self::default()
        }
    }

    /// Sets whether votes are weighted.
    pub fn with_weighted(mut self, weighted: bool) -> Self {
        self.weighted = weighted;
        self
    }

    /// Sets the tie-break rule.
    pub fn with_tie_break(mut self, tie_break: TieBreak) -> Self {
        self.tie_break = tie_break;
        self
    }

    /// Checks the policy.
    ///
    /// # Errors
    ///
    /// As for [`ConsensusPolicy::new`].
    pub fn validate(&self) -> Result<(), PolicyError> {
        if let Threshold::Supermajority { num, den } = self.threshold {
            if den == 0 {
                return Err(PolicyError::ZeroDenominator { num, den });
            }
            if num == 0 || num > den {
                return Err(PolicyError::FractionOutOfRange { num, den });
            }
        }
        // Written so that NaN fails too.
        if !(self.quorum > 0.0 && self.quorum <= 1.0) {
            return Err(PolicyError::QuorumOutOfRange {
                quorum: self.quorum,
            });
        }
        Ok(())
    }

    /// True when `support` out of `cast` meets the threshold (for [`Threshold::Plurality`], always,
    /// as long as something was cast).
    ///
    /// Sums of fractional weights carry rounding (0.1 + 0.2 is 0.30000000000000004), so the
    /// comparisons allow a relative `ROUNDING`: exactly two thirds of 0.9 meets a two-thirds
    /// supermajority, and 0.1 + 0.2 out of 0.6 is half, not a majority.
    pub(crate) fn meets_threshold(&self, support: f64, cast: f64) -> bool {
        const ROUNDING: f64 = 1e-12;
        if cast <= 0.0 || support <= 0.0 {
            return false;
        }
        match self.threshold {
            Threshold::Plurality => true,
            Threshold::Majority => support * 2.0 > cast * (1.0 + ROUNDING),
            Threshold::Supermajority { num, den } => {
                support * f64::from(den) * (1.0 + ROUNDING) >= cast * f64::from(num)
            }
            Threshold::Unanimous => support * (1.0 + ROUNDING) >= cast,
        }
    }
}
