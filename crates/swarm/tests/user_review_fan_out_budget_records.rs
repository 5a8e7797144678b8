//! Review of "a fan-out spends a unit of tokio's coop budget per ended attempt" (8717436): the
//! budget is spent *between* an attempt's end and its record. A stop that lands at that await
//! (the very point of the change) drops an item that ended with its value in hand: not recorded,
//! not counted, and a durable fan-out runs it again on resume, though it had succeeded.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::checkpoint::{Durable, MemoryStore};
use hivekit_swarm::{
    CancellationToken, EventSink, FanOut, Pipeline, RunOptions, StageContext, StageError,
    StageEvent,
};

const ITEMS: usize = 2_000;
const CANCEL_AT: usize = 300;

async fn bounded<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .expect("the run ended in time")
}

/// One durable stage fanning out over instant items; item `CANCEL_AT` cancels `cancel` (when
/// given) and still succeeds. `ran[i]` counts the bodies of item `i` that ran to their `Ok`.
fn pipeline(
    ran: Arc<Vec<AtomicU32>>,
    cancel: Option<CancellationToken>,
    durable: bool,
) -> Pipeline {
    Pipeline::builder()
        .stage("score", move |ctx: StageContext| {
            let (ran, cancel) = (ran.clone(), cancel.clone());
            async move {
                let item = move |item: usize| {
                    let (ran, cancel) = (ran.clone(), cancel.clone());
                    async move {
                        if item == CANCEL_AT {
                            if let Some(cancel) = &cancel {
                                cancel.cancel();
                            }
                        }
                        ran[item].fetch_add(1, Ordering::SeqCst);
                        Ok::<_, StageError>(item as u64)
                    }
                };
                let scores = match durable {
                    true => ctx.durable_fan_out(0..ITEMS, FanOut::new(8), item).await?,
                    false => ctx.fan_out(0..ITEMS, FanOut::new(8), item).await?,
                };
                Ok::<_, StageError>(scores.into_successes().sum::<u64>())
            }
        })
        .durable()
        .build()
        .expect("a valid pipeline")
}

fn counters() -> Arc<Vec<AtomicU32>> {
    Arc::new((0..ITEMS).map(|_| AtomicU32::new(0)).collect())
}

#[tokio::test]
async fn an_item_that_succeeded_before_the_cancellation_is_not_run_again_on_resume() {
    let ran = counters();
    let cancel = CancellationToken::new();
    let durable = Durable::new(MemoryStore::new());
    let first = pipeline(ran.clone(), Some(cancel.clone()), true);
    let options = RunOptions::default().with_cancel(cancel);
    let outcome = bounded(durable.start(&first, "scores", options))
        .await
        .expect("starts");
    assert!(!outcome.report().is_success(), "{outcome:?}");
    let succeeded_before: Vec<usize> = (0..ITEMS)
        .filter(|&item| ran[item].load(Ordering::SeqCst) == 1)
        .collect();
    let recorded = durable
        .inspect("scores")
        .expect("inspects")
        .stage("score")
        .expect("the stage")
        .memo_records;
    // Resumed without a cancellation: every item that already succeeded is read back.
    let again = pipeline(ran.clone(), None, true);
    let resumed = bounded(durable.resume(&again, "scores", RunOptions::default()))
        .await
        .expect("resumes");
    assert!(resumed.report().is_success(), "{resumed:?}");
    let twice: Vec<usize> = (0..ITEMS)
        .filter(|&item| ran[item].load(Ordering::SeqCst) > 1)
        .collect();
    assert!(
        twice.is_empty(),
        "items that had succeeded (and returned their value) before the cancellation ran again \
         on resume: {twice:?}"
    );
    assert_eq!(
        recorded,
        succeeded_before.len(),
        "{} items returned Ok before the stop, {recorded} were recorded",
        succeeded_before.len()
    );
}

#[tokio::test]
async fn every_item_that_returned_ok_before_the_cancellation_has_its_item_finished_event() {
    let ran = counters();
    let cancel = CancellationToken::new();
    let pipeline = pipeline(ran.clone(), Some(cancel.clone()), false);
    let (sink, mut events) = EventSink::channel();
    let report =
        bounded(pipeline.run_with(RunOptions::default().with_cancel(cancel).with_events(sink)))
            .await;
    assert!(!report.is_success());
    let mut finished = 0;
    while let Ok(event) = events.try_recv() {
        if matches!(event, StageEvent::ItemFinished { .. }) {
            finished += 1;
        }
    }
    let returned = (0..ITEMS)
        .filter(|&item| ran[item].load(Ordering::SeqCst) == 1)
        .count();
    assert_eq!(
        finished, returned,
        "{returned} items returned Ok, {finished} ItemFinished events"
    );
}

/// Throughput and order: a long fan-out of instant items still runs every item once and hands
/// the outcomes back in item order, its events counting up to the total, with the budget
/// yielding every ~128 items.
#[tokio::test]
async fn a_long_fan_out_of_instant_items_runs_each_once_in_order() {
    let started = Arc::new(AtomicUsize::new(0));
    let seen = started.clone();
    let pipeline = Pipeline::builder()
        .stage("all", move |ctx: StageContext| {
            let started = seen.clone();
            async move {
                let out = ctx
                    .fan_out(0..20_000_u32, FanOut::new(1), move |item| {
                        started.fetch_add(1, Ordering::SeqCst);
                        async move { Ok::<_, StageError>(item) }
                    })
                    .await?;
                Ok::<_, StageError>(out.into_successes().collect::<Vec<_>>())
            }
        })
        .build()
        .unwrap();
    let (sink, mut events) = EventSink::channel();
    let report = bounded(pipeline.run_with(RunOptions::default().with_events(sink))).await;
    assert!(report.is_success(), "{report:?}");
    let values = report.artifact::<Vec<u32>>("all").unwrap();
    assert!(values.iter().copied().eq(0..20_000), "in item order");
    assert_eq!(started.load(Ordering::SeqCst), 20_000);
    let mut last_done = 0;
    let mut finished = 0;
    while let Ok(event) = events.try_recv() {
        if let StageEvent::ItemFinished { done, total, .. } = event {
            assert_eq!(total, 20_000);
            assert_eq!(done, last_done + 1, "done counts up one by one");
            last_done = done;
            finished += 1;
        }
    }
    assert_eq!(finished, 20_000);
}
