//! Interrupts: a stage pauses a durable run for outside input, and `resume_with` continues it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hivekit_swarm::checkpoint::{CheckpointError, Durable, DurableOutcome, MemoryStore};
use hivekit_swarm::{
    FailurePolicy, Pipeline, RunOptions, RunOutcome, RunReport, StageContext, StageError,
    StageStatus,
};

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

#[tokio::test]
async fn an_interrupted_run_reads_interrupted_in_its_outcome_its_display_its_json_and_its_durable_outcome(
) {
    let pipeline = review(Arc::new(AtomicUsize::new(0)));
    let durable = Durable::new(MemoryStore::new());
    let outcome = durable
        .start(&pipeline, "notes", RunOptions::default())
        .await
        .expect("started");
    assert_eq!(outcome.interrupted_stage(), Some("approve"));
    let report = outcome.report();
    assert_eq!(report.outcome(), RunOutcome::Interrupted);
    assert!(!report.is_success());
    assert_eq!(report.interrupted(), Some(("approve", "needs an editor")));
    assert_eq!(
        report.status("approve"),
        Some(&StageStatus::Interrupted {
            reason: "needs an editor".into(),
            attempts: 1
        })
    );
    let text = report.to_string();
    assert!(
        text.contains(
            "run Interrupted (paused at stage approve, waiting for input: needs an editor)"
        ),
        "{text}"
    );
    assert!(
        text.contains("interrupted, waiting for input: needs an editor"),
        "{text}"
    );
    assert!(
        !text.contains("Failed") && !text.contains("failed"),
        "{text}"
    );

    let back = RunReport::from_json(&report.to_json().expect("json")).expect("read back");
    assert_eq!(back.outcome(), RunOutcome::Interrupted);
    assert_eq!(back.interrupted(), report.interrupted());
    assert_eq!(back.status("approve"), report.status("approve"));
    let last_line = |text: &str| {
        let line = text.lines().last().unwrap_or_default().to_owned();
        line[..line.rfind(" in ").unwrap_or(line.len())].to_owned()
    };
    assert_eq!(last_line(&back.to_string()), last_line(&text));
}

#[tokio::test]
async fn an_interrupt_pauses_only_its_dependents_and_stages_independent_of_it_still_run() {
    let pipeline = Pipeline::builder()
        .stage("approve", |ctx: StageContext| async move {
            match ctx.resume_value::<bool>()? {
                Some(approved) => Ok::<_, StageError>(approved),
                None => Err(ctx.interrupt("needs a yes")),
            }
        })
        .durable()
        .stage("publish", |ctx: StageContext| async move {
            Ok::<_, StageError>(*ctx.input::<bool>("approve")?)
        })
        .after(["approve"])
        .durable()
        .stage("index", |_: StageContext| async {
            tokio::task::yield_now().await;
            Ok::<_, StageError>(7u32)
        })
        .durable()
        .build()
        .expect("valid");
    let durable = Durable::new(MemoryStore::new());
    let first = durable
        .start(&pipeline, "p", RunOptions::default())
        .await
        .expect("started");
    let report = first.report();
    assert_eq!(report.outcome(), RunOutcome::Interrupted);
    assert_eq!(
        report.status("index"),
        Some(&StageStatus::Succeeded { attempts: 1 })
    );
    assert_eq!(
        report.explain("publish").expect("a stage"),
        "publish skipped because approve interrupted, waiting for input: needs a yes"
    );
    let second = durable
        .resume_with(&pipeline, "p", true, RunOptions::default())
        .await
        .expect("resumed");
    assert!(second.report().is_success());
    assert!(second.report().stage("index").expect("a stage").resumed);
}

#[tokio::test]
async fn a_run_with_an_interrupt_and_a_failure_reads_failed_and_still_takes_the_value() {
    let pipeline = Pipeline::builder()
        .stage("approve", |ctx: StageContext| async move {
            match ctx.resume_value::<bool>()? {
                Some(approved) => Ok::<_, StageError>(approved),
                None => Err(ctx.interrupt("needs a yes")),
            }
        })
        .durable()
        .stage("broken", |_: StageContext| async {
            tokio::task::yield_now().await;
            Err::<(), _>(StageError::permanent("disk full"))
        })
        .build()
        .expect("valid");
    let durable = Durable::new(MemoryStore::new());
    let first = durable
        .start(
            &pipeline,
            "p",
            RunOptions {
                failure: FailurePolicy::ContinueIndependent,
                ..RunOptions::default()
            },
        )
        .await
        .expect("started");
    assert!(matches!(first, DurableOutcome::Finished(_)));
    assert_eq!(first.report().outcome(), RunOutcome::Failed);
    assert_eq!(
        first.report().interrupted(),
        Some(("approve", "needs a yes"))
    );
    let second = durable
        .resume_with(&pipeline, "p", true, RunOptions::default())
        .await
        .expect("resumed");
    assert_eq!(
        second.report().status("approve"),
        Some(&StageStatus::Succeeded { attempts: 1 })
    );
}

#[tokio::test]
async fn the_pictures_of_an_interrupted_run_show_the_stage_waiting_for_input() {
    let pipeline = review(Arc::new(AtomicUsize::new(0)));
    let outcome = Durable::new(MemoryStore::new())
        .start(&pipeline, "notes", RunOptions::default())
        .await
        .expect("started");
    let mermaid = outcome.report().to_mermaid();
    assert!(
        mermaid.contains("approve<br/>waiting for input"),
        "{mermaid}"
    );
    assert!(mermaid.contains("class s1 interrupted"), "{mermaid}");
}
