//! Instruction counts of hivekit-runtime's single-thread hot path and its single-thread peers, for
//! `cargo xtask bench --instructions` (gungraun on Valgrind's callgrind).
//!
//! - `execute_ready/*/ops_1k`: 1000 calls of `hivekit_runtime::execute` on a future that is ready at
//!   once (its fast path: one poll on the calling thread), against `futures::executor::block_on` and
//!   `pollster::block_on`. The global runtime is built in the `#[bench]` argument, outside the
//!   measurement, as every process but the first call sees it.

// gungraun's macros generate a public module per benchmark and group, without docs.
#![allow(missing_docs)]

use std::hint::black_box;

use gungraun::{library_benchmark, library_benchmark_group, main};

/// Calls per row: enough that the call into the row is noise.
const OPS: u64 = 1_000;

/// Builds the global runtime and enters the fast path once, so the rows measure the steady state.
fn warmed_up() -> u64 {
    hivekit_runtime::execute(async { 1 })
}

#[library_benchmark]
#[bench::ops_1k(warmed_up())]
fn hivekit_execute(seed: u64) -> u64 {
    let mut sum = seed;
    for round in 0..OPS {
        sum ^= hivekit_runtime::execute(async move { black_box(round) });
    }
    sum
}

#[library_benchmark]
#[bench::ops_1k(warmed_up())]
fn futures_block_on(seed: u64) -> u64 {
    let mut sum = seed;
    for round in 0..OPS {
        sum ^= futures::executor::block_on(async move { black_box(round) });
    }
    sum
}

#[library_benchmark]
#[bench::ops_1k(warmed_up())]
fn pollster_block_on(seed: u64) -> u64 {
    let mut sum = seed;
    for round in 0..OPS {
        sum ^= pollster::block_on(async move { black_box(round) });
    }
    sum
}

library_benchmark_group!(
    name = execute_ready,
    benchmarks = [hivekit_execute, futures_block_on, pollster_block_on]
);

main!(library_benchmark_groups = execute_ready);
