//! A router inside a durable loop's body: a run failing after the route in iteration 2 resumes with the route restored (the branch not taken stays skipped, nothing finished runs again) and ends as an uninterrupted run.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hivekit_swarm::checkpoint::{Durable, MemoryStore};
use hivekit_swarm::{
    ArtifactError, Iteration, LoopPolicy, LoopReport, Pipeline, Route, RunOptions, SkipReason,
    StageContext, StageError, StageStatus,
};

type Calls = Arc<Mutex<HashMap<(&'static str, u32), u32>>>;

fn count(calls: &Calls, stage: &'static str, iteration: u32) {
    *calls.lock().unwrap().entry((stage, iteration)).or_default() += 1;
}

/// Body: `pick` routes to `even` or `odd` by the iteration's parity, `join` reads whichever ran
/// and fails in iteration 2 while `broken`.
fn pipeline(calls: Calls, broken: Arc<AtomicBool>) -> Pipeline {
    let (c1, c2, c3, c4) = (calls.clone(), calls.clone(), calls.clone(), calls);
    let body = Pipeline::builder()
        .router("pick", move |ctx: StageContext| {
            let calls = c1.clone();
            async move {
                let n = ctx.run_input::<Iteration>()?.number();
                count(&calls, "pick", n);
                Ok::<_, StageError>(Route::to([if n % 2 == 0 { "even" } else { "odd" }]))
            }
        })
        .durable()
        .stage("even", move |ctx: StageContext| {
            let calls = c2.clone();
            async move {
                let n = ctx.run_input::<Iteration>()?.number();
                count(&calls, "even", n);
                Ok::<_, StageError>(n * 100)
            }
        })
        .after(["pick"])
        .durable()
        .stage("odd", move |ctx: StageContext| {
            let calls = c3.clone();
            async move {
                let n = ctx.run_input::<Iteration>()?.number();
                count(&calls, "odd", n);
                Ok::<_, StageError>(n * 1000)
            }
        })
        .after(["pick"])
        .durable()
        .stage("join", move |ctx: StageContext| {
            let (calls, broken) = (c4.clone(), broken.clone());
            async move {
                let n = ctx.run_input::<Iteration>()?.number();
                count(&calls, "join", n);
                if n == 2 && broken.load(Ordering::SeqCst) {
                    return Err(StageError::permanent("join is down"));
                }
                let taken = match ctx.input::<u32>("even") {
                    Ok(value) => *value,
                    Err(ArtifactError::Missing { .. }) => *ctx.input::<u32>("odd")?,
                    Err(error) => return Err(error.into()),
                };
                Ok::<_, StageError>(taken + n)
            }
        })
        .after(["even", "odd"])
        .durable()
        .build()
        .unwrap();
    Pipeline::builder()
        .repeat("rounds", body, LoopPolicy::new(3))
        .into_builder()
        .durable()
        .build()
        .unwrap()
}

fn joins(report: &hivekit_swarm::RunReport) -> Vec<u32> {
    let rounds = report.artifact::<LoopReport>("rounds").unwrap();
    rounds
        .iterations
        .iter()
        .map(|iteration| *iteration.artifact::<u32>("join").unwrap())
        .collect()
}

#[tokio::test]
async fn a_route_in_a_durable_loop_body_is_restored_with_its_iteration() {
    let reference = pipeline(Calls::default(), Arc::new(AtomicBool::new(false)))
        .run()
        .await;
    assert!(reference.is_success(), "{:?}", reference.outcome());
    assert_eq!(joins(&reference), [1001, 202, 3003]);

    let calls = Calls::default();
    let broken = Arc::new(AtomicBool::new(true));
    let pipeline = pipeline(calls.clone(), broken.clone());
    let durable = Durable::new(MemoryStore::new());
    let first = tokio::time::timeout(
        Duration::from_secs(10),
        durable.start(&pipeline, "run", RunOptions::default()),
    )
    .await
    .expect("ends")
    .unwrap();
    assert!(!first.report().is_success());
    broken.store(false, Ordering::SeqCst);
    let second = tokio::time::timeout(
        Duration::from_secs(10),
        durable.resume(&pipeline, "run", RunOptions::default()),
    )
    .await
    .expect("ends")
    .unwrap();
    let report = second.report();
    assert!(report.is_success(), "{:?}", report.outcome());
    assert_eq!(joins(report), [1001, 202, 3003]);

    let calls = calls.lock().unwrap().clone();
    let mut expected: HashMap<(&'static str, u32), u32> = HashMap::new();
    for n in 1..=3 {
        expected.insert(("pick", n), 1);
        expected.insert((if n % 2 == 0 { "even" } else { "odd" }, n), 1);
        expected.insert(("join", n), if n == 2 { 2 } else { 1 });
    }
    let mut got: Vec<_> = calls.into_iter().collect();
    got.sort();
    let mut want: Vec<_> = expected.into_iter().collect();
    want.sort();
    assert_eq!(got, want, "stage runs per iteration");

    // In the resumed iteration the branch not taken is still skipped because of the route.
    let rounds = report.artifact::<LoopReport>("rounds").unwrap();
    let second_iteration = &rounds.iterations[1];
    assert_eq!(
        second_iteration.status("odd"),
        Some(&StageStatus::Skipped {
            because: SkipReason::RouteNotTaken {
                router: "pick".into()
            }
        }),
        "{:?}",
        second_iteration.status("odd")
    );
    assert!(second_iteration.stage("pick").unwrap().resumed);
    assert!(second_iteration.stage("even").unwrap().resumed);
}
