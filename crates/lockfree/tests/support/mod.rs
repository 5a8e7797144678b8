//! Generators shared by the lockfree integration tests.

#![allow(dead_code, unreachable_pub)] // each test file uses a different subset

use std::fmt;

use hivekit_lockfree::{Priority, Proposal};
use proptest::prelude::*;

/// The space random proposals are drawn from.
#[derive(Debug, Clone, Copy)]
pub struct ProposalSpace {
    /// At most this many proposals.
    pub max: usize,
    /// Keys are `0..keys`: a small space, so keys collide often.
    pub keys: u8,
    /// Each proposal reads fewer than this many keys.
    pub reads: usize,
    /// Each proposal writes fewer than this many keys.
    pub writes: usize,
}

/// Random proposals from `space`: distinct ids (`3 * i + 1`, so ids are neither dense nor in
/// submission order) in shuffled order, a random priority, and the payload `payload(value)` of a
/// value drawn from `1..1000`.
pub fn proposals<P: fmt::Debug>(
    space: ProposalSpace,
    payload: fn(u64) -> P,
) -> impl Strategy<Value = Vec<Proposal<u8, P>>> {
    let spec = (
        proptest::collection::vec(0..space.keys, 0..space.reads),
        proptest::collection::vec(0..space.keys, 0..space.writes),
        0..Priority::ALL.len(),
        1_u64..1000,
    );
    proptest::collection::vec(spec, 0..space.max)
        .prop_flat_map(|specs| {
            let ids: Vec<u64> = (0..specs.len() as u64).map(|i| 3 * i + 1).collect();
            (Just(specs), Just(ids).prop_shuffle())
        })
        .prop_map(move |(specs, ids)| {
            specs
                .into_iter()
                .zip(ids)
                .map(|((reads, writes, priority, value), id)| {
                    Proposal::new(id, payload(value))
                        .reads(reads)
                        .writes(writes)
                        .priority(Priority::ALL[priority])
                })
                .collect()
        })
}

/// A vector of `len` zero-sized keys: no allocation, whatever the length (`vec![(); len]` would
/// loop `len` times). Key counts past every limit, even past `usize::MAX` in sums, cost nothing.
#[allow(clippy::uninit_vec)] // `()` has one value, needs no memory and no initialisation.
pub fn zst_keys(len: usize) -> Vec<()> {
    let mut keys: Vec<()> = Vec::new();
    // SAFETY: a vector of a zero-sized type has capacity `usize::MAX` and needs no initialised
    // memory; `()` has no invalid values and no drop glue.
    unsafe { keys.set_len(len) };
    keys
}
