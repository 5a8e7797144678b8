//! Project automation for hivekit, run as `cargo xtask <command>` (alias in `.cargo/config.toml`).
//!
//! - `cargo xtask bench`: discovers every workspace crate with bench targets, builds the suites once,
//!   runs them with one progress line per benchmark, and prints one table (median, confidence
//!   interval, throughput, ratio against peers, allocations per op), the performance targets, and,
//!   against a saved baseline, a change and a verdict that accounts for noise.
//! - `cargo xtask bench --instructions`: instruction counts (gungraun on callgrind) of the
//!   single-thread hot paths and their peers, gated at +2% against `docs/instructions.json`.
//! - `cargo xtask test`: installs etcd and protoc when a package needs them and they are missing,
//!   then `cargo test --workspace --locked`.
//! - `cargo xtask ci`: everything CI checks, in order (`.ci/run` calls it): see [`ci::steps`].
//! - `cargo xtask aa-test`: five A/A comparisons must flag nothing and a planted 25% slowdown must
//!   be caught: the wall-clock regression verdict tested on this machine (see [`aa_test`]).
//!
//! Exit codes: 0 success, 1 a failure (build, suite, regression, ci step), 2 bad input (arguments,
//! unknown crate, bad regex, missing baseline, malformed targets file), 3 `--fail-on-regression`
//! refused to judge because the load went above the core count during the run.
//!
//! See docs/BENCHMARKS.md for how to run the benches and read the results.

mod aa_test;
mod args;
mod baseline;
mod bench;
mod binaries;
mod charts;
mod ci;
mod criterion;
mod error;
mod extras;
mod instruction_counts;
mod instruction_filter;
mod instructions;
mod machine;
mod markdown;
mod paired;
mod plan;
mod process;
mod provision;
mod ratio;
mod report;
mod results;
mod rounds;
mod table;
mod targets;
mod units;
mod verdict;
mod workspace;

use std::process::ExitCode;

use crate::args::{Command, USAGE};
use crate::error::XtaskError;

fn main() -> ExitCode {
    // Lossy, so that a non-UTF-8 argument is reported as unknown instead of panicking.
    let raw_args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
    let outcome =
        args::parse(&raw_args)
            .map_err(XtaskError::from)
            .and_then(|command| match command {
                Command::Help => {
                    println!("{USAGE}");
                    Ok(())
                }
                Command::Bench(bench_args) if bench_args.instructions => {
                    instructions::run(&bench_args)
                }
                Command::Bench(bench_args) => bench::run_bench(&bench_args, &raw_args),
                Command::Test(test_args) => ci::run_test(&test_args),
                Command::Ci(ci_args) => ci::run_ci(&ci_args),
                Command::AaTest(ci_args) => aa_test::run(&ci_args),
            });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            if matches!(error, XtaskError::Usage(_)) {
                eprintln!("\n{USAGE}");
            }
            ExitCode::from(error.exit_code())
        }
    }
}
