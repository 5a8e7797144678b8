//! `Durable::inspect` reads a stored run as it stands, without its pipeline and without running
//! anything: each stage's status, failed attempts, artifact, interrupt, the value a resume hands
//! it, and the fan-out items recorded under it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hivekit_swarm::checkpoint::{CheckpointError, Durable, MemoryStore};
use hivekit_swarm::{
    FanOut, Pipeline, RetryPolicy, RunInput, RunOptions, StageContext, StageError, StageStatus,
};

#[tokio::test]
async fn a_failed_run_shows_what_succeeded_what_failed_and_what_never_ran() {
    let pipeline = Pipeline::builder()
        .stage("fetch", |ctx: StageContext| async move {
            let url = ctx.run_input::<String>()?;
            Ok::<_, StageError>(format!("body of {url}"))
        })
        .durable()
        .stage("parse", |_: StageContext| async {
            Err::<u32, _>(StageError::msg("malformed"))
        })
        .after(["fetch"])
        .retry(RetryPolicy::attempts(3))
        .durable()
        .stage("store", |_: StageContext| async { Ok::<_, StageError>(()) })
        .after(["parse"])
        .build()
        .unwrap();
    let durable = Durable::new(MemoryStore::new()).with_input::<String>();
    let options =
        RunOptions::default().with_run_input(RunInput::serializable("https://x".to_owned()));
    let outcome = durable.start(&pipeline, "job", options).await.unwrap();
    assert!(!outcome.report().is_success());

    let state = durable.inspect("job").unwrap();
    assert_eq!(state.run, "job");
    assert_eq!(state.input, Some(serde_json::json!("https://x")));
    let names: Vec<&str> = state
        .stages
        .iter()
        .map(|stage| stage.name.as_str())
        .collect();
    assert_eq!(names, ["fetch", "parse", "store"]);

    let fetch = state.stage("fetch").unwrap();
    assert!(fetch.succeeded() && fetch.is_restored_on_resume());
    assert_eq!(
        fetch.artifact::<String>().unwrap().as_deref(),
        Some("body of https://x")
    );

    let parse = state.stage("parse").unwrap();
    assert!(matches!(
        parse.status,
        Some(StageStatus::Failed { attempts: 3, .. })
    ));
    assert_eq!(parse.failed_attempts.len(), 3, "every failed attempt");
    assert_eq!(parse.artifact_json(), None);
    assert_eq!(parse.after, ["fetch"]);
    assert!(!parse.is_restored_on_resume());

    let store = state.stage("store").unwrap();
    assert!(
        !matches!(store.status, Some(StageStatus::Succeeded { .. })),
        "{:?}",
        store.status
    );
    assert!(!state.is_complete());
    let done: Vec<&str> = state.done().map(|stage| stage.name.as_str()).collect();
    assert_eq!(done, ["fetch"]);
}

#[tokio::test]
async fn an_interrupted_run_shows_the_waiting_stage_and_then_the_value_it_was_handed() {
    let pipeline = Pipeline::builder()
        .stage("ask", |ctx: StageContext| async move {
            match ctx.resume_value::<u32>()? {
                Some(answer) if answer > 10 => Ok(answer),
                Some(_) => Err(ctx.interrupt("too small, ask again")),
                None => Err(ctx.interrupt("how many?")),
            }
        })
        .durable()
        .build()
        .unwrap();
    let durable = Durable::new(MemoryStore::new());
    let _ = durable
        .start(&pipeline, "q", RunOptions::default())
        .await
        .unwrap();
    let state = durable.inspect("q").unwrap();
    let waiting: Vec<_> = state.interrupted().collect();
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].interrupt.as_deref(), Some("how many?"));
    assert_eq!(waiting[0].resume_value_json(), None);

    let _ = durable
        .resume_with(&pipeline, "q", 3_u32, RunOptions::default())
        .await
        .unwrap();
    let state = durable.inspect("q").unwrap();
    let ask = state.stage("ask").unwrap();
    assert_eq!(ask.interrupt.as_deref(), Some("too small, ask again"));
    assert_eq!(ask.resume_value_json(), Some("3"));

    let _ = durable
        .resume_with(&pipeline, "q", 12_u32, RunOptions::default())
        .await
        .unwrap();
    let state = durable.inspect("q").unwrap();
    assert!(state.is_complete());
    assert_eq!(state.interrupted().count(), 0);
    assert_eq!(
        state.stage("ask").unwrap().artifact::<u32>().unwrap(),
        Some(12)
    );
}

#[tokio::test]
async fn fan_out_items_recorded_before_a_stop_are_counted_under_their_stage() {
    let ran = Arc::new(AtomicUsize::new(0));
    let pipeline = {
        let ran = ran.clone();
        Pipeline::builder()
            .stage("review", move |ctx: StageContext| {
                let ran = ran.clone();
                async move {
                    let items = ctx
                        .durable_fan_out(0..6_u32, FanOut::new(1), |item| {
                            let ran = ran.clone();
                            async move {
                                ran.fetch_add(1, Ordering::SeqCst);
                                if item == 4 {
                                    Err(StageError::msg("item 4 fails"))
                                } else {
                                    Ok::<_, StageError>(item)
                                }
                            }
                        })
                        .await?;
                    Ok::<_, StageError>(items.into_successes().count())
                }
            })
            .durable()
            .build()
            .unwrap()
    };
    let durable = Durable::new(MemoryStore::new());
    let _ = durable
        .start(&pipeline, "fan", RunOptions::default())
        .await
        .unwrap();
    let state = durable.inspect("fan").unwrap();
    let review = state.stage("review").unwrap();
    assert_eq!(
        review.memo_records,
        4,
        "the items before the failing one are recorded ({} items ran; width 1, all must succeed)",
        ran.load(Ordering::SeqCst)
    );
}

#[tokio::test]
async fn an_unknown_run_is_a_typed_error_and_inspecting_changes_nothing() {
    let durable = Durable::new(MemoryStore::new());
    assert_eq!(
        durable.inspect("nope").err(),
        Some(CheckpointError::UnknownRun {
            run: "nope".to_owned()
        })
    );
    let pipeline = Pipeline::builder()
        .stage("only", |_: StageContext| async { Ok::<_, StageError>(()) })
        .build()
        .unwrap();
    let _ = durable
        .start(&pipeline, "unit", RunOptions::default())
        .await
        .unwrap();
    let first = durable.inspect("unit").unwrap();
    let second = durable.inspect("unit").unwrap();
    assert_eq!(first, second);
    assert!(
        first.is_complete(),
        "a `()` stage that succeeded needs no artifact to be restored"
    );
    assert_eq!(durable.runs().unwrap().len(), 1);
}
