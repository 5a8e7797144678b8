//! A hive's collective memory, history, membership and leader election on etcd, for hives that
//! span processes and machines.
//!
//! - [`EtcdMemory`] implements the hive's [`Memory`](hivekit_hive::Memory) seam on an etcd cluster:
//!   every process that opens the same prefix shares one gapless history of versions. A commit is
//!   one etcd transaction; reads stay local and lock-free, following commits made elsewhere through
//!   a watch. What etcd holds per memory stays bounded: the newest
//!   [`history`](EtcdConfig::history) versions, and the decision keys that make a resent commit
//!   land at most once, which expire with a lease after the
//!   [decision window](EtcdConfig::decision_window) (ten minutes by default). They are bounded by
//!   time rather than trimmed with the history because whether a lost commit may still be resent
//!   is a matter of time (its commit timeout), not of how many versions others committed since.
//! - [`Membership`] registers a process's agents under a lease with keep-alive, so that a process
//!   that dies drops out within the lease's TTL, and lists the agents of every process.
//! - [`Election`] elects one process (candidates queued in campaign order, in the key layout of
//!   etcd's election API) for work that must run in one place at a time; a leader that loses its
//!   lease, or whose process stalls past its TTL, stops saying it leads within the TTL. A leader
//!   may [proclaim](Leadership::proclaim) a new value, and a [`LeaderObserver`] follows who leads.
//!
//! The in-process [`LocalMemory`](hivekit_hive::LocalMemory) stays the default; nothing changes for
//! hives that do not ask for etcd. The key layout, the commit protocol and what happens on each
//! fault are described in `docs/ARCHITECTURE.md`.

mod clients;
mod config;
mod election;
mod error;
mod layout;
mod leader_observer;
mod lease;
mod membership;
mod memory;
#[cfg(feature = "testing")]
pub mod testing;

pub use crate::config::{
    EtcdConfig, DEFAULT_DECISION_WINDOW, DEFAULT_HISTORY, DEFAULT_MAX_REQUEST_BYTES,
    DEFAULT_MAX_TXN_OPS,
};
pub use crate::election::{Election, Leadership};
pub use crate::error::EtcdError;
pub use crate::layout::{HistoryChange, HistoryEntry, Keyed, KeyedState, Layout, Whole};
pub use crate::leader_observer::LeaderObserver;
pub use crate::membership::{Member, Membership};
pub use crate::memory::{EtcdMemory, EtcdMemoryStats};
pub use etcd_client::Client;
