//! A crash at every stage boundary (LangGraph's checkpointer tests resume from each checkpoint):
//! the checkpoint of a finished run cut back to every set of records a crash could leave (every
//! set closed under dependencies, as records are written before dependents start) resumes into
//! the same artifacts, running exactly the stages whose records were missing.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hivekit_swarm::checkpoint::{CheckpointStore, Durable, MemoryStore};
use hivekit_swarm::{Pipeline, RunOptions, StageContext, StageError};

const STAGES: [&str; 6] = ["fetch", "lint", "test", "review", "merge", "notify"];

/// fetch -> {lint, test} -> review -> merge; fetch -> notify. Each stage logs that it ran.
fn pipeline(log: Arc<Mutex<Vec<String>>>) -> Pipeline {
    let deps: [&[&str]; 6] = [
        &[],
        &["fetch"],
        &["fetch"],
        &["lint", "test"],
        &["review"],
        &["fetch"],
    ];
    let mut builder = Pipeline::builder();
    for (stage, after) in STAGES.iter().zip(deps) {
        let log = log.clone();
        let after: Vec<String> = after.iter().map(|name| (*name).to_owned()).collect();
        let reads = after.clone();
        builder = builder
            .stage(*stage, move |ctx: StageContext| {
                let (log, reads) = (log.clone(), reads.clone());
                async move {
                    log.lock().unwrap().push(ctx.name().to_owned());
                    let mut text = ctx.name().to_owned();
                    for parent in &reads {
                        text.push_str(&format!("({})", ctx.input::<String>(parent)?));
                    }
                    Ok::<_, StageError>(text)
                }
            })
            .durable()
            .after(after)
            .into_builder();
    }
    builder.build().unwrap()
}

fn closed_under_dependencies(pipeline: &Pipeline, kept: &BTreeSet<&str>) -> bool {
    kept.iter().all(|stage| {
        pipeline
            .dependencies(stage)
            .unwrap()
            .all(|dependency| kept.contains(dependency))
    })
}

#[tokio::test]
async fn every_crash_point_resumes_to_the_same_artifacts_running_only_what_was_missing() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let pipeline = pipeline(log.clone());
    let full = MemoryStore::new();
    let whole = Durable::new(full.clone())
        .start(&pipeline, "r", RunOptions::default())
        .await
        .expect("started");
    assert!(whole.report().is_success());
    let expected: Vec<String> = STAGES
        .iter()
        .map(|stage| (*whole.report().artifact::<String>(stage).unwrap()).clone())
        .collect();
    let stored = full.load_run("r").unwrap().unwrap();
    let entries = full.runs().unwrap();

    let mut crash_points = 0;
    for mask in 0_u32..(1 << STAGES.len()) {
        let kept: BTreeSet<&str> = STAGES
            .iter()
            .enumerate()
            .filter(|(at, _)| mask & (1 << at) != 0)
            .map(|(_, stage)| *stage)
            .collect();
        if !closed_under_dependencies(&pipeline, &kept) {
            continue;
        }
        crash_points += 1;
        let crashed = MemoryStore::new();
        crashed
            .create_run("r", entries[0].created_ms, &stored.header)
            .unwrap();
        for (key, bytes) in &stored.records {
            if kept.contains(key.trim_start_matches("s:")) {
                crashed.put_record("r", key, bytes).unwrap();
            }
        }
        log.lock().unwrap().clear();
        let resumed = tokio::time::timeout(
            Duration::from_secs(5),
            Durable::new(crashed).resume(&pipeline, "r", RunOptions::default()),
        )
        .await
        .expect("ended")
        .expect("resumed");
        let report = resumed.report();
        assert!(report.is_success(), "{kept:?}: {report:?}");
        let artifacts: Vec<String> = STAGES
            .iter()
            .map(|stage| (*report.artifact::<String>(stage).unwrap()).clone())
            .collect();
        assert_eq!(artifacts, expected, "{kept:?}");
        let ran: BTreeSet<String> = log.lock().unwrap().iter().cloned().collect();
        let missing: BTreeSet<String> = STAGES
            .iter()
            .filter(|stage| !kept.contains(**stage))
            .map(|stage| (*stage).to_owned())
            .collect();
        assert_eq!(ran, missing, "{kept:?}");
        assert_eq!(
            log.lock().unwrap().len(),
            missing.len(),
            "each ran once: {kept:?}"
        );
        for stage in STAGES {
            assert_eq!(
                report.stage(stage).unwrap().resumed,
                kept.contains(stage),
                "{stage} {kept:?}"
            );
        }
    }
    // The empty set, and with `fetch`: 6 sets of lint/test/review/merge times notify or not.
    assert_eq!(crash_points, 13);
}
