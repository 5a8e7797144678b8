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
//! | `reviewer_agents` | hivekit-hive | reviewers editing a shared config: a supermajority vote, a hung and a failing reviewer, the decision as text and JSON |
//! | `pipeline` | hivekit-swarm | a six-stage pipeline with a branch, a flaky stage and a fan-out |
//! | `code_review` | hivekit-swarm | a pipeline run per pull request: its input, a fan-out, `retry_on`, a router, a critique loop, progress |
//! | `durable_resume` | hivekit-swarm | a durable run killed part way (SIGKILL) and resumed from its checkpoint |
//!
//! This package is not published. It depends on the library crates and on what the examples
//! themselves use, never on the benches' peers (nor on the etcd client: no `protoc` needed), so
//! building an example from a fresh clone compiles the library crates and their dependencies only.

pub mod packs;
