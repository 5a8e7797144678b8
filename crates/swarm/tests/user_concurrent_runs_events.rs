//! Runs of one pipeline at once, each with its own sink: every sink sees only its run, done counts 1..=total, and Retried events match the attempt records.

use std::time::Duration;

use hivekit_swarm::{
    AttemptFailure, Backoff, EventSink, FailurePolicy, Pipeline, RetryPolicy, RunOptions,
    RunReport, StageContext, StageError, StageEvent, StageStatus,
};

/// A diamond with a flaky stage (fails attempts below the run's input), a failing branch and a tail.
fn pipeline(spawned: bool) -> Pipeline {
    let backoff = Backoff {
        initial: Duration::from_millis(1),
        multiplier: 2.0,
        max: Duration::from_millis(4),
        jitter: 0.5,
    };
    let mut builder = Pipeline::builder();
    let names = ["top", "flaky", "broken", "join", "side", "tail"];
    for name in names {
        let deps: &[&str] = match name {
            "flaky" | "broken" => &["top"],
            "join" => &["flaky", "broken"],
            "tail" => &["side"],
            _ => &[],
        };
        let mut stage = builder
            .stage(name, move |ctx: StageContext| async move {
                let succeed_at = *ctx.run_input::<u32>()?;
                match name {
                    "flaky" if ctx.attempt() < succeed_at => {
                        Err(StageError::msg(format!("flaky attempt {}", ctx.attempt())))
                    }
                    "broken" if succeed_at % 2 == 0 => Err(StageError::permanent("broken")),
                    _ => Ok::<_, StageError>(succeed_at),
                }
            })
            .after(deps.iter().copied())
            .retry(RetryPolicy::attempts(4).with_backoff(backoff));
        if spawned {
            stage = stage.spawn();
        }
        builder = stage.into();
    }
    builder.build().expect("a valid pipeline")
}

fn check(report: &RunReport, events: &[StageEvent], input: u32) {
    let total = report.stages().len();
    let mut done = Vec::new();
    for stage in report.stages() {
        let mine: Vec<&StageEvent> = events
            .iter()
            .filter(|e| e.stage() == &*stage.name)
            .collect();
        let retried: Vec<(u32, &AttemptFailure, Duration)> = mine
            .iter()
            .filter_map(|event| match event {
                StageEvent::Retried {
                    next_attempt,
                    failure,
                    delay,
                    ..
                } => Some((*next_attempt, failure, *delay)),
                _ => None,
            })
            .collect();
        let records: Vec<(u32, &AttemptFailure, Duration)> = stage
            .failed_attempts
            .iter()
            .filter(|record| !record.backoff.is_zero() || record.attempt < stage.status.attempts())
            .map(|record| (record.attempt + 1, &record.failure, record.backoff))
            .collect();
        assert_eq!(retried, records, "input {input}, {}", stage.name);
        let starts = mine
            .iter()
            .filter(|e| matches!(e, StageEvent::Started { .. }))
            .count();
        assert_eq!(
            starts,
            usize::from(stage.started.is_some()),
            "input {input}, {}",
            stage.name
        );
        for event in &mine {
            match event {
                StageEvent::Finished {
                    done: d,
                    total: t,
                    status,
                    ..
                } => {
                    assert_eq!(status, &stage.status);
                    assert_eq!(*t, total);
                    done.push(*d);
                }
                StageEvent::Skipped {
                    done: d, total: t, ..
                }
                | StageEvent::Cancelled {
                    done: d, total: t, ..
                } => {
                    assert_eq!(*t, total);
                    done.push(*d);
                }
                _ => {}
            }
        }
    }
    done.sort_unstable();
    assert_eq!(
        done,
        (1..=total).collect::<Vec<_>>(),
        "input {input}: {events:?}"
    );
    if input == 3 || input == 1 {
        assert_eq!(
            report.status("flaky"),
            Some(&StageStatus::Succeeded { attempts: input })
        );
    }
}

async fn many(spawned: bool) {
    let pipeline = pipeline(spawned);
    let mut runs = Vec::new();
    for input in 1..=12u32 {
        let pipeline = pipeline.clone();
        runs.push(tokio::spawn(async move {
            let (sink, mut receiver) = EventSink::channel();
            let options = RunOptions::default()
                .with_input(input)
                .with_seed(u64::from(input))
                .with_failure(FailurePolicy::ContinueIndependent)
                .with_events(sink);
            let report = pipeline.run_with(options).await;
            let mut events = Vec::new();
            while let Ok(event) = receiver.try_recv() {
                events.push(event);
            }
            (input, report, events)
        }));
    }
    for run in runs {
        let (input, report, events) = tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .expect("the run ends")
            .unwrap();
        check(&report, &events, input);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_runs_at_once_each_see_their_own_events() {
    many(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawned_runs_at_once_each_see_their_own_events() {
    many(true).await;
}
