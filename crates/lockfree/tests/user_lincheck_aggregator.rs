//! Linearizability of `Aggregator::submit`, checked on many small random rounds (3 threads of 3
//! to 6 submissions, ids drawn from a small range so that threads collide on ids). `finish`
//! lists the accepted and the rejected proposals "both in submission order", and with every
//! proposal writing one shared key and `Resolution::FirstSubmitted` the first submitted is the
//! one accepted: so the outcome spells out the whole submission order, which must be a
//! linearization of the submissions (`Aggregator` docs: "a `submit` that returned before another
//! one started comes first"; `submit`: "of two concurrent submissions of one id, exactly one is
//! stored"). Every stored proposal must land in exactly one outcome, and a refused duplicate must
//! have been refused because a submission of its id that started before it returned was stored.

#[path = "support/lincheck.rs"]
mod lincheck;

use std::collections::HashMap;

use hivekit_lockfree::{
    Aggregator, Proposal, ProposalError, ProposalId, RejectReason, Resolution, Sum,
};
use lincheck::{jitter, record, round, Event, Rng};

const THREADS: usize = 3;
const ROUNDS: u64 = 1_500;

fn run_round(seed: u64) {
    let aggregator: Aggregator<&'static str, Sum<u64>> = Aggregator::new();
    let plans: Vec<(Rng, Vec<u64>)> = (0..THREADS)
        .map(|thread| {
            let mut rng = Rng::new(seed.wrapping_add(thread as u64));
            let ids = (0..3 + rng.below(4)).map(|_| rng.below(8)).collect();
            (rng, ids)
        })
        .collect();
    let history: Vec<Event<u64, Result<(), ProposalError>>> = round(THREADS, |thread, clock| {
        let (mut rng, ids) = plans[thread].clone();
        ids.into_iter()
            .map(|id| {
                jitter(&mut rng);
                record(clock, thread, id, |&id| {
                    aggregator.submit(Proposal::new(id, Sum(1_u64)).writes(["shared"]))
                })
            })
            .collect()
    });
    let context = format!("round seed {seed:#x}, history {history:#?}");
    let stored: Vec<&Event<u64, Result<(), ProposalError>>> =
        history.iter().filter(|event| event.ret.is_ok()).collect();
    assert_eq!(aggregator.len(), stored.len(), "{context}: len once quiet");

    // Of the submissions of one id, exactly one is stored, and each refusal names the id and
    // comes after the stored one started.
    let mut stored_by_id: HashMap<u64, &Event<u64, Result<(), ProposalError>>> = HashMap::new();
    for event in &stored {
        assert!(
            stored_by_id.insert(event.op, event).is_none(),
            "{context}: id {} stored twice",
            event.op
        );
    }
    for event in &history {
        if let Err(error) = &event.ret {
            assert_eq!(
                *error,
                ProposalError::DuplicateId(ProposalId(event.op)),
                "{context}"
            );
            let first = stored_by_id
                .get(&event.op)
                .unwrap_or_else(|| panic!("{context}: id {} refused, never stored", event.op));
            assert!(
                first.invoke < event.response,
                "{context}: id {} refused as a duplicate before the stored one started",
                event.op
            );
        }
    }

    let outcome = aggregator.finish(Resolution::FirstSubmitted);
    // The winner first, then everyone who lost to it: the submission order.
    let order: Vec<ProposalId> = outcome
        .accepted
        .iter()
        .copied()
        .chain(outcome.rejected.iter().map(|(id, _)| *id))
        .collect();
    assert_eq!(
        outcome.accepted.len(),
        usize::from(!stored.is_empty()),
        "{context}"
    );
    assert_eq!(
        order.len(),
        stored.len(),
        "{context}: each proposal in one outcome"
    );
    let position: HashMap<u64, usize> = order
        .iter()
        .enumerate()
        .map(|(index, id)| (id.0, index))
        .collect();
    assert_eq!(
        position.len(),
        stored.len(),
        "{context}: an id in two outcomes"
    );
    for (id, reason) in &outcome.rejected {
        assert_eq!(
            *reason,
            RejectReason::LostTo {
                winner: outcome.accepted[0],
                key: "shared"
            },
            "{context}: {id:?}"
        );
    }
    for earlier in &stored {
        for later in &stored {
            if earlier.response < later.invoke {
                assert!(
                    position[&earlier.op] < position[&later.op],
                    "{context}: id {} returned before id {} was submitted, yet comes after it \
                     in the submission order {order:?}",
                    earlier.op,
                    later.op
                );
            }
        }
    }
    assert_eq!(
        outcome.merged,
        (!stored.is_empty()).then_some(Sum(1)),
        "{context}"
    );
}

#[test]
fn the_submission_order_is_a_linearization_and_each_proposal_lands_once() {
    for round_number in 0..ROUNDS {
        run_round(0xA66_0000 ^ (round_number << 12));
    }
}
