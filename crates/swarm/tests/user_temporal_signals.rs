//! Temporal's signal tests, ported to interrupts: a workflow waiting for outside input gets it
//! through `resume_with`; a value reaches the stage that waits for it and no other; a stage can
//! wait again after an answer that does not satisfy it; a loop takes one signal per iteration;
//! a signal sent while the run is being handled is refused, not lost or swapped in.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::checkpoint::{CheckpointError, Durable, MemoryStore};
use hivekit_swarm::{
    Iteration, LoopPolicy, LoopReport, Pipeline, RunOptions, StageContext, StageError,
};
use tokio::sync::Notify;

type Counters = Arc<[AtomicU32; 3]>;

/// ask0 -> ask1 -> ask2, each waiting for a signal of its own; `collect` joins the answers.
fn three_questions(calls: Counters) -> Pipeline {
    let mut builder = Pipeline::builder();
    for index in 0..3 {
        let calls = calls.clone();
        let stage = builder
            .stage(format!("ask{index}"), move |ctx: StageContext| {
                let calls = calls.clone();
                async move {
                    calls[index].fetch_add(1, Ordering::SeqCst);
                    match ctx.resume_value::<String>()? {
                        Some(answer) => Ok::<_, StageError>(answer),
                        None => Err(ctx.interrupt(format!("question {index}"))),
                    }
                }
            })
            .durable();
        builder = match index {
            0 => stage.into_builder(),
            _ => stage.after([format!("ask{}", index - 1)]).into_builder(),
        };
    }
    builder
        .stage("collect", |ctx: StageContext| async move {
            let answers: Vec<String> = ["ask0", "ask1", "ask2"]
                .iter()
                .map(|stage| ctx.input::<String>(stage).map(|answer| answer.to_string()))
                .collect::<Result<_, _>>()?;
            Ok::<_, StageError>(answers.join(","))
        })
        .after(["ask2"])
        .reads(["ask0", "ask1"])
        .durable()
        .build()
        .expect("a valid pipeline")
}

fn calls_of(calls: &Counters) -> [u32; 3] {
    [0, 1, 2].map(|index| calls[index].load(Ordering::SeqCst))
}

#[tokio::test]
async fn a_run_waiting_for_three_signals_in_turn_hands_each_only_to_the_stage_waiting_for_it() {
    let calls: Counters = Arc::new(Default::default());
    let pipeline = three_questions(calls.clone());
    let durable = Durable::new(MemoryStore::new());
    let first = durable
        .start(&pipeline, "survey", RunOptions::default())
        .await
        .expect("the run starts");
    assert_eq!(first.interrupted_stage(), Some("ask0"));
    assert_eq!(calls_of(&calls), [1, 0, 0]);

    let second = durable
        .resume_with(&pipeline, "survey", "red", RunOptions::default())
        .await
        .expect("resumed");
    // The answer to question 0 is not taken as the answer to question 1.
    assert_eq!(second.interrupted_stage(), Some("ask1"));
    assert_eq!(calls_of(&calls), [2, 1, 0]);

    let third = durable
        .resume_with(&pipeline, "survey", "green", RunOptions::default())
        .await
        .expect("resumed");
    assert_eq!(third.interrupted_stage(), Some("ask2"));
    assert_eq!(calls_of(&calls), [2, 2, 1], "ask0 ran once more, no more");

    let last = durable
        .resume_with(&pipeline, "survey", "blue", RunOptions::default())
        .await
        .expect("resumed");
    let report = last.report();
    assert!(report.is_success(), "{report:?}");
    assert_eq!(calls_of(&calls), [2, 2, 2]);
    assert_eq!(
        *report.artifact::<String>("collect").expect("collected"),
        "red,green,blue"
    );
    let state = durable.inspect("survey").expect("stored");
    let values: Vec<Option<&str>> = ["ask0", "ask1", "ask2"]
        .iter()
        .map(|stage| state.stage(stage).expect("stage").resume_value_json())
        .collect();
    assert_eq!(
        values,
        [Some("\"red\""), Some("\"green\""), Some("\"blue\"")]
    );

    // The run is done: a further signal has nothing to go to.
    let late = durable
        .resume_with(&pipeline, "survey", "violet", RunOptions::default())
        .await;
    assert!(
        matches!(late, Err(CheckpointError::NotInterrupted { .. })),
        "{late:?}"
    );
}

#[tokio::test]
async fn a_stage_not_satisfied_by_a_signal_waits_again_and_takes_the_next_one() {
    let calls = Arc::new(AtomicU32::new(0));
    let pipeline = {
        let calls = calls.clone();
        Pipeline::builder()
            .stage("deploy", move |ctx: StageContext| {
                let calls = calls.clone();
                async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    match ctx.resume_value::<String>()?.as_deref() {
                        Some("go") => Ok::<_, StageError>(String::from("deployed")),
                        Some(other) => Err(ctx.interrupt(format!("got {other}, waiting for go"))),
                        None => Err(ctx.interrupt("waiting for go")),
                    }
                }
            })
            .durable()
            .build()
            .expect("a valid pipeline")
    };
    let durable = Durable::new(MemoryStore::new());
    let outcome = durable
        .start(&pipeline, "deploy", RunOptions::default())
        .await
        .expect("starts");
    assert_eq!(outcome.interrupted_stage(), Some("deploy"));

    let outcome = durable
        .resume_with(&pipeline, "deploy", "wait", RunOptions::default())
        .await
        .expect("resumed");
    let hivekit_swarm::checkpoint::DurableOutcome::Interrupted { reason, .. } = &outcome else {
        panic!("an unsatisfying signal leaves the stage waiting: {outcome:?}");
    };
    assert_eq!(reason, "got wait, waiting for go");
    let state = durable.inspect("deploy").expect("stored");
    let deploy = state.stage("deploy").expect("deploy");
    assert!(deploy.is_interrupted());
    assert_eq!(
        deploy.interrupt.as_deref(),
        Some("got wait, waiting for go")
    );

    let outcome = durable
        .resume_with(&pipeline, "deploy", "go", RunOptions::default())
        .await
        .expect("resumed");
    assert!(outcome.report().is_success(), "{:?}", outcome.report());
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(
        *outcome
            .report()
            .artifact::<String>("deploy")
            .expect("deployed"),
        "deployed"
    );
}

#[tokio::test]
async fn a_loop_waiting_for_one_signal_per_iteration_takes_each_in_its_own_iteration() {
    const ROUNDS: u32 = 5;
    let calls: Arc<Vec<AtomicU32>> = Arc::new((0..ROUNDS).map(|_| AtomicU32::new(0)).collect());
    let body = {
        let calls = calls.clone();
        Pipeline::builder()
            .stage("bid", move |ctx: StageContext| {
                let calls = calls.clone();
                async move {
                    let number = ctx.run_input::<Iteration>()?.number();
                    calls[number as usize - 1].fetch_add(1, Ordering::SeqCst);
                    match ctx.resume_value::<u32>()? {
                        Some(bid) => Ok::<_, StageError>(bid),
                        None => Err(ctx.interrupt(format!("bid for round {number}"))),
                    }
                }
            })
            .durable()
            .build()
            .expect("a valid body")
    };
    let pipeline = Pipeline::builder()
        .repeat("auction", body, LoopPolicy::new(ROUNDS))
        .build()
        .expect("a valid pipeline");
    let durable = Durable::new(MemoryStore::new());
    let mut outcome = durable
        .start(&pipeline, "auction", RunOptions::default())
        .await
        .expect("starts");
    for round in 1..=ROUNDS {
        assert_eq!(
            outcome.interrupted_stage(),
            Some("auction"),
            "round {round}"
        );
        let ran: Vec<u32> = calls.iter().map(|c| c.load(Ordering::SeqCst)).collect();
        let expected: Vec<u32> = (1..=ROUNDS)
            .map(|r| match r.cmp(&round) {
                std::cmp::Ordering::Less => 2,
                std::cmp::Ordering::Equal => 1,
                std::cmp::Ordering::Greater => 0,
            })
            .collect();
        assert_eq!(ran, expected, "before the signal of round {round}");
        outcome = durable
            .resume_with(&pipeline, "auction", round * 100, RunOptions::default())
            .await
            .expect("resumed");
    }
    let report = outcome.report();
    assert!(report.is_success(), "{report:?}");
    let ran: Vec<u32> = calls.iter().map(|c| c.load(Ordering::SeqCst)).collect();
    assert_eq!(
        ran,
        vec![2; ROUNDS as usize],
        "every round asked once, answered once"
    );
    let auction = report
        .artifact::<LoopReport>("auction")
        .expect("the loop ran");
    let bids: Vec<u32> = auction
        .iterations
        .iter()
        .map(|iteration| *iteration.artifact::<u32>("bid").expect("bid"))
        .collect();
    assert_eq!(bids, [100, 200, 300, 400, 500]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_sent_while_the_first_is_handled_is_refused_and_never_replaces_it() {
    let entered = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let pipeline = {
        let (entered, release) = (entered.clone(), release.clone());
        Pipeline::builder()
            .stage("approve", move |ctx: StageContext| {
                let (entered, release) = (entered.clone(), release.clone());
                async move {
                    let Some(approver) = ctx.resume_value::<String>()? else {
                        return Err(ctx.interrupt("who approves?"));
                    };
                    entered.notify_one();
                    release.notified().await;
                    Ok::<_, StageError>(approver)
                }
            })
            .durable()
            .spawn()
            .build()
            .expect("a valid pipeline")
    };
    let durable = Durable::new(MemoryStore::new());
    let first = durable
        .start(&pipeline, "pr", RunOptions::default())
        .await
        .expect("starts");
    assert_eq!(first.interrupted_stage(), Some("approve"));

    let handling = tokio::spawn({
        let (durable, pipeline) = (durable.clone(), pipeline.clone());
        async move {
            durable
                .resume_with(&pipeline, "pr", "ada", RunOptions::default())
                .await
        }
    });
    tokio::time::timeout(Duration::from_secs(5), entered.notified())
        .await
        .expect("the first signal reaches the stage");

    let second = durable
        .resume_with(&pipeline, "pr", "bob", RunOptions::default())
        .await;
    assert!(
        matches!(second, Err(CheckpointError::RunInProgress { .. })),
        "{second:?}"
    );
    let state = durable.inspect("pr").expect("stored");
    assert_eq!(
        state.stage("approve").expect("approve").resume_value_json(),
        Some("\"ada\""),
        "the refused signal did not replace the one being handled"
    );

    release.notify_one();
    let outcome = tokio::time::timeout(Duration::from_secs(5), handling)
        .await
        .expect("the first resume ends")
        .expect("the task did not panic")
        .expect("resumed");
    assert_eq!(
        *outcome
            .report()
            .artifact::<String>("approve")
            .expect("approved"),
        "ada"
    );
}
