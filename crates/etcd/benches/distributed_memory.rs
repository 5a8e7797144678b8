//! The distributed memory suite: what sharing a hive's memory through etcd costs.
//!
//! The bench starts its own single-member etcd on loopback (the Debian `etcd-server` package), its
//! data directory on tmpfs (`/dev/shm`) when there is one: it prints where, and records
//! `etcd_data_on_tmpfs` (1 or 0) beside the `hivekit-etcd/round` figures.
//!
//! One group, `distributed_memory`, so that each figure's peers are read in the same run:
//!
//! - `round`: one `decide` round of a 10-agent hive whose memory is etcd (`hivekit-etcd`),
//!   beside the same round in memory (`hivekit-local`) and beside a bare etcd transaction of the
//!   same size (`etcd-txn`: the same compare, the same keys and values; the floor, since a round
//!   cannot commit faster than one transaction).
//! - `commits-1`, `commits-4`: rounds committed per second by 1 or 4 hives sharing one etcd memory, each
//!   with its own connection (in one process: the bench cannot fork), contending for every version.
//! - `follow`: from sending a commit in one memory to seeing it in another (`hivekit-etcd`),
//!   beside etcd's own watch latency measured the same way (`etcd-watch`: a transaction of the same
//!   size on one connection to its events on another).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use benches_common::{record_extra, BenchKey};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use etcd_client::{Compare, CompareOp, Txn, TxnOp, WatchOptions};
use hivekit_etcd::testing::{data_root, EtcdServer};
use hivekit_etcd::{EtcdConfig, EtcdMemory};
use hivekit_hive::{
    Agent, AgentContext, AgentError, AgentId, CommitRequest, Hive, Memory, Proposal, ProposalId,
    ProposalOf, Snapshot, State,
};
use serde::{Deserialize, Serialize};
use tokio::runtime::Runtime;

/// A small keyed board: a round's cost is the coordination, not the copy.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Board {
    cells: BTreeMap<u64, u64>,
}

impl State for Board {
    type Key = u64;
    type Change = (u64, u64);

    fn apply(&mut self, (cell, value): &(u64, u64)) {
        self.cells.insert(*cell, *value);
    }
}

/// Writes its own cell every round (no conflicts: every proposal is accepted).
struct Painter {
    cell: u64,
}

impl Agent<Board> for Painter {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Board>,
    ) -> Result<Option<ProposalOf<Board>>, AgentError> {
        Ok(Some(
            ctx.proposal((self.cell, ctx.round())).writes([self.cell]),
        ))
    }
}

const AGENTS: u64 = 10;

fn prefix() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "/hivekit-bench/{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn hive_on(memory: impl Memory<Board>) -> Hive<Board> {
    let hive = Hive::builder_with_memory(memory)
        .build()
        .expect("a hive builds");
    for cell in 0..AGENTS {
        hive.spawn(Painter { cell });
    }
    hive
}

struct Setup {
    runtime: Runtime,
    server: EtcdServer,
}

impl Setup {
    fn config(&self) -> EtcdConfig {
        EtcdConfig::new([self.server.endpoint()], &prefix())
    }

    fn etcd_hive(&self, config: EtcdConfig) -> Hive<Board> {
        let memory = self
            .runtime
            .block_on(EtcdMemory::<Board>::open(config, Board::default()))
            .expect("the memory opens");
        hive_on(memory)
    }
}

fn setup() -> Setup {
    let server = EtcdServer::start().unwrap_or_else(|error| panic!("{error}"));
    let tmpfs = data_root().starts_with("/dev/shm");
    eprintln!(
        "distributed_memory: etcd data dir {} ({})",
        server.data_dir().display(),
        if tmpfs { "tmpfs" } else { "disk" }
    );
    record_extra(
        &BenchKey::from(("distributed_memory", "hivekit-etcd", "round")),
        "etcd_data_on_tmpfs",
        f64::from(u8::from(tmpfs)),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime builds");
    Setup { runtime, server }
}

type Group<'a> = criterion::BenchmarkGroup<'a, criterion::measurement::WallTime>;

/// Measures a round three ways; returns the sizes of the values a round's transaction writes.
fn round(group: &mut Group<'_>, setup: &Setup) -> Vec<usize> {
    group.throughput(Throughput::Elements(1));
    let etcd_hive = setup.etcd_hive(setup.config());
    group.bench_function(BenchmarkId::new("hivekit-etcd", "round"), |b| {
        b.to_async(&setup.runtime)
            .iter(|| async { etcd_hive.decide().await.expect("the round commits") })
    });

    let local_hive = hive_on(hivekit_hive::LocalMemory::new(Board::default()));
    group.bench_function(BenchmarkId::new("hivekit-local", "round"), |b| {
        b.to_async(&setup.runtime)
            .iter(|| async { local_hive.decide().await.expect("the round commits") })
    });

    // The same transaction a round sends, without hivekit: read back what the last round wrote
    // (head, history entry, decision key, state) and write values of the same sizes under the
    // same kind of compare, deleting one key as a round trims the entry that falls out of the
    // history's window.
    let config = setup.config();
    let prefix = config.prefix().to_string();
    let mut client = setup
        .runtime
        .block_on(config.connect())
        .expect("etcd answers");
    let memory = etcd_hive
        .memory()
        .downcast_ref::<EtcdMemory<Board>>()
        .expect("the hive's memory is etcd");
    let sizes = setup.runtime.block_on(async {
        // One round, so that there is a history entry to measure even when a filter skipped the
        // round bench above.
        etcd_hive.decide().await.expect("the round commits");
        let source = memory.config().prefix().to_string();
        let mut sizes = Vec::new();
        for key in ["head", "state/value"] {
            let response = client
                .get(format!("{source}{key}"), None)
                .await
                .expect("etcd answers");
            sizes.push(response.kvs()[0].value().len());
        }
        let history = memory
            .history(memory.version(), memory.version())
            .await
            .expect("history reads");
        sizes.push(serde_json::to_vec(&history[0]).map_or(800, |entry| entry.len()));
        sizes.push(4);
        sizes
    });
    let head = format!("{prefix}head");
    let revision = Arc::new(AtomicU64::new(0));
    group.bench_function(BenchmarkId::new("etcd-txn", "round"), |b| {
        b.to_async(&setup.runtime).iter(|| {
            let mut client = client.clone();
            let head = head.clone();
            let prefix = prefix.clone();
            let sizes = sizes.clone();
            let revision = Arc::clone(&revision);
            async move {
                let compare = revision.load(Ordering::Relaxed) as i64;
                let mut operations: Vec<TxnOp> = sizes
                    .iter()
                    .enumerate()
                    .map(|(index, size)| {
                        let key = if index == 0 {
                            head.clone()
                        } else {
                            format!("{prefix}k{index}")
                        };
                        TxnOp::put(key, vec![b'x'; *size], None)
                    })
                    .collect();
                operations.push(TxnOp::delete(format!("{prefix}trimmed"), None));
                let txn = Txn::new()
                    .when([Compare::mod_revision(head, CompareOp::Equal, compare)])
                    .and_then(operations);
                let response = client.txn(txn).await.expect("the transaction runs");
                assert!(response.succeeded(), "the bare transaction never conflicts");
                let written = response.header().map_or(0, |header| header.revision());
                revision.store(written as u64, Ordering::Relaxed);
            }
        })
    });
    sizes
}

fn commits(group: &mut Group<'_>, setup: &Setup) {
    const ROUNDS: u64 = 16;
    group.throughput(Throughput::Elements(ROUNDS));
    for &hives in &[1_u64, 4] {
        let config = setup.config();
        let shared: Vec<Hive<Board>> = (0..hives)
            .map(|_| setup.etcd_hive(config.clone()))
            .collect();
        let id = BenchmarkId::new("hivekit-etcd", format!("commits-{hives}"));
        group.bench_with_input(id, &hives, |b, _| {
            b.to_async(&setup.runtime).iter(|| {
                let shared = shared.clone();
                async move {
                    let streams: Vec<_> = shared
                        .into_iter()
                        .map(|hive| {
                            tokio::spawn(async move {
                                for _ in 0..ROUNDS / hives {
                                    hive.decide().await.expect("the round commits");
                                }
                            })
                        })
                        .collect();
                    for stream in streams {
                        stream.await.expect("no round panics");
                    }
                }
            })
        });
    }
}

fn follow(group: &mut Group<'_>, setup: &Setup, sizes: &[usize]) {
    group.throughput(Throughput::Elements(1));
    let config = setup.config();
    let (writer, reader) = setup.runtime.block_on(async {
        let writer = EtcdMemory::<Board>::open(config.clone(), Board::default())
            .await
            .expect("the memory opens");
        let reader = EtcdMemory::<Board>::open(config.clone(), Board::default())
            .await
            .expect("the memory opens");
        (writer, reader)
    });
    let proposal: ProposalOf<Board> = Proposal::new(ProposalId(1), (1, 1)).writes([1]);
    let decision = AtomicU64::new(1);
    group.bench_function(BenchmarkId::new("hivekit-etcd", "follow"), |b| {
        b.to_async(&setup.runtime).iter_custom(|iters| {
            let (writer, reader, proposal, decision) = (&writer, &reader, &proposal, &decision);
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let base = writer.snapshot().version();
                    let accepted = [hivekit_hive::AcceptedChange {
                        proposal,
                        proposer: Some(AgentId(1)),
                    }];
                    let request = CommitRequest {
                        decision_id: u128::from(decision.fetch_add(1, Ordering::Relaxed)),
                        round: base + 1,
                        base,
                        accepted: &accepted,
                    };
                    let started = Instant::now();
                    let (committed, _) = tokio::join!(writer.commit(request), async {
                        reader.changed(base).await.expect("the reader follows")
                    });
                    total += started.elapsed();
                    committed.expect("the commit lands");
                }
                total
            }
        })
    });

    // The same write a commit sends (a transaction putting values of the same sizes), seen by a
    // plain watch on another connection.
    let watched = format!("{}raw/", config.prefix());
    let (putter, events) = setup.runtime.block_on(async {
        let putter = config.connect().await.expect("etcd answers");
        let watcher = config.connect().await.expect("etcd answers");
        let events = watcher
            .watch_client()
            .watch(watched.clone(), Some(WatchOptions::new().with_prefix()))
            .await
            .expect("the watch starts");
        // The watcher's client is kept beside its stream: dropping it would end the watch.
        (putter, Arc::new(tokio::sync::Mutex::new((events, watcher))))
    });
    let sizes = sizes.to_vec();
    group.bench_function(BenchmarkId::new("etcd-watch", "follow"), |b| {
        b.to_async(&setup.runtime).iter_custom(|iters| {
            let mut putter = putter.clone();
            let events = Arc::clone(&events);
            let watched = watched.clone();
            let sizes = sizes.clone();
            async move {
                let mut events = events.lock().await;
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let operations: Vec<TxnOp> = sizes
                        .iter()
                        .enumerate()
                        .map(|(index, size)| {
                            TxnOp::put(format!("{watched}k{index}"), vec![b'x'; *size], None)
                        })
                        .collect();
                    let txn = Txn::new().and_then(operations);
                    let started = Instant::now();
                    let (written, ()) = tokio::join!(putter.txn(txn), async {
                        loop {
                            let message = events.0.message().await.expect("the watch runs");
                            if message.is_some_and(|message| !message.events().is_empty()) {
                                break;
                            }
                        }
                    });
                    total += started.elapsed();
                    written.expect("the transaction lands");
                }
                total
            }
        })
    });
}

fn distributed_memory(c: &mut Criterion) {
    let setup = setup();
    let mut group = c.benchmark_group("distributed_memory");
    let sizes = round(&mut group, &setup);
    commits(&mut group, &setup);
    follow(&mut group, &setup, &sizes);
    group.finish();
}

criterion_group! { name = benches; config = benches_common::criterion(); targets = distributed_memory }
criterion_main!(benches);
