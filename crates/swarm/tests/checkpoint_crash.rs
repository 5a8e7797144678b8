//! Real processes, real crashes: a child process (this test binary, re-executed) runs a durable
//! pipeline on the on-disk store and is SIGKILLed; the run resumes where it stopped.
//!
//! The store lives on /dev/shm when there is one (see `support::crash`).

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hivekit_swarm::checkpoint::{CheckpointStore, Durable, RedbStore};
use hivekit_swarm::{Pipeline, RunOptions, StageContext, StageError};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use support::crash::{
    child_role, current_thread as runtime, effect, effect_lines as effects, scratch,
};

const CHILD: &str = "HIVEKIT_CHECKPOINT_CHILD";
const DIR: &str = "HIVEKIT_CHECKPOINT_DIR";
const STAGES: usize = 50;
const RUN: &str = "crash";

fn store_path(dir: &Path) -> PathBuf {
    dir.join("runs.redb")
}

fn log_path(dir: &Path) -> PathBuf {
    dir.join("effects.log")
}

fn chain(log: PathBuf) -> Pipeline {
    let mut builder = Pipeline::builder().name("crash").durable();
    for index in 0..STAGES {
        let log = log.clone();
        let stage = builder
            .stage(format!("s{index}"), move |ctx: StageContext| {
                let log = log.clone();
                async move {
                    effect(&log, &format!("s{index}"));
                    tokio::time::sleep(Duration::from_micros(300)).await;
                    let parent = match index {
                        0 => 7,
                        _ => *ctx.input::<u64>(&format!("s{}", index - 1))?,
                    };
                    Ok::<_, StageError>(
                        parent.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(7) ^ index as u64,
                    )
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

fn artifacts(report: &hivekit_swarm::RunReport) -> Vec<u64> {
    (0..STAGES)
        .map(|index| {
            *report
                .artifact::<u64>(&format!("s{index}"))
                .expect("every stage succeeded")
        })
        .collect()
}

fn child(mode: &str, dir: &Path) -> Command {
    support::crash::child(CHILD, mode, DIR, dir)
}

/// What the child processes do; a no-op in the normal test run.
#[test]
fn child_process_entry_point() {
    let Some((mode, dir)) = child_role(CHILD, DIR) else {
        return;
    };
    let store = RedbStore::open(store_path(&dir)).expect("the store opens");
    match mode.as_str() {
        "run" => {
            let outcome = runtime().block_on(Durable::new(store).start(
                &chain(log_path(&dir)),
                RUN,
                RunOptions::default(),
            ));
            assert!(outcome.expect("started").report().is_success());
        }
        "hammer" => {
            store.create_run("hammer", 1, b"{}").expect("created");
            for round in 0u64.. {
                let byte = (round % 251) as u8;
                store
                    .put_record(
                        "hammer",
                        &format!("k{}", round % 16),
                        &vec![byte; 64 * 1024],
                    )
                    .expect("written");
            }
        }
        "interrupt-start" | "interrupt-resume" => {
            let durable = Durable::new(store);
            let pipeline = review(log_path(&dir));
            let outcome = runtime().block_on(async {
                match mode.as_str() {
                    "interrupt-start" => {
                        durable
                            .start(&pipeline, "review", RunOptions::default())
                            .await
                    }
                    _ => {
                        durable
                            .resume_with(&pipeline, "review", "ada", RunOptions::default())
                            .await
                    }
                }
            });
            let outcome = outcome.expect("the run starts");
            match outcome.interrupted_stage() {
                Some(stage) => println!("OUTCOME interrupted {stage}"),
                None => println!(
                    "OUTCOME finished {}",
                    outcome
                        .report()
                        .artifact::<String>("publish")
                        .expect("published")
                ),
            }
        }
        other => panic!("unknown child mode {other}"),
    }
}

#[test]
fn a_run_sigkilled_at_a_random_point_resumes_without_rerunning_any_stage_that_had_finished() {
    let expected = {
        let dir = scratch();
        let report = runtime().block_on(chain(log_path(dir.path())).run());
        artifacts(&report)
    };
    let mut killed_mid_run = 0;
    for seed in 0..20u64 {
        let dir = scratch();
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut process = child("run", dir.path()).spawn().expect("the child starts");
        std::thread::sleep(Duration::from_millis(rng.gen_range(10..200)));
        // SIGKILL on Unix.
        process.kill().expect("the child is killed");
        process.wait().expect("the child is reaped");
        let before = effects(&log_path(dir.path()));

        let store = RedbStore::open(store_path(dir.path())).expect("the store is readable");
        let durable = Durable::new(store.clone());
        let pipeline = chain(log_path(dir.path()));
        let report = runtime().block_on(async {
            match store.load_run(RUN).expect("the store reads") {
                Some(_) => durable.resume(&pipeline, RUN, RunOptions::default()).await,
                // Killed before the run began.
                None => durable.start(&pipeline, RUN, RunOptions::default()).await,
            }
        });
        let report = report.expect("the run resumes").into_report();
        assert!(report.is_success(), "seed {seed}: {report:?}");
        assert_eq!(artifacts(&report), expected, "seed {seed}");

        let mut ran_before: HashMap<String, usize> = HashMap::new();
        for line in &before {
            *ran_before.entry(line.clone()).or_default() += 1;
        }
        let mut ran: HashMap<String, usize> = HashMap::new();
        for line in effects(&log_path(dir.path())) {
            *ran.entry(line).or_default() += 1;
        }
        let mut repeated = 0;
        for stage in report.stages() {
            let name = stage.name.to_string();
            let (before, total) = (ran_before.get(&name).copied().unwrap_or(0), ran[&name]);
            if stage.resumed {
                assert_eq!(
                    (before, total),
                    (1, 1),
                    "seed {seed}: {name} finished before the kill"
                );
            } else {
                assert_eq!(total, before + 1, "seed {seed}: {name} runs once on resume");
                repeated += before;
            }
        }
        assert!(
            repeated <= 1,
            "seed {seed}: only the stage in flight repeats, {repeated} did"
        );
        let restored = report.stages().iter().filter(|stage| stage.resumed).count();
        eprintln!("seed {seed}: killed after {restored} of {STAGES} stages were checkpointed");
        if (1..STAGES).contains(&restored) {
            killed_mid_run += 1;
        }
    }
    // The random points are spread over the run: some kills must land between its first and last stage.
    assert!(killed_mid_run > 0, "no kill landed in the middle of a run");
}

#[test]
fn a_kill_during_checkpoint_writes_leaves_the_store_readable_with_every_record_whole() {
    for seed in 0..8u64 {
        let dir = scratch();
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut process = child("hammer", dir.path())
            .spawn()
            .expect("the child starts");
        std::thread::sleep(Duration::from_millis(rng.gen_range(20..120)));
        process.kill().expect("the child is killed");
        process.wait().expect("the child is reaped");
        let store =
            RedbStore::open(store_path(dir.path())).expect("the store opens after the kill");
        if let Some(run) = store.load_run("hammer").expect("the store reads") {
            for (key, record) in &run.records {
                assert_eq!(record.len(), 64 * 1024, "seed {seed}: {key} is whole");
                assert!(
                    record.iter().all(|&byte| byte == record[0]),
                    "seed {seed}: {key} is not torn"
                );
            }
        }
        // And it still takes writes.
        store
            .create_run("after", 2, b"{}")
            .expect("the store writes after the kill");
    }
}

/// draft -> approve (interrupts for an editor) -> publish.
fn review(log: PathBuf) -> Pipeline {
    let draft_log = log.clone();
    Pipeline::builder()
        .stage("draft", move |_: StageContext| {
            let log = draft_log.clone();
            async move {
                effect(&log, "draft");
                Ok::<_, StageError>(String::from("notes"))
            }
        })
        .durable()
        .stage("approve", |ctx: StageContext| async move {
            match ctx.resume_value::<String>()? {
                Some(editor) => Ok::<_, StageError>(editor),
                None => Err(ctx.interrupt("needs an editor")),
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

fn outcome_line(command: &mut Command) -> String {
    let output = command.output().expect("the child runs");
    assert!(output.status.success(), "the child exits cleanly");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| {
            line.split_once("OUTCOME ")
                .map(|(_, outcome)| outcome.to_owned())
        })
        .expect("the child prints its outcome")
}

#[test]
fn an_interrupted_run_exits_and_a_new_process_resumes_it_with_the_approval_value() {
    let dir = scratch();
    assert_eq!(
        outcome_line(&mut child("interrupt-start", dir.path())),
        "interrupted approve"
    );
    assert_eq!(
        outcome_line(&mut child("interrupt-resume", dir.path())),
        "finished notes approved by ada"
    );
    assert_eq!(
        effects(&log_path(dir.path())),
        ["draft"],
        "the draft ran once, in the first process"
    );
}
