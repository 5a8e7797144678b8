//! LangGraph's `test_pending_writes_resume` and `test_checkpoint_recovery`, through hivekit's
//! durable runs: two parallel stages, one succeeds and one fails after using up its retry policy;
//! resuming the run never runs the successful sibling again, gives the failed stage a whole retry
//! policy again on every resume, leaves the sibling's checkpoint untouched while it keeps failing,
//! and once the fault is fixed the join reads both the restored and the new artifact. Checked on
//! the in-memory store and on the redb file reopened between runs (a new process, for LangGraph's
//! checkpointer).

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::checkpoint::{CheckpointStore, Durable, MemoryStore, RedbStore};
use hivekit_swarm::{
    Backoff, FailurePolicy, Pipeline, RetryPolicy, RunOptions, RunOutcome, StageContext,
    StageError, StageStatus,
};

#[derive(Default)]
struct Nodes {
    one: AtomicU32,
    two: AtomicU32,
    sum: AtomicU32,
    two_healthy: AtomicBool,
}

/// `one` (2) and `two` (3, failing while unhealthy, two attempts) in parallel from the start, then
/// `sum` = 1 + one + two.
fn pipeline(nodes: &Arc<Nodes>) -> Pipeline {
    let (a, b, c) = (nodes.clone(), nodes.clone(), nodes.clone());
    Pipeline::builder()
        .durable()
        .stage("one", move |_: StageContext| {
            a.one.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, StageError>(2u64) }
        })
        .durable()
        .stage("two", move |_: StageContext| {
            b.two.fetch_add(1, Ordering::SeqCst);
            let healthy = b.two_healthy.load(Ordering::SeqCst);
            async move {
                if healthy {
                    Ok(3u64)
                } else {
                    Err(StageError::msg("I'm not good"))
                }
            }
        })
        .durable()
        .retry(RetryPolicy::attempts(2).with_backoff(Backoff::NONE))
        .stage("sum", move |ctx: StageContext| {
            c.sum.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, StageError>(1 + *ctx.input::<u64>("one")? + *ctx.input::<u64>("two")?) }
        })
        .durable()
        .after(["one", "two"])
        .build()
        .expect("a valid durable pipeline")
}

fn counts(nodes: &Nodes) -> [u32; 3] {
    [
        nodes.one.load(Ordering::SeqCst),
        nodes.two.load(Ordering::SeqCst),
        nodes.sum.load(Ordering::SeqCst),
    ]
}

/// The records of run `run` whose key names stage `stage` (what the store keeps for it).
fn records_of(store: &dyn CheckpointStore, run: &str, stage: &str) -> Vec<(String, Vec<u8>)> {
    store
        .load_run(run)
        .expect("the store reads")
        .expect("the run exists")
        .records
        .into_iter()
        .filter(|(key, _)| key.ends_with(&format!(":{stage}")))
        .collect()
}

async fn bounded<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .expect("the durable call ends in time")
}

fn assert_failed_with_two_attempts(report: &hivekit_swarm::RunReport) {
    assert_eq!(report.outcome(), RunOutcome::Failed, "{report}");
    match report.status("two") {
        Some(StageStatus::Failed { error, attempts }) => {
            assert_eq!(*attempts, 2, "a whole retry policy: two attempts");
            assert!(error.to_string().contains("I'm not good"), "{error}");
        }
        other => panic!("two should have failed, got {other:?}"),
    }
    assert_eq!(
        report.stage("two").expect("known").failed_attempts.len(),
        2,
        "both failed attempts are listed"
    );
    assert!(
        matches!(report.status("sum"), Some(StageStatus::Skipped { .. })),
        "{report}"
    );
}

/// Runs the whole story on `durable`, whose store is reopened by `reopen` between runs.
async fn the_story(policy: FailurePolicy, mut durable: Durable, reopen: impl Fn() -> Durable) {
    let nodes = Arc::new(Nodes::default());
    let pipeline = pipeline(&nodes);
    let options = || RunOptions::default().with_failure(policy);

    let first = bounded(durable.start(&pipeline, "1", options()))
        .await
        .expect("the run starts");
    assert_failed_with_two_attempts(first.report());
    assert_eq!(
        first.report().status("one"),
        Some(&StageStatus::Succeeded { attempts: 1 })
    );
    assert_eq!(
        counts(&nodes),
        [1, 2, 0],
        "one once, two twice (two attempts)"
    );
    let one_record = records_of(durable.store(), "1", "one");
    assert_eq!(one_record.len(), 1, "one's success is checkpointed");
    drop(first);

    // Resuming while two still fails: one is not run again, two gets two more attempts.
    durable = {
        drop(durable);
        reopen()
    };
    let second = bounded(durable.resume(&pipeline, "1", options()))
        .await
        .expect("the run resumes");
    assert_failed_with_two_attempts(second.report());
    assert!(second.report().stage("one").expect("known").resumed);
    assert_eq!(counts(&nodes), [1, 4, 0], "two attempts before, two now");
    assert_eq!(
        records_of(durable.store(), "1", "one"),
        one_record,
        "a failing resume leaves the sibling's checkpoint as it was"
    );
    drop(second);

    // Fixed: the join adds the restored write and the new one, 1 + 2 + 3.
    nodes.two_healthy.store(true, Ordering::SeqCst);
    durable = {
        drop(durable);
        reopen()
    };
    let third = bounded(durable.resume(&pipeline, "1", options()))
        .await
        .expect("the run resumes");
    let report = third.report();
    assert!(report.is_success(), "{report}");
    assert_eq!(*report.artifact::<u64>("sum").expect("sum ran"), 6);
    assert_eq!(*report.artifact::<u64>("one").expect("restored"), 2);
    assert!(report.stage("one").expect("known").resumed);
    assert!(!report.stage("two").expect("known").resumed);
    assert_eq!(
        report.status("two"),
        Some(&StageStatus::Succeeded { attempts: 1 }),
        "the fixed stage succeeds on the first attempt of this resume"
    );
    assert_eq!(counts(&nodes), [1, 5, 1]);
    drop(third);

    // The finished run resumes to the same answer without running anything.
    let again = bounded(durable.resume(&pipeline, "1", options()))
        .await
        .expect("the finished run resumes");
    assert_eq!(*again.report().artifact::<u64>("sum").expect("restored"), 6);
    assert_eq!(counts(&nodes), [1, 5, 1], "nothing ran again");

    // Deleting the thread leaves nothing to resume (LangGraph's `delete_thread`).
    assert!(durable.delete("1").expect("the store deletes"));
    assert!(durable.store().load_run("1").expect("reads").is_none());
    assert!(bounded(durable.resume(&pipeline, "1", options()))
        .await
        .is_err());
}

#[tokio::test]
async fn a_failed_parallel_stage_is_retried_whole_on_each_resume_and_its_sibling_never_reruns_fail_fast(
) {
    let store = MemoryStore::new();
    let reopen = {
        let store = store.clone();
        move || Durable::new(store.clone())
    };
    the_story(FailurePolicy::FailFast, Durable::new(store), reopen).await;
}

#[tokio::test]
async fn a_failed_parallel_stage_is_retried_whole_on_each_resume_and_its_sibling_never_reruns_continue_independent(
) {
    let store = MemoryStore::new();
    let reopen = {
        let store = store.clone();
        move || Durable::new(store.clone())
    };
    the_story(
        FailurePolicy::ContinueIndependent,
        Durable::new(store),
        reopen,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_story_on_a_redb_file_reopened_between_runs() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let path = directory.path().join("checkpoints.redb");
    let open = {
        let path = path.clone();
        move || Durable::new(RedbStore::open(&path).expect("the store opens"))
    };
    the_story(FailurePolicy::FailFast, open(), open).await;
}

/// LangGraph's `test_checkpoint_recovery`: the input is saved with the run, the failure is
/// recorded, a resume runs the failed stage and what follows it. (LangGraph also takes a new input
/// on the same thread; hivekit's resume documents that it reads the checkpointed input back
/// instead, so the fix here comes from outside the input.)
#[tokio::test]
async fn a_run_failing_at_its_first_stage_keeps_its_input_and_resumes_from_that_stage() {
    let fail = Arc::new(AtomicBool::new(true));
    let seen_inputs = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let (gate, seen) = (fail.clone(), seen_inputs.clone());
    let pipeline = Pipeline::builder()
        .stage("node1", move |ctx: StageContext| {
            let failing = gate.load(Ordering::SeqCst);
            let seen = seen.clone();
            async move {
                let steps = ctx.run_input::<Vec<String>>()?;
                seen.lock().push(steps.as_ref().clone());
                if failing {
                    return Err(StageError::msg("Simulated failure"));
                }
                let mut steps = steps.as_ref().clone();
                steps.push("node1".into());
                Ok::<_, StageError>(steps)
            }
        })
        .durable()
        .stage("node2", |ctx: StageContext| async move {
            let mut steps = ctx.input::<Vec<String>>("node1")?.as_ref().clone();
            steps.push("node2".into());
            Ok::<_, StageError>(steps)
        })
        .durable()
        .after(["node1"])
        .build()
        .expect("valid");
    let durable = Durable::new(MemoryStore::new()).with_input::<Vec<String>>();
    let input = || {
        RunOptions::default().with_run_input(hivekit_swarm::RunInput::serializable(vec![
            String::from("start"),
        ]))
    };
    let first = bounded(durable.start(&pipeline, "1", input()))
        .await
        .expect("starts");
    let report = first.report();
    assert_eq!(report.outcome(), RunOutcome::Failed);
    let Some(StageStatus::Failed { error, .. }) = report.status("node1") else {
        panic!("node1 failed: {report}");
    };
    assert!(error.to_string().contains("Simulated failure"));
    fail.store(false, Ordering::SeqCst);
    let second = bounded(durable.resume(&pipeline, "1", RunOptions::default()))
        .await
        .expect("resumes");
    assert_eq!(
        *second
            .report()
            .artifact::<Vec<String>>("node2")
            .expect("ran"),
        ["start", "node1", "node2"]
    );
    assert_eq!(
        *seen_inputs.lock(),
        [vec![String::from("start")], vec![String::from("start")]],
        "both attempts saw the saved input"
    );
}
