//! What the lockfree suites (criterion and instruction counts) share: the conversions from
//! `benches_common`'s plain data to this crate's types (benches-common cannot depend on hivekit
//! crates, so they live here, once), the peer queues ([`queues`]) and the baseline conflict index
//! ([`conflict_index`]).

#![allow(dead_code)] // each suite uses the parts it needs

pub(crate) mod aggregation;
pub(crate) mod conflict_index;
pub(crate) mod queues;

use benches_common::hints::HintSpec;
use benches_common::proposals::ProposalSpec;
use hivekit_lockfree::{LatencyTier, Priority, Proposal, ProposalId, ResourceCost, SchedulingHint};

/// `spec` as a proposal whose payload is `payload(id)`.
pub(crate) fn to_proposal<P>(
    spec: ProposalSpec,
    payload: impl FnOnce(u64) -> P,
) -> Proposal<u64, P> {
    let ProposalSpec {
        id,
        priority,
        reads,
        writes,
    } = spec;
    Proposal {
        id: ProposalId(id),
        priority: Priority::ALL[usize::from(priority)],
        reads,
        writes,
        payload: payload(id),
    }
}

/// `spec` as a scheduling hint.
pub(crate) fn to_hint(spec: HintSpec) -> SchedulingHint {
    SchedulingHint::new(
        Priority::ALL[usize::from(spec.priority)],
        LatencyTier::ALL[usize::from(spec.latency)],
        ResourceCost::ALL[usize::from(spec.cost)],
    )
}
