//! A resume value of the wrong type handed to a stage inside a loop's body: the stage fails to
//! decode it and the value is dropped, as at the root, so that the run can be given the right
//! one (`resume_with` again, or a plain `resume` that asks again). Before, the rejection was
//! written under the body stage's name at the run's root, and every later resume failed
//! `CorruptRecord` ("the pipeline has no such stage"): the run could never continue.

use std::time::Duration;

use hivekit_swarm::checkpoint::{Durable, DurableOutcome, MemoryStore};
use hivekit_swarm::{
    Iteration, LoopPolicy, LoopReport, Pipeline, RunOptions, StageContext, StageError,
};

/// A loop of two iterations whose body's second iteration asks for a number.
fn agent() -> Pipeline {
    let body = Pipeline::builder()
        .stage("ask", |ctx: StageContext| async move {
            let iteration = ctx.run_input::<Iteration>()?;
            if iteration.number() != 2 {
                return Ok::<_, StageError>(0_u32);
            }
            match ctx.resume_value::<u32>()? {
                Some(answer) => Ok(answer),
                None => Err(ctx.interrupt("how many?")),
            }
        })
        .durable()
        .build()
        .unwrap();
    Pipeline::builder()
        .repeat("agent", body, LoopPolicy::new(2))
        .build()
        .unwrap()
}

async fn bounded<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .expect("the run ended in time")
}

#[tokio::test]
async fn a_mistyped_resume_value_inside_a_loop_body_can_be_replaced() {
    let pipeline = agent();
    let durable = Durable::new(MemoryStore::new());
    let first = bounded(durable.start(&pipeline, "loop", RunOptions::default()))
        .await
        .expect("started");
    assert!(
        matches!(first, DurableOutcome::Interrupted { .. }),
        "{first:?}"
    );

    // A string where the body asks for a number: the body stage fails to decode it.
    let wrong = bounded(durable.resume_with(&pipeline, "loop", "seven", RunOptions::default()))
        .await
        .expect("resumed with the wrong value");
    assert!(!wrong.report().is_success(), "{wrong:?}");

    // The docs: the value is dropped, and resume_with hands the stage a new one.
    let right = bounded(durable.resume_with(&pipeline, "loop", 7_u32, RunOptions::default()))
        .await
        .expect("a second resume_with reads the checkpoint back");
    let report = right.report();
    assert!(report.is_success(), "{report:?}");
    let looped = report.artifact::<LoopReport>("agent").unwrap();
    assert_eq!(*looped.iterations[1].artifact::<u32>("ask").unwrap(), 7);
}

#[tokio::test]
async fn after_a_mistyped_resume_value_inside_a_loop_body_a_plain_resume_asks_again() {
    let pipeline = agent();
    let durable = Durable::new(MemoryStore::new());
    let first = bounded(durable.start(&pipeline, "loop", RunOptions::default()))
        .await
        .expect("started");
    assert!(
        matches!(first, DurableOutcome::Interrupted { .. }),
        "{first:?}"
    );
    let wrong = bounded(durable.resume_with(&pipeline, "loop", "seven", RunOptions::default()))
        .await
        .expect("resumed with the wrong value");
    assert!(!wrong.report().is_success(), "{wrong:?}");

    let again = bounded(durable.resume(&pipeline, "loop", RunOptions::default()))
        .await
        .expect("a plain resume reads the checkpoint back");
    assert_eq!(again.interrupted_stage(), Some("agent"), "{again:?}");
}
