//! A durable loop whose body fans out durably, interrupted by one item in the middle of an iteration and resumed: every finished item and iteration runs exactly once, and the result equals an uninterrupted run's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hivekit_swarm::checkpoint::{Durable, MemoryStore};
use hivekit_swarm::{
    FanOut, Iteration, LoopPolicy, LoopReport, Pipeline, RunOptions, StageContext, StageError,
};

type Calls = Arc<Mutex<HashMap<(u32, u32), u32>>>;

const ITEMS: u32 = 5;
const ITERATIONS: u32 = 3;

/// Loop `rounds` (3 iterations) over a body whose stage `fan` durably fans out over 5 items; item
/// 3 of iteration 2 asks for outside input when `ask` is set (its value is then the resume value).
fn pipeline(calls: Calls, ask: bool, width: usize) -> Pipeline {
    let body = Pipeline::builder()
        .stage("fan", move |ctx: StageContext| {
            let calls = calls.clone();
            async move {
                let iteration = ctx.run_input::<Iteration>()?.number();
                let value = ctx.resume_value::<u32>()?;
                let report = ctx
                    .durable_fan_out(0..ITEMS, FanOut::new(width), |item| {
                        let calls = calls.clone();
                        let ctx = ctx.clone();
                        async move {
                            *calls.lock().unwrap().entry((iteration, item)).or_default() += 1;
                            if ask && (iteration, item) == (2, 3) {
                                return match value {
                                    Some(value) => Ok(value),
                                    None => Err(ctx.interrupt("item 3 needs a value")),
                                };
                            }
                            Ok::<_, StageError>(iteration * 10 + item)
                        }
                    })
                    .await?;
                Ok::<_, StageError>(report.into_successes().collect::<Vec<u32>>())
            }
        })
        .durable()
        .build()
        .unwrap();
    Pipeline::builder()
        .repeat("rounds", body, LoopPolicy::new(ITERATIONS))
        .stage("total", |ctx: StageContext| async move {
            let rounds = ctx.input::<LoopReport>("rounds")?;
            let mut all = Vec::new();
            for iteration in &rounds.iterations {
                all.extend(iteration.artifact::<Vec<u32>>("fan")?.iter().copied());
            }
            Ok::<_, StageError>(all)
        })
        .after(["rounds"])
        .durable()
        .durable_pipeline()
}

trait DurablePipeline {
    fn durable_pipeline(self) -> Pipeline;
}

impl<T> DurablePipeline for hivekit_swarm::StageBuilder<T> {
    fn durable_pipeline(self) -> Pipeline {
        self.into_builder()
            .durable()
            .build()
            .expect("a durable pipeline")
    }
}

async fn interrupted_then_resumed(width: usize) {
    let reference_calls: Calls = Arc::default();
    let reference = pipeline(reference_calls, false, width).run().await;
    assert!(reference.is_success(), "{:?}", reference.outcome());
    let expected = reference.artifact::<Vec<u32>>("total").unwrap();
    assert_eq!(expected.len(), (ITEMS * ITERATIONS) as usize);

    let calls: Calls = Arc::default();
    let pipeline = pipeline(calls.clone(), true, width);
    let durable = Durable::new(MemoryStore::new());
    let first = tokio::time::timeout(
        Duration::from_secs(10),
        durable.start(&pipeline, "run", RunOptions::default()),
    )
    .await
    .expect("the first run ends")
    .expect("starts");
    assert_eq!(
        first.interrupted_stage(),
        Some("rounds"),
        "{:?}",
        first.report().outcome()
    );
    let resumed = tokio::time::timeout(
        Duration::from_secs(10),
        durable.resume_with(&pipeline, "run", 23_u32, RunOptions::default()),
    )
    .await
    .expect("the resume ends")
    .expect("resumes");
    let report = resumed.report();
    assert!(report.is_success(), "width {width}: {:?}", report.outcome());
    assert_eq!(
        *report.artifact::<Vec<u32>>("total").unwrap(),
        *expected,
        "width {width}: the resumed result differs from an uninterrupted run's"
    );
    let calls = calls.lock().unwrap().clone();
    let mut wrong = Vec::new();
    for iteration in 1..=ITERATIONS {
        for item in 0..ITEMS {
            let want = if (iteration, item) == (2, 3) { 2 } else { 1 };
            let got = calls.get(&(iteration, item)).copied().unwrap_or(0);
            if got != want {
                wrong.push(format!(
                    "(iteration {iteration}, item {item}) ran {got} times, want {want}"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "width {width}:\n{}", wrong.join("\n"));
    // Iteration 1 is read back whole, not run again.
    let rounds = report.artifact::<LoopReport>("rounds").unwrap();
    assert_eq!(rounds.iterations.len(), ITERATIONS as usize);
    assert!(rounds.iterations[0].stage("fan").unwrap().resumed);
    assert!(!rounds.iterations[2].stage("fan").unwrap().resumed);
}

#[tokio::test]
async fn an_item_interrupting_iteration_two_of_a_loop_resumes_there_width_one() {
    interrupted_then_resumed(1).await;
}

#[tokio::test]
async fn an_item_interrupting_iteration_two_of_a_loop_resumes_there_width_five() {
    interrupted_then_resumed(5).await;
}

/// The iteration's fan-out summary after the resume counts the items read back.
#[tokio::test]
async fn the_resumed_iteration_counts_the_items_read_back() {
    let calls: Calls = Arc::default();
    let pipeline = pipeline(calls, true, 1);
    let durable = Durable::new(MemoryStore::new());
    let first = durable
        .start(&pipeline, "run", RunOptions::default())
        .await
        .unwrap();
    assert_eq!(first.interrupted_stage(), Some("rounds"));
    let resumed = durable
        .resume_with(&pipeline, "run", 23_u32, RunOptions::default())
        .await
        .unwrap();
    let rounds = resumed.report().artifact::<LoopReport>("rounds").unwrap();
    let second = rounds.iterations[1].stage("fan").unwrap();
    let summary = second.fan_out.last().expect("a fan-out summary");
    // Items 0, 1 and 2 were recorded before item 3 interrupted.
    assert_eq!((summary.succeeded, summary.resumed), (5, 3), "{summary}");
}
