//! An interrupt inside a loop's body, or from an item of a durable fan-out, pauses the durable run
//! (LangGraph's `interrupt` inside an agent loop or a map branch) and `resume_with` answers it
//! without running again what finished: before, the loop stage failed with `StageError::Iteration`
//! and the fan-out with `StageError::FanOut` (found by qa2).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::checkpoint::{Durable, DurableOutcome, MemoryStore};
use hivekit_swarm::{
    FanOut, Iteration, LoopPolicy, LoopReport, Pipeline, RunOptions, RunOutcome, StageContext,
    StageError,
};

/// A loop of three iterations whose body's second iteration needs an approval.
fn agent(calls: Arc<AtomicUsize>) -> Pipeline {
    let body = Pipeline::builder()
        .stage("ask", move |ctx: StageContext| {
            let calls = calls.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                let iteration = ctx.run_input::<Iteration>()?;
                if iteration.number() != 2 {
                    return Ok(format!("iteration {}", iteration.number()));
                }
                match ctx.resume_value::<String>()? {
                    Some(editor) => {
                        Ok::<_, StageError>(format!("iteration 2 approved by {editor}"))
                    }
                    None => Err(ctx.interrupt("iteration 2 needs approval")),
                }
            }
        })
        .durable()
        .build()
        .unwrap();
    Pipeline::builder()
        .repeat("agent", body, LoopPolicy::new(3))
        .build()
        .unwrap()
}

#[tokio::test]
async fn an_interrupt_inside_a_loop_body_pauses_the_run_and_resume_with_continues_the_iteration() {
    let calls = Arc::new(AtomicUsize::new(0));
    let pipeline = agent(calls.clone());
    let durable = Durable::new(MemoryStore::new());
    let first = tokio::time::timeout(
        Duration::from_secs(10),
        durable.start(&pipeline, "loop-approval", RunOptions::default()),
    )
    .await
    .expect("the run ended")
    .expect("started");
    assert_eq!(
        first.report().outcome(),
        RunOutcome::Interrupted,
        "an interrupt is not a failure: {:?}",
        first.report().status("agent")
    );
    assert!(
        matches!(first, DurableOutcome::Interrupted { .. }),
        "{first:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2, "iterations 1 and 2 ran");

    let done = tokio::time::timeout(
        Duration::from_secs(10),
        durable.resume_with(&pipeline, "loop-approval", "ada", RunOptions::default()),
    )
    .await
    .expect("the run ended")
    .expect("resumed");
    let report = done.report();
    assert!(report.is_success(), "{report:?}");
    let looped = report.artifact::<LoopReport>("agent").unwrap();
    let answers: Vec<String> = looped
        .iterations
        .iter()
        .map(|iteration| (*iteration.artifact::<String>("ask").unwrap()).clone())
        .collect();
    assert_eq!(
        answers,
        ["iteration 1", "iteration 2 approved by ada", "iteration 3"]
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        4,
        "iteration 1 was not run again; 2 ran once more with the answer, then 3"
    );
}

#[tokio::test]
async fn an_interrupt_from_a_durable_fan_out_item_pauses_the_run_and_resume_with_answers_it() {
    let pipeline = Pipeline::builder()
        .stage("review", |ctx: StageContext| async move {
            let asker = ctx.clone();
            let answer = ctx.resume_value::<String>()?;
            let reviews = ctx
                .durable_fan_out(vec![1_u32, 2, 3], FanOut::new(3), move |item| {
                    let asker = asker.clone();
                    let answer = answer.clone();
                    async move {
                        match (item, answer) {
                            (2, None) => Err(asker.interrupt("item 2 needs a reviewer")),
                            (2, Some(reviewer)) => Ok(format!("2 by {reviewer}")),
                            (item, _) => Ok(item.to_string()),
                        }
                    }
                })
                .await?;
            Ok::<_, StageError>(reviews.into_successes().collect::<Vec<_>>())
        })
        .durable()
        .build()
        .unwrap();
    let durable = Durable::new(MemoryStore::new());
    let first = tokio::time::timeout(
        Duration::from_secs(10),
        durable.start(&pipeline, "fan", RunOptions::default()),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        first.report().outcome(),
        RunOutcome::Interrupted,
        "{:?}",
        first.report().status("review")
    );
    let done = durable
        .resume_with(&pipeline, "fan", "ada", RunOptions::default())
        .await
        .unwrap();
    assert_eq!(
        *done.report().artifact::<Vec<String>>("review").unwrap(),
        ["1", "2 by ada", "3"]
    );
}
