//! A resume value of the wrong type does not stick: the stage fails that resume with a typed
//! error naming it and the type, the value is dropped from the checkpoint, and the user can give
//! the right one, with `resume_with` at once (the stage counts as interrupted again) or after a
//! plain `resume`, which runs the stage without a value so that it interrupts again. Before, the
//! bad value stayed checkpointed: every later `resume` failed on it and `resume_with` answered
//! `NotInterrupted`, for good.

use hivekit_swarm::checkpoint::{Durable, DurableOutcome, MemoryStore};
use hivekit_swarm::{Pipeline, RunOptions, StageContext, StageError, StageStatus};

fn review() -> Pipeline {
    Pipeline::builder()
        .stage("draft", |_: StageContext| async {
            Ok::<_, StageError>(String::from("text"))
        })
        .durable()
        .stage("publish", |ctx: StageContext| async move {
            match ctx.resume_value::<bool>()? {
                Some(approved) => Ok::<_, StageError>(approved),
                None => Err(ctx.interrupt("needs an editor's approval")),
            }
        })
        .durable()
        .after(["draft"])
        .build()
        .expect("valid durable pipeline")
}

/// Starts `post-1` and resumes it with a string where `publish` reads a `bool`.
async fn resumed_with_a_wrong_value(pipeline: &Pipeline, durable: &Durable) {
    let first = durable
        .start(pipeline, "post-1", RunOptions::default())
        .await
        .expect("started");
    assert_eq!(first.interrupted_stage(), Some("publish"));
    let wrong = durable
        .resume_with(pipeline, "post-1", "yes please", RunOptions::default())
        .await
        .expect("resumed");
    let report = wrong.report();
    assert!(!report.is_success(), "a string is not a bool");
    let status = &report.stage("publish").expect("publish").status;
    assert!(matches!(status, StageStatus::Failed { .. }), "{status:?}");
    let message = status.to_string();
    assert!(
        message.contains("`publish`") && message.contains("bool"),
        "{message}"
    );
}

fn assert_published(outcome: &DurableOutcome) {
    let report = outcome.report();
    assert!(report.is_success(), "{report}");
    assert!(*report.artifact::<bool>("publish").expect("artifact"));
    assert!(report.stage("draft").expect("draft").resumed);
}

#[tokio::test]
async fn a_mistyped_resume_value_can_be_replaced_at_once() {
    let pipeline = review();
    let durable = Durable::new(MemoryStore::new());
    resumed_with_a_wrong_value(&pipeline, &durable).await;
    let corrected = durable
        .resume_with(&pipeline, "post-1", true, RunOptions::default())
        .await
        .expect("the right value is taken");
    assert_published(&corrected);
}

#[tokio::test]
async fn after_a_mistyped_resume_value_a_plain_resume_asks_again() {
    let pipeline = review();
    let durable = Durable::new(MemoryStore::new());
    resumed_with_a_wrong_value(&pipeline, &durable).await;
    for _ in 0..2 {
        let again = durable
            .resume(&pipeline, "post-1", RunOptions::default())
            .await
            .expect("resumed");
        assert_eq!(
            again.interrupted_stage(),
            Some("publish"),
            "the stage must ask again: {}",
            again.report()
        );
    }
    let corrected = durable
        .resume_with(&pipeline, "post-1", true, RunOptions::default())
        .await
        .expect("the right value is taken");
    assert_published(&corrected);
}
