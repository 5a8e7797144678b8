//! A run of first votes counted without a settlement check per vote ([`Ballot::cast_quiet_run`]),
//! the vote loop's hot path in rounds whose voters answer at once.

use crate::agent::Vote;
use crate::ballot::codes::Codes;
use crate::ballot::{Ballot, NOT_VOTED};
use crate::lockfree::ProposalId;

impl Ballot {
    /// Counts the first votes of the voters at positions `from`, `from + 1`, .. (below `end`) as
    /// [`Ballot::cast_code_once_at`] would, for as long as none of them can settle the ballot: at
    /// most one vote fewer than its settlement bound ([`Ballot::quiet_events`]), so that no
    /// [`Ballot::is_settled`] is needed between them (it would answer false). `vote(position)`
    /// asks the voter at `position` and answers its vote and weight, or `None` when the voter gave
    /// no vote to count now (the caller keeps what it answered, or did not ask it).
    ///
    /// Returns the position the run stopped at (the votes before it were counted) and, when the
    /// voter there voted for a proposal that is not a candidate, that vote (not counted). It stops
    /// before asking a voter who has a code already (a re-vote or an absent voter, which
    /// `cast_code_once_at` counts), at the bound, and at once for a ballot of `u32` codes; the
    /// caller counts those votes one at a time.
    ///
    /// `last` is the candidate of the latest vote for one and its code (a ballot's voters mostly
    /// back the same candidate one after the other, and comparing the id costs less than finding
    /// the candidate); it must name a candidate and its code, and names the latest one on return.
    ///
    /// The sums are added to in the same order as one `cast_code_once_at` per vote would, so
    /// that the outcome is the same to the last bit.
    #[inline(always)]
    pub(crate) fn cast_quiet_run(
        &mut self,
        from: usize,
        end: usize,
        last: &mut (ProposalId, u32),
        mut vote: impl FnMut(usize) -> Option<(Vote, f64)>,
    ) -> (usize, Option<Vote>) {
        let Ballot {
            candidates,
            lookup,
            support,
            votes,
            voted,
            turnout,
            cast_for_candidates,
            quiet,
            ..
        } = self;
        let Codes::Narrow(codes) = votes else {
            return (from, None);
        };
        if *quiet <= 1 {
            // No bound (0: every vote checks in full) or the next vote computes a new one.
            return (from, None);
        }
        let stop = end.min(codes.len()).min(from.saturating_add(*quiet - 1));
        if stop <= from {
            return (from, None);
        }
        // The sums in locals for the run (written back once): through `self` each was stored and
        // reloaded around every call the closure makes.
        let (mut run_turnout, mut run_cast) = (*turnout, *cast_for_candidates);
        let mut position = from;
        let mut refused = None;
        // The latest candidate in a local: through `last` it was stored on every vote.
        let mut latest = *last;
        for entry in &mut codes[from..stop] {
            if *entry != NOT_VOTED as u8 {
                break;
            }
            let Some((vote, weight)) = vote(position) else {
                break;
            };
            let code = match vote {
                Vote::For(candidate) if candidate == latest.0 => latest.1,
                Vote::For(candidate) => {
                    match super::position_in(candidates, lookup.as_ref(), candidate) {
                        Some(code) => {
                            latest = (candidate, code as u32);
                            code as u32
                        }
                        None => {
                            refused = Some(vote);
                            break;
                        }
                    }
                }
                Vote::Abstain => super::ABSTAINED,
            };
            // Narrow codes: every candidate's position and the abstention fit in a byte.
            *entry = code as u8;
            position += 1;
            run_turnout += weight;
            // An abstention's code is past every candidate.
            if let Some(support) = support.get_mut(code as usize) {
                *support += weight;
                run_cast += weight;
            }
        }
        *last = latest;
        let counted = position - from;
        *voted += counted;
        *turnout = run_turnout;
        *cast_for_candidates = run_cast;
        // At least one above 0 still: the vote that takes it to 1 computes the next bound.
        *quiet -= counted;
        (position, refused)
    }
}
