//! Runnable examples of every hivekit crate, and the workloads they share with the benches.
//!
//! Run one with `cargo run -p hivekit-examples --example <name>`:
//!
//! | example | crate | what it shows |
//! |---|---|---|
//! | `bridge` | hivekit-runtime | sync code calling async code through `execute` |
//! | `shared_memory` | hivekit-lockfree | workers sharing a `SnapshotCell` and a `PriorityScheduler` |
//! | `aggregate_round` | hivekit-lockfree | concurrent submission, conflicts, resolution, merge |
//! | `resolve_packs` | hivekit-hive | agents resolve ontology packs by proposal and vote ([`packs`]) |
//! | `pipeline` | hivekit-swarm | a six-stage pipeline with a branch, a flaky stage and a fan-out |
//!
//! This package is not published. It depends on the library crates and on what the examples
//! themselves use, never on the benches' peers, so an example builds in seconds from a fresh clone.

pub mod packs;
