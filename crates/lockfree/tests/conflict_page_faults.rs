//! A probe, not a test: minor page faults per `detect_conflicts` call on the bench rows whose slow
//! rounds were page faults (`conflict_detection/hivekit/100k`, `conflict_detection_skewed/*/u64-10k`,
//! `conflict_detection_width/*/2x65536`).
//!
//! The parallel path's scratch used to be allocated on the rayon pool's threads and freed every
//! call, and glibc handed those pages back (trimming the threads' arenas), so every call faulted
//! them in again. The probe prints the process's minor faults (the `minflt` field of
//! `/proc/self/stat`, as `getrusage(RUSAGE_SELF).ru_minflt`) per call, after a few warm-up calls;
//! the input and report are built outside the counted calls only as far as the report's own
//! allocations allow (the report is dropped inside, as a caller would).
//!
//! Ignored (it times nothing and asserts nothing): run it on a release build with
//! `cargo test --release -p hivekit-lockfree --test conflict_page_faults -- --ignored --nocapture`.

use benches_common::proposals::{proposal_specs, ProposalSpec};
use benches_common::skewed::{same_keys_specs, skewed_specs};
use benches_common::workload::DEFAULT_SEED;
use hivekit_lockfree::{detect_conflicts, Proposal, ProposalId};

/// Calls counted per row, after [`WARM_UP`] uncounted ones.
const CALLS: u64 = 50;

/// Calls before counting: the first calls fault in the pool threads' stacks and arenas.
const WARM_UP: usize = 5;

fn to_proposal(spec: ProposalSpec) -> Proposal<u64, ()> {
    Proposal::new(ProposalId(spec.id), ())
        .writes(spec.writes)
        .reads(spec.reads)
}

/// The process's minor page faults so far, or `None` off Linux.
fn minor_faults() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis are
    // state (3), ppid, pgrp, session, tty_nr, tpgid, flags, minflt (10).
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(7)?.parse().ok()
}

/// Minor faults per call of `detect_conflicts` on `input`, after warming up.
fn faults_per_call(input: &[Proposal<u64, ()>]) -> Option<f64> {
    for _ in 0..WARM_UP {
        drop(std::hint::black_box(detect_conflicts(input)));
    }
    let before = minor_faults()?;
    for _ in 0..CALLS {
        drop(std::hint::black_box(detect_conflicts(input)));
    }
    let after = minor_faults()?;
    Some((after - before) as f64 / CALLS as f64)
}

#[test]
#[ignore = "a probe that prints page faults per call; run with --ignored --nocapture"]
fn page_faults_per_call() {
    let rows: [(&str, Vec<Proposal<u64, ()>>); 4] = [
        (
            "conflict_detection/hivekit/100k",
            proposal_specs(100_000, 4, 0.1, DEFAULT_SEED)
                .into_iter()
                .map(to_proposal)
                .collect(),
        ),
        (
            "conflict_detection_skewed/hivekit/u64-10k",
            skewed_specs(10_000, DEFAULT_SEED)
                .into_iter()
                .map(to_proposal)
                .collect(),
        ),
        (
            "conflict_detection_skewed/hivekit/u64-100k",
            skewed_specs(100_000, DEFAULT_SEED)
                .into_iter()
                .map(to_proposal)
                .collect(),
        ),
        (
            "conflict_detection_width/hivekit/2x65536",
            same_keys_specs(2, 65_536)
                .into_iter()
                .map(to_proposal)
                .collect(),
        ),
    ];
    // `HIVEKIT_PROBE_ROW=2x65536` probes the rows whose name holds that text only.
    let only = std::env::var("HIVEKIT_PROBE_ROW").unwrap_or_default();
    // Twice round: what a row faults depends on what ran before it (glibc's thresholds, the
    // arenas' tops), as in the criterion suite, where rows of every size follow one another.
    for round in 1..=2 {
        for (row, input) in &rows {
            if !row.contains(&only) {
                continue;
            }
            match faults_per_call(input) {
                Some(faults) => {
                    println!("round {round}, {row}: {faults:.1} minor page faults per call")
                }
                None => println!("{row}: no /proc/self/stat here"),
            }
        }
    }
}
