//! Lock-free primitives for coordinating agents.
//!
//! - [`SnapshotCell`]: versioned shared state with lock-free reads, staged writes and a
//!   compare-and-swap commit; [`SnapshotCell::swap`] replaces the value and returns the snapshot
//!   it replaced.
//! - [`PriorityScheduler`]: a concurrent priority queue ordered by [`SchedulingHint`], with
//!   anti-starvation, an optional bound ([`PriorityScheduler::capacity`]) and
//!   [`PriorityScheduler::drain`] to empty it; a [`Priority`] converts into a hint.
//! - [`Proposal`], [`detect_conflicts`] and [`ConflictReport`]: hash-based conflict detection.
//! - [`Merge`] and [`Aggregator`]: concurrent aggregation of proposals.
//!
//! Every type documents its progress guarantee (wait-free, lock-free or blocking) under `# Progress`.
//! The lock-free code takes its atomics through a private shim so that the same code runs under
//! [loom](https://docs.rs/loom): `RUSTFLAGS="--cfg loom" cargo test -p hivekit-lockfree --release --test loom`.
//!
//! # Examples
//!
//! Shared state read without locks and written optimistically, and work ordered by hints:
//!
//! ```
//! use hivekit_lockfree::{Priority, PriorityScheduler, SchedulingHint, SnapshotCell};
//!
//! let memory = SnapshotCell::new(vec![String::from("scout")]);
//! let scheduler = PriorityScheduler::new();
//! scheduler.push(SchedulingHint::with_priority(Priority::Low), "tidy up").ok();
//! scheduler.push(SchedulingHint::with_priority(Priority::High), "recruit").ok();
//!
//! while let Some(task) = scheduler.pop() {
//!     let seen = memory.load();
//!     let mut next = seen.to_vec();
//!     next.push(task.to_string());
//!     // Succeeds only if nobody wrote since `seen` was taken.
//!     memory.commit(seen.stage(next))?;
//! }
//! assert_eq!(memory.read(|agents, version| (agents.len(), version)), (3, 2));
//! assert_eq!(memory.load()[1], "recruit"); // the high-priority task ran first
//! # Ok::<(), hivekit_lockfree::CommitError<Vec<String>>>(())
//! ```
//!
//! Proposals from many agents: [`detect_conflicts`] finds every pair that touches a key one of them
//! writes in one hashed pass (never pairwise); an [`Aggregator`] takes proposals from any number of
//! threads, settles each conflict group by a [`Resolution`], and merges the accepted payloads with
//! [`Merge`] (on the rayon pool for large rounds):
//!
//! ```
//! use hivekit_lockfree::{Aggregator, Priority, Proposal, ProposalId, Resolution, Sum};
//!
//! let round = Aggregator::new();
//! std::thread::scope(|scope| {
//!     for agent in 0..3_u64 {
//!         let round = &round;
//!         scope.spawn(move || {
//!             // Agents 0 and 1 both want to write `budget`; agent 2 touches only its own key.
//!             let key = if agent < 2 { "budget" } else { "notes" };
//!             let priority = if agent == 1 { Priority::High } else { Priority::Normal };
//!             let proposal = Proposal::new(agent, Sum(10 * (agent + 1)))
//!                 .writes([key])
//!                 .priority(priority);
//!             round.submit(proposal).expect("ids are distinct");
//!         });
//!     }
//! });
//! let outcome = round.finish(Resolution::HighestPriority);
//! assert_eq!(outcome.conflicts.groups.len(), 1);
//! assert!(outcome.is_accepted(ProposalId(1)) && outcome.is_accepted(ProposalId(2)));
//! let reason = outcome.rejection(ProposalId(0)).map(|reason| reason.to_string());
//! assert_eq!(reason.as_deref(), Some("lost to #1 on key \"budget\""));
//! assert_eq!(outcome.merged, Some(Sum(20 + 30)));
//! ```

mod aggregator;
mod conflict;
mod hint;
mod loom;
mod merge;
mod proposal;
mod scheduler;
mod snapshot;

pub use aggregator::{aggregate, Aggregate, Aggregator};
pub use conflict::{
    detect_conflicts, resolve_conflicts, Access, Accesses, ConflictGroup, ConflictKind,
    ConflictReport, RejectReason, Resolution,
};
pub use hint::{LatencyTier, Priority, ResourceCost, SchedulingHint};
pub use merge::{
    merge_all, merge_all_with_threshold, Max, Merge, Min, Sum, MERGE_PROBE,
    PARALLEL_MERGE_THRESHOLD, PARALLEL_MERGE_WORK, PLAIN_MERGE_BYTES,
};
pub use proposal::{Proposal, ProposalError, ProposalId};
pub use scheduler::{Full, PriorityScheduler, SchedulerConfig, SchedulerError};
pub use snapshot::{CommitError, Snapshot, SnapshotCell, Staged};
