//! A run input whose JSON is `null` (an `Option` input that is `None`, a `()`): the start accepts
//! it (it reads back as itself), so a resume hands the stages the same input. Before, the header
//! could not tell it from a run without input (both were written `"input":null`) and a resume
//! dropped it. A run without input now writes no input at all; the headers written before
//! (format 1) still read `"input":null` as no input.

use std::time::Duration;

use hivekit_swarm::checkpoint::{CheckpointError, CheckpointStore, Durable, MemoryStore};
use hivekit_swarm::{Pipeline, RunInput, RunOptions, StageContext, StageError};

async fn bounded<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(5), future)
        .await
        .expect("no hang")
}

#[tokio::test]
async fn an_input_of_none_is_still_the_run_input_after_a_resume() {
    // A review job: the optional reviewer is not set for this run.
    let pipeline = Pipeline::builder()
        .stage("review", |ctx: StageContext| async move {
            let reviewer = ctx.run_input::<Option<String>>()?;
            match ctx.resume_value::<bool>()? {
                Some(approved) => Ok::<_, StageError>(format!(
                    "{} {approved}",
                    reviewer.as_deref().unwrap_or("nobody")
                )),
                None => Err(ctx.interrupt("approve?")),
            }
        })
        .durable()
        .build()
        .expect("valid");
    let durable = Durable::new(MemoryStore::new()).with_input::<Option<String>>();
    let options = RunOptions::default().with_run_input(RunInput::serializable(None::<String>));
    let first = bounded(durable.start(&pipeline, "r", options))
        .await
        .expect("an input that reads back as itself is accepted");
    assert_eq!(
        first.interrupted_stage(),
        Some("review"),
        "{:?}",
        first.report().status("review")
    );
    let second = bounded(durable.resume_with(&pipeline, "r", true, RunOptions::default()))
        .await
        .expect("resumes");
    let report = second.report();
    assert!(
        report.is_success(),
        "the resumed stage lost the run input: {:?}",
        report.status("review")
    );
    assert_eq!(*report.artifact::<String>("review").unwrap(), "nobody true");
}

/// A stage that interrupts once, then says whether the run has an input (an `Option<String>`).
fn has_input() -> Pipeline {
    Pipeline::builder()
        .stage("check", |ctx: StageContext| async move {
            match ctx.resume_value::<bool>()? {
                Some(_) => Ok::<_, StageError>(ctx.run_input::<Option<String>>().is_ok()),
                None => Err(ctx.interrupt("check later")),
            }
        })
        .durable()
        .build()
        .expect("valid")
}

#[tokio::test]
async fn a_run_without_input_writes_none_and_resumes_without_one() {
    let pipeline = has_input();
    let store = MemoryStore::new();
    for durable in [
        Durable::new(store.clone()),
        Durable::new(store.clone()).with_input::<Option<String>>(),
    ] {
        let run = format!("r{}", durable.runs().unwrap().len());
        let first = bounded(durable.start(&pipeline, &run, RunOptions::default()))
            .await
            .expect("starts");
        assert_eq!(first.interrupted_stage(), Some("check"));
        let header = store.load_run(&run).unwrap().expect("created").header;
        let header = String::from_utf8(header).unwrap();
        assert!(!header.contains("\"input\""), "{header}");
        let second = bounded(durable.resume_with(&pipeline, &run, true, RunOptions::default()))
            .await
            .expect("resumes");
        assert!(
            !*second.report().artifact::<bool>("check").unwrap(),
            "a run without input resumes without one"
        );
    }
}

/// Format 1 wrote a run without input as `"input":null`: such a checkpoint still resumes as a
/// run without input, even on a handle told an input type that reads `null`.
#[tokio::test]
async fn a_format_1_header_reads_a_null_input_as_no_input() {
    let pipeline = has_input();
    let written = MemoryStore::new();
    let first = bounded(Durable::new(written.clone()).start(&pipeline, "r", RunOptions::default()))
        .await
        .expect("starts");
    assert_eq!(first.interrupted_stage(), Some("check"));
    let stored = written.load_run("r").unwrap().expect("created");
    let header = String::from_utf8(stored.header).unwrap();
    let old = header
        .strip_prefix("{\"format\":2,")
        .and_then(|rest| rest.strip_suffix('}'))
        .map(|fields| format!("{{\"format\":1,{fields},\"input\":null}}"))
        .unwrap_or_else(|| panic!("a format 2 header: {header}"));
    let store = MemoryStore::new();
    store.create_run("r", 1, old.as_bytes()).unwrap();
    for (key, record) in &stored.records {
        store.put_record("r", key, record).unwrap();
    }
    let durable = Durable::new(store).with_input::<Option<String>>();
    let second = bounded(durable.resume_with(&pipeline, "r", true, RunOptions::default()))
        .await
        .expect("a format 1 checkpoint resumes");
    assert!(!*second.report().artifact::<bool>("check").unwrap());
}

/// `Some(None)` is written as `null`, the JSON of `None`: it would read back as another value.
#[tokio::test]
async fn an_input_of_some_none_is_refused_at_start() {
    let pipeline = has_input();
    for durable in [
        Durable::new(MemoryStore::new()),
        Durable::new(MemoryStore::new()).with_input::<Option<Option<String>>>(),
    ] {
        let options =
            RunOptions::default().with_run_input(RunInput::serializable(Some(None::<String>)));
        let started = bounded(durable.start(&pipeline, "r", options)).await;
        let Err(CheckpointError::InputNotSerializable { run, reason }) = started else {
            panic!("{started:?}");
        };
        assert_eq!(run, "r");
        assert!(reason.contains("would read back as `None`"), "{reason}");
        assert!(durable.runs().unwrap().is_empty(), "nothing was created");
    }
}
