#![doc = include_str!("../README.md")]
// The crate docs are the repository's README (a link to it sits beside this crate's manifest), so
// its quick-start snippets are compiled and run as doc tests and cannot drift from the API.

/// The process-wide tokio runtime and the sync -> async bridge: the `hivekit-runtime` crate.
#[cfg(feature = "runtime")]
pub use hivekit_runtime as runtime;

/// Snapshot cell, priority scheduler, conflict detection and aggregation: the `hivekit-lockfree`
/// crate.
#[cfg(feature = "lockfree")]
pub use hivekit_lockfree as lockfree;

/// Agents, ballots, consensus and the collective memory: the `hivekit-hive` crate.
#[cfg(feature = "hive")]
pub use hivekit_hive as hive;

/// DAG pipelines of async stages: the `hivekit-swarm` crate.
#[cfg(feature = "swarm")]
pub use hivekit_swarm as swarm;

/// The hive's collective memory, history, membership and election on etcd: the `hivekit-etcd`
/// crate.
#[cfg(feature = "etcd")]
pub use hivekit_etcd as etcd;
