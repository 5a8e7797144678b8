//! Progress: events with totals, fan-out items, a stage's own progress (tracing spans and warnings
//! are in `pipeline_tracing.rs`).

mod support;

use hivekit_swarm::{
    EventSink, FanOut, Pipeline, RunOptions, StageContext, StageError, StageEvent,
};
use support::noop;

fn collect(events: &mut tokio::sync::mpsc::UnboundedReceiver<StageEvent>) -> Vec<StageEvent> {
    let mut collected = Vec::new();
    while let Ok(event) = events.try_recv() {
        collected.push(event);
    }
    collected
}

#[tokio::test]
async fn events_count_stages_done_of_the_total() {
    let pipeline = Pipeline::builder()
        .stage("a", noop)
        .stage("b", noop)
        .after(["a"])
        .stage("fails", |_: StageContext| async {
            Err::<(), _>(StageError::msg("no"))
        })
        .after(["a"])
        .stage("after_fails", noop)
        .after(["fails"])
        .build()
        .unwrap();
    let (sink, mut events) = EventSink::channel();
    let _report = pipeline
        .run_with(
            RunOptions::default()
                .with_events(sink)
                .with_failure(hivekit_swarm::FailurePolicy::ContinueIndependent),
        )
        .await;
    let progress: Vec<(String, usize, usize)> = collect(&mut events)
        .into_iter()
        .filter_map(|event| match event {
            StageEvent::Finished {
                stage, done, total, ..
            }
            | StageEvent::Skipped {
                stage, done, total, ..
            } => Some((stage.to_string(), done, total)),
            _ => None,
        })
        .collect();
    let dones: Vec<usize> = progress.iter().map(|(_, done, _)| *done).collect();
    assert_eq!(dones, [1, 2, 3, 4], "{progress:?}");
    assert!(progress.iter().all(|(_, _, total)| *total == 4));
}

#[tokio::test]
async fn fan_out_items_report_their_start_and_finish() {
    let pipeline = Pipeline::builder()
        .stage("analyse", |ctx: StageContext| async move {
            let files = ["a.rs", "b.rs", "c.rs", "d.rs", "e.rs", "f.rs"];
            let report = ctx
                .fan_out(files, FanOut::new(2), |file| async move {
                    tokio::task::yield_now().await;
                    Ok(file.len())
                })
                .await?;
            Ok::<_, StageError>(report.succeeded)
        })
        .build()
        .unwrap();
    let (sink, mut events) = EventSink::channel();
    let _report = pipeline
        .run_with(RunOptions::default().with_events(sink))
        .await;
    let events = collect(&mut events);
    let started: Vec<usize> = events
        .iter()
        .filter_map(|event| match event {
            StageEvent::ItemStarted { item, total: 6, .. } => Some(*item),
            _ => None,
        })
        .collect();
    assert_eq!(started, [0, 1, 2, 3, 4, 5]);
    let mut finished: Vec<(usize, usize)> = events
        .iter()
        .filter_map(|event| match event {
            StageEvent::ItemFinished {
                item,
                done,
                succeeded: true,
                attempts: 1,
                total: 6,
                ..
            } => Some((*done, *item)),
            _ => None,
        })
        .collect();
    finished.sort_unstable();
    assert_eq!(
        finished.iter().map(|(done, _)| *done).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6]
    );
}

#[tokio::test]
async fn a_stage_reports_its_own_progress() {
    let pipeline = Pipeline::builder()
        .stage("download", |ctx: StageContext| async move {
            for chunk in 0..=3 {
                ctx.progress(chunk * 10, 30);
            }
            Ok::<_, StageError>(())
        })
        .build()
        .unwrap();
    let (sink, mut events) = EventSink::channel();
    let _report = pipeline
        .run_with(RunOptions::default().with_events(sink))
        .await;
    let progress: Vec<(u64, u64)> = collect(&mut events)
        .into_iter()
        .filter_map(|event| match event {
            StageEvent::Progress { stage, done, total } if &*stage == "download" => {
                Some((done, total))
            }
            _ => None,
        })
        .collect();
    assert_eq!(progress, [(0, 30), (10, 30), (20, 30), (30, 30)]);
}
