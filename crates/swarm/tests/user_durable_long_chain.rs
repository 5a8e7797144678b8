//! A durable run of a long chain (dagrs's "very deep chain"): five thousand recorded stages
//! read back and restored in order without recursion, and a failure at the end resumed.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::checkpoint::{Durable, MemoryStore};
use hivekit_swarm::{Pipeline, RunOptions, StageContext, StageError};

const LEN: usize = 5_000;

fn chain(runs: Arc<AtomicUsize>, broken: Arc<AtomicBool>) -> Pipeline {
    let mut builder = Pipeline::builder().durable();
    for i in 0..LEN {
        let (runs, broken) = (runs.clone(), broken.clone());
        let stage = builder.stage(format!("s{i}"), move |ctx: StageContext| {
            runs.fetch_add(1, Ordering::Relaxed);
            let failing = i == LEN - 1 && broken.load(Ordering::SeqCst);
            async move {
                if failing {
                    return Err(StageError::permanent("the last stage is down"));
                }
                let previous = match i {
                    0 => 0,
                    _ => *ctx.input::<u64>(&format!("s{}", i - 1))?,
                };
                Ok::<_, StageError>(previous + 1)
            }
        });
        let stage = stage.durable();
        builder = match i {
            0 => stage.into_builder(),
            _ => stage.after([format!("s{}", i - 1)]).into_builder(),
        };
    }
    builder.build().unwrap()
}

#[tokio::test]
async fn a_five_thousand_stage_durable_chain_resumes_only_its_last_stage() {
    let runs = Arc::new(AtomicUsize::new(0));
    let broken = Arc::new(AtomicBool::new(true));
    let pipeline = chain(runs.clone(), broken.clone());
    let durable = Durable::new(MemoryStore::new());
    let first = tokio::time::timeout(
        Duration::from_secs(20),
        durable.start(&pipeline, "long", RunOptions::default()),
    )
    .await
    .expect("ended")
    .expect("started");
    assert!(!first.report().is_success());
    assert_eq!(runs.load(Ordering::SeqCst), LEN);

    broken.store(false, Ordering::SeqCst);
    let resumed = tokio::time::timeout(
        Duration::from_secs(20),
        durable.resume(&pipeline, "long", RunOptions::default()),
    )
    .await
    .expect("ended")
    .expect("resumed");
    let report = resumed.report();
    assert!(report.is_success());
    assert_eq!(
        runs.load(Ordering::SeqCst),
        LEN + 1,
        "only the last stage ran again"
    );
    assert_eq!(
        *report.artifact::<u64>(&format!("s{}", LEN - 1)).unwrap(),
        LEN as u64
    );
    assert!(report.stage("s0").unwrap().resumed);
}
