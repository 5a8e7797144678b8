//! hivekit-runtime benches: what the sync -> async bridge costs next to the usual alternatives.
//!
//! The question every group answers is "what does calling async code from sync code cost with
//! `hivekit_runtime::execute`, compared with what people otherwise write": a lightweight executor
//! (`pollster`, `futures-executor`), `Handle::block_on` on a shared tokio runtime, or a fresh
//! runtime per call. Raw tokio peers (`handle-block-on`, `tokio`) run on the same global runtime
//! as `hivekit`, so the ratio isolates the bridge.
//!
//! - `execute_baseline/*/ready`: a future ready at once, through each bridge.
//! - `naive_vs_global/*/command`: a small realistic command (awaits, a zero-length sleep, a spawned
//!   task) through `execute` vs building a runtime per call. Note that a zero-length tokio sleep
//!   still waits for the timer's next 1 ms tick, so both figures sit near a millisecond.
//! - `realistic_workloads/*/{cpu,spawn,yields}`: CPU work, a spawned task awaited (`execute_spawn`),
//!   several `yield_now`s; `hivekit` vs `tokio` (`Handle::block_on` doing the same). In `spawn` both
//!   sides run the same future on the same thread and runtime, and `execute` adds only its pending
//!   first poll (nanoseconds). The figure is the runtime's cross-thread wake-ups: the worker woken by
//!   the spawn, a second one tokio wakes to keep a worker searching, the caller's park and unpark,
//!   about four context switches and as many futex calls per call on either side. On a virtual
//!   machine their cost depends on whether the vCPUs are halted (tens of microseconds on a quiet
//!   one, less under load), so the ratio of two back-to-back quick runs is noisy.
//! - `execute_concurrent/*/{1,2,4}`: per-call time of a ready `execute` while N threads call it.
//! - `startup_time/*/first-use`: building the first runtime of a process. Measured in child
//!   processes: each iteration re-executes this binary with `HIVEKIT_RUNTIME_STARTUP_CHILD` naming
//!   the subject, the child times its very first build (`hivekit`: the first `handle()`; peers: a
//!   tokio multi-thread or current-thread `Builder::build`) and prints it. The global runtime can be
//!   built only once per process, so this is the honest way to measure it, and the peers are
//!   measured the same way so that the ratio compares like with like (cold caches, first thread
//!   creation included for all). Process start-up itself is not in the figure.
//! - `memory_pressure/*/{ready,command}`: allocations and bytes per call (recorded for xtask).
//! - `error_handling/*/{would-deadlock,future-err}`: the cost of the error paths.
//!
//! Peers, each the one call a user writes to run a future from sync code:
//!
//! - `pollster`: `pollster::block_on(future)`, as its README shows; written as a user would.
//! - `futures-executor`: `futures::executor::block_on(future)`; written as a user would.
//! - `handle-block-on`, `tokio`: `Handle::block_on` on the same global runtime's handle, fetched
//!   once (what a user who keeps a runtime handle around writes); written as a user would.
//! - `runtime-per-call`, `runtime-per-call-multi-thread`, `runtime-per-call-current-thread`:
//!   `Builder::new_*().enable_all().build()` then `block_on` on every call, the naive pattern this
//!   crate replaces, written as users write it (not a strawman: it is the common first version).
//! - `tokio-multi-thread`, `tokio-current-thread` (`startup_time`): one `Builder::build` with
//!   `enable_all`, the first thing a tokio program does; written as a user would.

use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant};

use benches_common::threads::time_threads;
use benches_common::workload::spin;
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use hivekit_runtime::{execute, try_execute, RuntimeError};
use tokio::runtime::{Builder, Handle};

benches_common::install_counting_allocator!();

/// Set in the child process that measures the global runtime's first use.
const STARTUP_CHILD_ENV: &str = "HIVEKIT_RUNTIME_STARTUP_CHILD";

/// Rounds of `spin` for the `cpu` workload (a few hundred nanoseconds).
const CPU_ROUNDS: u64 = 1_000;
/// `yield_now` calls in the `yields` workload.
const YIELDS: usize = 4;

/// The small realistic command: a few awaits, one zero-length sleep, one spawned task awaited.
async fn command(input: u64) -> u64 {
    let mut state = input;
    for step in 0..3 {
        state = async_step(state, step).await;
    }
    tokio::time::sleep(Duration::ZERO).await;
    let spawned = tokio::spawn(async move { spin(16) ^ state });
    spawned.await.unwrap_or_default()
}

async fn async_step(state: u64, step: u64) -> u64 {
    state.wrapping_mul(31).wrapping_add(step)
}

async fn cpu_work() -> u64 {
    spin(black_box(CPU_ROUNDS))
}

async fn spawn_work() -> u64 {
    tokio::spawn(async { spin(black_box(16)) })
        .await
        .unwrap_or_default()
}

async fn yield_work() -> u64 {
    for _ in 0..YIELDS {
        tokio::task::yield_now().await;
    }
    black_box(1)
}

fn global() -> &'static Handle {
    hivekit_runtime::handle()
}

fn per_call_runtime_multi_thread() -> tokio::runtime::Runtime {
    Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a multi-thread runtime builds")
}

fn per_call_runtime_current_thread() -> tokio::runtime::Runtime {
    Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds")
}

fn execute_baseline(c: &mut Criterion) {
    let handle = global();
    let mut group = c.benchmark_group("execute_baseline");
    group.throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::new("hivekit", "ready"), |b| {
        b.iter(|| execute(async { black_box(1u64) }))
    });
    group.bench_function(BenchmarkId::new("pollster", "ready"), |b| {
        b.iter(|| pollster::block_on(async { black_box(1u64) }))
    });
    group.bench_function(BenchmarkId::new("futures-executor", "ready"), |b| {
        b.iter(|| futures::executor::block_on(async { black_box(1u64) }))
    });
    group.bench_function(BenchmarkId::new("handle-block-on", "ready"), |b| {
        b.iter(|| handle.block_on(async { black_box(1u64) }))
    });
    group.bench_function(
        BenchmarkId::new("runtime-per-call-multi-thread", "ready"),
        |b| b.iter(|| per_call_runtime_multi_thread().block_on(async { black_box(1u64) })),
    );
    group.bench_function(
        BenchmarkId::new("runtime-per-call-current-thread", "ready"),
        |b| b.iter(|| per_call_runtime_current_thread().block_on(async { black_box(1u64) })),
    );
    group.finish();
}

fn naive_vs_global(c: &mut Criterion) {
    global();
    let mut group = c.benchmark_group("naive_vs_global");
    group.throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::new("hivekit", "command"), |b| {
        b.iter(|| execute(command(black_box(7))))
    });
    group.bench_function(BenchmarkId::new("runtime-per-call", "command"), |b| {
        b.iter(|| per_call_runtime_multi_thread().block_on(command(black_box(7))))
    });
    group.finish();
}

fn realistic_workloads(c: &mut Criterion) {
    let handle = global();
    let mut group = c.benchmark_group("realistic_workloads");
    group.throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::new("hivekit", "cpu"), |b| {
        b.iter(|| execute(cpu_work()))
    });
    group.bench_function(BenchmarkId::new("tokio", "cpu"), |b| {
        b.iter(|| handle.block_on(cpu_work()))
    });
    group.bench_function(BenchmarkId::new("hivekit", "spawn"), |b| {
        b.iter(|| execute(spawn_work()))
    });
    group.bench_function(BenchmarkId::new("tokio", "spawn"), |b| {
        b.iter(|| handle.block_on(spawn_work()))
    });
    group.bench_function(BenchmarkId::new("hivekit", "yields"), |b| {
        b.iter(|| execute(yield_work()))
    });
    group.bench_function(BenchmarkId::new("tokio", "yields"), |b| {
        b.iter(|| handle.block_on(yield_work()))
    });
    group.finish();
}

fn execute_concurrent(c: &mut Criterion) {
    let handle = global();
    let mut group = c.benchmark_group("execute_concurrent");
    group.throughput(Throughput::Elements(1));
    for threads in [1usize, 2, 4] {
        group.bench_with_input(
            BenchmarkId::new("hivekit", threads),
            &threads,
            |b, &threads| {
                b.iter_custom(|iterations| {
                    time_threads(threads, iterations, |_, iterations| {
                        for _ in 0..iterations {
                            black_box(execute(async { black_box(1u64) }));
                        }
                    })
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("handle-block-on", threads),
            &threads,
            |b, &threads| {
                b.iter_custom(|iterations| {
                    time_threads(threads, iterations, |_, iterations| {
                        for _ in 0..iterations {
                            black_box(handle.block_on(async { black_box(1u64) }));
                        }
                    })
                })
            },
        );
    }
    group.finish();
}

/// What a startup child builds as the first thing in its process.
const STARTUP_SUBJECTS: [&str; 3] = ["hivekit", "tokio-multi-thread", "tokio-current-thread"];

/// In the child process: time the first runtime build of this process, print nanoseconds, exit.
fn startup_child(subject: &str) {
    let start = Instant::now();
    match subject {
        "tokio-multi-thread" => {
            let runtime = per_call_runtime_multi_thread();
            let elapsed = start.elapsed();
            println!("{}", elapsed.as_nanos());
            // Like the global runtime, never shut down: the process exits.
            std::mem::forget(runtime);
        }
        "tokio-current-thread" => {
            let runtime = per_call_runtime_current_thread();
            let elapsed = start.elapsed();
            println!("{}", elapsed.as_nanos());
            std::mem::forget(runtime);
        }
        _ => {
            black_box(hivekit_runtime::handle());
            let elapsed = start.elapsed();
            println!("{}", elapsed.as_nanos());
        }
    }
}

/// Re-executes this binary as a startup child for `subject` and returns the build time it measured.
fn measure_first_use_in_child(subject: &str) -> Duration {
    let executable = std::env::current_exe().expect("the bench binary knows its path");
    let output = Command::new(executable)
        .env(STARTUP_CHILD_ENV, subject)
        .output()
        .expect("the bench binary can re-execute itself");
    let text = String::from_utf8_lossy(&output.stdout);
    let nanos: u64 = text
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("startup child printed {text:?}"));
    Duration::from_nanos(nanos)
}

fn startup_time(c: &mut Criterion) {
    let mut group = c.benchmark_group("startup_time");
    // Each iteration is a process start (a few milliseconds of wall time for well under one of
    // measured time): keep the iteration count in the low hundreds.
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(10))
        .measurement_time(Duration::from_millis(if benches_common::is_quick() {
            80
        } else {
            200
        }));
    for subject in STARTUP_SUBJECTS {
        group.bench_function(BenchmarkId::new(subject, "first-use"), |b| {
            b.iter_custom(|iterations| {
                (0..iterations)
                    .map(|_| measure_first_use_in_child(subject))
                    .sum()
            })
        });
    }
    group.finish();
}

fn memory_pressure(c: &mut Criterion) {
    let handle = global();
    let mut group = c.benchmark_group("memory_pressure");
    group.throughput(Throughput::Elements(1));
    let group_name = "memory_pressure";
    group.bench_function(BenchmarkId::new("hivekit", "ready"), |b| {
        benches_common::iter_with_allocations(b, (group_name, "hivekit", "ready"), || {
            execute(async { black_box(1u64) })
        })
    });
    group.bench_function(BenchmarkId::new("handle-block-on", "ready"), |b| {
        benches_common::iter_with_allocations(b, (group_name, "handle-block-on", "ready"), || {
            handle.block_on(async { black_box(1u64) })
        })
    });
    group.bench_function(BenchmarkId::new("hivekit", "command"), |b| {
        benches_common::iter_with_allocations(b, (group_name, "hivekit", "command"), || {
            execute(command(black_box(7)))
        })
    });
    group.bench_function(BenchmarkId::new("handle-block-on", "command"), |b| {
        benches_common::iter_with_allocations(b, (group_name, "handle-block-on", "command"), || {
            handle.block_on(command(black_box(7)))
        })
    });
    group.finish();
}

/// What a command returns when it fails.
#[derive(Debug)]
struct CommandFailed {
    code: u32,
}

async fn failing_command(code: u32) -> Result<u64, CommandFailed> {
    Err(CommandFailed { code })
}

fn error_handling(c: &mut Criterion) {
    let handle = global();
    let mut group = c.benchmark_group("error_handling");
    group.throughput(Throughput::Elements(1));
    // Refused inside a current-thread runtime, on a thread that never ran `execute` (the
    // `#[tokio::test]` / `#[tokio::main(flavor = "current_thread")]` case): the call is refused
    // before the future is polled. tokio's peer (`Handle::block_on` there) panics instead of
    // returning an error, so there is no meaningful peer for this one.
    let local = per_call_runtime_current_thread();
    let refuse_on_fresh_thread = |iterations: u64| {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    local.block_on(async {
                        let refused = try_execute(async { black_box(1u64) });
                        assert!(matches!(refused, Err(RuntimeError::WouldDeadlock)));
                        let start = Instant::now();
                        for _ in 0..iterations {
                            black_box(try_execute(async { black_box(1u64) }).is_err());
                        }
                        start.elapsed()
                    })
                })
                .join()
                .expect("the refusing thread does not panic")
        })
    };
    group.bench_function(BenchmarkId::new("hivekit", "would-deadlock"), |b| {
        b.iter_custom(refuse_on_fresh_thread)
    });
    group.bench_function(BenchmarkId::new("hivekit", "future-err"), |b| {
        b.iter(|| execute(failing_command(black_box(3))).map_err(|error| error.code))
    });
    group.bench_function(BenchmarkId::new("handle-block-on", "future-err"), |b| {
        b.iter(|| {
            handle
                .block_on(failing_command(black_box(3)))
                .map_err(|error| error.code)
        })
    });
    group.finish();
}

criterion::criterion_group! {
    name = benches;
    config = benches_common::criterion();
    targets = execute_baseline, naive_vs_global, realistic_workloads, execute_concurrent,
        startup_time, memory_pressure, error_handling
}

// `criterion_main!` plus one thing: a re-executed child measures the first runtime build.
fn main() {
    if let Ok(subject) = std::env::var(STARTUP_CHILD_ENV) {
        startup_child(&subject);
        return;
    }
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
