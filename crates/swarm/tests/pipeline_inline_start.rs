//! Inline stages' first attempts, built and polled in the run's reused heap block: every stage's
//! future is dropped exactly once whether it finished at once, waited, failed or panicked, stages
//! of different future types share one run, and concurrent runs keep their stages apart.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hivekit_swarm::{
    FailurePolicy, Pipeline, RunOptions, RunOutcome, RunReport, StageContext, StageError,
    StageStatus,
};

/// Counts its drops: held by a stage's future, dropped when the future is.
struct Held(Arc<AtomicUsize>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// The five kinds of stage a chain mixes, each a future of its own type and size.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// Finishes on its first poll.
    AtOnce,
    /// Finishes on its first poll with a large state (another layout of block).
    LargeAtOnce,
    /// Waits once, then finishes (keeps the block as its own box).
    Waits,
    /// Returns an error on its first poll.
    Fails,
    /// Panics in its first poll.
    Panics,
}

const KINDS: [Kind; 5] = [
    Kind::AtOnce,
    Kind::LargeAtOnce,
    Kind::Waits,
    Kind::Fails,
    Kind::Panics,
];

/// `stages` independent stages cycling through `kinds`, each holding a [`Held`] on `drops`
/// (independent, so that failures skip nothing); and how many stages start a future.
fn mixed(stages: usize, kinds: &[Kind], drops: &Arc<AtomicUsize>) -> Pipeline {
    let mut builder = Pipeline::builder();
    for stage in 0..stages {
        let kind = kinds[stage % kinds.len()];
        let drops = drops.clone();
        let name = format!("s{stage}");
        builder = match kind {
            Kind::AtOnce => builder
                .stage(name, move |_: StageContext| {
                    let held = Held(drops.clone());
                    async move {
                        let _held = held;
                        Ok::<_, StageError>(stage)
                    }
                })
                .into_builder(),
            Kind::LargeAtOnce => builder
                .stage(name, move |_: StageContext| {
                    let held = Held(drops.clone());
                    let large = [stage as u8; 512];
                    async move {
                        let _held = held;
                        Ok::<_, StageError>(
                            large.iter().map(|&byte| usize::from(byte)).sum::<usize>(),
                        )
                    }
                })
                .into_builder(),
            Kind::Waits => builder
                .stage(name, move |_: StageContext| {
                    let held = Held(drops.clone());
                    async move {
                        let _held = held;
                        tokio::task::yield_now().await;
                        Ok::<_, StageError>(stage)
                    }
                })
                .into_builder(),
            Kind::Fails => builder
                .stage(name, move |_: StageContext| {
                    let held = Held(drops.clone());
                    async move {
                        let _held = held;
                        Err::<usize, _>(StageError::permanent("refused"))
                    }
                })
                .into_builder(),
            Kind::Panics => builder
                .stage(name, move |_: StageContext| {
                    let held = Held(drops.clone());
                    async move {
                        let _held = held;
                        if stage < usize::MAX {
                            panic!("stage {stage} is broken");
                        }
                        Ok::<_, StageError>(stage)
                    }
                })
                .into_builder(),
        };
    }
    builder
        .build()
        .expect("independent stages are a valid pipeline")
}

/// Options that let every stage run whatever the others came to.
fn continue_independent() -> RunOptions {
    RunOptions {
        failure: FailurePolicy::ContinueIndependent,
        ..RunOptions::default()
    }
}

/// Checks one mixed run's report stage by stage.
fn check_report(report: &RunReport, stages: usize, kinds: &[Kind]) {
    assert_eq!(report.outcome(), RunOutcome::Failed);
    for stage in 0..stages {
        let name = format!("s{stage}");
        let status = report.status(&name).expect("every stage is reported");
        match kinds[stage % kinds.len()] {
            Kind::AtOnce | Kind::Waits => {
                assert_eq!(status, &StageStatus::Succeeded { attempts: 1 });
                assert_eq!(*report.artifact::<usize>(&name).unwrap(), stage);
            }
            Kind::LargeAtOnce => {
                assert_eq!(status, &StageStatus::Succeeded { attempts: 1 });
                assert_eq!(
                    *report.artifact::<usize>(&name).unwrap(),
                    usize::from(stage as u8) * 512
                );
            }
            Kind::Fails => assert!(
                matches!(status, StageStatus::Failed { error, attempts: 1 } if error.to_string().contains("refused")),
                "{name}: {status:?}"
            ),
            Kind::Panics => assert!(
                matches!(status, StageStatus::Failed { error: StageError::Panicked(message), attempts: 1 } if message.contains("is broken")),
                "{name}: {status:?}"
            ),
        }
    }
}

#[tokio::test]
async fn every_inline_stage_future_is_dropped_exactly_once_whatever_its_first_poll_came_to() {
    let drops = Arc::new(AtomicUsize::new(0));
    let stages = 40;
    // Alternating kinds change the block's layout from stage to stage; runs of one kind reuse it.
    for kinds in [&KINDS[..], &[Kind::AtOnce, Kind::AtOnce, Kind::Waits][..]] {
        let pipeline = mixed(stages, kinds, &drops);
        let before = drops.load(Ordering::SeqCst);
        let report = pipeline.run_with(continue_independent()).await;
        if kinds.len() == KINDS.len() {
            check_report(&report, stages, kinds);
        } else {
            assert_eq!(report.outcome(), RunOutcome::Succeeded);
        }
        // The closures' own `Held`s are clones in the pipeline, not futures: only futures drop.
        assert_eq!(drops.load(Ordering::SeqCst) - before, stages);
    }
}

#[tokio::test]
async fn a_stage_that_panics_while_building_its_future_fails_and_the_next_stage_still_runs() {
    let pipeline = Pipeline::builder()
        .stage(
            "broken",
            |_: StageContext| -> std::future::Ready<Result<u8, StageError>> {
                panic!("no future for you")
            },
        )
        .stage("after", |_: StageContext| async {
            Ok::<_, StageError>(5u8)
        })
        .stage("next", |_: StageContext| async { Ok::<_, StageError>(6u8) })
        .after(["after"])
        .build()
        .unwrap();
    let report = pipeline.run_with(continue_independent()).await;
    assert!(matches!(
        report.status("broken"),
        Some(StageStatus::Failed { error: StageError::Panicked(message), .. }) if message.contains("no future for you")
    ));
    assert_eq!(*report.artifact::<u8>("next").unwrap(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runs_each_drop_every_stage_future_once_and_keep_their_own_artifacts() {
    let drops = Arc::new(AtomicUsize::new(0));
    let stages = 25;
    let pipeline = Arc::new(mixed(stages, &KINDS, &drops));
    let runs = 16;
    let mut tasks = Vec::new();
    for _ in 0..runs {
        let pipeline = pipeline.clone();
        tasks.push(tokio::spawn(async move {
            let report = pipeline.run_with(continue_independent()).await;
            check_report(&report, stages, &KINDS);
        }));
    }
    for task in tasks {
        task.await.expect("no run panics");
    }
    assert_eq!(drops.load(Ordering::SeqCst), runs * stages);
}

/// Contexts kept past the run (cloned into a thread, say) stay readable after the run ended and
/// its report is gone (and handed its stage list back to the pipeline), over several runs.
#[tokio::test]
async fn contexts_kept_past_the_run_stay_readable_after_the_report_is_dropped() {
    let kept = Arc::new(std::sync::Mutex::new(Vec::<StageContext>::new()));
    let mut builder = Pipeline::builder().name("keeper");
    for stage in 0..20 {
        let kept = kept.clone();
        let after: Vec<String> = (stage > 0)
            .then(|| format!("s{}", stage - 1))
            .into_iter()
            .collect();
        builder = builder
            .stage(format!("s{stage}"), move |ctx: StageContext| {
                if stage % 3 == 0 {
                    kept.lock().unwrap().push(ctx.clone());
                }
                async move { Ok::<_, StageError>(ctx.attempt()) }
            })
            .after(after)
            .into_builder();
    }
    let pipeline = builder.build().unwrap();
    for _ in 0..3 {
        let report = pipeline.run().await;
        assert!(report.is_success());
        assert_eq!(*report.artifact::<u32>("s19").unwrap(), 1);
        drop(report);
    }
    let contexts = std::mem::take(&mut *kept.lock().unwrap());
    assert_eq!(contexts.len(), 21, "7 stages of 20, three runs");
    let reader = std::thread::spawn(move || {
        for context in &contexts {
            assert_eq!(context.pipeline_name(), "keeper");
            assert!(!context.is_cancelled());
            assert!(context.name().starts_with('s'));
        }
        drop(contexts);
    });
    reader.join().expect("the contexts stay readable");
}
