//! Ballots: a standalone vote counter over candidates and an electorate, with early settlement.

use std::fmt;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::agent::{AgentId, Vote};
use crate::context::label;
use crate::lockfree::ProposalId;
use crate::policy::{ConsensusPolicy, PolicyError, Threshold, TieBreak};

/// Bad input to a [`Ballot`] or an [`Electorate`].
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

/// The voters of a ballot and their weights; shareable between ballots (`Arc`).
///
/// What each weight means at its edges: 0 is a voter whose vote (and turnout) counts for nothing
/// under a weighted policy (an electorate where every voter weighs 0 cannot hold a weighted ballot:
/// [`BallotError::ZeroTotalWeight`]); subnormal and huge weights, up to `f64::MAX` each, count by
/// their ratio to the others; NaN, infinite and negative weights are
/// [`BallotError::InvalidWeight`]. Only ratios matter to a ballot, so an electorate whose total
/// would overflow (or is so small that a quorum of it underflows) has every weight scaled by the
/// same power of two, which keeps every ratio exact; [`weight`](Self::weight),
/// [`total_weight`](Self::total_weight), [`voters`](Self::voters) and the figures of a [`Tally`]
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
    voters: Vec<(AgentId, f64)>,
    /// Positions by id; `None` when every voter's id is its position.
    index: Option<FxHashMap<AgentId, u32>>,
    total_weight: f64,
    /// The heaviest voter's weight: the most one vote can move a weighted ballot.
    max_weight: f64,
}

impl Electorate {
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
/// `MIN_TOTAL_WEIGHT..=MAX_TOTAL_WEIGHT`, and returns the new sum. A power of two is exact (short of
/// a weight falling below the smallest subnormal, far beneath the total's precision), so every
/// ratio, and with it every quorum and threshold, is the same as with the weights given.
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
        *weight *= scale;
    }
    total
}

pub(crate) fn valid_weight(weight: f64) -> bool {
    weight.is_finite() && weight >= 0.0
}

/// The outcome of a [`Ballot`] if it closed now.
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
    /// Candidates tied at the top and the policy's tie-break is [`TieBreak::NoDecision`].
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

/// Up to this many candidates, finding one by a linear scan beats hashing.
const LINEAR_LOOKUP: usize = 16;
/// Up to this many voters a ballot keeps no settlement bound ([`Ballot::quiet_events`]): computing
/// it costs more than the full checks it would save, and casting stays a few stores. The unit tests
/// keep the bound at every size (their proptests use small electorates), the integration tests
/// see both paths.
const SMALL_ELECTORATE: usize = if cfg!(test) { 0 } else { 32 };
const NOT_VOTED: u32 = u32::MAX;
const ABSTAINED: u32 = u32::MAX - 1;
const ABSENT: u32 = u32::MAX - 2;

/// A vote counter over candidate proposals and an [`Electorate`].
///
/// A voter's second vote replaces the first (it is never counted twice); a vote for a proposal that is
/// not a candidate, or from someone outside the electorate, is rejected with a typed error. The running
/// sums make [`cast`](Ballot::cast) O(1) (amortized) and [`tally`](Ballot::tally) O(candidates);
/// [`is_settled`](Ballot::is_settled) is O(1) while a bound kept by the casts shows that too few
/// voters have voted for the ballot to settle, O(candidates) from then on, so checking it after
/// every vote costs less than the votes it saves.
///
/// # Examples
///
/// ```
/// use hivekit_hive::{AgentId, Ballot, ConsensusPolicy, Electorate, ProposalId, Tally, Vote};
///
/// let electorate = Electorate::equal((0..5).map(AgentId))?;
/// let mut ballot = Ballot::new(
///     ConsensusPolicy::majority(),
///     electorate,
///     [ProposalId(10), ProposalId(20)],
/// )?;
/// for voter in 0..3 {
///     ballot.cast(AgentId(voter), Vote::For(ProposalId(10)))?;
/// }
/// // Three of five already voted for #10: the other two cannot change the outcome.
/// assert!(ballot.is_settled());
/// assert_eq!(ballot.tally().winner(), Some(ProposalId(10)));
/// assert!(ballot.cast(AgentId(9), Vote::Abstain).is_err());
/// # Ok::<(), hivekit_hive::BallotError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Ballot {
    policy: ConsensusPolicy,
    electorate: Arc<Electorate>,
    candidates: Vec<ProposalId>,
    /// Candidate positions by id, for ballots with many candidates (a linear scan is faster below).
    lookup: Option<FxHashMap<ProposalId, u32>>,
    support: Vec<f64>,
    /// Per voter: `NOT_VOTED`, `ABSTAINED` or the candidate's position.
    votes: Vec<u32>,
    voted: usize,
    turnout: f64,
    cast_for_candidates: f64,
    total: f64,
    /// Voters known never to vote (a failed agent) and their weight: no longer "remaining".
    absent: usize,
    absent_weight: f64,
    /// A lower bound on how many more voters must vote or go absent before the ballot can settle
    /// (0: unknown, [`is_settled`](Ballot::is_settled) checks in full). See [`Ballot::quiet_events`].
    quiet: usize,
}

impl Ballot {
    /// A ballot between `candidates` under `policy`.
    ///
    /// # Errors
    ///
    /// [`BallotError::Policy`] for an invalid policy, [`BallotError::NoCandidates`],
    /// [`BallotError::DuplicateCandidate`], and [`BallotError::ZeroTotalWeight`] for a weighted ballot
    /// whose voters all weigh zero.
    pub fn new(
        policy: ConsensusPolicy,
        electorate: impl Into<Arc<Electorate>>,
        candidates: impl IntoIterator<Item = ProposalId>,
    ) -> Result<Self, BallotError> {
        policy.validate()?;
        let electorate = electorate.into();
        let candidates: Vec<ProposalId> = candidates.into_iter().collect();
        if candidates.is_empty() {
            return Err(BallotError::NoCandidates);
        }
        let mut lookup = None;
        if candidates.len() <= LINEAR_LOOKUP {
            for (position, candidate) in candidates.iter().enumerate() {
                if candidates[..position].contains(candidate) {
                    return Err(BallotError::DuplicateCandidate {
                        candidate: *candidate,
                    });
                }
            }
        } else {
            let mut positions =
                FxHashMap::with_capacity_and_hasher(candidates.len(), Default::default());
            for (position, candidate) in candidates.iter().enumerate() {
                if positions.insert(*candidate, position as u32).is_some() {
                    return Err(BallotError::DuplicateCandidate {
                        candidate: *candidate,
                    });
                }
            }
            lookup = Some(positions);
        }
        let total = if policy.weighted {
            electorate.total_weight()
        } else {
            electorate.len() as f64
        };
        if total <= 0.0 {
            return Err(BallotError::ZeroTotalWeight);
        }
        Ok(Self {
            policy,
            support: vec![0.0; candidates.len()],
            votes: vec![NOT_VOTED; electorate.len()],
            candidates,
            lookup,
            electorate,
            voted: 0,
            turnout: 0.0,
            cast_for_candidates: 0.0,
            total,
            absent: 0,
            absent_weight: 0.0,
            quiet: 0,
        })
        .map(|mut ballot| {
            // 0 is always a valid bound ("check in full"), and stays 0 as voters vote.
            if ballot.votes.len() > SMALL_ELECTORATE {
                ballot.quiet = ballot.quiet_events();
            }
            ballot
        })
    }

    /// The policy this ballot counts by.
    pub fn policy(&self) -> &ConsensusPolicy {
        &self.policy
    }

    /// The electorate.
    pub fn electorate(&self) -> &Arc<Electorate> {
        &self.electorate
    }

    /// The candidates, in the order given.
    pub fn candidates(&self) -> &[ProposalId] {
        &self.candidates
    }

    /// How many voters have voted (abstentions included).
    pub fn votes_cast(&self) -> usize {
        self.voted
    }

    /// The support (weight or count) a candidate has now.
    pub fn support(&self, candidate: ProposalId) -> Option<f64> {
        self.candidate_position(candidate)
            .map(|position| self.support[position])
    }

    /// Records `voter`'s vote, replacing any earlier vote of theirs, and returns the earlier vote.
    ///
    /// # Errors
    ///
    /// [`BallotError::NotAVoter`] and [`BallotError::UnknownCandidate`]; the ballot is unchanged.
    pub fn cast(&mut self, voter: AgentId, vote: Vote) -> Result<Option<Vote>, BallotError> {
        let position = self
            .electorate
            .position(voter)
            .ok_or(BallotError::NotAVoter { voter })?;
        self.cast_at(position, vote)
    }

    /// As [`Ballot::cast`], by the voter's position in the electorate.
    pub(crate) fn cast_at(
        &mut self,
        position: usize,
        vote: Vote,
    ) -> Result<Option<Vote>, BallotError> {
        let code = match vote {
            Vote::Abstain => ABSTAINED,
            Vote::For(candidate) => {
                self.candidate_position(candidate)
                    .ok_or(BallotError::UnknownCandidate { candidate })? as u32
            }
        };
        let weight = self.weight_at(position);
        let previous = std::mem::replace(&mut self.votes[position], code);
        let previous_vote = match previous {
            ABSENT => {
                self.absent -= 1;
                self.absent_weight -= weight;
                self.voted += 1;
                self.turnout += weight;
                None
            }
            NOT_VOTED => {
                self.voted += 1;
                self.turnout += weight;
                None
            }
            ABSTAINED => Some(Vote::Abstain),
            candidate => {
                self.support[candidate as usize] -= weight;
                self.cast_for_candidates -= weight;
                Some(Vote::For(self.candidates[candidate as usize]))
            }
        };
        if code != ABSTAINED {
            self.support[code as usize] += weight;
            self.cast_for_candidates += weight;
        }
        if previous_vote.is_none() {
            self.count_down();
        } else if self.quiet > 0 {
            // A re-vote can take support away: the bound no longer holds, compute it afresh.
            self.quiet = self.quiet_events();
        }
        Ok(previous_vote)
    }

    /// Records that the voter at `position`, who has not voted, never will (their call failed), so
    /// that settlement no longer waits for them.
    pub(crate) fn mark_absent(&mut self, position: usize) {
        if self.votes[position] == NOT_VOTED {
            self.votes[position] = ABSENT;
            self.absent += 1;
            self.absent_weight += self.weight_at(position);
            self.count_down();
        }
    }

    /// Counts one voter who voted or went absent against [`Ballot::quiet`], computing a new bound
    /// when it runs out. A bound of 0 stays 0: from then on every `is_settled` checks in full, and
    /// casting stays O(1) (the bound is computed O(log voters) times in a typical ballot, not per
    /// vote).
    #[inline]
    fn count_down(&mut self) {
        if self.quiet > 1 {
            self.quiet -= 1;
        } else if self.quiet == 1 {
            self.quiet = self.quiet_events();
        }
    }

    /// A lower bound on how many more voters must vote or go absent before [`Ballot::is_settled`]
    /// can answer true, so that it answers false in O(1) until then.
    ///
    /// Each way of settling is a margin that must cross zero, and one voter of weight at most
    /// `step` (the heaviest voter, or 1 unweighted) moves each margin by a bounded amount whatever
    /// they do: a ballot `m` away, with margins moving at most `per` per voter, needs more than
    /// `m / per` voters. One voter is taken off every bound for floating-point slack, and any
    /// doubt gives 0 (check in full), so the bound never hides a settled ballot.
    // Kept out of line: it runs O(log voters) times a ballot, and inlined it would keep the O(1)
    // cast from being inlined into callers' loops.
    #[cold]
    #[inline(never)]
    fn quiet_events(&self) -> usize {
        // More than `margin / per` voters are needed to take `margin` below zero.
        fn needs(margin: f64, per: f64) -> usize {
            if margin > 0.0 && per > 0.0 {
                // Saturating: an infinite or huge quotient is capped, NaN gives 0.
                ((margin / per).floor() - 1.0).max(0.0) as usize
            } else {
                0
            }
        }
        let left = self.votes.len() - self.voted - self.absent;
        let step = if self.policy.weighted {
            self.electorate.max_weight
        } else {
            1.0
        };
        let remaining = (self.total - self.turnout - self.absent_weight).max(0.0);
        // No quorum for good: only voters going absent lower what can still turn out.
        let reachable = self.turnout + remaining + self.total * 1e-12;
        let no_quorum = needs(reachable - self.policy.quorum * self.total, step);
        // A leader beyond reach: its lead over the runner-up must exceed the remaining weight;
        // one voter moves `lead - remaining` by at most twice their weight.
        let (mut top, mut runner_up) = (0.0_f64, 0.0_f64);
        for &support in &self.support {
            if support > top {
                (top, runner_up) = (support, top);
            } else if support > runner_up {
                runner_up = support;
            }
        }
        let mut leader = needs(runner_up + remaining - top, 2.0 * step);
        let cast = self.cast_for_candidates;
        let ratio = match self.policy.threshold {
            Threshold::Plurality => None,
            Threshold::Majority => Some((1.0, 2.0)),
            Threshold::Supermajority { num, den } => Some((f64::from(num), f64::from(den))),
            Threshold::Unanimous => Some((1.0, 1.0)),
        };
        let mut undecided = usize::MAX;
        if let Some((num, den)) = ratio {
            // One voter moves `c * num - s * den` (c: weight cast or remaining, s: a candidate's
            // support with or without the remaining weight) by at most `max(num, den)` weights.
            let per = num.max(den) * step;
            let (all, with_remaining) = (cast + remaining, |s: f64| s + remaining);
            // The leader must also meet the threshold against everything that may still be cast.
            let meets = self
                .support
                .iter()
                .map(|&s| needs(all * num - s * den, per))
                .min()
                .unwrap_or(0);
            leader = leader.max(meets);
            // Undecided for good: no candidate can meet the threshold even with every remaining
            // voter behind it (or nothing can be cast any more).
            undecided = self
                .support
                .iter()
                .map(|&s| {
                    if !self.policy.meets_threshold(with_remaining(s), all) {
                        return 0;
                    }
                    needs(with_remaining(s) * den - all * num, per)
                        .min(needs(with_remaining(s), step))
                        .min(needs(all, step))
                })
                .max()
                .unwrap_or(0);
        }
        left.min(no_quorum).min(leader).min(undecided)
    }

    /// The outcome if the ballot closed now.
    pub fn tally(&self) -> Tally {
        let required = self.policy.quorum * self.total;
        if !self.quorum_met() {
            return Tally::NoQuorum {
                turnout: self.turnout,
                required,
            };
        }
        let Some((top, top_support)) = self.leader() else {
            return Tally::Undecided;
        };
        if !self
            .policy
            .meets_threshold(top_support, self.cast_for_candidates)
        {
            return Tally::Undecided;
        }
        let support = (top_support / self.cast_for_candidates).min(1.0);
        let tied = self.support.iter().filter(|&&s| s == top_support).count();
        if tied == 1 {
            return Tally::Decided {
                winner: self.candidates[top],
                support,
            };
        }
        let mut candidates: Vec<ProposalId> = self
            .candidates
            .iter()
            .zip(&self.support)
            .filter(|(_, &s)| s == top_support)
            .map(|(candidate, _)| *candidate)
            .collect();
        candidates.sort_unstable();
        match self.policy.tie_break {
            TieBreak::LowestId => Tally::Decided {
                winner: candidates[0],
                support,
            },
            TieBreak::NoDecision => Tally::Tie { candidates },
        }
    }

    /// True once the voters who have not voted yet cannot change the outcome, whatever they do
    /// (vote for anyone, abstain, or stay away): the [`Tally`] variant and winner are final, though
    /// the winner's support figure may still move.
    ///
    /// Assumes voters who voted do not vote again (a re-vote can change any outcome). The check is
    /// conservative: it may answer false for a ballot that a finer argument would call settled, never
    /// true for one that can still change.
    pub fn is_settled(&self) -> bool {
        if self.quiet > 0 {
            // Too few voters have voted since the bound was computed for anything to have changed.
            return false;
        }
        self.settled_now()
    }

    /// The full settlement check behind [`Ballot::is_settled`], O(candidates).
    fn settled_now(&self) -> bool {
        if self.voted + self.absent == self.votes.len() {
            return true;
        }
        let remaining = (self.total - self.turnout - self.absent_weight).max(0.0);
        if !self.quorum_met() {
            // Staying away keeps it at no quorum; voting may lift it, unless too few are left.
            let reachable = self.turnout + remaining + self.total * 1e-12;
            return reachable < self.policy.quorum * self.total;
        }
        let cast = self.cast_for_candidates;
        if remaining > cast && self.remaining_can_reach_threshold() {
            // Fast exit: a winner would need more than everything cast so far over the runner-up,
            // and these thresholds stay reachable while the remaining outweigh what was cast.
            return false;
        }
        if let Some((top, top_support)) = self.leader() {
            let runner_up = self
                .support
                .iter()
                .enumerate()
                .filter(|&(position, _)| position != top)
                .map(|(_, &s)| s)
                .fold(0.0_f64, f64::max);
            if top_support > runner_up + remaining
                && self.policy.meets_threshold(top_support, cast + remaining)
            {
                return true;
            }
        }
        if self.policy.threshold != Threshold::Plurality && cast + remaining > 0.0 {
            // Undecided for good when no candidate can reach the threshold even if every remaining
            // voter backs it.
            return self
                .support
                .iter()
                .all(|&s| !self.policy.meets_threshold(s + remaining, cast + remaining));
        }
        false
    }

    /// True for thresholds that any candidate meets when the remaining voters (outweighing
    /// everything cast) all back it: plurality, majority and supermajorities of at most one half.
    fn remaining_can_reach_threshold(&self) -> bool {
        match self.policy.threshold {
            Threshold::Plurality | Threshold::Majority => true,
            Threshold::Supermajority { num, den } => 2 * u64::from(num) <= u64::from(den),
            Threshold::Unanimous => false,
        }
    }

    fn quorum_met(&self) -> bool {
        // A relative epsilon so that sums of fractional weights meet a quorum they reach exactly.
        self.turnout + self.total * 1e-12 >= self.policy.quorum * self.total
    }

    fn weight_at(&self, position: usize) -> f64 {
        if self.policy.weighted {
            self.electorate.voters[position].1
        } else {
            1.0
        }
    }

    /// The candidate with the most support (lowest position among equals), if anyone has support.
    fn leader(&self) -> Option<(usize, f64)> {
        let mut best: Option<(usize, f64)> = None;
        for (position, &support) in self.support.iter().enumerate() {
            if support > 0.0 && best.is_none_or(|(_, top)| support > top) {
                best = Some((position, support));
            }
        }
        best
    }

    fn candidate_position(&self, candidate: ProposalId) -> Option<usize> {
        match &self.lookup {
            Some(positions) => positions.get(&candidate).map(|&position| position as usize),
            None => self.candidates.iter().position(|&c| c == candidate),
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
    codes: Vec<u32>,
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
        let codes = records
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
            codes,
        })
    }

    pub(crate) fn records<'a>(
        &'a self,
        candidates: &'a [ProposalId],
    ) -> impl ExactSizeIterator<Item = VoterRecord> + 'a {
        self.electorate
            .voters
            .iter()
            .zip(&self.codes)
            .map(move |(&(voter, weight), &code)| VoterRecord {
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
            .zip(&self.votes)
            .map(move |(&(voter, weight), &code)| VoterRecord {
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn threshold() -> impl Strategy<Value = Threshold> {
        prop_oneof![
            Just(Threshold::Plurality),
            Just(Threshold::Majority),
            Just(Threshold::Unanimous),
            (1u32..=4, 0u32..=3).prop_map(|(num, extra)| Threshold::Supermajority {
                num,
                den: num + extra
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Voters that fail (marked absent, as the hive does) never make settlement wrong: once a
        /// ballot says it is settled, the outcome when every voter has voted or failed is the same.
        #[test]
        fn settlement_holds_with_absent_voters(
            threshold in threshold(),
            quorum in prop_oneof![Just(0.25), Just(0.5), Just(1.0)],
            weights in prop::collection::vec(1u8..=3, 1..10),
            actions in prop::collection::vec(prop::option::of(prop::option::of(0usize..3)), 10),
            candidates in 1usize..4,
        ) {
            let policy = ConsensusPolicy { threshold, quorum, weighted: true, tie_break: TieBreak::LowestId };
            let electorate = Electorate::new(
                weights.iter().enumerate().map(|(voter, &w)| (AgentId(voter as u64), f64::from(w))),
            ).unwrap();
            let mut ballot = Ballot::new(policy, electorate, (0..candidates as u64).map(ProposalId)).unwrap();
            let mut settled: Option<Tally> = None;
            for (voter, action) in actions.iter().take(weights.len()).enumerate() {
                match action {
                    // Fails: never votes.
                    None => ballot.mark_absent(voter),
                    Some(choice) => {
                        let vote = choice.map_or(Vote::Abstain, |c| Vote::For(ProposalId((c % candidates) as u64)));
                        ballot.cast_at(voter, vote).unwrap();
                    }
                }
                if settled.is_none() && ballot.is_settled() {
                    settled = Some(ballot.tally());
                }
            }
            prop_assert!(ballot.is_settled());
            let settled = settled.unwrap();
            prop_assert!(settled.same_outcome(&ballot.tally()), "settled {:?}, final {:?}", settled, ballot.tally());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The O(1) answer of `is_settled` (the quiet bound) never hides a settled ballot: whenever
        /// the bound says "not yet", the full check agrees, through votes, abstentions, absences,
        /// absent voters voting after all, and re-votes.
        #[test]
        fn the_quiet_bound_never_hides_a_settled_ballot(
            threshold in threshold(),
            quorum in prop_oneof![Just(0.25), Just(0.5), Just(1.0)],
            weighted in any::<bool>(),
            weights in prop::collection::vec(0u8..=3, 1..40),
            actions in prop::collection::vec((0usize..40, prop::option::of(prop::option::of(0usize..4))), 0..80),
            candidates in 1usize..5,
        ) {
            let policy = ConsensusPolicy { threshold, quorum, weighted, tie_break: TieBreak::LowestId };
            let electorate = Electorate::new(
                weights.iter().enumerate().map(|(voter, &w)| (AgentId(voter as u64), f64::from(w))),
            ).unwrap();
            let Ok(mut ballot) = Ballot::new(policy, electorate, (0..candidates as u64).map(ProposalId)) else {
                // Every voter weighs zero.
                return Ok(());
            };
            for (voter, action) in actions {
                let voter = voter % weights.len();
                match action {
                    None => ballot.mark_absent(voter),
                    Some(choice) => {
                        let vote = choice.map_or(Vote::Abstain, |c| Vote::For(ProposalId((c % candidates) as u64)));
                        ballot.cast_at(voter, vote).unwrap();
                    }
                }
                if ballot.quiet > 0 {
                    prop_assert!(!ballot.settled_now(), "quiet {} on a settled ballot {:?}", ballot.quiet, ballot);
                }
            }
        }
    }

    #[test]
    fn a_large_ballot_answers_not_settled_without_a_full_check_early_on() {
        let electorate = Arc::new(Electorate::equal((0..1_000).map(AgentId)).unwrap());
        let mut ballot = Ballot::new(
            ConsensusPolicy::majority(),
            electorate,
            [ProposalId(1), ProposalId(2)],
        )
        .unwrap();
        assert!(ballot.quiet > 0);
        for voter in 0..600 {
            ballot.cast_at(voter, Vote::For(ProposalId(1))).unwrap();
            assert_eq!(ballot.is_settled(), ballot.settled_now());
        }
        // 600 of 1000 for #1: the other 400 cannot change the outcome.
        assert!(ballot.is_settled());
    }

    #[test]
    fn an_absent_voter_who_votes_after_all_is_counted_once() {
        let electorate = Electorate::equal((0..3).map(AgentId)).unwrap();
        let mut ballot =
            Ballot::new(ConsensusPolicy::majority(), electorate, [ProposalId(1)]).unwrap();
        ballot.mark_absent(0);
        ballot.mark_absent(0);
        ballot.cast_at(0, Vote::For(ProposalId(1))).unwrap();
        assert_eq!(ballot.votes_cast(), 1);
        assert_eq!(ballot.support(ProposalId(1)), Some(1.0));
        ballot.mark_absent(0);
        assert_eq!(ballot.votes_cast(), 1);
    }
}
