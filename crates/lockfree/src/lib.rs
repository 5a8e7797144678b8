//! Lock-free primitives for coordinating agents.
//!
//! - [`SnapshotCell`]: versioned shared state with lock-free reads, staged writes and a
//!   compare-and-swap commit.
//! - [`PriorityScheduler`]: a concurrent priority queue ordered by [`SchedulingHint`], with
//!   anti-starvation.
//! - [`Proposal`], [`detect_conflicts`] and [`ConflictReport`]: hash-based conflict detection.
//! - [`Merge`] and [`Aggregator`]: concurrent aggregation of proposals.

mod hint;
// snapshot cell, scheduler and loom shim: (owned by the snapshot/scheduler work)
mod loom;
mod scheduler;
mod snapshot;
// proposals, conflicts, merge, aggregator: (owned by the conflict/aggregation work)
mod aggregator;
mod conflict;
mod merge;
mod proposal;

pub use aggregator::{aggregate, Aggregate, Aggregator, RejectReason, Resolution};
pub use conflict::{detect_conflicts, ConflictGroup, ConflictKind, ConflictReport};
pub use hint::{LatencyTier, Priority, ResourceCost, SchedulingHint};
pub use merge::{
    merge_all, merge_all_with_threshold, Max, Merge, Min, Sum, PARALLEL_MERGE_THRESHOLD,
};
pub use proposal::{Proposal, ProposalError, ProposalId};
pub use scheduler::{Full, PriorityScheduler, SchedulerConfig, SchedulerError};
pub use snapshot::{CommitError, Snapshot, SnapshotCell, Staged};
