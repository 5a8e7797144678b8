//! LangGraph-style human-in-the-loop: one stage asking twice, later stages interrupting after an earlier answer, plain resumes asking again.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::checkpoint::{Durable, DurableOutcome, MemoryStore};
use hivekit_swarm::{Pipeline, RunOptions, StageContext, StageError};

#[derive(Default)]
struct Calls {
    draft: AtomicU32,
    ask: AtomicU32,
    review: AtomicU32,
    publish: AtomicU32,
}

/// draft -> ask (two questions in turn) -> review (one question) -> publish.
fn pipeline(calls: &Arc<Calls>) -> Pipeline {
    let (c1, c2, c3, c4) = (calls.clone(), calls.clone(), calls.clone(), calls.clone());
    Pipeline::builder()
        .stage("draft", move |_: StageContext| {
            c1.draft.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, StageError>(String::from("text")) }
        })
        .durable()
        .stage("ask", move |ctx: StageContext| {
            c2.ask.fetch_add(1, Ordering::SeqCst);
            async move {
                match ctx.resume_value::<String>()?.as_deref() {
                    None => Err(ctx.interrupt("first question")),
                    Some("a1") => Err(ctx.interrupt("second question")),
                    Some(answer) => Ok(format!("{}+{answer}", ctx.input::<String>("draft")?)),
                }
            }
        })
        .durable()
        .after(["draft"])
        .stage("review", move |ctx: StageContext| {
            c3.review.fetch_add(1, Ordering::SeqCst);
            async move {
                match ctx.resume_value::<bool>()? {
                    None => Err(ctx.interrupt("approve?")),
                    Some(ok) => Ok(ok),
                }
            }
        })
        .durable()
        .after(["ask"])
        .stage("publish", move |ctx: StageContext| {
            c4.publish.fetch_add(1, Ordering::SeqCst);
            async move {
                let text = ctx.input::<String>("ask")?;
                let approved = *ctx.input::<bool>("review")?;
                Ok::<_, StageError>(format!("{text}:{approved}"))
            }
        })
        .durable()
        .after(["review"])
        .reads(["ask"])
        .build()
        .unwrap()
}

fn reason(outcome: &DurableOutcome) -> Option<(String, String)> {
    match outcome {
        DurableOutcome::Interrupted { stage, reason, .. } => Some((stage.clone(), reason.clone())),
        _ => None,
    }
}

async fn bounded<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .expect("the durable call ends")
}

#[tokio::test]
async fn a_stage_asking_twice_and_a_later_stage_asking_once_are_each_answered_in_turn() {
    let calls = Arc::new(Calls::default());
    let pipeline = pipeline(&calls);
    let durable = Durable::new(MemoryStore::new());

    let first = bounded(durable.start(&pipeline, "thread-1", RunOptions::default()))
        .await
        .unwrap();
    assert_eq!(
        reason(&first),
        Some(("ask".into(), "first question".into()))
    );

    // A plain resume hands no value: the stage asks the same question again.
    let again = bounded(durable.resume(&pipeline, "thread-1", RunOptions::default()))
        .await
        .unwrap();
    assert_eq!(
        reason(&again),
        Some(("ask".into(), "first question".into()))
    );

    let second = bounded(durable.resume_with(&pipeline, "thread-1", "a1", RunOptions::default()))
        .await
        .unwrap();
    assert_eq!(
        reason(&second),
        Some(("ask".into(), "second question".into()))
    );

    let third = bounded(durable.resume_with(&pipeline, "thread-1", "a2", RunOptions::default()))
        .await
        .unwrap();
    assert_eq!(reason(&third), Some(("review".into(), "approve?".into())));
    assert_eq!(
        *third.report().artifact::<String>("ask").unwrap(),
        "text+a2"
    );

    let fourth = bounded(durable.resume_with(&pipeline, "thread-1", true, RunOptions::default()))
        .await
        .unwrap();
    let report = fourth.report();
    assert!(report.is_success(), "{report}");
    assert_eq!(
        *report.artifact::<String>("publish").unwrap(),
        "text+a2:true"
    );
    assert!(report.stage("draft").unwrap().resumed);
    assert!(report.stage("ask").unwrap().resumed);

    assert_eq!(calls.draft.load(Ordering::SeqCst), 1, "draft ran once");
    assert_eq!(
        calls.ask.load(Ordering::SeqCst),
        4,
        "ask: start, plain resume, a1, a2"
    );
    assert_eq!(calls.review.load(Ordering::SeqCst), 2);
    assert_eq!(calls.publish.load(Ordering::SeqCst), 1);

    // The finished thread resumes to the same result without running anything.
    let done = bounded(durable.resume(&pipeline, "thread-1", RunOptions::default()))
        .await
        .unwrap();
    assert!(done.report().is_success());
    assert_eq!(
        *done.report().artifact::<String>("publish").unwrap(),
        "text+a2:true"
    );
    assert_eq!(calls.publish.load(Ordering::SeqCst), 1);
    assert_eq!(calls.ask.load(Ordering::SeqCst), 4);

    // A value for a thread nothing waits on is refused.
    assert!(
        bounded(durable.resume_with(&pipeline, "thread-1", 1, RunOptions::default()))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn two_threads_of_one_pipeline_keep_their_own_answers() {
    let calls = Arc::new(Calls::default());
    let pipeline = pipeline(&calls);
    let durable = Durable::new(MemoryStore::new());
    for thread in ["a", "b"] {
        let outcome = bounded(durable.start(&pipeline, thread, RunOptions::default()))
            .await
            .unwrap();
        assert_eq!(outcome.interrupted_stage(), Some("ask"));
    }
    for (thread, answer) in [("a", "x"), ("b", "y")] {
        let outcome =
            bounded(durable.resume_with(&pipeline, thread, answer, RunOptions::default()))
                .await
                .unwrap();
        assert_eq!(outcome.interrupted_stage(), Some("review"));
    }
    for (thread, approve) in [("b", false), ("a", true)] {
        let outcome =
            bounded(durable.resume_with(&pipeline, thread, approve, RunOptions::default()))
                .await
                .unwrap();
        let expected = if thread == "a" {
            "text+x:true"
        } else {
            "text+y:false"
        };
        assert_eq!(
            *outcome.report().artifact::<String>("publish").unwrap(),
            expected
        );
    }
    assert_eq!(calls.draft.load(Ordering::SeqCst), 2);
}
