//! Durable runs on the redb store: crash (dropped future, killed child process) and resume, exactly-once of finished stages, shared handles, reused run ids, typed store errors.
#![cfg(all(feature = "durable", feature = "runtime"))]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use std::future::Future;
use std::task::Poll;

use hivekit::runtime::execute;
use hivekit::swarm::checkpoint::{
    CheckpointError, CheckpointStore, Durable, RedbStore, StoreError,
};
use hivekit::swarm::{
    EventSink, Pipeline, RunInput, RunOptions, RunReport, StageContext, StageError, StageEvent,
    StageStatus,
};
use serde::{Deserialize, Serialize};

const STAGES: usize = 6;
const TIMEOUT: Duration = Duration::from_secs(20);
const CHILD_ENV: &str = "HIVEKIT_USER_DURABLE_CHILD_STORE";
/// What the child prints when its run blocks in a stage.
const BLOCKED: &str = "blocked at stage ";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Job {
    seed: String,
}

/// How a test pipeline behaves: which stage blocks forever (announcing it started), per-stage
/// call counters, and an optional log file each call appends to (for calls across processes).
#[derive(Clone)]
struct Plan {
    block_at: Option<usize>,
    calls: Arc<Vec<AtomicUsize>>,
    log: Option<PathBuf>,
}

impl Plan {
    fn new(block_at: Option<usize>) -> Self {
        Self {
            block_at,
            calls: Arc::new((0..STAGES).map(|_| AtomicUsize::new(0)).collect()),
            log: None,
        }
    }

    fn calls(&self) -> Vec<usize> {
        self.calls
            .iter()
            .map(|c| c.load(Ordering::SeqCst))
            .collect()
    }
}

fn name(index: usize) -> String {
    format!("step-{index}")
}

/// A chain of durable stages, each appending a letter to the last one's text (the first reads the
/// run input).
fn pipeline(plan: &Plan) -> Pipeline {
    let mut builder = Pipeline::builder().name("chain").durable();
    for index in 0..STAGES {
        let plan = plan.clone();
        let stage = builder
            .stage(name(index), move |ctx: StageContext| {
                let plan = plan.clone();
                async move {
                    plan.calls[index].fetch_add(1, Ordering::SeqCst);
                    if let Some(log) = &plan.log {
                        use std::io::Write;
                        let mut file = std::fs::OpenOptions::new()
                            .create(true)
                            .append(true)
                            .open(log)
                            .map_err(StageError::from_error)?;
                        writeln!(file, "{index}").map_err(StageError::from_error)?;
                        file.sync_all().map_err(StageError::from_error)?;
                    }
                    if plan.block_at == Some(index) {
                        ctx.progress(1, 1); // announces "I am in flight" to the test
                        if plan.log.is_some() {
                            // The child's announcement to its parent (the harness runs the child
                            // with --nocapture, so this reaches the parent's pipe).
                            println!("{BLOCKED}{index}");
                        }
                        std::future::pending::<()>().await;
                    }
                    let previous = match index {
                        0 => ctx.run_input::<Job>()?.seed.clone(),
                        _ => ctx.input::<String>(&name(index - 1))?.to_string(),
                    };
                    Ok::<_, StageError>(format!("{previous}{}", char::from(b'a' + index as u8)))
                }
            })
            .durable();
        builder = match index {
            0 => stage.into_builder(),
            _ => stage.after([name(index - 1)]).into_builder(),
        };
    }
    builder.build().expect("a valid durable pipeline")
}

fn options(seed: &str) -> RunOptions {
    RunOptions::default().with_run_input(RunInput::serializable(Job {
        seed: seed.to_owned(),
    }))
}

/// A temporary directory removed on drop (the facade has no tempfile dev-dependency).
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "hivekit-user-durable-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `future`, or a panic naming `what` when it takes longer than [`TIMEOUT`].
async fn within<F: Future>(what: &str, future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut sleep = std::pin::pin!(hivekit::runtime::sleep(TIMEOUT));
    let output = std::future::poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        if sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await;
    output.unwrap_or_else(|| panic!("{what} did not finish within {TIMEOUT:?}"))
}

/// Runs `$run` until a stage reports progress on `$events` (the blocking stage announcing
/// itself), then drops it: the crash. Panics if the run ends first. Evaluates to the stage's name.
macro_rules! crash_when_in_flight {
    ($run:expr, $events:expr) => {{
        let mut run = std::pin::pin!($run);
        let events = &mut $events;
        let mut in_flight = std::pin::pin!(async {
            while let Some(event) = events.recv().await {
                if let StageEvent::Progress { stage, .. } = event {
                    return stage.to_string();
                }
            }
            panic!("the event channel closed before any stage was in flight");
        });
        within(
            "the run reaching its blocking stage",
            std::future::poll_fn(|cx| {
                if run.as_mut().poll(cx).is_ready() {
                    panic!("the run ended although a stage blocks forever");
                }
                in_flight.as_mut().poll(cx)
            }),
        )
        .await
    }};
}

fn artifacts(report: &RunReport) -> BTreeMap<String, String> {
    (0..STAGES)
        .map(|index| {
            (
                name(index),
                report
                    .artifact::<String>(&name(index))
                    .map(|a| a.to_string())
                    .unwrap_or_else(|error| format!("<{error}>")),
            )
        })
        .collect()
}

fn statuses(report: &RunReport) -> Vec<(String, bool)> {
    report
        .stages()
        .iter()
        .map(|stage| (stage.name.to_string(), stage.status.is_success()))
        .collect()
}

async fn uninterrupted(durable: &Durable, run: &str) -> RunReport {
    let plan = Plan::new(None);
    let outcome = within(
        "the uninterrupted run",
        durable.start(&pipeline(&plan), run, options("x")),
    )
    .await
    .expect("the uninterrupted run starts");
    assert_eq!(plan.calls(), vec![1; STAGES]);
    outcome.into_report()
}

#[test]
fn a_dropped_run_resumes_running_only_unfinished_stages() {
    execute(async {
        let dir = TempDir::new("dropped");
        let store = RedbStore::open(dir.path().join("runs.redb")).unwrap();
        let durable = Durable::new(store).with_input::<Job>();

        // The crash: stage 3 blocks; once it is in flight the run's future is dropped.
        let crashing = Plan::new(Some(3));
        let crashing_pipeline = pipeline(&crashing);
        let (sink, mut events) = EventSink::channel();
        let stage = crash_when_in_flight!(
            durable.start(&crashing_pipeline, "job-1", options("x").with_events(sink)),
            events
        );
        assert_eq!(stage, name(3));
        assert_eq!(crashing.calls(), vec![1, 1, 1, 1, 0, 0]);

        // The resume, with a pipeline of the same shape that no longer blocks.
        let resuming = Plan::new(None);
        let report = within(
            "the resume",
            durable.resume(&pipeline(&resuming), "job-1", RunOptions::default()),
        )
        .await
        .expect("the run resumes")
        .into_report();
        assert!(report.is_success(), "{report}");
        assert_eq!(
            resuming.calls(),
            vec![0, 0, 0, 1, 1, 1],
            "finished stages run once in all"
        );
        let resumed: Vec<bool> = report.stages().iter().map(|s| s.resumed).collect();
        assert_eq!(resumed, vec![true, true, true, false, false, false]);

        // Same result as an uninterrupted run.
        let reference = uninterrupted(&durable, "job-reference").await;
        assert_eq!(artifacts(&report), artifacts(&reference));
        assert_eq!(statuses(&report), statuses(&reference));
        assert_eq!(
            *report.artifact::<String>(&name(STAGES - 1)).unwrap(),
            "xabcdef"
        );

        // Resuming a finished run runs nothing and gives the same artifacts.
        let again = Plan::new(None);
        let outcome = within(
            "the second resume",
            durable.resume(&pipeline(&again), "job-1", RunOptions::default()),
        )
        .await
        .expect("a finished run resumes");
        assert_eq!(again.calls(), vec![0; STAGES]);
        assert_eq!(artifacts(outcome.report()), artifacts(&reference));
    });
}

#[test]
fn a_reused_run_id_is_refused_by_name_and_the_first_run_is_kept() {
    execute(async {
        let dir = TempDir::new("reused");
        let durable = Durable::new(RedbStore::open(dir.path().join("runs.redb")).unwrap())
            .with_input::<Job>();
        let first = uninterrupted(&durable, "nightly").await;
        let plan = Plan::new(None);
        let error = within(
            "the second start",
            durable.start(&pipeline(&plan), "nightly", options("other")),
        )
        .await
        .expect_err("a second start of one run id is refused");
        assert!(
            matches!(&error, CheckpointError::RunExists { run } if run == "nightly"),
            "{error:?}"
        );
        assert!(error.to_string().contains("nightly"), "{error}");
        assert_eq!(
            plan.calls(),
            vec![0; STAGES],
            "a refused start runs nothing"
        );
        let kept = within(
            "the resume of the kept run",
            durable.resume(&pipeline(&plan), "nightly", RunOptions::default()),
        )
        .await
        .unwrap();
        assert_eq!(
            artifacts(kept.report()),
            artifacts(&first),
            "the first run's checkpoint is intact"
        );
        assert_eq!(plan.calls(), vec![0; STAGES]);
    });
}

#[test]
fn two_handles_on_one_store_start_a_run_id_once() {
    execute(async {
        let dir = TempDir::new("handles");
        let store = RedbStore::open(dir.path().join("runs.redb")).unwrap();
        let a = Durable::new(store.clone()).with_input::<Job>();
        let b = Durable::new(store.clone()).with_input::<Job>();
        let plan_a = Plan::new(None);
        let plan_b = Plan::new(None);
        let (pa, pb) = (pipeline(&plan_a), pipeline(&plan_b));
        let ra = hivekit::runtime::spawn({
            let (a, pa) = (a.clone(), pa.clone());
            async move {
                a.start(&pa, "shared", options("x"))
                    .await
                    .map(|o| o.into_report())
            }
        });
        let rb = hivekit::runtime::spawn({
            let (b, pb) = (b.clone(), pb.clone());
            async move {
                b.start(&pb, "shared", options("x"))
                    .await
                    .map(|o| o.into_report())
            }
        });
        let ra = within("the first start", ra).await.unwrap();
        let rb = within("the second start", rb).await.unwrap();
        let ok = [ra.is_ok(), rb.is_ok()];
        assert_eq!(
            ok.iter().filter(|ok| **ok).count(),
            1,
            "exactly one start runs: {ra:?} {rb:?}"
        );
        let calls: Vec<usize> = plan_a
            .calls()
            .iter()
            .zip(plan_b.calls())
            .map(|(x, y)| x + y)
            .collect();
        assert_eq!(
            calls,
            vec![1; STAGES],
            "every stage ran once across both handles"
        );
        assert_eq!(a.runs().unwrap().len(), 1);
        assert_eq!(
            b.runs()
                .unwrap()
                .iter()
                .map(|e| e.run.clone())
                .collect::<Vec<_>>(),
            vec!["shared"]
        );
    });
}

#[test]
fn a_second_open_of_one_file_is_a_typed_open_error_naming_the_path() {
    let dir = TempDir::new("second-open");
    let path = dir.path().join("runs.redb");
    let _first = RedbStore::open(&path).unwrap();
    match RedbStore::open(&path) {
        Err(StoreError::Open { path: named, .. }) => {
            assert!(named.contains("runs.redb"), "{named}")
        }
        Err(other) => panic!("not an Open error: {other:?}"),
        Ok(_) => panic!("a second open of a file in use succeeded"),
    }
}

#[test]
fn a_garbage_file_is_a_typed_open_error_naming_the_path() {
    let dir = TempDir::new("garbage");
    let path = dir.path().join("garbage.redb");
    std::fs::write(&path, vec![0xAB_u8; 64 * 1024]).unwrap();
    match RedbStore::open(&path) {
        Err(StoreError::Open {
            path: named,
            message,
        }) => {
            assert!(named.contains("garbage.redb"), "{named}");
            assert!(!message.is_empty());
        }
        Err(other) => panic!("not an Open error: {other:?}"),
        Ok(_) => panic!("a garbage file opened as a store"),
    }
    // A directory where the file should be.
    let error = RedbStore::open(dir.path()).expect_err("a directory is not a store");
    assert!(matches!(error, StoreError::Open { .. }), "{error:?}");
    // A file in a directory that does not exist.
    let error = RedbStore::open(dir.path().join("missing/runs.redb")).expect_err("no directory");
    assert!(
        matches!(&error, StoreError::Open { path, .. } if path.contains("missing")),
        "{error:?}"
    );
}

#[test]
fn a_damaged_store_never_unwinds_into_the_caller() {
    let dir = TempDir::new("damaged");
    let path = dir.path().join("runs.redb");
    {
        let store = RedbStore::open(&path).unwrap();
        for run in 0..20 {
            let run = format!("run-{run}");
            store.create_run(&run, 1, &[7; 512]).unwrap();
            store.put_record(&run, "s:a", &[9; 2048]).unwrap();
        }
    }
    let bytes = std::fs::read(&path).unwrap();
    // Flip bytes across the file, one damaged copy at a time.
    for offset in (0..bytes.len()).step_by(bytes.len() / 16 + 1) {
        let mut damaged = bytes.clone();
        for byte in damaged.iter_mut().skip(offset).take(256) {
            *byte ^= 0x5A;
        }
        let copy = dir.path().join(format!("damaged-{offset}.redb"));
        std::fs::write(&copy, &damaged).unwrap();
        let result = std::panic::catch_unwind(|| match RedbStore::open(&copy) {
            Err(error) => assert!(matches!(error, StoreError::Open { .. }), "{error:?}"),
            Ok(store) => {
                let _ = store.runs();
                let _ = store.load_run("run-3");
                let _ = store.put_record("run-3", "s:b", b"x");
            }
        });
        assert!(
            result.is_ok(),
            "a store damaged at byte {offset} panicked into the caller"
        );
    }
    // A file cut short.
    let cut = dir.path().join("cut.redb");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let result = std::panic::catch_unwind(|| match RedbStore::open(&cut) {
        Err(error) => assert!(matches!(error, StoreError::Open { .. }), "{error:?}"),
        Ok(store) => {
            let _ = store.runs();
        }
    });
    assert!(result.is_ok(), "a store cut short panicked into the caller");
}

#[test]
fn resume_errors_name_the_run() {
    execute(async {
        let dir = TempDir::new("errors");
        let store = RedbStore::open(dir.path().join("runs.redb")).unwrap();
        let durable = Durable::new(store.clone());
        let plan = Plan::new(None);
        let error = durable
            .resume(&pipeline(&plan), "never-started", RunOptions::default())
            .await
            .expect_err("no such run");
        assert!(
            matches!(&error, CheckpointError::UnknownRun { run } if run == "never-started"),
            "{error:?}"
        );

        // A run with an input, resumed by a handle that was not told the input's type.
        let crashing = Plan::new(Some(1));
        let crashing_pipeline = pipeline(&crashing);
        let typed = Durable::new(store.clone()).with_input::<Job>();
        let (sink, mut events) = EventSink::channel();
        crash_when_in_flight!(
            typed.start(&crashing_pipeline, "typed", options("x").with_events(sink)),
            events
        );
        let error = durable
            .resume(&pipeline(&plan), "typed", RunOptions::default())
            .await
            .expect_err("the input cannot be read back without its type");
        assert!(
            matches!(&error, CheckpointError::InputNotReadable { run, .. } if run == "typed"),
            "{error:?}"
        );
        assert_eq!(
            plan.calls(),
            vec![0; STAGES],
            "nothing runs when the resume is refused"
        );

        // Another pipeline under the same run id: a shape mismatch naming the run.
        let other = Pipeline::builder()
            .durable()
            .stage("only", |_: StageContext| async {
                Ok::<_, StageError>(1_u32)
            })
            .durable()
            .build()
            .unwrap();
        let error = typed
            .resume(&other, "typed", RunOptions::default())
            .await
            .expect_err("another pipeline");
        assert!(
            matches!(&error, CheckpointError::ShapeMismatch { run, .. } if run == "typed"),
            "{error:?}"
        );
    });
}

/// The child process: starts run `killed` with stage 4 blocking forever; the parent kills it.
fn child_main(store: &Path) {
    let mut plan = Plan::new(Some(4));
    plan.log = Some(store.with_extension("log"));
    let durable = Durable::new(RedbStore::open(store).unwrap()).with_input::<Job>();
    let _ = execute(durable.start(&pipeline(&plan), "killed", options("k")));
    unreachable!("the child's run must block at stage 4");
}

#[test]
fn durable_child_entry() {
    // Runs as the child only when the parent test started this binary with the variable set.
    if let Ok(store) = std::env::var(CHILD_ENV) {
        child_main(Path::new(&store));
    }
}

fn logged_calls(log: &Path) -> Vec<usize> {
    let mut calls = vec![0; STAGES];
    for line in std::fs::read_to_string(log).unwrap_or_default().lines() {
        calls[line.parse::<usize>().unwrap()] += 1;
    }
    calls
}

#[test]
fn a_killed_child_process_run_resumes_here_exactly_once() {
    let dir = TempDir::new("killed");
    let store = dir.path().join("runs.redb");
    let log = store.with_extension("log");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "durable_child_entry",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &store)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait (bounded) until the child says it blocks in stage 4.
    let stdout = child.stdout.take().unwrap();
    let (blocked, announced) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // Anywhere in the line: the harness's "test durable_child_entry ... " precedes it.
            if let Some((_, stage)) = line.split_once(BLOCKED) {
                let _ = blocked.send(stage.to_owned());
            }
        }
    });
    let announced = announced.recv_timeout(TIMEOUT);
    child.kill().unwrap();
    assert_eq!(
        announced.as_deref(),
        Ok("4"),
        "the child did not block in stage 4 within {TIMEOUT:?}"
    );
    child.wait().unwrap();
    assert_eq!(logged_calls(&log), vec![1, 1, 1, 1, 1, 0]);

    let durable = Durable::new(RedbStore::open(&store).expect("the killed child's store opens"))
        .with_input::<Job>();
    let mut plan = Plan::new(None);
    plan.log = Some(log.clone());
    let report = execute(within(
        "the resume after the kill",
        durable.resume(&pipeline(&plan), "killed", RunOptions::default()),
    ))
    .expect("the run resumes")
    .into_report();
    assert!(report.is_success(), "{report}");
    assert_eq!(
        logged_calls(&log),
        vec![1, 1, 1, 1, 2, 1],
        "only the stage in flight runs twice"
    );
    assert_eq!(
        *report.artifact::<String>(&name(STAGES - 1)).unwrap(),
        "kabcdef"
    );
    assert!(report.stages()[..4].iter().all(|s| s.resumed));
    assert!(matches!(
        report.status(&name(4)),
        Some(StageStatus::Succeeded { attempts: 1 })
    ));
}

#[test]
fn a_resume_beside_a_run_in_progress_on_a_clone_is_refused() {
    execute(async {
        let dir = TempDir::new("in-progress");
        let durable = Durable::new(RedbStore::open(dir.path().join("runs.redb")).unwrap())
            .with_input::<Job>();
        let crashing = Plan::new(Some(2));
        let crashing_pipeline = pipeline(&crashing);
        let (sink, mut events) = EventSink::channel();
        let clone = durable.clone();
        let plan = Plan::new(None);
        let resumer = pipeline(&plan);
        let mut run = std::pin::pin!(durable.start(
            &crashing_pipeline,
            "busy",
            options("x").with_events(sink)
        ));
        let mut check = std::pin::pin!(async {
            while let Some(event) = events.recv().await {
                if matches!(event, StageEvent::Progress { .. }) {
                    return clone.resume(&resumer, "busy", RunOptions::default()).await;
                }
            }
            panic!("no progress event");
        });
        let result = within(
            "the resume beside the run",
            std::future::poll_fn(|cx| {
                if run.as_mut().poll(cx).is_ready() {
                    panic!("the blocked run ended");
                }
                check.as_mut().poll(cx)
            }),
        )
        .await;
        let error = result.expect_err("a resume beside the running run is refused");
        assert!(
            matches!(&error, CheckpointError::RunInProgress { run } if run == "busy"),
            "{error:?}"
        );
        assert_eq!(plan.calls(), vec![0; STAGES]);
    });
}

#[test]
fn a_durable_fan_out_crashed_midway_runs_only_the_unfinished_items() {
    use hivekit::swarm::FanOut;
    const ITEMS: u32 = 8;
    let calls: Arc<Vec<AtomicUsize>> = Arc::new((0..ITEMS).map(|_| AtomicUsize::new(0)).collect());
    let build = |block_at: Option<u32>| {
        let calls = calls.clone();
        Pipeline::builder()
            .durable()
            .stage("fan", move |ctx: StageContext| {
                let calls = calls.clone();
                async move {
                    let ctx2 = ctx.clone();
                    let report = ctx
                        .durable_fan_out(0..ITEMS, FanOut::new(1), move |item| {
                            let calls = calls.clone();
                            let ctx = ctx2.clone();
                            async move {
                                calls[item as usize].fetch_add(1, Ordering::SeqCst);
                                if block_at == Some(item) {
                                    ctx.progress(1, 1);
                                    std::future::pending::<()>().await;
                                }
                                Ok::<_, StageError>(u64::from(item) * 10)
                            }
                        })
                        .await?;
                    Ok::<_, StageError>(report.into_successes().sum::<u64>())
                }
            })
            .durable()
            .build()
            .unwrap()
    };
    execute(async {
        let dir = TempDir::new("fan-out");
        let durable = Durable::new(RedbStore::open(dir.path().join("runs.redb")).unwrap());
        let crashing = build(Some(5));
        let (sink, mut events) = EventSink::channel();
        crash_when_in_flight!(
            durable.start(&crashing, "fan", RunOptions::default().with_events(sink)),
            events
        );
        let before: Vec<usize> = calls.iter().map(|c| c.load(Ordering::SeqCst)).collect();
        assert_eq!(
            before,
            vec![1, 1, 1, 1, 1, 1, 0, 0],
            "width 1: items in order"
        );
        let report = within(
            "the fan-out resume",
            durable.resume(&build(None), "fan", RunOptions::default()),
        )
        .await
        .unwrap()
        .into_report();
        assert!(report.is_success(), "{report}");
        assert_eq!(
            *report.artifact::<u64>("fan").unwrap(),
            (0..8).map(|i| i * 10).sum::<u64>()
        );
        let after: Vec<usize> = calls.iter().map(|c| c.load(Ordering::SeqCst)).collect();
        assert_eq!(
            after,
            vec![1, 1, 1, 1, 1, 2, 1, 1],
            "only the item in flight and those after it ran again"
        );
    });
}
