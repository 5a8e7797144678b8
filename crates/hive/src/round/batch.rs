//! Batch voters ([`Agent::batch_votes`](crate::Agent::batch_votes)): each is asked about all of its
//! contests in one call, before the other voters are asked one contest at a time.

use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;

use futures::stream::{FuturesUnordered, StreamExt};

use crate::agent::{Contest, Vote};
use crate::ballot::{Ballot, BallotError};
use crate::call::{unbudgeted, Call, CallResult, Guarded, Limit, Tagged};
use crate::decision::{AgentFailure, FailureKind, Phase};
use crate::lockfree::Snapshot;
use crate::round::vote::Asked;
use crate::round::{call_span, RoundMember};
use crate::state::State;

/// One batch voter's call: the voter (an index into the round's voters) and, per contest it is
/// asked about, the contest's index and the voter's position in that contest's electorate.
struct Plan {
    voter: usize,
    contests: Vec<(usize, usize)>,
}

/// Asks every batch voter about the contests it is in the electorate of (at most `bound` calls at
/// once), casts their votes in `ballots`, counts them as asked in `asked`, and returns the
/// failures.
pub(super) async fn batch_votes<S: State>(
    voters: &[RoundMember<S>],
    view: &Snapshot<S>,
    asked: &mut [Asked<S>],
    ballots: &mut [Option<Ballot>],
    bound: usize,
    limit: Limit,
) -> Vec<AgentFailure> {
    let mut plans: Vec<Plan> = Vec::new();
    for (voter, member) in voters.iter().enumerate() {
        if !member.batch {
            continue;
        }
        let mut contests = Vec::new();
        for (group, entry) in asked.iter_mut().enumerate() {
            if ballots[group].is_none() {
                continue;
            }
            let position = match &entry.voters {
                None => Some(voter),
                Some(list) => list.binary_search(&(voter as u32)).ok(),
            };
            if let Some(position) = position {
                entry.batched += 1;
                contests.push((group, position));
            }
        }
        if !contests.is_empty() {
            plans.push(Plan { voter, contests });
        }
    }
    let mut failures = Vec::new();
    if plans.is_empty() {
        return failures;
    }
    let asked: &[Asked<S>] = asked;
    let refs: Vec<Vec<&Contest<S>>> = plans
        .iter()
        .map(|plan| {
            plan.contests
                .iter()
                .map(|&(group, _)| &*asked[group].contest)
                .collect()
        })
        .collect();
    // A call that `waited` for a slot (`max_in_flight`) gets a context of its own (see
    // `Limit::context_for_waited`).
    let start = |index: usize, waited: bool| {
        let member = &voters[plans[index].voter];
        let span = call_span(member.id, Phase::Vote);
        if member.heavy {
            let agent = Arc::clone(&member.agent);
            let context = if waited {
                limit.context_for_waited(&member.context)
            } else {
                member.context.clone()
            };
            let view = view.clone();
            let contests: Vec<Arc<Contest<S>>> = plans[index]
                .contests
                .iter()
                .map(|&(group, _)| Arc::clone(&asked[group].contest))
                .collect();
            Call::spawn(
                async move {
                    let refs: Vec<&Contest<S>> =
                        contests.iter().map(|contest| &**contest).collect();
                    Guarded::new(agent.vote_all_boxed(&context, &view, &refs), limit, span).await
                },
                limit,
            )
        } else if waited {
            let context = limit.context_for_waited(&member.context);
            let (agent, refs) = (&member.agent, &refs[index]);
            Call::inline(Guarded::new(
                Box::pin(async move { agent.vote_all_boxed(&context, view, refs).await }),
                limit,
                span,
            ))
        } else {
            Call::inline(Guarded::new(
                member
                    .agent
                    .vote_all_boxed(&member.context, view, &refs[index]),
                limit,
                span,
            ))
        }
    };
    // Ballots still open; once none is, the batch calls still running are dropped (cancelled).
    // Each ballot is counted off once, when it is first seen settled.
    let mut settled: Vec<bool> = ballots
        .iter()
        .map(|ballot| ballot.as_ref().is_none_or(Ballot::is_settled))
        .collect();
    let mut open = Open {
        count: settled.iter().filter(|&&settled| !settled).count(),
        settled: &mut settled,
    };
    let mut pending = FuturesUnordered::new();
    let mut next = 0;
    let mut waited = false;
    unbudgeted(poll_fn(|cx| loop {
        if open.count == 0 {
            return Poll::Ready(());
        }
        while next < plans.len() && pending.len() < bound {
            pending.push(Tagged {
                call: start(next, waited),
                slot: next,
                cancelled: None,
            });
            next += 1;
        }
        waited |= next < plans.len();
        match pending.poll_next_unpin(cx) {
            Poll::Ready(Some((index, Some(answer)))) => {
                cast(
                    &plans[index],
                    voters,
                    answer,
                    ballots,
                    &mut open,
                    &mut failures,
                );
            }
            Poll::Ready(Some((_, None))) => {}
            Poll::Ready(None) if next >= plans.len() => return Poll::Ready(()),
            Poll::Ready(None) => {}
            Poll::Pending => return Poll::Pending,
        }
    }))
    .await;
    failures
}

/// The ballots not yet seen settled, and which they are.
struct Open<'a> {
    count: usize,
    settled: &'a mut [bool],
}

/// Casts one batch voter's answer in its ballots (a failure marks it absent from all of them) and
/// counts the ballots it settled off `open`.
fn cast<S: State>(
    plan: &Plan,
    voters: &[RoundMember<S>],
    answer: CallResult<Vec<Vote>>,
    ballots: &mut [Option<Ballot>],
    open: &mut Open<'_>,
    failures: &mut Vec<AgentFailure>,
) {
    let agent = voters[plan.voter].id;
    let mut fail = |kind| {
        failures.push(AgentFailure {
            agent,
            phase: Phase::Vote,
            kind,
        });
    };
    let votes = match answer {
        Ok(votes) => {
            if votes.len() != plan.contests.len() {
                fail(FailureKind::WrongVoteCount {
                    contests: plan.contests.len(),
                    votes: votes.len(),
                });
            }
            votes
        }
        Err(kind) => {
            fail(kind);
            Vec::new()
        }
    };
    for (slot, &(group, position)) in plan.contests.iter().enumerate() {
        let Some(ballot) = ballots[group].as_mut() else {
            continue;
        };
        match votes.get(slot) {
            Some(&vote) => {
                if let Err(BallotError::UnknownCandidate { candidate }) =
                    ballot.cast_at(position, vote)
                {
                    ballot.mark_absent(position);
                    fail(FailureKind::InvalidVote { candidate });
                }
            }
            None => ballot.mark_absent(position),
        }
        if !open.settled[group] && ballot.is_settled() {
            open.settled[group] = true;
            open.count -= 1;
        }
    }
}
