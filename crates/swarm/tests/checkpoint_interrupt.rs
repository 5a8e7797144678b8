//! Interrupts: a stage pauses a durable run for outside input, and `resume_with` continues it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hivekit_swarm::checkpoint::{CheckpointError, Durable, DurableOutcome, MemoryStore};
use hivekit_swarm::{Pipeline, RunOptions, StageContext, StageError, StageStatus};

fn review(drafts: Arc<AtomicUsize>) -> Pipeline {
    Pipeline::builder()
        .stage("draft", move |_: StageContext| {
            let drafts = drafts.clone();
            async move {
                drafts.fetch_add(1, Ordering::SeqCst);
                Ok::<_, StageError>(String::from("release notes"))
            }
        })
        .durable()
        .stage("approve", |ctx: StageContext| async move {
            match ctx.resume_value::<String>()? {
                Some(editor) => Ok::<_, StageError>(format!(
                    "{} approved by {editor}",
                    ctx.input::<String>("draft")?
                )),
                None => Err(ctx.interrupt("needs an editor")),
            }
        })
        .after(["draft"])
        .durable()
        .retry(hivekit_swarm::RetryPolicy::attempts(3))
        .build()
        .expect("valid")
}

#[tokio::test]
async fn an_interrupt_ends_the_run_interrupted_and_resume_with_continues_it_with_the_value() {
    let drafts = Arc::new(AtomicUsize::new(0));
    let pipeline = review(drafts.clone());
    let durable = Durable::new(MemoryStore::new());
    let first = durable
        .start(&pipeline, "notes", RunOptions::default())
        .await
        .expect("started");
    let DurableOutcome::Interrupted {
        stage,
        reason,
        report,
    } = &first
    else {
        panic!("expected an interrupt, got {first:?}");
    };
    assert_eq!(
        (stage.as_str(), reason.as_str()),
        ("approve", "needs an editor")
    );
    // An interrupt is not retried.
    assert_eq!(report.status("approve").expect("stage").attempts(), 1);

    // Resuming without a value asks again.
    let again = durable
        .resume(&pipeline, "notes", RunOptions::default())
        .await
        .expect("resumed");
    assert_eq!(again.interrupted_stage(), Some("approve"));

    let done = durable
        .resume_with(&pipeline, "notes", "ada", RunOptions::default())
        .await
        .expect("resumed");
    assert!(done.interrupted_stage().is_none());
    let report = done.report();
    assert_eq!(
        report.status("approve"),
        Some(&StageStatus::Succeeded { attempts: 1 })
    );
    assert_eq!(
        *report.artifact::<String>("approve").expect("live"),
        "release notes approved by ada"
    );
    assert_eq!(
        drafts.load(Ordering::SeqCst),
        1,
        "the draft was not written again"
    );
}

#[tokio::test]
async fn resume_with_on_a_run_no_stage_interrupted_is_an_error() {
    let pipeline = Pipeline::builder()
        .stage("only", |_: StageContext| async { Ok::<_, StageError>(()) })
        .build()
        .expect("valid");
    let durable = Durable::new(MemoryStore::new());
    let _ = durable
        .start(&pipeline, "r", RunOptions::default())
        .await
        .expect("started");
    let error = durable
        .resume_with(&pipeline, "r", true, RunOptions::default())
        .await
        .unwrap_err();
    assert_eq!(error, CheckpointError::NotInterrupted { run: "r".into() });
}

#[tokio::test]
async fn an_interrupt_outside_a_durable_run_is_a_permanent_failure() {
    let pipeline = review(Arc::new(AtomicUsize::new(0)));
    let report = pipeline.run().await;
    let Some(StageStatus::Failed { error, attempts }) = report.status("approve") else {
        panic!("approve should fail");
    };
    assert_eq!(
        (error.to_string().as_str(), *attempts),
        ("interrupted: needs an editor", 1)
    );
}
