//! hivekit-swarm durable runs: what checkpointing costs.
//!
//! `checkpoint_overhead`, all on a 100-stage chain whose stages return a `u64` declared durable;
//! ids are `checkpoint_overhead/<function>/<parameter>`:
//!
//! - `no-checkpoints/100`: the plain run, no checkpoints (the peer the others add to).
//! - `hivekit-memory/100`, `hivekit-redb-tmpfs/100`, `hivekit-redb-disk/100`: the same run started
//!   durably (a header, then one record per stage) on the in-memory store, on redb in /dev/shm, and
//!   on redb on disk (the system temp dir). Each iteration deletes the previous run first, outside
//!   the measurement.
//! - `store-memory/100`, `store-redb-tmpfs/100`, `store-redb-disk/100`: the floor, each store's own
//!   cost for the same writes (one header, 100 records of the same size), no pipeline. Targets:
//!   checkpointing adds at most 1.2x the store's own write cost; the in-memory store adds under
//!   1 us per stage (`hivekit-memory/100` minus `no-checkpoints/100`, under 100 us).
//! - `hivekit-resume-redb-tmpfs/1k-999-finished`: resuming a 1k-stage run whose first 999 stages
//!   are recorded (the last fails again each time, so the checkpoint stays the same). Target:
//!   under 10 ms.
//!
//! The peers are what a user would measure first: the same run without checkpoints, and the
//! store's own writes of records of the same size.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use hivekit_swarm::checkpoint::{CheckpointStore, Durable, MemoryStore, RedbStore};
use hivekit_swarm::{Pipeline, RunOptions, StageContext, StageError};
use tokio::runtime::Runtime;

benches_common::install_counting_allocator!();

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("the bench runtime starts")
}

/// A chain of `len` durable stages; the last fails when `fail_last` is set.
fn chain(len: usize, fail_last: bool) -> Pipeline {
    let mut builder = Pipeline::builder().name("bench");
    for index in 0..len {
        let stage = builder
            .stage(format!("s{index}"), move |ctx: StageContext| async move {
                if fail_last && index + 1 == len {
                    return Err(StageError::permanent("fails on purpose"));
                }
                let parent = match index {
                    0 => 1,
                    _ => *ctx.input::<u64>(&format!("s{}", index - 1))?,
                };
                Ok::<_, StageError>(parent.wrapping_mul(31).wrapping_add(index as u64))
            })
            .durable();
        builder = match index {
            0 => stage.into_builder(),
            _ => stage.after([format!("s{}", index - 1)]).into_builder(),
        };
    }
    builder.build().expect("a valid chain")
}

fn dir_in(base: &Path) -> tempfile::TempDir {
    tempfile::tempdir_in(base).expect("a scratch directory")
}

fn tmpfs() -> PathBuf {
    PathBuf::from("/dev/shm")
}

/// A record the size of a checkpointed chain stage's.
const RECORD: &[u8] = br#"{"status":{"status":"succeeded","attempts":1},"artifact":1234567890123}"#;

fn checkpoint_overhead(c: &mut Criterion) {
    let runtime = runtime();
    let pipeline = chain(100, false);
    let mut group = c.benchmark_group("checkpoint_overhead");
    group.bench_function("no-checkpoints/100", |b| {
        b.to_async(&runtime).iter(|| pipeline.run())
    });

    let tmpfs_dir = dir_in(&tmpfs());
    let disk_dir = dir_in(&std::env::temp_dir());
    let stores: Vec<(&str, Arc<dyn CheckpointStore>)> = vec![
        ("memory", Arc::new(MemoryStore::new())),
        (
            "redb-tmpfs",
            Arc::new(RedbStore::open(tmpfs_dir.path().join("runs.redb")).expect("store")),
        ),
        (
            "redb-disk",
            Arc::new(RedbStore::open(disk_dir.path().join("runs.redb")).expect("store")),
        ),
    ];
    for (name, store) in &stores {
        let durable = Durable::new(store.clone());
        group.bench_function(format!("hivekit-{name}/100"), |b| {
            b.to_async(&runtime).iter_batched(
                || {
                    durable.delete("bench").expect("the store deletes");
                },
                |()| async {
                    durable
                        .start(&pipeline, "bench", RunOptions::default())
                        .await
                        .expect("the run starts")
                },
                BatchSize::PerIteration,
            );
        });
        group.bench_function(format!("store-{name}/100"), |b| {
            b.iter_batched(
                || {
                    store.delete_run("floor").expect("the store deletes");
                },
                |()| {
                    store.create_run("floor", 1, RECORD).expect("created");
                    for index in 0..100 {
                        store
                            .put_record("floor", &format!("s:s{index}"), RECORD)
                            .expect("written");
                    }
                },
                BatchSize::PerIteration,
            );
        });
    }

    let resume_dir = dir_in(&tmpfs());
    let store = RedbStore::open(resume_dir.path().join("runs.redb")).expect("store");
    let durable = Durable::new(store);
    let long = chain(1_000, true);
    let first = runtime
        .block_on(durable.start(&long, "long", RunOptions::default()))
        .expect("the run starts");
    assert_eq!(
        first
            .report()
            .stages()
            .iter()
            .filter(|stage| stage.status.is_success())
            .count(),
        999
    );
    group.bench_function("hivekit-resume-redb-tmpfs/1k-999-finished", |b| {
        b.to_async(&runtime).iter(|| async {
            durable
                .resume(&long, "long", RunOptions::default())
                .await
                .expect("the run resumes")
        });
    });
    group.finish();
}

criterion_group! { name = benches; config = benches_common::criterion(); targets = checkpoint_overhead }
criterion_main!(benches);
