//! Ballots: a standalone vote counter over candidates and an electorate, with early settlement.
//!
//! [`Ballot`] (the counter and its settlement bound) lives here; its voters in `electorate`, its
//! outcome in `tally`, the per-voter records a decision keeps in `choices`, the error in `error`.

mod choices;
mod codes;
mod electorate;
mod error;
mod quiet_run;
mod tally;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::agent::{AgentId, Vote};
use crate::lockfree::ProposalId;
use crate::policy::{ConsensusPolicy, Threshold, TieBreak};

pub(crate) use self::choices::BallotChoices;
pub use self::choices::{VoterChoice, VoterRecord};
use self::codes::Codes;
pub(crate) use self::electorate::valid_weight;
pub use self::electorate::Electorate;
pub use self::error::BallotError;
pub use self::tally::Tally;

/// Up to this many candidates, finding one by a linear scan beats hashing.
const LINEAR_LOOKUP: usize = 16;
/// Up to this many voters a ballot keeps no settlement bound ([`Ballot::quiet_events`]): computing
/// it costs more than the full checks it would save, and casting stays a few stores. The unit tests
/// keep the bound at every size (their proptests use small electorates), the integration tests
/// see both paths.
const SMALL_ELECTORATE: usize = if cfg!(test) { 0 } else { 32 };
const NOT_VOTED: u32 = u32::MAX;
const ABSTAINED: u32 = u32::MAX - 1;
/// An abstention as [`Ballot::code_of`] names it.
pub(crate) const ABSTAIN_CODE: u32 = ABSTAINED;
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
    /// Per voter: `NOT_VOTED`, `ABSTAINED`, `ABSENT` or the candidate's position.
    votes: Codes,
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
            votes: Codes::not_voted(electorate.len(), candidates.len()),
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
        let previous = self.votes.replace(position, code);
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
        if let Some(Vote::For(_)) = previous_vote {
            self.settle_residue(previous as usize);
        }
        if previous_vote.is_none() {
            self.count_down();
        } else if self.quiet > 0 {
            // A re-vote can take support away: the bound no longer holds, compute it afresh.
            self.quiet = self.quiet_events();
        }
        Ok(previous_vote)
    }

    /// A round's cast: as [`Ballot::cast_at`] without returning the earlier vote, and with a short
    /// path for a voter's first vote (a round asks each voter once per ballot). A vote for a
    /// proposal that is not a candidate is rejected with that proposal; the ballot is unchanged.
    // Always inlined: it runs once a vote in the round's generic call loop, where LLVM left it out
    // of line (a call across the crate boundary and a spilled result each vote).
    #[inline(always)]
    pub(crate) fn cast_once_at(&mut self, position: usize, vote: Vote) -> Result<(), ProposalId> {
        let code = self.code_of(vote)?;
        self.cast_code_once_at(position, code, self.weight_at(position));
        Ok(())
    }

    /// How [`Ballot::cast_code_once_at`] names `vote`; a vote for a proposal that is not a
    /// candidate gives that proposal.
    #[inline(always)]
    pub(crate) fn code_of(&self, vote: Vote) -> Result<u32, ProposalId> {
        match vote {
            Vote::Abstain => Ok(ABSTAINED),
            Vote::For(candidate) => match self.candidate_position(candidate) {
                Some(code) => Ok(code as u32),
                None => Err(candidate),
            },
        }
    }

    /// The voters' weights by position, for a weighted ballot (`None`: every voter counts 1).
    /// A run of casts reads them once instead of the policy and the electorate on every cast.
    pub(crate) fn weights(&self) -> Option<Arc<Electorate>> {
        self.policy.weighted.then(|| Arc::clone(&self.electorate))
    }

    /// As [`Ballot::cast_once_at`], with the vote already named by [`Ballot::code_of`] and the
    /// voter's `weight` known (its weight in [`Ballot::weights`], or 1).
    #[inline(always)]
    pub(crate) fn cast_code_once_at(&mut self, position: usize, code: u32, weight: f64) {
        if !self.votes.set_if_not_voted(position, code) {
            // A re-vote or a voter marked absent: the general path keeps the sums right.
            // It cannot fail: the code names a candidate or an abstention.
            let vote = match self.candidates.get(code as usize) {
                Some(&candidate) => Vote::For(candidate),
                None => Vote::Abstain,
            };
            let _ = self.cast_at(position, vote);
            return;
        }
        self.voted += 1;
        self.turnout += weight;
        // An abstention's code is past every candidate.
        if let Some(support) = self.support.get_mut(code as usize) {
            *support += weight;
            self.cast_for_candidates += weight;
        }
        self.count_down();
    }

    /// Records that the voter at `position`, who has not voted, never will (their call failed), so
    /// that settlement no longer waits for them.
    pub(crate) fn mark_absent(&mut self, position: usize) {
        if self.votes.set_if_not_voted(position, ABSENT) {
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
        // Beyond reach by more than rounding (of `remaining` and of the sums; see `slack`): a lead
        // of exactly the remaining weight can still be tied. When ties go to the lowest id, a tie
        // may already be as good as a lead (see `beyond_reach`).
        let rounding = if self.ties_go_to_the_lowest_id() {
            -0.5 * self.slack()
        } else {
            2.0 * self.slack()
        };
        let mut leader = needs(runner_up + remaining + rounding - top, 2.0 * step);
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
        // "Every vote cast for the same candidate": the threshold's rounding allowance must not
        // let a light dissenter (weight 1 beside 1e12) pass for no vote. Support of exactly 0 is
        // no vote at all (`settle_residue` keeps it exact), so any other is a dissent.
        if self.needs_every_vote()
            && (self.support.iter().enumerate()).any(|(position, &s)| position != top && s > 0.0)
        {
            return Tally::Undecided;
        }
        let support = (top_support / self.cast_for_candidates).min(1.0);
        // Candidates level with the leader within rounding. Support of exactly 0 is no vote at
        // all, not rounding (`settle_residue` keeps it exact): such a candidate never ties, however
        // small the leader's support is beside the slack.
        let slack = self.slack();
        let level = |s: f64| s > 0.0 && top_support - s <= slack;
        let tied = self.support.iter().filter(|&&s| level(s)).count();
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
            .filter(|(_, &s)| level(s))
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
    /// A leader is final once no rival can draw level with the remaining weight, or, under
    /// [`Threshold::Plurality`] with [`TieBreak::LowestId`], once each rival with a higher id than
    /// the leader's can at most draw level (a tie it reaches still goes to the leader).
    ///
    /// Assumes voters who voted do not vote again (a re-vote can change any outcome). The check is
    /// conservative: it may answer false for a ballot that a finer argument would call settled, never
    /// true for one that can still change.
    #[inline]
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
        if self.needs_every_vote() {
            // Any vote for another candidate is a dissent, however light (see `tally`): a winner
            // is final only once everyone has voted (above), and two candidates with support
            // are undecided for good.
            return self.support.iter().filter(|&&s| s > 0.0).count() > 1;
        }
        let leader = if self.ties_go_to_the_lowest_id() {
            self.winner_of_ties()
        } else {
            self.leader()
        };
        if let Some((top, top_support)) = leader {
            if self.beyond_reach(top, top_support, remaining)
                && self.policy.meets_threshold(top_support, cast + remaining)
            {
                return true;
            }
        }
        if self.policy.threshold != Threshold::Plurality && cast + remaining > 0.0 {
            // Undecided for good when no candidate can reach the threshold even if every remaining
            // voter backs it, by more than the rounding of `remaining` (which is of the order of
            // the total's last bit: beside a voter of weight 1e12, 1e-4, more than a light voter
            // may weigh; the threshold's own allowance is relative to the weight cast).
            let slack = self.slack();
            return (self.support.iter()).all(|&s| {
                !self
                    .policy
                    .meets_threshold(s + remaining + 2.0 * slack, cast + remaining)
            });
        }
        false
    }

    /// True when no other candidate can take the win from the leader (at `top`, with
    /// `top_support`) with the `remaining` weight behind it: each needs more than the remaining
    /// weight to draw level, or, when a tie is as good as a win for the leader
    /// ([`ties_go_to_the_lowest_id`](Self::ties_go_to_the_lowest_id), and the leader's id is lower
    /// than the rival's), more than that to pass the leader.
    fn beyond_reach(&self, top: usize, top_support: f64, remaining: f64) -> bool {
        let slack = self.slack();
        let leader = self.candidates[top];
        let ties_to_leader = self.ties_go_to_the_lowest_id();
        (self.support.iter().enumerate())
            .filter(|&(position, _)| position != top)
            .all(|(position, &support)| {
                let best = support + remaining;
                // A lead beyond the remaining weight by more than rounding: 0.1 + 0.3 against 0.2
                // with 0.4 left computes `remaining` as 0.3999999999999999, and the last voter
                // can tie.
                top_support > best + 2.0 * slack
                    // At most level within rounding (the tally's own `slack`, of which half is
                    // kept for the rounding of `remaining` and of the sums): a tie, which the
                    // lower id wins.
                    || (ties_to_leader
                        && leader < self.candidates[position]
                        && best <= top_support + 0.5 * slack)
            })
    }

    /// True when a tie the leader cannot avoid still makes it the winner: plurality (a tie meets
    /// it; under a majority or more a tie is undecided) with ties to the lowest id.
    fn ties_go_to_the_lowest_id(&self) -> bool {
        self.policy.threshold == Threshold::Plurality && self.policy.tie_break == TieBreak::LowestId
    }

    /// The candidate the tally would name now under ties to the lowest id (the lowest id among
    /// those level with the most support, within the slack) and its support, if anyone has
    /// support. It is not always the one with the most support: sums level within rounding are a
    /// tie.
    fn winner_of_ties(&self) -> Option<(usize, f64)> {
        let (_, most) = self.leader()?;
        let slack = self.slack();
        (self.support.iter().enumerate())
            .filter(|&(_, &s)| s > 0.0 && most - s <= slack)
            .min_by_key(|&(position, _)| self.candidates[position])
            .map(|(position, &s)| (position, s))
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

    /// True for the thresholds that ask for every vote cast: unanimity, and a supermajority whose
    /// fraction is one (`num == den`).
    fn needs_every_vote(&self) -> bool {
        match self.policy.threshold {
            Threshold::Unanimous => true,
            Threshold::Supermajority { num, den } => num == den,
            Threshold::Plurality | Threshold::Majority => false,
        }
    }

    fn quorum_met(&self) -> bool {
        // A relative epsilon so that sums of fractional weights meet a quorum they reach exactly;
        // it never stands in for a turnout of nothing (a quorum of 1e-12 or less).
        self.turnout > 0.0 && self.turnout + self.total * 1e-12 >= self.policy.quorum * self.total
    }

    #[inline]
    fn weight_at(&self, position: usize) -> f64 {
        if self.policy.weighted {
            self.electorate.voters[position].1
        } else {
            1.0
        }
    }

    /// After a vote was taken from the candidate at `position`: floating-point subtraction leaves a
    /// residue (0.1 + 0.2 + 0.7 - 0.2 - 0.1 - 0.7 is 1.1e-16, not 0), which would let a candidate
    /// nobody votes for lead. A sum within the slack of zero is summed again from the votes (exactly
    /// 0 when nobody votes for it); re-votes are rare, so the scan costs the rounds nothing.
    #[cold]
    fn settle_residue(&mut self, position: usize) {
        let slack = self.slack();
        if self.support[position] <= slack {
            let code = position as u32;
            self.support[position] = self
                .votes
                .iter()
                .enumerate()
                .filter(|&(_, voted)| voted == code)
                .map(|(voter, _)| self.weight_at(voter))
                .sum();
        }
        if self.cast_for_candidates <= slack {
            self.cast_for_candidates = self.support.iter().sum();
        }
    }

    /// How far apart two sums of weights may be and still count as equal: sums of fractional
    /// weights that are equal in exact arithmetic differ by rounding (0.1 + 0.2 against 0.3).
    fn slack(&self) -> f64 {
        self.total * 1e-12
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

    #[inline]
    fn candidate_position(&self, candidate: ProposalId) -> Option<usize> {
        position_in(&self.candidates, self.lookup.as_ref(), candidate)
    }
}

/// The position of `candidate` among `candidates` (found in `lookup`, the positions by id, when
/// the ballot keeps one).
#[inline]
fn position_in(
    candidates: &[ProposalId],
    lookup: Option<&FxHashMap<ProposalId, u32>>,
    candidate: ProposalId,
) -> Option<usize> {
    match lookup {
        Some(positions) => positions.get(&candidate).map(|&position| position as usize),
        None => candidates.iter().position(|&c| c == candidate),
    }
}
