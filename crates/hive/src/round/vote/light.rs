//! Where the vote loop starts its light voters' calls: a slot per voter ([`Slots`], which also
//! counts runs of calls that answer at once, [`LightStarts::run`]) or one block for all
//! ([`Shared`]).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::Poll;

use hivekit_runtime::Spare;

use super::{Asked, GroupVote};
use crate::agent::{Contest, Vote, VoteSlot};
use crate::ballot::{Ballot, Electorate, ABSTAIN_CODE};
use crate::call::{slot_answer, start_in_slot, start_vote_in_spare, SlotPolled};
use crate::lockfree::Snapshot;
use crate::round::{vote_call_span, RoundMember};
use crate::slot_block::SlotBlock;
use crate::state::State;

/// From this many (contest, voter) pairs per voter on, a round's light voters start their vote
/// calls in slots of their own ([`Slots`]), below in one block for all ([`Shared`]) if they are
/// agents of one type ([`one_light_type`]).
///
/// A voter's slot costs an allocation and a free a round (about 175 instructions), a call in the
/// shared block about 30 instructions more than in a slot (a layout check, the block taken and
/// kept, the answer passed back through a wider enum); and ballots settle after about half their
/// voters, so a voter in `n` pairs is asked about `n / 2` times. Measured: `decide` conflicts_1k (50
/// pairs a voter) 6.85M instructions with slots, 7.36M shared; agents_10 (1 pair a voter) 30.3k
/// with slots, 28.6k shared; packs_200 (about 1.5) 2.20M with slots, 2.13M shared.
pub(super) const SLOT_PAIRS_PER_VOTER: usize = 8;

/// Whether the light voters (those whose calls [`LightStarts`] starts) are all agents of one type.
///
/// The shared block keeps one layout: calls of two types one after the other would free it and
/// allocate another on every call, an allocation per call where slots cost one per voter. So a
/// round of mixed types keeps the slots (one dynamic call per voter to find out, made once per
/// member array: kept with the electorates, `round::Electorates`).
pub(super) fn one_light_type<S: State>(voters: &[RoundMember<S>]) -> bool {
    let mut light = voters
        .iter()
        .filter(|voter| !voter.heavy && !voter.batch)
        .map(|voter| voter.agent.agent_type());
    match light.next() {
        Some(first) => light.all(|other| other == first),
        None => true,
    }
}

/// Where a chunk's light voters start their vote calls (see [`SLOT_PAIRS_PER_VOTER`]). The vote
/// loop is compiled once for each, so that neither pays for the other's choice per call.
pub(super) trait LightStarts<'a, S: State> {
    /// Whether [`LightStarts::run`] counts runs of calls (the loop compiled without the branch
    /// to it otherwise).
    const RUNS: bool = false;

    /// Room for `voters` voters' calls, in the memory an earlier round's chunk kept (`kept`).
    fn new(voters: usize, kept: LightSpare) -> Self;

    /// The memory to keep for the next round's chunk: the voters' slot blocks (their slots
    /// dropped) and the shared block.
    fn finish(self) -> LightSpare;

    /// Starts the vote of `member` (the voter at index `voter`) about `contest` and polls it once,
    /// in its `agent_call` span if `spans` (what [`call_spans_enabled`](crate::round::call_spans_enabled) answered for the turn).
    fn start(
        &mut self,
        voter: usize,
        member: &'a RoundMember<S>,
        view: &'a Snapshot<S>,
        contest: &'a Contest<S>,
        spans: bool,
        cx: &mut std::task::Context<'_>,
    ) -> SlotPolled<'a>;

    /// Asks the voters of `contest` from `entry.next` on, up to `budget` of them, and counts on
    /// its ballot the votes that come at once, until one answers otherwise (returned for the loop
    /// to count), the next needs the loop's own start ([`Run::General`]), the ballot may have
    /// settled or the budget is spent. Only for turns whose calls have no span.
    ///
    /// The default starts nothing: the loop asks every voter itself.
    #[inline(always)]
    fn run(
        &mut self,
        contest: &'a Asked<S>,
        entry: &mut GroupVote,
        budget: usize,
        cx: &mut std::task::Context<'_>,
    ) -> Run<'a> {
        let _ = (contest, entry, budget, cx);
        Run::General
    }
}

#[cfg(test)]
thread_local! {
    /// Set by the tests that compare the vote loop's own path with [`LightStarts::run`]: the loop
    /// on this thread asks every voter itself.
    pub(super) static GENERAL_ONLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// How many votes [`LightStarts::run`] counted on this thread (the tests check that the path
    /// they compare was taken).
    pub(super) static RUN_VOTES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// How many of those it counted without a settlement check each (`Ballot::cast_quiet_run`).
    pub(super) static QUIET_VOTES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Whether the vote loop asks every voter itself (only ever in tests, see `GENERAL_ONLY`).
#[inline(always)]
pub(super) fn general_only() -> bool {
    #[cfg(test)]
    return GENERAL_ONLY.get();
    #[cfg(not(test))]
    false
}

/// Where a run of calls that answer at once ([`LightStarts::run`]) stopped.
pub(super) enum Run<'a> {
    /// Its budget is spent: every voter it asked voted and was counted.
    Counted,
    /// Its last vote may have settled the ballot (not yet marked settled).
    MaySettle,
    /// The next voter is one the loop asks itself (a heavy or batch voter, or one whose call
    /// needs a new slot); it was not asked.
    General,
    /// The voter at `position` answered otherwise than with a vote counted at once: a failure,
    /// a call still running or a vote the ballot refused (the loop counts it as usual).
    Answered {
        position: usize,
        polled: SlotPolled<'a>,
    },
}

/// What a chunk of the vote phase keeps for the same chunk of the next round over the same
/// members (in the round's working buffers): each voter's slot block, and the shared block.
#[derive(Debug, Default)]
pub(crate) struct LightSpare {
    /// By voter (as many as the chunk's voters when it finished).
    slots: Vec<SlotBlock>,
    shared: Spare,
}

/// A reusable slot per voter, made on its first call in the round (in the block of the voter's
/// slot in the last round, when kept).
pub(super) struct Slots<'a, S: State> {
    slots: Vec<Option<Pin<Box<dyn VoteSlot<'a, S> + 'a>>>>,
    /// Each voter's kept slot block (see [`SlotBlock`]).
    blocks: Vec<SlotBlock>,
    /// Kept for the next round's [`Shared`].
    shared: Spare,
}

impl<'a, S: State> LightStarts<'a, S> for Slots<'a, S> {
    const RUNS: bool = true;

    fn new(voters: usize, kept: LightSpare) -> Self {
        let mut blocks = kept.slots;
        blocks.resize_with(voters, SlotBlock::new);
        Self {
            slots: (0..voters).map(|_| None).collect(),
            blocks,
            shared: kept.shared,
        }
    }

    fn finish(self) -> LightSpare {
        let Slots {
            slots,
            mut blocks,
            shared,
        } = self;
        for (slot, block) in slots.into_iter().zip(&mut blocks) {
            if let Some(slot) = slot {
                block.keep(slot);
            }
        }
        LightSpare {
            slots: blocks,
            shared,
        }
    }

    #[inline(always)]
    fn start(
        &mut self,
        voter: usize,
        member: &'a RoundMember<S>,
        view: &'a Snapshot<S>,
        contest: &'a Contest<S>,
        spans: bool,
        cx: &mut std::task::Context<'_>,
    ) -> SlotPolled<'a> {
        let slot = &mut self.slots[voter];
        let block = &mut self.blocks[voter];
        let new_slot = || member.agent.vote_slot_in(&member.context, view, block);
        // Started in one of two copies, so that the common one (no subscriber records the call's
        // span) passes a constant `None` into the inlined start: about 2 instructions less a vote
        // call (decide conflicts_1k -0.7%).
        if spans {
            let span = vote_call_span(member.id, true);
            start_in_slot(slot, new_slot, contest, span, cx)
        } else {
            start_in_slot(slot, new_slot, contest, None, cx)
        }
    }

    /// The vote loop's hot path in a function of its own: a round of voters that answer at once
    /// spends most of its instructions here, one dynamic call (the slot's start and poll) and a few
    /// counter updates per vote, with few values live (inlined into the loop, the answer and the
    /// ballot's fields went through the stack several times per vote).
    #[inline(never)]
    fn run(
        &mut self,
        contest: &'a Asked<S>,
        entry: &mut GroupVote,
        budget: usize,
        cx: &mut std::task::Context<'_>,
    ) -> Run<'a> {
        let Some(ballot) = entry.ballot.as_mut() else {
            return Run::General;
        };
        let from = entry.next;
        if self
            .slots
            .get(contest.voter(from))
            .is_none_or(Option::is_none)
        {
            // The next voter has no slot (its first call of the round, or a heavy or batch voter):
            // the loop asks it, before anything is set up for a run (in a round's first contest,
            // every voter).
            return Run::General;
        }
        let electorate = ballot.weights();
        let weights = electorate.as_deref().map(Electorate::weighted_voters);
        // A run asks no position past its electorate (as long as the contest's list of voters):
        // ending it there also tells the compiler that every weight it reads is in bounds.
        let budget = match weights {
            Some(weights) => budget.min(weights.len().saturating_sub(from)),
            None => budget,
        };
        // One copy of the loop per way of finding the voter at a position and its weight, so
        // that neither is decided again on every vote (the electorate's list and the policy were
        // read through the ballot after every call, about 6 instructions a vote).
        let (next, stop) = match (&contest.voters, weights) {
            (None, None) => self.run_with(contest, ballot, from, budget, cx, |p| p, |_| 1.0),
            (None, Some(weights)) => {
                self.run_with(contest, ballot, from, budget, cx, |p| p, |p| weights[p].1)
            }
            (Some(list), None) => self.run_with(
                contest,
                ballot,
                from,
                budget,
                cx,
                |p| list[p] as usize,
                |_| 1.0,
            ),
            (Some(list), Some(weights)) => self.run_with(
                contest,
                ballot,
                from,
                budget,
                cx,
                |p| list[p] as usize,
                |p| weights[p].1,
            ),
        };
        // Every voter from `from` to `next` was asked.
        entry.asked += next - from;
        entry.next = next;
        stop
    }
}

impl<'a, S: State> Slots<'a, S> {
    /// [`LightStarts::run`]'s loop, with the voter at a position (`voter_at`) and its weight
    /// (`weight_at`) found as the round's lists say; returns where the run stopped and why.
    ///
    /// Most votes are counted in quiet runs (`Ballot::cast_quiet_run`): while the ballot's bound
    /// says no vote can settle it, a vote is a store and three sums with no settlement check, the
    /// ballot's codes and sums held across the calls (about 53 instructions a vote with the call,
    /// 62 one vote at a time: decide conflicts_1k 4.43M to 4.22M instructions). How the run's
    /// values are carried (a refused vote in a variable, the latest candidate in a local) moved
    /// this by 0.1M either way: measure any change here.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn run_with(
        &mut self,
        contest: &'a Asked<S>,
        ballot: &mut Ballot,
        from: usize,
        budget: usize,
        cx: &mut std::task::Context<'_>,
        voter_at: impl Fn(usize) -> usize,
        weight_at: impl Fn(usize) -> f64,
    ) -> (usize, Run<'a>) {
        // The position in a local (written back once the run stops): in the group's entry it
        // was stored and reloaded around every call.
        // Every position is below the number of slots (one per voter of the round): ending the run
        // there, too, spares the bounds check of every slot it reads (when positions are voters).
        let end = (from + budget).min(self.slots.len());
        if end <= from {
            // Cannot happen (the loop asks for a run with voters left to ask); had it, the loop
            // asks the voter itself rather than asking for the same empty run again.
            return (from, Run::General);
        }
        let mut next = from;
        // The candidate of the last vote for one and its code: a ballot's voters mostly back the
        // same candidate one after the other, and comparing the id costs less than finding the
        // candidate. Starts at the first candidate (a ballot has at least one).
        let mut last = match ballot.candidates().first() {
            Some(&candidate) => match ballot.code_of(Vote::For(candidate)) {
                Ok(code) => (candidate, code),
                Err(_) => return (from, Run::General),
            },
            None => return (from, Run::General),
        };
        let stop = loop {
            if next >= end {
                break Run::Counted;
            }
            // First the votes that cannot settle the ballot, counted without a settlement check
            // each (see `Ballot::cast_quiet_run`); then one vote the usual way, which may.
            let mut stopped = None;
            let (reached, refused) = ballot.cast_quiet_run(next, end, &mut last, |position| {
                let slot = &mut self.slots[voter_at(position)];
                let Some(call) = slot.as_mut() else {
                    stopped = Some(Run::General);
                    return None;
                };
                // Matched where it is made, as below.
                let polled = match catch_unwind(AssertUnwindSafe(|| {
                    call.as_mut().start_poll(&contest.contest, cx)
                })) {
                    Ok(Poll::Ready(Ok(vote))) => Ok(vote),
                    other => Err(other),
                };
                match polled {
                    Ok(vote) => Some((vote, weight_at(position))),
                    Err(other) => {
                        stopped = Some(Run::Answered {
                            position,
                            polled: answered(slot, other),
                        });
                        None
                    }
                }
            });
            #[cfg(test)]
            {
                RUN_VOTES.set(RUN_VOTES.get() + (reached - next));
                QUIET_VOTES.set(QUIET_VOTES.get() + (reached - next));
            }
            next = reached;
            if let Some(vote) = refused {
                // Refused (not a candidate): the loop records the failure. The voter at `next`
                // was asked.
                let position = next;
                next += 1;
                break Run::Answered {
                    position,
                    polled: SlotPolled::Voted(vote),
                };
            }
            match stopped {
                Some(Run::General) => break Run::General,
                Some(stop) => {
                    // The voter at `next` was asked.
                    next += 1;
                    break stop;
                }
                None if next >= end => break Run::Counted,
                None => {}
            }
            let position = next;
            let slot = &mut self.slots[voter_at(position)];
            // Only a light voter that does not vote in batches has a slot (made by `start`, on
            // the loop's own path): the voter is not looked up.
            let Some(call) = slot.as_mut() else {
                break Run::General;
            };
            next += 1;
            // The answer is matched where it is made (a temporary of this statement): kept in a
            // variable, its drop check came after the ballot's calls, which LLVM must assume may
            // change it (the panic guard took its address).
            let polled = match catch_unwind(AssertUnwindSafe(|| {
                call.as_mut().start_poll(&contest.contest, cx)
            })) {
                Ok(Poll::Ready(Ok(vote))) => Ok(vote),
                other => Err(other),
            };
            let polled = match polled {
                Ok(vote) => {
                    let code = match vote {
                        Vote::For(candidate) if candidate == last.0 => Ok(last.1),
                        Vote::For(candidate) => ballot.code_of(vote).inspect(|&code| {
                            last = (candidate, code);
                        }),
                        Vote::Abstain => Ok(ABSTAIN_CODE),
                    };
                    match code {
                        Ok(code) => {
                            ballot.cast_code_once_at(position, code, weight_at(position));
                            #[cfg(test)]
                            RUN_VOTES.set(RUN_VOTES.get() + 1);
                            if ballot.is_settled() {
                                break Run::MaySettle;
                            }
                            continue;
                        }
                        // Refused (not a candidate): the loop records the failure.
                        Err(_) => SlotPolled::Voted(vote),
                    }
                }
                Err(other) => answered(slot, other),
            };
            break Run::Answered { position, polled };
        };
        (next, stop)
    }
}

/// [`slot_answer`] out of line, for the answers [`Slots::run`] does not count itself.
#[cold]
#[inline(never)]
fn answered<'a, S: State>(
    slot: &mut Option<Pin<Box<dyn VoteSlot<'a, S> + 'a>>>,
    polled: std::thread::Result<Poll<Result<Vote, crate::agent::AgentError>>>,
) -> SlotPolled<'a> {
    slot_answer(slot, polled, None)
}

/// One block for every call that answers at once, whoever's (kept from round to round, with
/// the slot blocks a round of [`Slots`] left).
pub(super) struct Shared(LightSpare);

impl<'a, S: State> LightStarts<'a, S> for Shared {
    fn new(_voters: usize, kept: LightSpare) -> Self {
        Self(kept)
    }

    fn finish(self) -> LightSpare {
        self.0
    }

    #[inline(always)]
    fn start(
        &mut self,
        _voter: usize,
        member: &'a RoundMember<S>,
        view: &'a Snapshot<S>,
        contest: &'a Contest<S>,
        spans: bool,
        cx: &mut std::task::Context<'_>,
    ) -> SlotPolled<'a> {
        let (agent, context, spare) = (&*member.agent, &member.context, &mut self.0.shared);
        if spans {
            let span = vote_call_span(member.id, true);
            start_vote_in_spare(agent, context, view, contest, spare, span, cx)
        } else {
            start_vote_in_spare(agent, context, view, contest, spare, None, cx)
        }
    }
}
