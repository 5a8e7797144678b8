//! The outcome of a round ([`Aggregate`]) and the one-call [`aggregate`].

use std::hash::Hash;

use rayon::prelude::*;

use super::decide::{decide_all, merged};
use super::Aggregator;
use crate::conflict::{
    check_ids, check_occurrences, key_lists, ConflictReport, RejectReason, Resolution,
};
use crate::merge::{merge_parallel, Merge};
use crate::proposal::{Proposal, ProposalError, ProposalId};

/// The outcome of an aggregation: the merged payload, who was accepted and who was not, and why.
///
/// Every proposal appears exactly once, either in `accepted` or in `rejected`, both in submission
/// order. No two accepted proposals conflict.
///
/// # Progress
///
/// Plain data without synchronisation: every method is wait-free.
///
/// # Send and Sync
///
/// `Send`/`Sync` exactly when its type parameters are.
///
/// # Examples
///
/// ```
/// use hivekit_lockfree::{aggregate, Priority, Proposal, ProposalId, RejectReason, Resolution, Sum};
///
/// let outcome = aggregate(
///     vec![
///         Proposal::new(1, Sum(10_u64)).writes(["budget"]),
///         Proposal::new(2, Sum(5)).writes(["budget"]).priority(Priority::High),
///         Proposal::new(3, Sum(1)).writes(["notes"]),
///     ],
///     Resolution::HighestPriority,
/// )?;
/// assert_eq!(outcome.merged, Some(Sum(6)));
/// assert_eq!(outcome.accepted, [ProposalId(2), ProposalId(3)]);
/// assert_eq!(
///     outcome.rejected,
///     [(ProposalId(1), RejectReason::LostTo { winner: ProposalId(2), key: "budget" })]
/// );
/// assert!(outcome.is_accepted(ProposalId(3)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Aggregate<K, P> {
    /// The accepted payloads merged into one; `None` when nothing was accepted.
    pub merged: Option<P>,
    /// Accepted proposals, in submission order.
    pub accepted: Vec<ProposalId>,
    /// Rejected proposals with the reason, in submission order.
    pub rejected: Vec<(ProposalId, RejectReason<K>)>,
    /// Every conflict that was found (before resolution).
    pub conflicts: ConflictReport<K>,
}

impl<K, P> Aggregate<K, P> {
    /// True if `id` was accepted. A search of `accepted` (O(accepted)): to ask about many ids,
    /// collect `accepted` into a set once.
    pub fn is_accepted(&self, id: ProposalId) -> bool {
        self.accepted.contains(&id)
    }

    /// Why `id` was rejected, if it was. A search of `rejected` (O(rejected)).
    pub fn rejection(&self, id: ProposalId) -> Option<&RejectReason<K>> {
        self.rejected
            .iter()
            .find(|(rejected, _)| *rejected == id)
            .map(|(_, reason)| reason)
    }
}

/// Resolves conflicts among `proposals` and merges the accepted payloads, on the calling thread
/// (and the rayon pool for large inputs), exactly as [`Aggregator::finish`] does. The input order is
/// the submission order for [`Resolution::FirstSubmitted`].
///
/// # Errors
///
/// [`ProposalError::DuplicateId`] if two proposals share an id; [`ProposalError::TooManyProposals`]
/// beyond 2^31 - 1 proposals; [`ProposalError::TooManyKeys`] beyond 2^32 - 2 key occurrences.
///
/// # Progress
///
/// Blocking: returns when the aggregate is complete.
///
/// # Examples
///
/// ```
/// use hivekit_lockfree::{aggregate, Proposal, ProposalId, Resolution, Sum};
///
/// let outcome = aggregate(
///     vec![
///         Proposal::new(1, Sum(1_u32)).writes(["a"]),
///         Proposal::new(2, Sum(2)).writes(["a"]),
///     ],
///     Resolution::FirstSubmitted,
/// )?;
/// assert_eq!(outcome.accepted, [ProposalId(1)]);
/// assert_eq!(outcome.merged, Some(Sum(1)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn aggregate<K, P>(
    proposals: Vec<Proposal<K, P>>,
    resolution: Resolution,
) -> Result<Aggregate<K, P>, ProposalError>
where
    K: Hash + Eq + Clone + Send + Sync,
    P: Merge + Send,
{
    check_ids(&proposals)?;
    let (lists, occurrences) = key_lists(proposals.iter());
    check_occurrences(occurrences)?;
    let parallel = proposals.len() >= Aggregator::<K, P>::DEFAULT_PARALLEL_THRESHOLD;
    let ids = proposals.iter().map(|proposal| proposal.id).collect();
    let priority = |index: usize| proposals[index].priority;
    let decided = decide_all(lists, occurrences, ids, priority, resolution, parallel);
    let merged = if parallel {
        // Rejected payloads become `None`s, which the merge skips; the per-thread fold also
        // frees the proposals' key lists in parallel.
        let decided = &decided;
        merge_parallel(
            proposals
                .into_par_iter()
                .enumerate()
                .map(|(index, proposal)| decided.accepts(index).then_some(proposal.payload)),
        )
        .flatten()
    } else {
        proposals
            .into_iter()
            .enumerate()
            .filter_map(|(index, proposal)| decided.accepts(index).then_some(proposal.payload))
            .reduce(merged)
    };
    Ok(decided.into_aggregate(merged))
}
