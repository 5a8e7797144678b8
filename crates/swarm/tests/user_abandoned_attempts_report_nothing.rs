//! An attempt that has ended reports nothing more: a blocking attempt abandoned at its timeout
//! runs on in its thread, and a task a stage spawned may keep its context, but their
//! `ctx.progress` (and a fan-out's item events) after the stage's `Retried`, `Finished` or
//! `Cancelled` event would tell a watcher about work the run no longer counts. The run goes on
//! (another stage holds it open, and a failed stage does not stop the others) while the abandoned
//! work reports, so the sink is still open.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use hivekit_swarm::{
    Backoff, EventSink, FailurePolicy, FanOut, Pipeline, RetryPolicy, RunOptions, StageContext,
    StageError, StageEvent, StageStatus,
};

/// A one-shot signal between the test's threads (10 s watchdog: a test that hangs fails).
#[derive(Clone, Default)]
struct Signal(Arc<(Mutex<bool>, Condvar)>);

impl Signal {
    fn wait(&self) -> bool {
        let (open, signal) = &*self.0;
        let guard = open.lock().unwrap();
        let (guard, _) = signal
            .wait_timeout_while(guard, Duration::from_secs(10), |open| !*open)
            .unwrap();
        *guard
    }

    fn open(&self) {
        let (open, signal) = &*self.0;
        *open.lock().unwrap() = true;
        signal.notify_all();
    }

    fn is_open(&self) -> bool {
        *self.0 .0.lock().unwrap()
    }
}

/// Waits (asynchronously) until `signal` is open, for at most 10 s.
async fn until(signal: &Signal) {
    for _ in 0..1_000 {
        if signal.is_open() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Events of stage `stage` after the first event for it that `ends` matches.
fn after(events: &[StageEvent], stage: &str, ends: impl Fn(&StageEvent) -> bool) -> Vec<String> {
    let mut seen = false;
    let mut later = Vec::new();
    for event in events {
        if event.stage() != stage {
            continue;
        }
        if seen {
            later.push(format!("{event:?}"));
        } else if ends(event) {
            seen = true;
        }
    }
    assert!(seen, "no ending event for {stage}: {events:?}");
    later
}

/// A sink that keeps every event and opens `on_end` when `stage`'s event matching `ends` goes
/// out (so the abandoned work reports only after it).
fn recording(
    stage: &'static str,
    ends: fn(&StageEvent) -> bool,
    on_end: &Signal,
) -> (EventSink, Arc<Mutex<Vec<StageEvent>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let kept = events.clone();
    let on_end = on_end.clone();
    let sink = EventSink::callback(move |event| {
        let end = event.stage() == stage && ends(&event);
        kept.lock().unwrap().push(event);
        if end {
            on_end.open();
        }
    });
    (sink, events)
}

fn finished(event: &StageEvent) -> bool {
    matches!(event, StageEvent::Finished { .. })
}

fn retried(event: &StageEvent) -> bool {
    matches!(event, StageEvent::Retried { .. })
}

/// The blocking stage reports 1 of 2, waits until its stage has ended, reports 2 of 2 and says
/// it did; `tail` holds the run open until then.
fn abandoned_blocking_pipeline(ended: &Signal, reported: &Signal, attempts: u32) -> Pipeline {
    let (ended, reported) = (ended.clone(), reported.clone());
    let tail_waits = reported.clone();
    Pipeline::builder()
        .stage("sync", move |ctx: StageContext| {
            let (ended, reported) = (ended.clone(), reported.clone());
            async move {
                ctx.progress(1, 2);
                if ctx.attempt() == 1 {
                    ended.wait();
                    ctx.progress(2, 2);
                    reported.open();
                    // Runs past its timeout: the attempt was abandoned long before.
                    return Ok::<_, StageError>(());
                }
                Ok(())
            }
        })
        .blocking()
        .timeout(Duration::from_millis(50))
        .retry(RetryPolicy::attempts(attempts).with_backoff(Backoff::fixed(Duration::ZERO)))
        .stage("tail", move |_: StageContext| {
            let reported = tail_waits.clone();
            async move {
                until(&reported).await;
                Ok::<_, StageError>(())
            }
        })
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_attempt_abandoned_at_its_timeout_reports_no_progress_after_finished() {
    let (ended, reported) = (Signal::default(), Signal::default());
    let pipeline = abandoned_blocking_pipeline(&ended, &reported, 1);
    let (sink, events) = recording("sync", finished, &ended);
    let report = pipeline
        .run_with(
            RunOptions::default()
                .with_events(sink)
                .with_failure(FailurePolicy::ContinueIndependent),
        )
        .await;
    assert!(
        matches!(report.status("sync"), Some(StageStatus::TimedOut { .. })),
        "{report:?}"
    );
    assert!(reported.wait(), "the abandoned attempt reported");
    let events = events.lock().unwrap().clone();
    assert_eq!(after(&events, "sync", finished), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_blocking_attempt_reports_nothing_after_retried() {
    let (ended, reported) = (Signal::default(), Signal::default());
    let pipeline = abandoned_blocking_pipeline(&ended, &reported, 2);
    let (sink, events) = recording("sync", retried, &ended);
    let report = pipeline
        .run_with(
            RunOptions::default()
                .with_events(sink)
                .with_failure(FailurePolicy::ContinueIndependent),
        )
        .await;
    assert!(
        matches!(
            report.status("sync"),
            Some(StageStatus::Succeeded { attempts: 2 })
        ),
        "{report:?}"
    );
    assert!(reported.wait(), "the abandoned attempt reported");
    let events = events.lock().unwrap().clone();
    // After `Retried`, only the second attempt's report of 1 of 2, then `Finished`.
    let later = after(&events, "sync", retried);
    assert_eq!(later.len(), 2, "{later:#?}");
    assert!(later[0].contains("Progress") && later[0].contains("done: 1"));
    assert!(later[1].contains("Finished"), "{later:#?}");
}

/// A task the stage spawned with its context reports after the stage finished: dropped; the
/// stage's own reports before it went out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_holding_a_finished_stages_context_reports_nothing() {
    let (ended, reported) = (Signal::default(), Signal::default());
    let (task_ended, task_reported) = (ended.clone(), reported.clone());
    let tail_waits = reported.clone();
    let pipeline = Pipeline::builder()
        .stage("spawner", move |ctx: StageContext| {
            let (ended, reported) = (task_ended.clone(), task_reported.clone());
            async move {
                ctx.progress(1, 2);
                let late = ctx.clone();
                tokio::task::spawn_blocking(move || {
                    ended.wait();
                    late.progress(2, 2);
                    reported.open();
                });
                Ok::<_, StageError>(())
            }
        })
        .stage("tail", move |_: StageContext| {
            let reported = tail_waits.clone();
            async move {
                until(&reported).await;
                Ok::<_, StageError>(())
            }
        })
        .build()
        .unwrap();
    let (sink, events) = recording("spawner", finished, &ended);
    let report = pipeline
        .run_with(
            RunOptions::default()
                .with_events(sink)
                .with_failure(FailurePolicy::ContinueIndependent),
        )
        .await;
    assert!(report.is_success(), "{report:?}");
    assert!(reported.wait());
    let events = events.lock().unwrap().clone();
    assert_eq!(after(&events, "spawner", finished), Vec::<String>::new());
    let progress: Vec<_> = events
        .iter()
        .filter(|event| matches!(event, StageEvent::Progress { .. }))
        .collect();
    assert_eq!(progress.len(), 1, "{progress:?}");
}

/// A blocking attempt running a fan-out when it is abandoned: the items it starts and finishes
/// afterwards are not reported either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_in_an_abandoned_blocking_attempt_reports_no_items_after_finished() {
    let (ended, reported) = (Signal::default(), Signal::default());
    let (stage_ended, stage_reported) = (ended.clone(), reported.clone());
    let tail_waits = reported.clone();
    let items_run = Arc::new(AtomicU32::new(0));
    let counted = items_run.clone();
    let pipeline = Pipeline::builder()
        .stage("fan", move |ctx: StageContext| {
            let (ended, reported) = (stage_ended.clone(), stage_reported.clone());
            let counted = counted.clone();
            let waited = Arc::new(AtomicBool::new(false));
            async move {
                let result = ctx
                    .fan_out(0..4_u32, FanOut::new(1), |item| {
                        let (ended, waited, counted) =
                            (ended.clone(), waited.clone(), counted.clone());
                        async move {
                            // The first item holds the attempt until the stage has ended.
                            if item == 0 && !waited.swap(true, Ordering::SeqCst) {
                                ended.wait();
                            }
                            counted.fetch_add(1, Ordering::SeqCst);
                            Ok::<_, StageError>(item)
                        }
                    })
                    .await;
                reported.open();
                result.map(|_| ())
            }
        })
        .blocking()
        .timeout(Duration::from_millis(50))
        .stage("tail", move |_: StageContext| {
            let reported = tail_waits.clone();
            async move {
                until(&reported).await;
                Ok::<_, StageError>(())
            }
        })
        .build()
        .unwrap();
    let (sink, events) = recording("fan", finished, &ended);
    let report = pipeline
        .run_with(
            RunOptions::default()
                .with_events(sink)
                .with_failure(FailurePolicy::ContinueIndependent),
        )
        .await;
    assert!(
        matches!(report.status("fan"), Some(StageStatus::TimedOut { .. })),
        "{report:?}"
    );
    assert!(reported.wait());
    assert_eq!(
        items_run.load(Ordering::SeqCst),
        4,
        "the abandoned work ran on"
    );
    let events = events.lock().unwrap().clone();
    assert_eq!(after(&events, "fan", finished), Vec::<String>::new());
}
