//! The aggregation inputs and the hand-written sequential round (the `sequential` peer), shared by
//! the criterion suite (`aggregation.rs`) and the instruction counts (`instructions.rs`).

// Each bench binary uses a part of this module.
#![allow(dead_code)]

use benches_common::proposals::proposal_specs;
use benches_common::workload::DEFAULT_SEED;
use hivekit_lockfree::{Aggregator, Max, Merge, Proposal, ProposalId, Resolution, Sum};
use rustc_hash::FxHashMap;

/// A counter and a high-water mark.
pub(crate) type Payload = (Sum<u64>, Max<u64>);

/// One round's proposals.
pub(crate) type Input = Vec<Proposal<u64, Payload>>;

/// The accepted ids (sorted) and the merged payload: what every implementation must agree on.
pub(crate) type Outcome = (Vec<ProposalId>, Option<Payload>);

/// `n` proposals of 4 keys, `conflict_rate` of them in conflict groups.
pub(crate) fn proposals(n: usize, conflict_rate: f64) -> Input {
    proposal_specs(n, 4, conflict_rate, DEFAULT_SEED)
        .into_iter()
        .map(|spec| super::to_proposal(spec, |id| (Sum(id), Max(id ^ 0x5a5a))))
        .collect()
}

/// Submits `input` to `aggregator` from this thread and finishes the round.
pub(crate) fn round_on(aggregator: Aggregator<u64, Payload>, input: Input) -> Outcome {
    for proposal in input {
        aggregator
            .submit(proposal)
            .expect("generated ids are distinct");
    }
    let aggregate = aggregator.finish(Resolution::HighestPriority);
    (aggregate.accepted, aggregate.merged)
}

/// What the sequential peer keeps per key.
#[derive(Clone, Copy)]
struct KeySummary {
    /// The best toucher so far (position in submission order) and whether it writes the key.
    best: u32,
    best_writes: bool,
    /// The last toucher, so a proposal that both writes and reads the key counts once.
    last: u32,
    /// Distinct touchers, and whether any of them writes.
    members: u32,
    any_writes: bool,
}

/// The hand-written single-threaded round: no lock, one summary per key, one decision pass.
pub(crate) fn sequential(input: Input) -> Outcome {
    let mut proposals = Vec::new();
    for proposal in input {
        proposals.push(proposal);
    }
    // Higher priority first, then the lower id: smaller is better.
    let rank =
        |proposal: &Proposal<u64, Payload>| (std::cmp::Reverse(proposal.priority), proposal.id);
    // Presized for the worst case (every key occurrence a distinct key): no rehash while indexing.
    let occurrences = proposals
        .iter()
        .map(|proposal| proposal.writes.len() + proposal.reads.len())
        .sum();
    let mut keys: FxHashMap<u64, KeySummary> =
        FxHashMap::with_capacity_and_hasher(occurrences, Default::default());
    for (position, proposal) in proposals.iter().enumerate() {
        let position = position as u32;
        let touches = proposal
            .writes
            .iter()
            .map(|key| (*key, true))
            .chain(proposal.reads.iter().map(|key| (*key, false)));
        for (key, writes) in touches {
            let summary = keys.entry(key).or_insert(KeySummary {
                best: position,
                best_writes: writes,
                last: position,
                members: 0,
                any_writes: false,
            });
            summary.any_writes |= writes;
            if summary.last == position && summary.members > 0 {
                if summary.best == position {
                    summary.best_writes |= writes;
                }
                continue;
            }
            summary.members += 1;
            summary.last = position;
            if rank(proposal) < rank(&proposals[summary.best as usize]) {
                summary.best = position;
                summary.best_writes = writes;
            }
        }
    }
    // A proposal loses a contested key (two or more touchers, one of them writing) unless it is
    // the key's best toucher, or both it and the best toucher only read the key.
    let loses = |position: u32, key: &u64, writes: bool| {
        let summary = &keys[key];
        summary.members > 1
            && summary.any_writes
            && summary.best != position
            && (summary.best_writes || writes)
    };
    let survivors = proposals
        .into_iter()
        .enumerate()
        .filter(|(position, proposal)| {
            let position = *position as u32;
            !(proposal.writes.iter().any(|key| loses(position, key, true))
                || proposal.reads.iter().any(|key| loses(position, key, false)))
        })
        .map(|(_, proposal)| proposal);
    fold(survivors)
}

/// The outcome of a round whose accepted proposals are `survivors`: their ids sorted and their
/// payloads merged in submission order (every peer's last step).
pub(crate) fn fold(survivors: impl Iterator<Item = Proposal<u64, Payload>>) -> Outcome {
    let mut accepted = Vec::new();
    let mut merged: Option<Payload> = None;
    for proposal in survivors {
        accepted.push(proposal.id);
        match &mut merged {
            Some(total) => total.merge(proposal.payload),
            None => merged = Some(proposal.payload),
        }
    }
    accepted.sort_unstable();
    (accepted, merged)
}
