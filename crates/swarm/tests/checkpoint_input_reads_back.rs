//! A run input that would not read back (a NaN, which JSON writes as `null`) is refused at start
//! with `InputNotSerializable` when the handle knows the input's type, as records that would not
//! read back are. Before, it was checkpointed and every resume failed `InputNotReadable`.

use std::time::Duration;

use hivekit_swarm::checkpoint::{CheckpointError, Durable, MemoryStore};
use hivekit_swarm::{Pipeline, RunInput, RunOptions, StageContext, StageError};
use serde::{Deserialize, Serialize};

async fn bounded<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .expect("ended in time")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Job {
    name: String,
    threshold: f64,
}

/// `read` reads the job; `check` fails the first time so the run has something to resume.
fn job_pipeline(broken: bool) -> Pipeline {
    Pipeline::builder()
        .stage("read", |ctx: StageContext| async move {
            Ok::<_, StageError>(ctx.run_input::<Job>()?.name.clone())
        })
        .durable()
        .stage("check", move |_: StageContext| async move {
            if broken {
                return Err(StageError::permanent("not yet"));
            }
            Ok::<_, StageError>(())
        })
        .after(["read"])
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_run_input_that_would_not_read_back_is_refused_at_start_or_resumes() {
    let durable = Durable::new(MemoryStore::new()).with_input::<Job>();
    let job = Job {
        name: String::from("nightly"),
        threshold: f64::NAN,
    };
    let started = bounded(durable.start(
        &job_pipeline(true),
        "r",
        RunOptions::default().with_run_input(RunInput::serializable(job)),
    ))
    .await;
    match started {
        // Refused with a typed error, as an input that cannot be serialized is.
        Err(CheckpointError::InputNotSerializable { run, .. }) => assert_eq!(run, "r"),
        Err(other) => panic!("unexpected error {other}"),
        // Or accepted: then the checkpoint must resume.
        Ok(first) => {
            assert!(!first.report().is_success());
            let resumed =
                bounded(durable.resume(&job_pipeline(false), "r", RunOptions::default())).await;
            assert!(
                resumed.is_ok(),
                "the run was checkpointed, so it resumes: {:?}",
                resumed.unwrap_err()
            );
        }
    }
}
