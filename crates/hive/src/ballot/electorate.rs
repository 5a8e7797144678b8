//! The voters of a ballot and their weights.

use rustc_hash::FxHashMap;

use crate::agent::AgentId;
use crate::ballot::BallotError;

/// The voters of a ballot and their weights; shareable between ballots (`Arc`).
///
/// What each weight means at its edges: 0 is a voter whose vote (and turnout) counts for nothing
/// under a weighted policy (an electorate where every voter weighs 0 cannot hold a weighted ballot:
/// [`BallotError::ZeroTotalWeight`]); subnormal and huge weights, up to `f64::MAX` each, count by
/// their ratio to the others; NaN, infinite and negative weights are
/// [`BallotError::InvalidWeight`]. Only ratios matter to a ballot, so an electorate whose total
/// would overflow (or is so small that a quorum of it underflows) has every weight scaled by the
/// same power of two, which keeps every ratio exact; [`weight`](Self::weight),
/// [`total_weight`](Self::total_weight), [`voters`](Self::voters) and the figures of a [`Tally`](crate::Tally)
/// are then in the scaled unit.
///
/// # Examples
///
/// ```
/// use hivekit_hive::{AgentId, BallotError, Electorate};
///
/// let electorate = Electorate::new([(AgentId(1), 2.0), (AgentId(2), 1.0)])?;
/// assert_eq!(electorate.len(), 2);
/// assert_eq!(electorate.total_weight(), 3.0);
/// assert!(Electorate::new([(AgentId(1), f64::NAN)]).is_err());
/// # Ok::<(), BallotError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Electorate {
    pub(super) voters: Vec<(AgentId, f64)>,
    /// Positions by id; `None` when every voter's id is its position.
    index: Option<FxHashMap<AgentId, u32>>,
    total_weight: f64,
    /// The heaviest voter's weight: the most one vote can move a weighted ballot.
    pub(super) max_weight: f64,
}

impl Electorate {
    /// The voters and their weights, by position (a run of casts reads a voter's weight here,
    /// its bounds known once for the run).
    #[inline(always)]
    pub(crate) fn weighted_voters(&self) -> &[(AgentId, f64)] {
        &self.voters
    }

    /// An electorate of voters with weights.
    ///
    /// # Errors
    ///
    /// [`BallotError::InvalidWeight`] for a NaN, infinite or negative weight,
    /// [`BallotError::DuplicateVoter`], [`BallotError::EmptyElectorate`].
    pub fn new(voters: impl IntoIterator<Item = (AgentId, f64)>) -> Result<Self, BallotError> {
        let mut voters: Vec<(AgentId, f64)> = voters.into_iter().collect();
        if voters.is_empty() {
            return Err(BallotError::EmptyElectorate);
        }
        let mut total_weight = 0.0;
        for &(voter, weight) in &voters {
            if !valid_weight(weight) {
                return Err(BallotError::InvalidWeight { voter, weight });
            }
            total_weight += weight;
        }
        if total_weight > 0.0 && !(MIN_TOTAL_WEIGHT..=MAX_TOTAL_WEIGHT).contains(&total_weight) {
            total_weight = normalise(&mut voters, total_weight);
        }
        let max_weight = voters
            .iter()
            .fold(0.0_f64, |max, &(_, weight)| max.max(weight));
        // Voters listed as ids 0, 1, 2, .. (a fresh hive's agents) are found by position: no map.
        let dense = voters
            .iter()
            .enumerate()
            .all(|(position, (voter, _))| voter.0 == position as u64);
        let index = if dense {
            None
        } else {
            let mut index = FxHashMap::with_capacity_and_hasher(voters.len(), Default::default());
            for (position, &(voter, _)) in voters.iter().enumerate() {
                if index.insert(voter, position as u32).is_some() {
                    return Err(BallotError::DuplicateVoter { voter });
                }
            }
            Some(index)
        };
        Ok(Self {
            voters,
            index,
            total_weight,
            max_weight,
        })
    }

    /// An electorate where every voter weighs 1.
    ///
    /// # Errors
    ///
    /// As for [`Electorate::new`].
    pub fn equal(voters: impl IntoIterator<Item = AgentId>) -> Result<Self, BallotError> {
        Self::new(voters.into_iter().map(|voter| (voter, 1.0)))
    }

    /// The number of voters.
    pub fn len(&self) -> usize {
        self.voters.len()
    }

    /// True when there are no voters (never, for an electorate that was built).
    pub fn is_empty(&self) -> bool {
        self.voters.is_empty()
    }

    /// The sum of all weights (scaled, for an electorate outside the range a ballot counts in; see
    /// [`Electorate`]).
    pub fn total_weight(&self) -> f64 {
        self.total_weight
    }

    /// A voter's weight, if they are in the electorate.
    pub fn weight(&self, voter: AgentId) -> Option<f64> {
        self.position(voter).map(|position| self.voters[position].1)
    }

    /// The voters and weights, in the order given.
    pub fn voters(&self) -> impl ExactSizeIterator<Item = (AgentId, f64)> + '_ {
        self.voters.iter().copied()
    }

    pub(crate) fn position(&self, voter: AgentId) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(&voter).map(|&position| position as usize),
            None => usize::try_from(voter.0)
                .ok()
                .filter(|&position| position < self.voters.len()),
        }
    }
}

/// The largest total weight a ballot counts with. Sums of weights are multiplied by a
/// supermajority's denominator (below 2^32) and added to one another, and must stay finite: an
/// electorate weighing more (three voters of `f64::MAX` sum to infinity, and an infinite total
/// would meet every quorum) is scaled into range.
const MAX_TOTAL_WEIGHT: f64 = f64::MAX / (1u64 << 40) as f64;
/// The smallest positive total weight a ballot counts with: below it, a quorum's share of the
/// total and the rounding slack would vanish into zero. Lighter electorates are scaled into range.
const MIN_TOTAL_WEIGHT: f64 = f64::MIN_POSITIVE * (1u64 << 40) as f64;

/// Scales every weight by the same power of two until their sum lies within
/// `MIN_TOTAL_WEIGHT..=MAX_TOTAL_WEIGHT`, and returns the new sum. A power of two is exact, so every
/// ratio, and with it every quorum and threshold, is the same as with the weights given; short of
/// a positive weight falling below the smallest subnormal (far beneath the total's precision),
/// which is kept at that subnormal: it adds nothing the total can hold, but a voter whose weight
/// was positive still gives its candidate support (only a weight of 0 counts for nothing).
#[cold]
fn normalise(voters: &mut [(AgentId, f64)], mut total: f64) -> f64 {
    let step = if total > MAX_TOTAL_WEIGHT {
        2.0_f64.powi(-16)
    } else {
        2.0_f64.powi(16)
    };
    let mut scale = 1.0;
    while !(MIN_TOTAL_WEIGHT..=MAX_TOTAL_WEIGHT).contains(&total) {
        scale *= step;
        total = voters.iter().map(|&(_, weight)| weight * scale).sum();
    }
    for (_, weight) in voters.iter_mut() {
        let scaled = *weight * scale;
        *weight = if scaled == 0.0 && *weight > 0.0 {
            f64::from_bits(1)
        } else {
            scaled
        };
    }
    total
}

pub(crate) fn valid_weight(weight: f64) -> bool {
    weight.is_finite() && weight >= 0.0
}
