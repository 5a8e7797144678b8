//! `Durable::resume_with_values` hands each interrupted stage its own value (LangGraph's resume
//! map): stages asked side by side get different answers, a stage left out asks again, and a name
//! that is not waiting is a typed error that writes and runs nothing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hivekit_swarm::checkpoint::{CheckpointError, Durable, MemoryStore};
use hivekit_swarm::{Pipeline, RunOptions, StageContext, StageError};

/// Three stages: two reviewers asked side by side, and a merge after both. `entered` counts the
/// bodies run.
fn review(entered: &Arc<AtomicUsize>) -> Pipeline {
    let ask = |question: &'static str| {
        let entered = entered.clone();
        move |ctx: StageContext| {
            let entered = entered.clone();
            async move {
                entered.fetch_add(1, Ordering::SeqCst);
                match ctx.resume_value::<u32>()? {
                    Some(score) => Ok(score),
                    None => Err(ctx.interrupt(question)),
                }
            }
        }
    };
    Pipeline::builder()
        .stage("security", ask("is it safe?"))
        .durable()
        .stage("style", ask("is it tidy?"))
        .durable()
        .stage("merge", |ctx: StageContext| async move {
            Ok::<_, StageError>(*ctx.input::<u32>("security")? * 10 + *ctx.input::<u32>("style")?)
        })
        .after(["security", "style"])
        .durable()
        .build()
        .unwrap()
}

#[tokio::test]
async fn stages_asked_side_by_side_get_their_own_answers() {
    let entered = Arc::new(AtomicUsize::new(0));
    let pipeline = review(&entered);
    let durable = Durable::new(MemoryStore::new());
    let first = durable
        .start(&pipeline, "pr", RunOptions::default())
        .await
        .unwrap();
    assert!(first.interrupted_stage().is_some());
    let done = durable
        .resume_with_values(
            &pipeline,
            "pr",
            [("security", 7_u32), ("style", 3)],
            RunOptions::default(),
        )
        .await
        .unwrap();
    assert!(done.report().is_success());
    assert_eq!(*done.report().artifact::<u32>("merge").unwrap(), 73);
}

#[tokio::test]
async fn a_stage_left_out_asks_again_and_gets_its_answer_on_the_next_resume() {
    let entered = Arc::new(AtomicUsize::new(0));
    let pipeline = review(&entered);
    let durable = Durable::new(MemoryStore::new());
    let _ = durable
        .start(&pipeline, "pr", RunOptions::default())
        .await
        .unwrap();
    let partly = durable
        .resume_with_values(&pipeline, "pr", [("style", 4_u32)], RunOptions::default())
        .await
        .unwrap();
    assert_eq!(partly.interrupted_stage(), Some("security"));
    let state = durable.inspect("pr").unwrap();
    assert!(state.stage("style").unwrap().is_restored_on_resume());
    let waiting: Vec<&str> = state
        .interrupted()
        .map(|stage| stage.name.as_str())
        .collect();
    assert_eq!(waiting, ["security"]);

    let before = entered.load(Ordering::SeqCst);
    let done = durable
        .resume_with_values(
            &pipeline,
            "pr",
            [("security", 9_u32)],
            RunOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(*done.report().artifact::<u32>("merge").unwrap(), 94);
    assert_eq!(
        entered.load(Ordering::SeqCst) - before,
        1,
        "only the stage still waiting ran again"
    );
}

#[tokio::test]
async fn a_name_that_is_not_waiting_writes_and_runs_nothing() {
    let entered = Arc::new(AtomicUsize::new(0));
    let pipeline = review(&entered);
    let durable = Durable::new(MemoryStore::new());
    let _ = durable
        .start(&pipeline, "pr", RunOptions::default())
        .await
        .unwrap();
    let before = entered.load(Ordering::SeqCst);
    for name in ["merge", "nonexistent"] {
        let refused = durable
            .resume_with_values(
                &pipeline,
                "pr",
                [("security", 1_u32), (name, 2)],
                RunOptions::default(),
            )
            .await;
        assert_eq!(
            refused.err(),
            Some(CheckpointError::StageNotInterrupted {
                run: "pr".to_owned(),
                stage: name.to_owned(),
            })
        );
    }
    assert_eq!(entered.load(Ordering::SeqCst), before, "nothing ran");
    let state = durable.inspect("pr").unwrap();
    assert!(
        state
            .stages
            .iter()
            .all(|stage| stage.resume_value_json().is_none()),
        "nothing was written"
    );
}

#[tokio::test]
async fn no_values_resumes_as_a_plain_resume_and_a_bad_value_is_refused() {
    let entered = Arc::new(AtomicUsize::new(0));
    let pipeline = review(&entered);
    let durable = Durable::new(MemoryStore::new());
    let _ = durable
        .start(&pipeline, "pr", RunOptions::default())
        .await
        .unwrap();
    let none: [(&str, u32); 0] = [];
    let again = durable
        .resume_with_values(&pipeline, "pr", none, RunOptions::default())
        .await
        .unwrap();
    assert!(again.interrupted_stage().is_some(), "both still wait");

    let refused = durable
        .resume_with_values(
            &pipeline,
            "pr",
            [("style", f64::NAN)],
            RunOptions::default(),
        )
        .await;
    assert!(
        matches!(refused, Err(CheckpointError::ValueNotSerializable { .. })),
        "{refused:?}"
    );
}
