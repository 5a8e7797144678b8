//! A loop inside a loop's body, in a durable run that fails in the middle of an inner iteration:
//! the resume runs only from the inner iteration that failed (each (outer, inner) pair runs once
//! in all, the failed one twice) and the artifacts equal an uninterrupted run's.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hivekit_swarm::checkpoint::{Durable, MemoryStore};
use hivekit_swarm::{
    Iteration, LoopPolicy, LoopReport, Pipeline, RunOptions, StageContext, StageError,
};

type Log = Arc<Mutex<Vec<(u32, u32)>>>;

fn nested(log: Log, broken: Arc<AtomicBool>) -> Pipeline {
    let inner = Pipeline::builder()
        .stage("cell", move |ctx: StageContext| {
            let (log, broken) = (log.clone(), broken.clone());
            async move {
                let inner = ctx.run_input::<Iteration>()?;
                // The outer iteration, through the inner loop stage's context.
                let outer = inner.parent().run_input::<Iteration>()?.number();
                log.lock().unwrap().push((outer, inner.number()));
                if (outer, inner.number()) == (2, 2) && broken.load(Ordering::SeqCst) {
                    return Err(StageError::permanent("down"));
                }
                Ok::<_, StageError>(outer * 10 + inner.number())
            }
        })
        .durable()
        .build()
        .unwrap();
    let outer = Pipeline::builder()
        .repeat("row", inner, LoopPolicy::new(3))
        .build()
        .unwrap();
    Pipeline::builder()
        .repeat("grid", outer, LoopPolicy::new(3))
        .build()
        .unwrap()
}

fn cells(report: &hivekit_swarm::RunReport) -> Vec<u32> {
    let grid = report.artifact::<LoopReport>("grid").unwrap();
    grid.iterations
        .iter()
        .flat_map(|outer| {
            let row = outer.artifact::<LoopReport>("row").unwrap();
            row.iterations
                .iter()
                .map(|inner| *inner.artifact::<u32>("cell").unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test]
async fn a_nested_loop_resumes_from_the_inner_iteration_that_failed() {
    let log: Log = Arc::default();
    let broken = Arc::new(AtomicBool::new(true));
    let pipeline = nested(log.clone(), broken.clone());
    let durable = Durable::new(MemoryStore::new());
    let first = tokio::time::timeout(
        Duration::from_secs(5),
        durable.start(&pipeline, "r", RunOptions::default()),
    )
    .await
    .expect("ended")
    .expect("started");
    assert!(!first.report().is_success());
    assert_eq!(
        *log.lock().unwrap(),
        [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2)]
    );

    broken.store(false, Ordering::SeqCst);
    log.lock().unwrap().clear();
    let resumed = tokio::time::timeout(
        Duration::from_secs(5),
        durable.resume(&pipeline, "r", RunOptions::default()),
    )
    .await
    .expect("ended")
    .expect("resumed");
    assert!(resumed.report().is_success(), "{resumed:?}");
    assert_eq!(
        *log.lock().unwrap(),
        [(2, 2), (2, 3), (3, 1), (3, 2), (3, 3)],
        "only from the failed inner iteration on"
    );
    assert_eq!(
        cells(resumed.report()),
        [11, 12, 13, 21, 22, 23, 31, 32, 33]
    );
}

#[tokio::test]
async fn an_interrupt_two_loops_deep_is_answered_by_resume_with() {
    let inner = Pipeline::builder()
        .stage("cell", |ctx: StageContext| async move {
            let inner = ctx.run_input::<Iteration>()?;
            let outer = inner.parent().run_input::<Iteration>()?.number();
            if (outer, inner.number()) != (2, 2) {
                return Ok::<_, StageError>(format!("{outer}{}", inner.number()));
            }
            match ctx.resume_value::<String>()? {
                Some(answer) => Ok(answer),
                None => Err(ctx.interrupt("cell 2,2 needs a value")),
            }
        })
        .durable()
        .build()
        .unwrap();
    let outer = Pipeline::builder()
        .repeat("row", inner, LoopPolicy::new(2))
        .build()
        .unwrap();
    let pipeline = Pipeline::builder()
        .repeat("grid", outer, LoopPolicy::new(2))
        .build()
        .unwrap();
    let durable = Durable::new(MemoryStore::new());
    let first = tokio::time::timeout(
        Duration::from_secs(5),
        durable.start(&pipeline, "r", RunOptions::default()),
    )
    .await
    .expect("ended")
    .expect("started");
    assert_eq!(first.interrupted_stage(), Some("grid"), "{first:?}");
    let done = tokio::time::timeout(
        Duration::from_secs(5),
        durable.resume_with(&pipeline, "r", "answered", RunOptions::default()),
    )
    .await
    .expect("ended")
    .expect("resumed");
    assert!(done.report().is_success(), "{done:?}");
    let grid = done.report().artifact::<LoopReport>("grid").unwrap();
    let row = grid.iterations[1].artifact::<LoopReport>("row").unwrap();
    assert_eq!(
        *row.iterations[1].artifact::<String>("cell").unwrap(),
        "answered"
    );
}
