//! A durable run killed and resumed: the example starts itself as a child process that runs a
//! 30-stage pipeline (each stage stands for a paid model call), SIGKILLs it part way through, then
//! resumes the run from the checkpoint on disk. Stages that finished before the kill are not called
//! again; the one in flight is.
//!
//! Run with `cargo run -p hivekit-examples --example durable_resume` (a second or two).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use hivekit_swarm::checkpoint::{Durable, RedbStore};
use hivekit_swarm::{Pipeline, RunOptions, StageContext, StageError};

const CHILD: &str = "HIVEKIT_DURABLE_EXAMPLE_STORE";
const STAGES: usize = 30;
/// The child is killed once it has started this many calls: part way, however slowly it started.
const KILL_AFTER: usize = 14;

/// Thirty "model calls" in a chain, each building on the last answer.
fn pipeline() -> Pipeline {
    let mut builder = Pipeline::builder().name("summaries").durable();
    for index in 0..STAGES {
        let stage = builder
            .stage(
                format!("call-{index:02}"),
                move |ctx: StageContext| async move {
                    println!("  calling the model for step {index:02}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let previous = match index {
                        0 => String::new(),
                        _ => ctx
                            .input::<String>(&format!("call-{:02}", index - 1))?
                            .to_string(),
                    };
                    Ok::<_, StageError>(format!(
                        "{previous}{}",
                        char::from(b'a' + (index % 26) as u8)
                    ))
                },
            )
            .durable();
        builder = match index {
            0 => stage.into_builder(),
            _ => stage
                .after([format!("call-{:02}", index - 1)])
                .into_builder(),
        };
    }
    builder.build().expect("a valid pipeline")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Ok(path) = std::env::var(CHILD) {
        // The child: start the run; it is killed before it ends.
        let durable = Durable::new(RedbStore::open(Path::new(&path))?);
        let _ = runtime().block_on(durable.start(&pipeline(), "nightly", RunOptions::default()))?;
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let store_path = dir.path().join("runs.redb");
    println!("child process: starting run `nightly`");
    let mut child = Command::new(std::env::current_exe()?)
        .env(CHILD, &store_path)
        .stdout(Stdio::piped())
        .spawn()?;
    // Part way: once the child has started its 14th call (a fixed sleep killed a child that was
    // slow to start before its run had begun, and the resume found no run).
    let calls = BufReader::new(child.stdout.take().ok_or("the child's output")?);
    for line in calls.lines().take(KILL_AFTER) {
        println!("{}", line?);
    }
    child.kill()?; // SIGKILL: no destructor, no flush, no goodbye
    child.wait()?;
    println!("child process: killed\n\nthis process: resuming run `nightly`");

    let durable = Durable::new(RedbStore::open(&store_path)?);
    let report = runtime()
        .block_on(durable.resume(&pipeline(), "nightly", RunOptions::default()))?
        .into_report();
    let restored = report.stages().iter().filter(|stage| stage.resumed).count();
    println!(
        "\n{restored} of {STAGES} stages restored from the checkpoint, {} ran in this process",
        STAGES - restored
    );
    println!("outcome: {:?}", report.outcome());
    println!("final answer: {}", report.artifact::<String>("call-29")?);
    assert!(report.is_success());
    Ok(())
}
