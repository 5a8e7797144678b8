//! A new user's release pipeline that waits for two sign-offs asked side by side, written from
//! the README and the rustdoc only: `Durable::inspect` shows who waits and why without the
//! pipeline, `Durable::resume_with_values` answers each reviewer on its own (one left out asks
//! again, a stage not waiting is refused with nothing written), and `inspect` follows the run to
//! its end.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hivekit::runtime::execute;
use hivekit::swarm::checkpoint::{CheckpointError, Durable, MemoryStore, RunState};
use hivekit::swarm::{Pipeline, RunOptions, StageContext, StageError, StageStatus};

fn release_pipeline(builds: Arc<AtomicUsize>) -> Pipeline {
    // A stage that asks a reviewer and returns the answer.
    let ask = |question: &'static str| {
        move |ctx: StageContext| async move {
            match ctx.resume_value::<String>()? {
                Some(answer) => Ok(answer),
                None => Err(ctx.interrupt(question)),
            }
        }
    };
    Pipeline::builder()
        .name("release")
        .stage("build", move |_: StageContext| {
            let builds = builds.clone();
            async move {
                builds.fetch_add(1, Ordering::SeqCst);
                Ok::<_, StageError>(String::from("v1.2.0"))
            }
        })
        .durable()
        .stage("legal", ask("may we ship?"))
        .durable()
        .after(["build"])
        .stage("security", ask("is it safe?"))
        .durable()
        .after(["build"])
        .stage("ship", |ctx: StageContext| async move {
            Ok::<_, StageError>(format!(
                "{} (legal: {}, security: {})",
                ctx.input::<String>("build")?,
                ctx.input::<String>("legal")?,
                ctx.input::<String>("security")?,
            ))
        })
        .durable()
        .after(["legal", "security"])
        .reads(["build"])
        .build()
        .expect("a valid pipeline")
}

fn waiting(state: &RunState) -> Vec<(&str, &str)> {
    state
        .interrupted()
        .map(|stage| {
            (
                stage.name.as_str(),
                stage.interrupt.as_deref().unwrap_or("<no reason>"),
            )
        })
        .collect()
}

#[test]
fn two_sign_offs_answered_one_at_a_time_and_inspected_between() {
    let builds = Arc::new(AtomicUsize::new(0));
    let pipeline = release_pipeline(builds.clone());
    let durable = Durable::new(MemoryStore::new());

    let first = execute(durable.start(&pipeline, "rel-1", RunOptions::default())).expect("started");
    assert!(!first.report().is_success());
    assert_eq!(builds.load(Ordering::SeqCst), 1);

    // Inspect needs no pipeline and runs nothing.
    let state = durable.inspect("rel-1").expect("the run is stored");
    assert_eq!(
        (state.run.as_str(), state.pipeline.as_str()),
        ("rel-1", "release")
    );
    let names: Vec<&str> = state
        .stages
        .iter()
        .map(|stage| stage.name.as_str())
        .collect();
    assert_eq!(names, ["build", "legal", "security", "ship"]);
    assert_eq!(
        state.stage("ship").expect("declared").after,
        ["legal", "security"]
    );
    assert_eq!(
        waiting(&state),
        [("legal", "may we ship?"), ("security", "is it safe?")]
    );
    let build = state.stage("build").expect("declared");
    assert!(build.is_restored_on_resume());
    assert_eq!(
        build.artifact::<String>().expect("a string").as_deref(),
        Some("v1.2.0")
    );
    assert_eq!(
        state.stage("ship").expect("declared").status,
        None,
        "not reached"
    );
    assert!(!state.is_complete());
    assert_eq!(state.done().count(), 1);

    // Legal answers first; security, left out, asks again.
    let second = execute(durable.resume_with_values(
        &pipeline,
        "rel-1",
        [("legal", "approved")],
        RunOptions::default(),
    ))
    .expect("resumed");
    assert_eq!(second.interrupted_stage(), Some("security"));
    assert_eq!(
        builds.load(Ordering::SeqCst),
        1,
        "build restored, not run again"
    );
    let state = durable.inspect("rel-1").expect("stored");
    assert_eq!(waiting(&state), [("security", "is it safe?")]);
    let legal = state.stage("legal").expect("declared");
    assert!(legal.succeeded() && legal.is_restored_on_resume());
    assert_eq!(
        legal.artifact::<String>().expect("a string").as_deref(),
        Some("approved")
    );

    // Naming a stage that is not waiting is refused, and nothing is written or run.
    let refused = execute(durable.resume_with_values(
        &pipeline,
        "rel-1",
        [("security", "yes"), ("legal", "changed my mind")],
        RunOptions::default(),
    ));
    match refused {
        Err(CheckpointError::StageNotInterrupted { run, stage }) => {
            assert_eq!((run.as_str(), stage.as_str()), ("rel-1", "legal"));
        }
        other => panic!("expected StageNotInterrupted, got {other:?}"),
    }
    assert_eq!(
        durable.inspect("rel-1").expect("stored"),
        state,
        "nothing written"
    );
    let unknown = execute(durable.resume_with_values(
        &pipeline,
        "rel-1",
        [("typo", "yes")],
        RunOptions::default(),
    ));
    assert!(
        matches!(unknown, Err(CheckpointError::StageNotInterrupted { ref stage, .. }) if stage == "typo"),
        "{unknown:?}"
    );

    // Security answers: the run ends and inspect says so.
    let last = execute(durable.resume_with_values(
        &pipeline,
        "rel-1",
        vec![(String::from("security"), String::from("looks safe"))],
        RunOptions::default(),
    ))
    .expect("resumed");
    let report = last.report();
    assert!(report.is_success(), "{report}");
    assert_eq!(
        *report.artifact::<String>("ship").expect("shipped"),
        "v1.2.0 (legal: approved, security: looks safe)"
    );
    assert_eq!(builds.load(Ordering::SeqCst), 1);
    let state = durable.inspect("rel-1").expect("stored");
    assert!(state.is_complete());
    assert_eq!(state.interrupted().count(), 0);
    assert_eq!(state.done().count(), 4);
    assert!(matches!(
        state.stage("security").expect("declared").status,
        Some(StageStatus::Succeeded { .. })
    ));
}

#[test]
fn inspecting_an_unknown_run_is_an_error() {
    let durable = Durable::new(MemoryStore::new());
    let missing = durable.inspect("nope");
    assert!(
        matches!(missing, Err(CheckpointError::UnknownRun { ref run }) if run == "nope"),
        "{missing:?}"
    );
}
