//! tokio-util's `CancellationToken` suite seen through a run (`RunOptions::cancel`): a run holding
//! a child token is cancelled through its parent and grandparent (even with the middle token
//! dropped), cancelling a child leaves its parent and sibling runs alone, a child made after its
//! parent was cancelled starts nothing, stage tokens are siblings; and tokio's "cancellation
//! racing completion": a cancel that lands after every stage finished, and a cancel at random
//! points, counted with drop guards (nothing alive when the report returns, no stage entered twice,
//! a skipped stage never entered).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::{
    Backoff, CancellationToken, Pipeline, RetryPolicy, RunOptions, RunOutcome, RunReport,
    SkipReason, StageContext, StageError, StageStatus,
};
use parking_lot::Mutex;

async fn bounded<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .expect("the run ends within ten seconds")
}

/// Counts itself out when dropped: `alive` is the number of stage bodies not yet dropped.
struct Alive(Arc<AtomicUsize>);

impl Alive {
    fn enter(alive: &Arc<AtomicUsize>) -> Self {
        alive.fetch_add(1, Ordering::SeqCst);
        Self(alive.clone())
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `first` (succeeds at once) -> `hang_inline`, `hang_spawned` (both wait forever) -> `after`.
/// `alive` counts live stage bodies, `entered` how many bodies were entered.
fn hanging(alive: &Arc<AtomicUsize>, entered: &Arc<AtomicUsize>) -> Pipeline {
    let hang = |alive: Arc<AtomicUsize>, entered: Arc<AtomicUsize>| {
        move |_: StageContext| {
            let alive = alive.clone();
            entered.fetch_add(1, Ordering::SeqCst);
            async move {
                let _alive = Alive::enter(&alive);
                std::future::pending::<Result<(), StageError>>().await
            }
        }
    };
    Pipeline::builder()
        .stage("first", |_: StageContext| async { Ok::<_, StageError>(()) })
        .stage("hang_inline", hang(alive.clone(), entered.clone()))
        .after(["first"])
        .inline()
        .stage("hang_spawned", hang(alive.clone(), entered.clone()))
        .after(["first"])
        .spawn()
        .stage("after", |_: StageContext| async { Ok::<_, StageError>(()) })
        .after(["hang_inline", "hang_spawned"])
        .build()
        .unwrap()
}

/// Waits (bounded) until `count` reaches `want`.
async fn reach(count: &AtomicUsize, want: usize) {
    bounded(async {
        while count.load(Ordering::SeqCst) != want {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

fn assert_cancelled_hanging(report: &RunReport, alive: &AtomicUsize) {
    assert_eq!(report.outcome(), RunOutcome::Cancelled);
    assert_eq!(
        alive.load(Ordering::SeqCst),
        0,
        "every stage body is dropped when the report returns"
    );
    assert_eq!(
        report.status("first"),
        Some(&StageStatus::Succeeded { attempts: 1 })
    );
    assert_eq!(report.status("hang_inline"), Some(&StageStatus::Cancelled));
    assert_eq!(report.status("hang_spawned"), Some(&StageStatus::Cancelled));
    assert_eq!(
        report.status("after"),
        Some(&StageStatus::Skipped {
            because: SkipReason::Cancelled
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_the_parent_cancels_a_run_holding_a_child_token() {
    let (alive, entered) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let pipeline = hanging(&alive, &entered);
    let parent = CancellationToken::new();
    let run = tokio::spawn({
        let options = RunOptions::default().with_cancel(parent.child_token());
        async move { pipeline.run_with(options).await }
    });
    reach(&alive, 2).await;
    parent.cancel();
    let report = bounded(run).await.unwrap();
    assert_cancelled_hanging(&report, &alive);
    assert_eq!(entered.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "current_thread")]
async fn cancelling_the_root_reaches_a_run_holding_a_grandchild_whose_parent_was_dropped() {
    let (alive, entered) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let pipeline = hanging(&alive, &entered);
    let root = CancellationToken::new();
    let child = root.child_token();
    let grandchild = child.child_token();
    drop(child);
    let run = tokio::spawn({
        let options = RunOptions::default().with_cancel(grandchild);
        async move { pipeline.run_with(options).await }
    });
    reach(&alive, 2).await;
    root.cancel();
    let report = bounded(run).await.unwrap();
    assert_cancelled_hanging(&report, &alive);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_one_runs_child_token_leaves_its_parent_and_a_sibling_run_alone() {
    let parent = CancellationToken::new();
    let (alive, entered) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let hanging = hanging(&alive, &entered);
    // The sibling waits for a signal the test gives after the first run was cancelled.
    let release = Arc::new(tokio::sync::Notify::new());
    let sibling_pipeline = Pipeline::builder()
        .stage("wait", {
            let release = release.clone();
            move |_: StageContext| {
                let release = release.clone();
                async move {
                    release.notified().await;
                    Ok::<_, StageError>(7u32)
                }
            }
        })
        .spawn()
        .stage("after", |ctx: StageContext| async move {
            Ok::<_, StageError>(*ctx.input::<u32>("wait")? + 1)
        })
        .after(["wait"])
        .build()
        .unwrap();
    let doomed = parent.child_token();
    let cancelled_run = tokio::spawn({
        let options = RunOptions::default().with_cancel(doomed.clone());
        async move { hanging.run_with(options).await }
    });
    let sibling_run = tokio::spawn({
        let options = RunOptions::default().with_cancel(parent.child_token());
        async move { sibling_pipeline.run_with(options).await }
    });
    reach(&alive, 2).await;
    doomed.cancel();
    let report = bounded(cancelled_run).await.unwrap();
    assert_cancelled_hanging(&report, &alive);
    assert!(!parent.is_cancelled(), "a child never cancels its parent");
    assert!(!sibling_run.is_finished());
    release.notify_one();
    let sibling = bounded(sibling_run).await.unwrap();
    assert!(sibling.is_success(), "{:?}", sibling.outcome());
    assert_eq!(*sibling.artifact::<u32>("after").unwrap(), 8);
}

#[tokio::test(flavor = "current_thread")]
async fn a_child_token_made_after_its_parent_was_cancelled_runs_no_stage() {
    let parent = CancellationToken::new();
    parent.cancel();
    let child = parent.child_token();
    assert!(child.is_cancelled());
    let (alive, entered) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let pipeline = hanging(&alive, &entered);
    let report = bounded(pipeline.run_with(RunOptions::default().with_cancel(child))).await;
    assert_eq!(report.outcome(), RunOutcome::Cancelled);
    assert_eq!(entered.load(Ordering::SeqCst), 0);
    for stage in ["first", "hang_inline", "hang_spawned", "after"] {
        assert_eq!(
            report.status(stage),
            Some(&StageStatus::Skipped {
                because: SkipReason::Cancelled
            }),
            "{stage}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_cancelling_its_own_token_leaves_the_other_stages_tokens_alone() {
    // Two stages run together; each takes its token. `a` cancels its own, then tells `b`, which
    // checks that its token (a sibling, both children of the run's) is still live.
    let (told, hear) = tokio::sync::oneshot::channel::<CancellationToken>();
    let told = Arc::new(Mutex::new(Some(told)));
    let hear = Arc::new(Mutex::new(Some(hear)));
    let pipeline = Pipeline::builder()
        .stage("a", move |ctx: StageContext| {
            let told = told.clone();
            async move {
                let mine = ctx.cancellation();
                mine.cancel();
                let _ = told.lock().take().unwrap().send(mine);
                Ok::<_, StageError>(ctx.is_cancelled())
            }
        })
        .spawn()
        .stage("b", move |ctx: StageContext| {
            let hear = hear.clone();
            async move {
                let mine = ctx.cancellation();
                let receiver = hear.lock().take().unwrap();
                let theirs = receiver.await.unwrap();
                Ok::<_, StageError>((
                    theirs.is_cancelled(),
                    mine.is_cancelled(),
                    ctx.is_cancelled(),
                ))
            }
        })
        .spawn()
        .build()
        .unwrap();
    let report = bounded(pipeline.run()).await;
    assert!(report.is_success(), "{:?}", report.outcome());
    assert!(!*report.artifact::<bool>("a").unwrap());
    assert_eq!(
        *report.artifact::<(bool, bool, bool)>("b").unwrap(),
        (true, false, false)
    );
}

/// One stage, `done`, that finishes and then lets the test's canceller run. On a current-thread
/// runtime the canceller cannot run before the stage's body has returned (and, spawned, before
/// its task has ended), so the run's stages have all finished when the token is cancelled.
fn finishes_then_signals(
    spawn: bool,
    finished: tokio::sync::mpsc::UnboundedSender<()>,
) -> Pipeline {
    let stage = Pipeline::builder().stage("done", move |_: StageContext| {
        let finished = finished.clone();
        async move {
            let _ = finished.send(());
            Ok::<_, StageError>(1u32)
        }
    });
    if spawn { stage.spawn() } else { stage.inline() }
        .build()
        .unwrap()
}

async fn cancel_after_every_stage_finished(spawn: bool) -> RunReport {
    let (finished, mut heard) = tokio::sync::mpsc::unbounded_channel();
    let pipeline = finishes_then_signals(spawn, finished);
    let token = CancellationToken::new();
    let canceller = tokio::spawn({
        let token = token.clone();
        async move {
            heard.recv().await;
            token.cancel();
        }
    });
    // Let the canceller start waiting before the run starts.
    tokio::task::yield_now().await;
    let report = bounded(pipeline.run_with(RunOptions::default().with_cancel(token))).await;
    canceller.await.unwrap();
    report
}

/// `RunReport::is_success`: "Whether every stage succeeded." (report/mod.rs). A cancel that lands
/// after the only stage finished (tokio: an abort after the task completed still yields its
/// output) must not turn a run whose every stage succeeded into a failure, and the inline and
/// spawned forms of one pipeline must agree.
#[tokio::test(flavor = "current_thread")]
async fn a_cancel_landing_after_every_stage_finished_leaves_the_run_successful() {
    let mut outcomes = Vec::new();
    for spawn in [false, true] {
        let report = cancel_after_every_stage_finished(spawn).await;
        assert_eq!(
            report.status("done"),
            Some(&StageStatus::Succeeded { attempts: 1 }),
            "spawn {spawn}"
        );
        assert_eq!(*report.artifact::<u32>("done").unwrap(), 1);
        let all_succeeded = report
            .stages()
            .iter()
            .all(|stage| stage.status.is_success());
        outcomes.push((spawn, report.outcome(), all_succeeded));
    }
    for &(spawn, outcome, all_succeeded) in &outcomes {
        assert!(
            !all_succeeded || outcome == RunOutcome::Succeeded,
            "spawn {spawn}: every stage succeeded but the run reads {outcome:?} ({outcomes:?})"
        );
    }
}

/// What the bodies of each stage did: the attempts entered, in order, and how many returned `Ok`.
type Visits = Arc<Mutex<HashMap<String, (Vec<u32>, u32)>>>;

/// A binary tree of twelve stages (`s{i}` after `s{(i-1)/2}`), all spawned or every third inline;
/// every fourth stage fails its first attempt and is retried (after 50 us, or at once).
fn chain_and_fan(alive: &Arc<AtomicUsize>, visits: &Visits, all_spawned: bool) -> Pipeline {
    let body = |alive: Arc<AtomicUsize>, visits: Visits, spin: u32, flaky: bool| {
        move |ctx: StageContext| {
            let alive = alive.clone();
            let visits = visits.clone();
            async move {
                let _alive = Alive::enter(&alive);
                visits
                    .lock()
                    .entry(ctx.name().to_owned())
                    .or_default()
                    .0
                    .push(ctx.attempt());
                for _ in 0..spin {
                    tokio::task::yield_now().await;
                }
                if flaky && ctx.attempt() == 1 {
                    return Err(StageError::msg("first attempt"));
                }
                visits.lock().entry(ctx.name().to_owned()).or_default().1 += 1;
                Ok::<_, StageError>(())
            }
        }
    };
    let mut builder = Pipeline::builder();
    for i in 0..12u32 {
        let flaky = i % 4 == 1;
        let stage = builder.stage(
            format!("s{i}"),
            body(alive.clone(), visits.clone(), i % 4, flaky),
        );
        let stage = if i > 0 {
            stage.after([format!("s{}", (i - 1) / 2)])
        } else {
            stage
        };
        let stage = if flaky {
            let backoff = if i % 8 == 1 {
                Backoff::fixed(Duration::from_micros(50))
            } else {
                Backoff::NONE
            };
            stage.retry(RetryPolicy::attempts(2).with_backoff(backoff))
        } else {
            stage
        };
        builder = if i % 3 == 0 && !all_spawned {
            stage.inline()
        } else {
            stage.spawn()
        }
        .into_builder();
    }
    builder.build().unwrap()
}

/// Cancels at random points from a plain thread, racing the stages' ends: whatever the report
/// says, it must agree with what the bodies did, and no body is alive once it returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_racing_the_stages_ends_leaves_a_report_that_agrees_with_the_bodies() {
    let mut problems = Vec::new();
    for round in 0..300u64 {
        let alive = Arc::new(AtomicUsize::new(0));
        let visits: Visits = Arc::default();
        let pipeline = chain_and_fan(&alive, &visits, round % 2 == 0);
        let token = CancellationToken::new();
        let spins = (round * 7919) % 20_000;
        let canceller = std::thread::spawn({
            let token = token.clone();
            move || {
                for _ in 0..spins {
                    std::hint::spin_loop();
                }
                token.cancel();
            }
        });
        let report = bounded(pipeline.run_with(RunOptions::default().with_cancel(token))).await;
        let alive_at_return = alive.load(Ordering::SeqCst);
        canceller.join().unwrap();
        if alive_at_return != 0 {
            problems.push(format!(
                "round {round}: {alive_at_return} bodies alive at the report"
            ));
        }
        let visits = visits.lock().clone();
        for stage in report.stages() {
            let (entered, finished) = visits.get(&*stage.name).cloned().unwrap_or_default();
            let in_order: Vec<u32> = (1..=entered.len() as u32).collect();
            if entered != in_order {
                problems.push(format!(
                    "round {round}: {} entered attempts {entered:?}",
                    stage.name
                ));
            }
            let agrees = match &stage.status {
                StageStatus::Succeeded { attempts } => {
                    entered.len() == *attempts as usize
                        && finished == 1
                        && stage.failed_attempts.len() == *attempts as usize - 1
                }
                // Running (or backing off) when the run stopped: entered or not yet.
                StageStatus::Cancelled => stage.failed_attempts.len() <= entered.len(),
                StageStatus::Skipped { .. } => entered.is_empty(),
                _ => false,
            };
            if !agrees {
                problems.push(format!(
                    "round {round}: {} is {:?} ({} failed attempts) but its body entered \
                     attempts {entered:?} and finished {finished} times",
                    stage.name,
                    stage.status,
                    stage.failed_attempts.len()
                ));
            }
        }
        let all_succeeded = report
            .stages()
            .iter()
            .all(|stage| stage.status.is_success());
        match report.outcome() {
            RunOutcome::Succeeded if !all_succeeded => problems.push(format!(
                "round {round}: succeeded with a stage that did not"
            )),
            RunOutcome::Succeeded | RunOutcome::Cancelled => {}
            other => problems.push(format!("round {round}: outcome {other:?}")),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
