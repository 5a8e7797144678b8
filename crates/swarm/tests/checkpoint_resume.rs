//! Durable runs in one process: resume restores finished stages, reruns the rest, and refuses a
//! checkpoint that does not fit.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hivekit_swarm::checkpoint::{CheckpointError, CheckpointStore, Durable, MemoryStore};
use hivekit_swarm::{
    BuildError, CancellationToken, Pipeline, PipelineBuilder, Route, RunInput, RunOptions,
    StageContext, StageError,
};

/// A report as JSON without what may differ between an uninterrupted and a resumed run: timings
/// and `resumed` marks.
fn comparable(report: &hivekit_swarm::RunReport) -> serde_json::Value {
    fn strip(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                map.retain(|key, _| !key.ends_with("_us") && key != "resumed");
                map.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut value: serde_json::Value =
        serde_json::from_str(&report.to_json().expect("the report serializes")).expect("json");
    strip(&mut value);
    value
}

/// A chain of `len` stages, each adding its index to its parent's artifact and counting its runs;
/// stage `stop_at` cancels `cancel` and waits (a crash while it is in flight) when `cancel` is set.
fn chain(
    len: usize,
    runs: Arc<Vec<AtomicUsize>>,
    stop_at: Option<(usize, CancellationToken)>,
) -> Pipeline {
    let mut builder = Pipeline::builder().name("chain");
    for index in 0..len {
        let runs = runs.clone();
        let stop = stop_at.clone();
        let stage = builder
            .stage(format!("s{index}"), move |ctx: StageContext| {
                let runs = runs.clone();
                let stop = stop.clone();
                async move {
                    runs[index].fetch_add(1, Ordering::SeqCst);
                    if let Some((at, token)) = stop {
                        if at == index && !token.is_cancelled() {
                            token.cancel();
                            std::future::pending::<()>().await;
                        }
                    }
                    let parent = match index {
                        0 => 0,
                        _ => *ctx.input::<u64>(&format!("s{}", index - 1))?,
                    };
                    Ok::<_, StageError>(parent.wrapping_mul(31).wrapping_add(index as u64))
                }
            })
            .durable()
            .export();
        builder = match index {
            0 => stage.into_builder(),
            _ => stage.after([format!("s{}", index - 1)]).into_builder(),
        };
    }
    builder.durable().build().expect("a valid chain")
}

fn counters(len: usize) -> Arc<Vec<AtomicUsize>> {
    Arc::new((0..len).map(|_| AtomicUsize::new(0)).collect())
}

#[tokio::test]
async fn resume_restores_finished_stages_reruns_the_one_in_flight_and_reports_as_an_uninterrupted_run(
) {
    let len = 20;
    let plain = chain(len, counters(len), None).run().await;
    assert!(plain.is_success());

    let runs = counters(len);
    let token = CancellationToken::new();
    let interrupted = chain(len, runs.clone(), Some((7, token.clone())));
    let durable = Durable::new(MemoryStore::new());
    let first = durable
        .start(&interrupted, "r1", RunOptions::default().with_cancel(token))
        .await
        .expect("started");
    assert!(!first.report().is_success());

    let resumed = durable
        .resume(&interrupted, "r1", RunOptions::default())
        .await
        .expect("resumed")
        .into_report();
    assert!(resumed.is_success());
    for index in 0..len {
        let expected = if index == 7 { 2 } else { 1 };
        assert_eq!(
            runs[index].load(Ordering::SeqCst),
            expected,
            "stage s{index}"
        );
        assert_eq!(resumed.stages()[index].resumed, index < 7, "stage s{index}");
    }
    assert_eq!(comparable(&resumed), comparable(&plain));
    assert_eq!(
        *resumed.artifact::<u64>("s19").expect("live"),
        *plain.artifact::<u64>("s19").expect("live")
    );
}

#[tokio::test]
async fn resuming_a_finished_run_runs_nothing_again() {
    let runs = counters(5);
    let pipeline = chain(5, runs.clone(), None);
    let durable = Durable::new(MemoryStore::new());
    let _ = durable
        .start(&pipeline, "done", RunOptions::default())
        .await
        .expect("started");
    let again = durable
        .resume(&pipeline, "done", RunOptions::default())
        .await
        .expect("resumed");
    assert!(again.report().is_success());
    assert!(again.report().stages().iter().all(|stage| stage.resumed));
    assert!(runs.iter().all(|count| count.load(Ordering::SeqCst) == 1));
}

#[tokio::test]
async fn resuming_with_another_pipeline_is_an_error_naming_the_first_difference() {
    let durable = Durable::new(MemoryStore::new());
    let _ = durable
        .start(&chain(3, counters(3), None), "r", RunOptions::default())
        .await
        .expect("started");
    let error = durable
        .resume(&chain(4, counters(4), None), "r", RunOptions::default())
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "run `r` was checkpointed with another pipeline: the checkpoint has 3 stages, the pipeline 4 (first new: `s3`)"
    );
    let renamed = Pipeline::builder()
        .stage("s0", |_: StageContext| async { Ok::<_, StageError>(1u64) })
        .durable()
        .stage("t1", |_: StageContext| async { Ok::<_, StageError>(1u64) })
        .durable()
        .stage("s2", |_: StageContext| async { Ok::<_, StageError>(1u64) })
        .durable()
        .build()
        .expect("valid");
    let error = durable
        .resume(&renamed, "r", RunOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, CheckpointError::ShapeMismatch { run, difference }
            if run == "r" && difference == "stage 2 is `s1` in the checkpoint but `t1` in the pipeline"),
        "{error}"
    );
}

#[tokio::test]
async fn a_corrupt_or_truncated_record_is_an_error_naming_the_run_and_the_stage() {
    let store = MemoryStore::new();
    let durable = Durable::new(store.clone());
    let pipeline = chain(3, counters(3), None);
    let _ = durable
        .start(&pipeline, "r", RunOptions::default())
        .await
        .expect("started");
    let stored = store.load_run("r").expect("store").expect("run");
    let (key, bytes) = stored
        .records
        .iter()
        .find(|(key, _)| key.ends_with("s1"))
        .expect("a record for s1");
    store
        .put_record("r", key, &bytes[..bytes.len() / 2])
        .expect("store");
    let error = durable
        .resume(&pipeline, "r", RunOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, CheckpointError::CorruptRecord { run, stage, .. } if run == "r" && stage == "s1"),
        "{error}"
    );
    assert!(error
        .to_string()
        .starts_with("checkpoint of run `r` has a corrupt record for stage `s1`: "));

    // An artifact that no longer decodes as the stage's type is corrupt too.
    store
        .put_record(
            "r",
            key,
            br#"{"status":{"status":"succeeded","attempts":1},"artifact":"text"}"#,
        )
        .expect("store");
    let error = durable
        .resume(&pipeline, "r", RunOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, CheckpointError::CorruptRecord { stage, .. } if stage == "s1"),
        "{error}"
    );

    store.create_run("r", 1, b"{\"format\":").expect("store");
    let error = durable
        .resume(&pipeline, "r", RunOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, CheckpointError::CorruptHeader { run, .. } if run == "r"),
        "{error}"
    );
}

#[test]
fn a_durable_pipeline_with_an_artifact_not_declared_durable_is_a_build_error() {
    let error = Pipeline::builder()
        .durable()
        .stage("effects", |_: StageContext| async {
            Ok::<_, StageError>(())
        })
        .stage("count", |_: StageContext| async {
            Ok::<_, StageError>(3u32)
        })
        .build()
        .unwrap_err();
    assert_eq!(
        error,
        BuildError::NotDurable {
            stage: "count".into(),
            output_type: "u32"
        }
    );
    assert_eq!(
        error.to_string(),
        "stage `count` of a durable pipeline has an artifact of type `u32` that is not declared durable"
    );
}

#[tokio::test]
async fn a_stage_not_declared_durable_runs_again_on_resume() {
    let counts = counters(2);
    let (a, b) = (counts.clone(), counts.clone());
    let pipeline = PipelineBuilder::new()
        .stage("volatile", move |_: StageContext| {
            let a = a.clone();
            async move {
                a[0].fetch_add(1, Ordering::SeqCst);
                Ok::<_, StageError>(5u32)
            }
        })
        .stage("kept", move |ctx: StageContext| {
            let b = b.clone();
            async move {
                b[1].fetch_add(1, Ordering::SeqCst);
                Ok::<_, StageError>(*ctx.input::<u32>("volatile")? + 1)
            }
        })
        .after(["volatile"])
        .durable()
        .build()
        .expect("valid");
    let durable = Durable::new(MemoryStore::new());
    let _ = durable
        .start(&pipeline, "r", RunOptions::default())
        .await
        .expect("started");
    let resumed = durable
        .resume(&pipeline, "r", RunOptions::default())
        .await
        .expect("resumed");
    assert_eq!(*resumed.report().artifact::<u32>("kept").expect("live"), 6);
    assert_eq!(counts[0].load(Ordering::SeqCst), 2);
    assert_eq!(counts[1].load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_run_input_is_checkpointed_and_read_back_on_resume() {
    let token = CancellationToken::new();
    let stop = token.clone();
    let pipeline = Pipeline::builder()
        .stage("greet", |ctx: StageContext| async move {
            Ok::<_, StageError>(format!("hello {}", ctx.run_input::<String>()?))
        })
        .durable()
        .stage("stop", move |_: StageContext| {
            let stop = stop.clone();
            async move {
                if !stop.is_cancelled() {
                    stop.cancel();
                    std::future::pending::<()>().await;
                }
                Ok::<_, StageError>(())
            }
        })
        .after(["greet"])
        .stage("shout", |ctx: StageContext| async move {
            Ok::<_, StageError>(format!(
                "{} {}",
                ctx.input::<String>("greet")?,
                ctx.run_input::<String>()?.to_uppercase()
            ))
        })
        .after(["stop"])
        .reads(["greet"])
        .durable()
        .build()
        .expect("valid");
    let store = MemoryStore::new();
    let options = RunOptions::default()
        .with_run_input(RunInput::serializable(String::from("ann")))
        .with_cancel(token);
    let _ = Durable::new(store.clone())
        .start(&pipeline, "r", options)
        .await
        .expect("started");

    let error = Durable::new(store.clone())
        .resume(&pipeline, "r", RunOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(error, CheckpointError::InputNotReadable { .. }),
        "{error}"
    );
    let resumed = Durable::new(store)
        .with_input::<String>()
        .resume(&pipeline, "r", RunOptions::default())
        .await
        .expect("resumed");
    assert_eq!(
        *resumed.report().artifact::<String>("shout").expect("live"),
        "hello ann ANN"
    );
}

#[tokio::test]
async fn starting_a_run_twice_or_with_an_input_that_cannot_be_saved_is_an_error() {
    let durable = Durable::new(MemoryStore::new());
    let pipeline = chain(2, counters(2), None);
    let _ = durable
        .start(&pipeline, "r", RunOptions::default())
        .await
        .expect("started");
    let error = durable
        .start(&pipeline, "r", RunOptions::default())
        .await
        .unwrap_err();
    assert_eq!(error, CheckpointError::RunExists { run: "r".into() });
    let error = durable
        .start(&pipeline, "other", RunOptions::default().with_input(3u8))
        .await
        .unwrap_err();
    assert!(
        matches!(error, CheckpointError::InputNotSerializable { .. }),
        "{error}"
    );
    let error = durable
        .resume(&pipeline, "missing", RunOptions::default())
        .await
        .unwrap_err();
    assert_eq!(
        error,
        CheckpointError::UnknownRun {
            run: "missing".into()
        }
    );
}

#[tokio::test]
async fn a_restored_router_still_prunes_the_route_it_did_not_take() {
    let token = CancellationToken::new();
    let stop = token.clone();
    let pipeline = Pipeline::builder()
        .router("triage", |_: StageContext| async {
            Ok::<_, StageError>(Route::to(["fix"]))
        })
        .durable()
        .stage("fix", move |_: StageContext| {
            let stop = stop.clone();
            async move {
                if !stop.is_cancelled() {
                    stop.cancel();
                    std::future::pending::<()>().await;
                }
                Ok::<_, StageError>(())
            }
        })
        .after(["triage"])
        .stage("post", |_: StageContext| async { Ok::<_, StageError>(()) })
        .after(["triage"])
        .build()
        .expect("valid");
    let durable = Durable::new(MemoryStore::new());
    let _ = durable
        .start(&pipeline, "r", RunOptions::default().with_cancel(token))
        .await
        .expect("started");
    let resumed = durable
        .resume(&pipeline, "r", RunOptions::default())
        .await
        .expect("resumed");
    let report = resumed.report();
    assert!(report.is_success());
    assert!(report.stage("triage").expect("stage").resumed);
    assert_eq!(
        report.explain("post").expect("stage"),
        "post skipped because route not taken by triage"
    );
}
