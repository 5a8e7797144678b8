//! Review of the gated event sink (0acd4ed, `EventSink::gated`): the run lets go of its sink when
//! it ends, "so a channel closes with the run and no event comes after it". Attacked here: no
//! event lost or duplicated for runs that end normally (spawned stages, a sink shared by runs at
//! once, a nested run fed the same sink, a callback that starts a run of its own with the very
//! sink it is), and no event delivered after `run_with` returned.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use hivekit_swarm::{
    EventSink, Pipeline, RunOptions, StageContext, StageError, StageEvent, StageStatus,
};
use tokio::sync::{mpsc, Notify};

const LIMIT: Duration = Duration::from_secs(10);

async fn bounded<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(LIMIT, future)
        .await
        .expect("ended in time")
}

/// (stage, kind) counts of a stream of events.
fn tally(events: &[StageEvent]) -> HashMap<(String, &'static str), usize> {
    let mut counts = HashMap::new();
    for event in events {
        let kind = match event {
            StageEvent::Started { .. } => "started",
            StageEvent::Finished { .. } => "finished",
            StageEvent::Progress { .. } => "progress",
            StageEvent::Skipped { .. } => "skipped",
            StageEvent::Cancelled { .. } => "cancelled",
            _ => "other",
        };
        *counts.entry((event.stage().to_owned(), kind)).or_insert(0) += 1;
    }
    counts
}

/// Receives until the channel closes (every sender gone), bounded.
async fn until_closed(events: &mut mpsc::UnboundedReceiver<StageEvent>) -> Vec<StageEvent> {
    let mut all = Vec::new();
    bounded(async {
        while let Some(event) = events.recv().await {
            all.push(event);
        }
    })
    .await;
    all
}

/// `n` stages named `{prefix}{i}`, each reporting one unit of progress.
fn chain(prefix: &str, n: usize, spawn: bool, gate: Option<Arc<Notify>>) -> Pipeline {
    let mut builder = Pipeline::builder();
    for i in 0..n {
        let gate = gate.clone().filter(|_| i == n - 1);
        let stage = builder.stage(format!("{prefix}{i}"), move |ctx: StageContext| {
            let gate = gate.clone();
            async move {
                if let Some(gate) = gate {
                    gate.notified().await;
                }
                ctx.progress(1, 1);
                Ok::<_, StageError>(())
            }
        });
        let stage = if i > 0 {
            stage.after([format!("{prefix}{}", i - 1)])
        } else {
            stage
        };
        builder = if spawn { stage.spawn() } else { stage }.into_builder();
    }
    builder.build().expect("a valid pipeline")
}

fn assert_each_stage_once(counts: &HashMap<(String, &'static str), usize>, prefix: &str, n: usize) {
    for i in 0..n {
        for kind in ["started", "finished", "progress"] {
            assert_eq!(
                counts.get(&(format!("{prefix}{i}"), kind)).copied(),
                Some(1),
                "{kind} of {prefix}{i}: {counts:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawned_stages_deliver_every_event_once_and_the_channel_closes_with_the_run() {
    let pipeline = chain("s", 40, true, None);
    let (sink, mut events) = EventSink::channel();
    let report = bounded(pipeline.run_with(RunOptions::default().with_events(sink))).await;
    assert!(report.is_success(), "{report}");
    let all = until_closed(&mut events).await;
    assert_each_stage_once(&tally(&all), "s", 40);
    assert!(
        matches!(all.last(), Some(StageEvent::Finished { stage, .. }) if &**stage == "s39"),
        "the last stage's end is the last event"
    );
}

/// Two runs share one sink; the first ends while the second still runs. Its gate closing must
/// not stop the second run's events, and the channel closes once both ended.
#[tokio::test]
async fn a_sink_shared_by_two_runs_at_once_stays_open_until_both_ended() {
    let hold = Arc::new(Notify::new());
    let short = chain("a", 3, false, None);
    let long = chain("b", 3, false, Some(hold.clone()));
    let (sink, mut events) = EventSink::channel();
    let long_options = RunOptions::default().with_events(sink.clone());
    let short_options = RunOptions::default().with_events(sink);
    let (long_report, ()) = bounded(async {
        tokio::join!(long.run_with(long_options), async {
            let report = short.run_with(short_options).await;
            assert!(report.is_success());
            // The short run ended (its gate closed): now let the long one finish.
            hold.notify_one();
        })
    })
    .await;
    assert!(long_report.is_success(), "{long_report}");
    let all = until_closed(&mut events).await;
    let counts = tally(&all);
    assert_each_stage_once(&counts, "a", 3);
    assert_each_stage_once(&counts, "b", 3);
}

/// A stage runs a nested pipeline with the same (captured) sink: both runs' events arrive, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nested_run_fed_the_same_sink_delivers_every_event_once() {
    let (sink, mut events) = EventSink::channel();
    let inner = chain("in", 4, true, None);
    let captured = Arc::new(Mutex::new(Some(sink.clone())));
    let outer = Pipeline::builder()
        .stage("outer", move |_: StageContext| {
            let inner = inner.clone();
            let captured = captured.clone();
            async move {
                let sink = captured.lock().unwrap().take().expect("runs once");
                let report = inner
                    .run_with(RunOptions::default().with_events(sink))
                    .await;
                match report.is_success() {
                    true => Ok(()),
                    false => Err(StageError::msg("inner failed")),
                }
            }
        })
        .spawn()
        .build()
        .unwrap();
    let report = bounded(outer.run_with(RunOptions::default().with_events(sink))).await;
    assert!(report.is_success(), "{report}");
    drop(outer);
    let all = until_closed(&mut events).await;
    let counts = tally(&all);
    assert_each_stage_once(&counts, "in", 4);
    assert_eq!(counts.get(&("outer".to_owned(), "started")), Some(&1));
    assert_eq!(counts.get(&("outer".to_owned(), "finished")), Some(&1));
}

/// A callback sink that, seeing the outer run's first stage finish, starts a run of its own with
/// itself as the sink: synchronously (blocking on it inside the callback, so nested in the
/// outer run's poll) and on a task that outlives the outer run. Every event of all three runs
/// reaches it once, and nothing deadlocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_starting_runs_with_its_own_sink_sees_every_event_once() {
    let seen: Arc<Mutex<Vec<StageEvent>>> = Arc::default();
    let this: Arc<OnceLock<EventSink>> = Arc::default();
    let spawned_done = Arc::new(Notify::new());
    let started_others = Arc::new(AtomicBool::new(false));
    let sink = {
        let (seen, this, spawned_done, started_others) = (
            seen.clone(),
            this.clone(),
            spawned_done.clone(),
            started_others.clone(),
        );
        EventSink::callback(move |event| {
            let trigger = matches!(&event, StageEvent::Finished { stage, .. } if &**stage == "o0");
            seen.lock().unwrap().push(event);
            if trigger && !started_others.swap(true, Ordering::SeqCst) {
                let me = this.get().expect("set before the run").clone();
                // A run of its own, inline in this callback.
                let sync = chain("sync", 3, false, None);
                let report = futures::executor::block_on(
                    sync.run_with(RunOptions::default().with_events(me.clone())),
                );
                assert!(report.is_success(), "{report}");
                // And one on a task that ends after the outer run.
                let later = chain("later", 3, true, None);
                let done = spawned_done.clone();
                tokio::spawn(async move {
                    let report = later.run_with(RunOptions::default().with_events(me)).await;
                    assert!(report.is_success());
                    done.notify_one();
                });
            }
        })
    };
    assert!(this.set(sink.clone()).is_ok());
    let outer = chain("o", 3, false, None);
    let report = bounded(outer.run_with(RunOptions::default().with_events(sink))).await;
    assert!(report.is_success(), "{report}");
    bounded(spawned_done.notified()).await;
    let counts = tally(&seen.lock().unwrap());
    assert_each_stage_once(&counts, "o", 3);
    assert_each_stage_once(&counts, "sync", 3);
    assert_each_stage_once(&counts, "later", 3);
}

/// Blocking attempts abandoned at their timeout keep reporting progress from their threads while
/// the run ends: once `run_with` returned and the channel was drained, nothing more may arrive.
/// The gate clones the target sink out of its lock and delivers after releasing it, so a thread
/// between the two when the gate closes delivers after the run (probabilistic: many threads on
/// few CPUs make a preempted one likely; several rounds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_progress_event_arrives_after_run_with_returned() {
    const THREADS: usize = 8;
    for round in 0..40 {
        let stop = Arc::new(AtomicBool::new(false));
        let running = Arc::new(AtomicUsize::new(0));
        let mut builder = Pipeline::builder();
        for i in 0..THREADS {
            let (stop, running) = (stop.clone(), running.clone());
            builder = builder
                .stage(format!("spam{i}"), move |ctx: StageContext| {
                    let (stop, running) = (stop.clone(), running.clone());
                    async move {
                        running.fetch_add(1, Ordering::SeqCst);
                        let begun = Instant::now();
                        let mut n = 0;
                        while !stop.load(Ordering::Relaxed) && begun.elapsed() < LIMIT {
                            n += 1;
                            ctx.progress(n, u64::MAX);
                        }
                        running.fetch_sub(1, Ordering::SeqCst);
                        Ok::<_, StageError>(())
                    }
                })
                .blocking()
                .timeout(Duration::from_millis(10))
                .into_builder();
        }
        let pipeline = builder.build().unwrap();
        let returned = Arc::new(AtomicBool::new(false));
        let late_calls = Arc::new(AtomicUsize::new(0));
        let (tx, mut events) = mpsc::unbounded_channel();
        let sink = {
            let (returned, late_calls) = (returned.clone(), late_calls.clone());
            EventSink::callback(move |event| {
                if returned.load(Ordering::SeqCst) {
                    late_calls.fetch_add(1, Ordering::SeqCst);
                    eprintln!("called after run_with returned: {event:?}");
                }
                let _ = tx.send(event);
            })
        };
        let report = bounded(pipeline.run_with(RunOptions::default().with_events(sink))).await;
        returned.store(true, Ordering::SeqCst);
        let ended_by_the_run = report.stages().iter().all(|stage| {
            matches!(
                stage.status,
                StageStatus::TimedOut { .. } | StageStatus::Cancelled
            )
        });
        while events.try_recv().is_ok() {}
        // Give preempted spammers time to run again.
        tokio::time::sleep(Duration::from_millis(10)).await;
        let late = events.try_recv().ok();
        stop.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + LIMIT;
        while running.load(Ordering::SeqCst) > 0 {
            assert!(
                Instant::now() < deadline,
                "the spamming threads never ended"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(ended_by_the_run, "{report}");
        assert_eq!(
            late_calls.load(Ordering::SeqCst),
            0,
            "round {round}: the sink was called after run_with returned"
        );
        assert!(
            late.is_none(),
            "round {round}: an event arrived after run_with returned: {late:?}"
        );
    }
}
