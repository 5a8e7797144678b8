//! Hive coordination: agents, ballots, consensus, conflict resolution and a versioned collective
//! memory.
//!
//! A [`Hive`] holds a shared [`State`] in a versioned [`SnapshotCell`] and a set of [`Agent`]s. One
//! round, [`Hive::decide`], shows every agent a [`Snapshot`] of the state, collects their
//! [`Proposal`]s (each naming the keys it reads and writes), accepts the proposals that conflict with
//! no other, settles each group of conflicting proposals by a [`Ballot`] among the agents (or by
//! priority, arrival order or rejection: [`ResolutionStrategy`]), applies the accepted changes and
//! commits them as a new version. The [`Decision`] says what was accepted, what was rejected and why,
//! how every ballot went, and which agents failed.
//!
//! - Agents are cheap to add (no task each): they are polled by the round itself, and those that
//!   declare a heavy [`Agent::cost`] run as their own tasks across every worker thread. Large hives
//!   (hundreds of agents, thousands of votes) are split into one chunk per worker thread, each
//!   polled by its own task, so that a round uses every core.
//! - A panicking, failing or hanging agent is recorded and the round goes on; every call runs under
//!   the hive's `agent_timeout`.
//! - Agents that keep failing can be quarantined for some rounds or removed
//!   ([`HiveBuilder::supervision`], with a restart hook: [`HiveBuilder::on_restart`]); what was done
//!   is in [`Decision::supervised`] and [`HiveStats`].
//! - An agent votes only on the contests it declares ([`Agent::interest`]: by key or by a predicate),
//!   and may answer all of them in one call ([`Agent::batch_votes`], [`Agent::vote_all`]), as an
//!   agent behind an LLM prompt or a service call would.
//! - A [`Ballot`] is also usable on its own: weighted or not, with a [`ConsensusPolicy`] of
//!   threshold, quorum and tie-break, and early settlement ([`Ballot::is_settled`]).
//! - [`HiveBuilder::max_in_flight`] bounds the agent calls running at once and takes a plain number
//!   (`.max_in_flight(8)`, see [`IntoConcurrencyLimit`]); zero or a negative number is
//!   [`HiveError::MaxInFlight`] when built.
//! - An agent that needs its own hive (to spawn a helper, or read the memory) holds a [`WeakHive`]
//!   from [`Hive::downgrade`], which does not keep the hive and its agents alive.
//!
//! `decide` runs on the caller's tokio runtime, or, outside one, on hivekit's global runtime (as a
//! swarm run does); from synchronous code use `hivekit_runtime::execute(hive.decide())`.
//!
//! The committed versions live in a [`Memory`]: the in-process [`LocalMemory`] by default
//! ([`Hive::builder`]), or any other backend ([`Hive::builder_with_memory`]; `hivekit-etcd` shares
//! one memory between processes).
//!
//! # Examples
//!
//! ```
//! use std::collections::BTreeMap;
//! use hivekit_hive::{Agent, AgentContext, AgentError, Hive, Proposal, ProposalId, Snapshot, State};
//!
//! #[derive(Clone, Default, Debug)]
//! struct Inventory(BTreeMap<String, i64>);
//!
//! impl State for Inventory {
//!     type Key = String;
//!     type Change = (String, i64);
//!     fn apply(&mut self, (item, delta): &(String, i64)) {
//!         *self.0.entry(item.clone()).or_default() += delta;
//!     }
//! }
//!
//! /// Restocks one item.
//! struct Restocker { id: u64, item: &'static str }
//!
//! impl Agent<Inventory> for Restocker {
//!     async fn propose(&self, _ctx: &AgentContext, view: &Snapshot<Inventory>)
//!         -> Result<Option<Proposal<String, (String, i64)>>, AgentError>
//!     {
//!         let have = view.0.get(self.item).copied().unwrap_or(0);
//!         if have >= 10 {
//!             return Ok(None);
//!         }
//!         let change = (self.item.to_string(), 10 - have);
//!         Ok(Some(Proposal::new(ProposalId(self.id), change).writes([self.item.to_string()])))
//!     }
//! }
//!
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! let hive = Hive::builder(Inventory::default()).build()?;
//! hive.spawn(Restocker { id: 1, item: "bolts" });
//! hive.spawn(Restocker { id: 2, item: "nuts" });
//! hive.spawn(Restocker { id: 3, item: "nuts" }); // conflicts with 2: settled by vote
//!
//! let decision = hive.decide().await?;
//! assert_eq!(decision.accepted.len(), 2);
//! assert_eq!(decision.rejected.len(), 1);
//! let inventory = hive.memory().load();
//! assert_eq!((inventory.0["bolts"], inventory.0["nuts"]), (10, 10));
//! assert_eq!(inventory.version(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod agent;
mod ballot;
mod call;
mod context;
mod decision;
mod error;
mod events;
mod hive;
mod hive_memory;
mod memory;
mod policy;
mod roster;
mod round;
#[cfg(feature = "serde")]
mod serde_support;
mod slot_block;
mod state;
mod supervision;

use hivekit_lockfree as lockfree;

pub use crate::agent::{
    Agent, AgentError, AgentId, Candidate, Contest, Interest, ProposalOf, Role, Vote,
};
pub use crate::ballot::{Ballot, BallotError, Electorate, Tally, VoterChoice, VoterRecord};
pub use crate::context::{AgentContext, DecideOptions};
pub use crate::decision::{
    AgentFailure, BallotRecord, Decision, FailureKind, Phase, RejectReason, ResolutionStrategy,
};
pub use crate::error::HiveError;
pub use crate::events::{HiveEvent, HiveEventSink};
pub use crate::hive::{Hive, HiveBuilder, HiveStats, WeakHive, DEFAULT_AGENT_TIMEOUT};
pub use crate::hive_memory::{HistoryEntry, HiveMemory, DEFAULT_HISTORY};
pub use crate::memory::{
    new_decision_id, AcceptedChange, BoxError, CommitRequest, Committed, LocalMemory, Memory,
    MemoryError,
};
pub use crate::policy::{ConsensusPolicy, PolicyError, Threshold, TieBreak};
pub use crate::state::State;
pub use crate::supervision::{RestartHook, Supervised, Supervision, SupervisionAction};
pub use hivekit_lockfree::{
    ConflictGroup, ConflictKind, Priority, Proposal, ProposalError, ProposalId, ResourceCost,
    Snapshot, SnapshotCell,
};
pub use hivekit_runtime::{ConcurrencyLimit, ConcurrencyLimitError, IntoConcurrencyLimit};
pub use tokio_util::sync::CancellationToken;
