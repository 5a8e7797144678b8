//! LangGraph's `Send` map-reduce (`test_send_sequences`, `test_concurrent_emit_sends`,
//! `test_cond_edge_after_send`), through hivekit's fan-out: the mapped results come back in the
//! order of the items sent, whatever order they finish in, in a plain and in a durable fan-out
//! resumed after a stop that left a scattered (not leading) set of items recorded; a map over
//! thousands of items runs each once; items may run nested pipelines (a subgraph per `Send`).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hivekit_swarm::checkpoint::{CheckpointStore, Durable, MemoryStore};
use hivekit_swarm::{
    CancellationToken, EventSink, FanOut, Pipeline, RunOptions, RunOutcome, StageContext,
    StageError, StageEvent, SubtaskOutcome,
};

/// Item `i` of `n` finishes after `(n - i) * 10` ms: the last item first.
#[tokio::test(start_paused = true)]
async fn mapped_results_come_back_in_item_order_when_items_finish_in_reverse() {
    const N: u64 = 8;
    let pipeline = Pipeline::builder()
        .stage("map", |ctx: StageContext| async move {
            let report = ctx
                .fan_out(0..N, FanOut::new(usize::MAX), |item| async move {
                    tokio::time::sleep(Duration::from_millis((N - item) * 10)).await;
                    Ok::<_, StageError>(item * item)
                })
                .await?;
            assert!(report
                .outcomes
                .iter()
                .all(|outcome| matches!(outcome, SubtaskOutcome::Succeeded(_))));
            Ok::<_, StageError>(report.into_successes().collect::<Vec<_>>())
        })
        .stage("reduce", |ctx: StageContext| async move {
            Ok::<_, StageError>(ctx.input::<Vec<u64>>("map")?.iter().sum::<u64>())
        })
        .after(["map"])
        .build()
        .unwrap();
    let (sink, mut events) = EventSink::channel();
    let report = pipeline
        .run_with(RunOptions::default().with_events(sink))
        .await;
    assert!(report.is_success(), "{report}");
    assert_eq!(
        *report.artifact::<Vec<u64>>("map").unwrap(),
        (0..N).map(|item| item * item).collect::<Vec<_>>()
    );
    assert_eq!(
        *report.artifact::<u64>("reduce").unwrap(),
        (0..N).map(|item| item * item).sum::<u64>()
    );
    let mut finish_order = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let StageEvent::ItemFinished { item, .. } = event {
            finish_order.push(item);
        }
    }
    assert_eq!(
        finish_order,
        (0..N as usize).rev().collect::<Vec<_>>(),
        "the items did finish last first"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_map_over_twenty_thousand_items_runs_each_exactly_once_within_its_width() {
    const N: usize = 20_000;
    let seen: Arc<Vec<AtomicU32>> = Arc::new((0..N).map(|_| AtomicU32::new(0)).collect());
    let (running, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (s, r, p) = (seen.clone(), running.clone(), peak.clone());
    let pipeline = Pipeline::builder()
        .stage("map", move |ctx: StageContext| {
            let (seen, running, peak) = (s.clone(), r.clone(), p.clone());
            async move {
                let report = ctx
                    .fan_out(0..N, FanOut::new(64), |item| {
                        let (seen, running, peak) = (seen.clone(), running.clone(), peak.clone());
                        async move {
                            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                            peak.fetch_max(now, Ordering::SeqCst);
                            seen[item].fetch_add(1, Ordering::SeqCst);
                            if item % 3 == 0 {
                                tokio::task::yield_now().await;
                            }
                            running.fetch_sub(1, Ordering::SeqCst);
                            Ok::<_, StageError>(item as u64)
                        }
                    })
                    .await?;
                Ok::<_, StageError>(report.into_successes().collect::<Vec<_>>())
            }
        })
        .spawn()
        .build()
        .unwrap();
    let report = tokio::time::timeout(Duration::from_secs(20), pipeline.run())
        .await
        .expect("the map ends");
    assert!(report.is_success(), "{report}");
    let values = report.artifact::<Vec<u64>>("map").unwrap();
    assert_eq!(values.len(), N);
    assert!(values
        .iter()
        .enumerate()
        .all(|(at, value)| *value == at as u64));
    assert!(seen.iter().all(|count| count.load(Ordering::SeqCst) == 1));
    let peak = peak.load(Ordering::SeqCst);
    assert!((1..=64).contains(&peak), "at most 64 at once, saw {peak}");
    let summary = &report.stage("map").unwrap().fan_out[0];
    assert_eq!((summary.items, summary.succeeded), (N, N));
}

/// Each `Send` runs a subgraph: every item runs a two-stage pipeline of its own (one stage
/// spawned), and the items' reports are independent of each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_running_nested_pipelines_each_get_their_own_result() {
    let subgraph = Pipeline::builder()
        .stage("double", |ctx: StageContext| async move {
            Ok::<_, StageError>(*ctx.run_input::<u64>()? * 2)
        })
        .spawn()
        .stage("inc", |ctx: StageContext| async move {
            tokio::task::yield_now().await;
            Ok::<_, StageError>(*ctx.input::<u64>("double")? + 1)
        })
        .after(["double"])
        .build()
        .unwrap();
    let pipeline = Pipeline::builder()
        .stage("map", move |ctx: StageContext| {
            let subgraph = subgraph.clone();
            async move {
                let report = ctx
                    .fan_out(0..200u64, FanOut::new(16), |item| {
                        let subgraph = subgraph.clone();
                        async move {
                            let run = subgraph
                                .run_with(RunOptions::default().with_input(item))
                                .await;
                            Ok::<_, StageError>(*run.artifact::<u64>("inc")?)
                        }
                    })
                    .await?;
                Ok::<_, StageError>(report.into_successes().collect::<Vec<_>>())
            }
        })
        .build()
        .unwrap();
    let report = tokio::time::timeout(Duration::from_secs(10), pipeline.run())
        .await
        .expect("ends");
    assert!(report.is_success(), "{report}");
    assert_eq!(
        *report.artifact::<Vec<u64>>("map").unwrap(),
        (0..200u64).map(|item| item * 2 + 1).collect::<Vec<_>>()
    );
}

/// Odd items finish at once, even ones wait for a gate; the run is cancelled once the odd ones are
/// recorded, and the resume (gate open) puts every result in its item's place, running only the
/// even items.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_map_resumed_with_scattered_items_recorded_keeps_item_order() {
    const N: u64 = 9;
    let calls: Arc<Vec<AtomicU32>> = Arc::new((0..N).map(|_| AtomicU32::new(0)).collect());
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let (c, g) = (calls.clone(), gate.clone());
    let pipeline = Pipeline::builder()
        .durable()
        .stage("map", move |ctx: StageContext| {
            let (calls, gate) = (c.clone(), g.clone());
            async move {
                let report = ctx
                    .durable_fan_out(0..N, FanOut::new(usize::MAX), |item| {
                        let (calls, gate) = (calls.clone(), gate.clone());
                        async move {
                            calls[item as usize].fetch_add(1, Ordering::SeqCst);
                            if item % 2 == 0 {
                                let _permit = gate.acquire().await.map_err(StageError::msg)?;
                            }
                            Ok::<_, StageError>(format!("item-{item}"))
                        }
                    })
                    .await?;
                Ok::<_, StageError>(report.into_successes().collect::<Vec<_>>())
            }
        })
        .durable()
        .build()
        .unwrap();
    let store = MemoryStore::new();
    let durable = Durable::new(store.clone());
    let cancel = CancellationToken::new();
    let started = tokio::spawn({
        let (durable, pipeline, cancel) = (durable.clone(), pipeline.clone(), cancel.clone());
        async move {
            durable
                .start(
                    &pipeline,
                    "map-1",
                    RunOptions::default().with_cancel(cancel),
                )
                .await
        }
    });
    // Wait until the four odd items are recorded.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let items = store.load_run("map-1").unwrap().map_or(0, |run| {
            run.records
                .iter()
                .filter(|(key, _)| key.starts_with("i:"))
                .count()
        });
        if items == 4 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the odd items were not recorded: {items}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    cancel.cancel();
    let first = tokio::time::timeout(Duration::from_secs(5), started)
        .await
        .expect("the cancelled run ends")
        .unwrap()
        .unwrap();
    assert_eq!(first.report().outcome(), RunOutcome::Cancelled);

    gate.add_permits(1_000);
    let second = tokio::time::timeout(
        Duration::from_secs(5),
        durable.resume(&pipeline, "map-1", RunOptions::default()),
    )
    .await
    .expect("the resume ends")
    .expect("resumes");
    let report = second.report();
    assert!(report.is_success(), "{report}");
    assert_eq!(
        *report.artifact::<Vec<String>>("map").unwrap(),
        (0..N)
            .map(|item| format!("item-{item}"))
            .collect::<Vec<_>>()
    );
    let counts: Vec<u32> = calls
        .iter()
        .map(|count| count.load(Ordering::SeqCst))
        .collect();
    let odd_once: BTreeSet<u32> = counts.iter().skip(1).step_by(2).copied().collect();
    let even_twice: BTreeSet<u32> = counts.iter().step_by(2).copied().collect();
    assert_eq!(
        odd_once,
        BTreeSet::from([1]),
        "odd items are read back: {counts:?}"
    );
    assert_eq!(
        even_twice,
        BTreeSet::from([2]),
        "even items run again: {counts:?}"
    );
    assert_eq!(report.stage("map").unwrap().fan_out[0].resumed, 4);
}
