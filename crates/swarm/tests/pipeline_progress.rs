//! Progress: events with totals, fan-out items, a stage's own progress; tracing spans and warnings.

mod support;

use std::sync::Arc;

use hivekit_swarm::{
    Backoff, EventSink, FanOut, Pipeline, RetryPolicy, RunOptions, StageContext, StageError,
    StageEvent,
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

/// A `MakeWriter` into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<parking_lot::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn spans_name_the_pipeline_and_stage_and_failures_are_warned() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let pipeline = Pipeline::builder()
        .name("review")
        .stage("lint", |ctx: StageContext| async move {
            if ctx.attempt() == 1 {
                return Err(StageError::msg("linter busy"));
            }
            Err::<(), _>(StageError::permanent("linter crashed"))
        })
        .retry(RetryPolicy::attempts(2).with_backoff(Backoff::NONE))
        .build()
        .unwrap();
    let _report = pipeline.run().await;
    let output = String::from_utf8(captured.0.lock().clone()).unwrap();
    let retry_line = output
        .lines()
        .find(|line| line.contains("attempt failed, retrying"))
        .unwrap_or_else(|| panic!("no retry line in {output}"));
    assert!(retry_line.contains(" INFO "), "{retry_line}");
    assert!(
        retry_line.contains(r#"pipeline_run{pipeline="review""#),
        "{retry_line}"
    );
    assert!(
        retry_line.contains(r#"stage{pipeline="review" stage="lint"}"#),
        "{retry_line}"
    );
    let failure_line = output
        .lines()
        .find(|line| line.contains("stage failed"))
        .unwrap_or_else(|| panic!("no failure line in {output}"));
    assert!(failure_line.contains(" WARN "), "{failure_line}");
    assert!(failure_line.contains("linter crashed"), "{failure_line}");
}
