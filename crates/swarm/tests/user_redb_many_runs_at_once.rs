//! Many durable runs at once on one on-disk store (LangGraph: many threads in one checkpointer):
//! each run, started and then resumed concurrently with the others, keeps its own input,
//! records and artifacts.

use std::time::Duration;

use futures::future::join_all;
use hivekit_swarm::checkpoint::{Durable, RedbStore};
use hivekit_swarm::{Pipeline, RunInput, RunOptions, StageContext, StageError};

/// `double` doubles the run's input; `check` fails while `broken`.
fn pipeline(broken: bool) -> Pipeline {
    Pipeline::builder()
        .stage("double", |ctx: StageContext| async move {
            tokio::task::yield_now().await;
            Ok::<_, StageError>(*ctx.run_input::<u64>()? * 2)
        })
        .durable()
        .spawn()
        .stage("check", move |ctx: StageContext| async move {
            if broken {
                return Err(StageError::permanent("not yet"));
            }
            Ok::<_, StageError>(*ctx.input::<u64>("double")? + 1)
        })
        .durable()
        .after(["double"])
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_runs_started_and_resumed_at_once_keep_their_own_state() {
    let dir = tempfile::tempdir().unwrap();
    let durable =
        Durable::new(RedbStore::open(dir.path().join("runs.redb")).unwrap()).with_input::<u64>();
    let broken = pipeline(true);
    let started = tokio::time::timeout(
        Duration::from_secs(20),
        join_all((0..40_u64).map(|job| {
            let (durable, broken) = (durable.clone(), broken.clone());
            tokio::spawn(async move {
                durable
                    .start(
                        &broken,
                        &format!("job-{job}"),
                        RunOptions::default().with_run_input(RunInput::serializable(job)),
                    )
                    .await
            })
        })),
    )
    .await
    .expect("the starts ended");
    for outcome in started {
        assert!(!outcome.unwrap().expect("started").report().is_success());
    }
    assert_eq!(durable.runs().unwrap().len(), 40);

    let fixed = pipeline(false);
    let resumed = tokio::time::timeout(
        Duration::from_secs(20),
        join_all((0..40_u64).map(|job| {
            let (durable, fixed) = (durable.clone(), fixed.clone());
            tokio::spawn(async move {
                let outcome = durable
                    .resume(&fixed, &format!("job-{job}"), RunOptions::default())
                    .await;
                (job, outcome)
            })
        })),
    )
    .await
    .expect("the resumes ended");
    for joined in resumed {
        let (job, outcome) = joined.unwrap();
        let outcome = outcome.expect("resumed");
        let report = outcome.report();
        assert!(report.is_success(), "job {job}: {report:?}");
        assert!(report.stage("double").unwrap().resumed, "job {job}");
        assert_eq!(
            *report.artifact::<u64>("check").unwrap(),
            job * 2 + 1,
            "job {job}"
        );
    }
}
