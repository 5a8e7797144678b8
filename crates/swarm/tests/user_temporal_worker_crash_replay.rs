//! Temporal's replay-after-worker-crash tests, ported with real processes: a child process (this
//! test binary, re-executed) runs a durable pipeline on the on-disk store and crashes
//! (`abort`, no unwinding, no destructors) at a chosen stage, deterministically; another process
//! picks the run up. As on Temporal, each activity that completed before a crash is never run
//! again, however many workers crash in a row, and a signal the workflow received before the
//! crash is not lost.

mod support;

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hivekit_swarm::checkpoint::{Durable, RedbStore};
use hivekit_swarm::{Pipeline, RunOptions, RunReport, StageContext, StageError};
use support::crash::{child_role, current_thread as runtime, effect, effect_counts, scratch};

const CHILD: &str = "HIVEKIT_TEMPORAL_CRASH_CHILD";
const DIR: &str = "HIVEKIT_TEMPORAL_CRASH_DIR";
const CRASH_AT: &str = "HIVEKIT_TEMPORAL_CRASH_AT";
const STAGES: usize = 6;

fn store_path(dir: &Path) -> PathBuf {
    dir.join("runs.redb")
}

fn log_path(dir: &Path) -> PathBuf {
    dir.join("effects.log")
}

/// Logs `name` as run, then crashes the process if it is the stage to crash at.
fn act(log: &Path, name: &str, crash_at: Option<&str>) {
    effect(log, name);
    if crash_at == Some(name) {
        std::process::abort();
    }
}

/// s0 -> s1 -> ... -> s5, each a durable stage folding its parent's value.
fn chain(log: PathBuf, crash_at: Option<String>) -> Pipeline {
    let mut builder = Pipeline::builder().name("temporal-chain").durable();
    for index in 0..STAGES {
        let (log, crash_at) = (log.clone(), crash_at.clone());
        let name = format!("s{index}");
        let stage = builder
            .stage(name.clone(), move |ctx: StageContext| {
                let (log, crash_at, name) = (log.clone(), crash_at.clone(), name.clone());
                async move {
                    act(&log, &name, crash_at.as_deref());
                    let parent = match index {
                        0 => 1_u64,
                        _ => *ctx.input::<u64>(&format!("s{}", index - 1))?,
                    };
                    Ok::<_, StageError>(parent * 31 + index as u64)
                }
            })
            .durable();
        builder = match index {
            0 => stage.into_builder(),
            _ => stage.after([format!("s{}", index - 1)]).into_builder(),
        };
    }
    builder.build().expect("a valid chain")
}

/// root -> (left, right) -> join; right waits until left's record is in the store, then acts.
fn diamond(log: PathBuf, store: RedbStore, crash_at: Option<String>) -> Pipeline {
    let (root_log, left_log, right_log, join_log) = (log.clone(), log.clone(), log.clone(), log);
    let right_crash = crash_at.clone();
    Pipeline::builder()
        .stage("root", move |_: StageContext| {
            let log = root_log.clone();
            async move {
                effect(&log, "root");
                Ok::<_, StageError>(2_u64)
            }
        })
        .durable()
        .stage("left", move |ctx: StageContext| {
            let log = left_log.clone();
            async move {
                effect(&log, "left");
                Ok::<_, StageError>(*ctx.input::<u64>("root")? * 10)
            }
        })
        .after(["root"])
        .durable()
        .stage("right", move |ctx: StageContext| {
            let (log, store, crash_at) = (right_log.clone(), store.clone(), right_crash.clone());
            async move {
                if crash_at.is_some() {
                    // The crash comes while left's record is in the store and right is in flight.
                    let durable = Durable::new(store);
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
                    while !durable
                        .inspect("diamond")
                        .ok()
                        .and_then(|state| state.stage("left").map(|left| left.succeeded()))
                        .unwrap_or(false)
                    {
                        assert!(
                            tokio::time::Instant::now() < deadline,
                            "left never recorded"
                        );
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
                act(&log, "right", crash_at.as_deref());
                Ok::<_, StageError>(*ctx.input::<u64>("root")? + 1)
            }
        })
        .after(["root"])
        .durable()
        .stage("join", move |ctx: StageContext| {
            let log = join_log.clone();
            async move {
                effect(&log, "join");
                Ok::<_, StageError>(*ctx.input::<u64>("left")? + *ctx.input::<u64>("right")?)
            }
        })
        .after(["left", "right"])
        .durable()
        .build()
        .expect("a valid diamond")
}

/// draft -> approve (waits for a signal: the approver's name) -> publish.
fn review(log: PathBuf, crash_at: Option<String>) -> Pipeline {
    let (draft_log, approve_log) = (log.clone(), log);
    Pipeline::builder()
        .stage("draft", move |_: StageContext| {
            let log = draft_log.clone();
            async move {
                effect(&log, "draft");
                Ok::<_, StageError>(String::from("notes"))
            }
        })
        .durable()
        .stage("approve", move |ctx: StageContext| {
            let (log, crash_at) = (approve_log.clone(), crash_at.clone());
            async move {
                let Some(approver) = ctx.resume_value::<String>()? else {
                    return Err(ctx.interrupt("waiting for an approver"));
                };
                effect(&log, &format!("approve:{approver}"));
                if crash_at.as_deref() == Some("approve") {
                    std::process::abort();
                }
                Ok::<_, StageError>(approver)
            }
        })
        .after(["draft"])
        .durable()
        .stage("publish", |ctx: StageContext| async move {
            Ok::<_, StageError>(format!(
                "{} approved by {}",
                ctx.input::<String>("draft")?,
                ctx.input::<String>("approve")?
            ))
        })
        .after(["approve"])
        .reads(["draft"])
        .durable()
        .build()
        .expect("a valid pipeline")
}

/// What the child processes do; a no-op in the normal test run.
#[test]
fn child_process_entry_point() {
    let Some((mode, dir)) = child_role(CHILD, DIR) else {
        return;
    };
    let crash_at = std::env::var(CRASH_AT).ok();
    let store = RedbStore::open(store_path(&dir)).expect("the store opens");
    let durable = Durable::new(store.clone());
    let log = log_path(&dir);
    let outcome = runtime().block_on(async {
        match mode.as_str() {
            "chain-start" => {
                durable
                    .start(&chain(log, crash_at), "chain", RunOptions::default())
                    .await
            }
            "chain-resume" => {
                durable
                    .resume(&chain(log, crash_at), "chain", RunOptions::default())
                    .await
            }
            "diamond-start" => {
                durable
                    .start(
                        &diamond(log, store.clone(), crash_at),
                        "diamond",
                        RunOptions::default(),
                    )
                    .await
            }
            "review-start" => {
                durable
                    .start(&review(log, crash_at), "review", RunOptions::default())
                    .await
            }
            "review-answer" => {
                durable
                    .resume_with(
                        &review(log, crash_at),
                        "review",
                        "ada",
                        RunOptions::default(),
                    )
                    .await
            }
            other => panic!("unknown child mode {other}"),
        }
    });
    let outcome = outcome.expect("the run starts");
    println!(
        "OUTCOME {}",
        outcome.interrupted_stage().unwrap_or("finished")
    );
}

/// Runs a child in `mode` that must crash.
fn crashes(mode: &str, dir: &Path, crash_at: &str) {
    let status = support::crash::child(CHILD, mode, DIR, dir)
        .env(CRASH_AT, crash_at)
        .status()
        .expect("the child runs");
    assert!(
        status.code().is_none() && status.signal().is_some(),
        "the child in {mode} was to crash at {crash_at}, it exited with {status}"
    );
}

/// Runs a child in `mode` that must exit cleanly; the outcome it prints.
fn exits(mode: &str, dir: &Path) -> String {
    let mut command: Command = support::crash::child(CHILD, mode, DIR, dir);
    let output = command.output().expect("the child runs");
    assert!(output.status.success(), "the child in {mode} exits cleanly");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| {
            line.split_once("OUTCOME ")
                .map(|(_, outcome)| outcome.trim().to_owned())
        })
        .expect("the child prints its outcome")
}

fn counts(dir: &Path) -> HashMap<String, usize> {
    effect_counts(&log_path(dir))
}

fn resumed(report: &RunReport) -> Vec<String> {
    report
        .stages()
        .iter()
        .filter(|stage| stage.resumed)
        .map(|stage| stage.name.to_string())
        .collect()
}

#[test]
fn two_workers_crashing_in_turn_never_rerun_a_stage_that_had_completed() {
    let expected: Vec<u64> = {
        let dir = scratch();
        let report = runtime().block_on(chain(log_path(dir.path()), None).run());
        (0..STAGES)
            .map(|index| *report.artifact::<u64>(&format!("s{index}")).expect("ran"))
            .collect()
    };
    let dir = scratch();
    crashes("chain-start", dir.path(), "s2");
    crashes("chain-resume", dir.path(), "s4");

    let durable = Durable::new(RedbStore::open(store_path(dir.path())).expect("the store opens"));
    let state = durable.inspect("chain").expect("the run is stored");
    let done: Vec<&str> = state.done().map(|stage| stage.name.as_str()).collect();
    assert_eq!(done, ["s0", "s1", "s2", "s3"]);

    let report = runtime()
        .block_on(durable.resume(
            &chain(log_path(dir.path()), None),
            "chain",
            RunOptions::default(),
        ))
        .expect("the run resumes")
        .into_report();
    assert!(report.is_success(), "{report:?}");
    let artifacts: Vec<u64> = (0..STAGES)
        .map(|index| *report.artifact::<u64>(&format!("s{index}")).expect("ran"))
        .collect();
    assert_eq!(
        artifacts, expected,
        "the replayed run computes what one run does"
    );
    assert_eq!(resumed(&report), ["s0", "s1", "s2", "s3"]);
    let ran = counts(dir.path());
    let times: Vec<usize> = (0..STAGES).map(|index| ran[&format!("s{index}")]).collect();
    // s2 and s4 were in flight at a crash: they alone ran twice.
    assert_eq!(times, [1, 1, 2, 1, 2, 1]);
}

#[test]
fn a_parallel_branch_that_completed_is_not_rerun_when_its_sibling_was_in_flight_at_the_crash() {
    let dir = scratch();
    crashes("diamond-start", dir.path(), "right");

    let store = RedbStore::open(store_path(dir.path())).expect("the store opens");
    let durable = Durable::new(store.clone());
    let state = durable.inspect("diamond").expect("the run is stored");
    assert!(state.stage("left").expect("left").is_restored_on_resume());
    assert_eq!(state.stage("right").expect("right").status, None);

    let report = runtime()
        .block_on(durable.resume(
            &diamond(log_path(dir.path()), store, None),
            "diamond",
            RunOptions::default(),
        ))
        .expect("the run resumes")
        .into_report();
    assert!(report.is_success(), "{report:?}");
    assert_eq!(*report.artifact::<u64>("join").expect("joined"), 23);
    assert_eq!(resumed(&report), ["root", "left"]);
    let ran = counts(dir.path());
    assert_eq!(
        (ran["root"], ran["left"], ran["right"], ran["join"]),
        (1, 1, 2, 1)
    );
}

#[test]
fn a_signal_delivered_before_a_worker_crash_is_still_there_for_the_next_worker() {
    let dir = scratch();
    assert_eq!(exits("review-start", dir.path()), "approve");
    crashes("review-answer", dir.path(), "approve");

    let durable = Durable::new(RedbStore::open(store_path(dir.path())).expect("the store opens"));
    let state = durable.inspect("review").expect("the run is stored");
    let approve = state.stage("approve").expect("approve");
    assert_eq!(approve.resume_value_json(), Some("\"ada\""));

    // A plain resume, no value given again: the one sent before the crash is used.
    let report = runtime()
        .block_on(durable.resume(
            &review(log_path(dir.path()), None),
            "review",
            RunOptions::default(),
        ))
        .expect("the run resumes")
        .into_report();
    assert!(report.is_success(), "{report:?}");
    assert_eq!(
        *report.artifact::<String>("publish").expect("published"),
        "notes approved by ada"
    );
    let ran = counts(dir.path());
    assert_eq!(ran["draft"], 1);
    assert_eq!(ran["approve:ada"], 2);
}
