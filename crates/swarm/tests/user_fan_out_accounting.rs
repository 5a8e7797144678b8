//! A fan-out's books as a progress bar and an audit read them, over k-of-n policies, retries,
//! early stops and `wait_all`: the summary's succeeded + failed + not run is n; an item finishes
//! once, after it started, with `done` counting 1, 2, ..; the stage's summary agrees with
//! the `FanOutReport` the stage saw.

use std::collections::HashMap;
use std::time::Duration;

use hivekit_swarm::{
    Backoff, EventSink, FanOut, Pipeline, RetryPolicy, RunOptions, StageContext, StageError,
    StageEvent, SubtaskOutcome,
};

/// Item `i` fails when `i % 3 == 0` (retryable for one attempt when `i % 6 == 0`), sleeps `i` ms.
async fn item(
    index: u64,
    attempt_counts: std::sync::Arc<parking_lot::Mutex<HashMap<u64, u32>>>,
) -> Result<u64, StageError> {
    let attempt = {
        let mut counts = attempt_counts.lock();
        let count = counts.entry(index).or_insert(0);
        *count += 1;
        *count
    };
    tokio::time::sleep(Duration::from_millis(index)).await;
    if index % 6 == 0 && attempt == 1 {
        return Err(StageError::msg("transient"));
    }
    if index % 3 == 0 && index % 6 != 0 {
        return Err(StageError::permanent("broken item"));
    }
    Ok(index)
}

async fn check(policy: FanOut, label: &str) {
    let items = 12u64;
    let counts = std::sync::Arc::new(parking_lot::Mutex::new(HashMap::new()));
    let seen = std::sync::Arc::new(parking_lot::Mutex::new(None));
    let (counts_in, seen_in) = (counts.clone(), seen.clone());
    let pipeline = Pipeline::builder()
        .stage("fan", move |ctx: StageContext| {
            let (counts, seen) = (counts_in.clone(), seen_in.clone());
            async move {
                let result = ctx
                    .fan_out(0..items, policy, move |index| item(index, counts.clone()))
                    .await;
                let outcome = result.as_ref().map(|report| {
                    let succeeded = report
                        .outcomes
                        .iter()
                        .filter(|outcome| matches!(outcome, SubtaskOutcome::Succeeded(_)))
                        .count();
                    let not_run = report
                        .outcomes
                        .iter()
                        .filter(|outcome| matches!(outcome, SubtaskOutcome::NotRun))
                        .count();
                    (report.succeeded, succeeded, report.failed, not_run)
                });
                *seen.lock() = Some(outcome.map_err(|error| error.to_string()));
                result.map(|report| report.succeeded)
            }
        })
        .build()
        .expect("valid");
    let (sink, mut events) = EventSink::channel();
    let report = tokio::time::timeout(
        Duration::from_secs(10),
        pipeline.run_with(RunOptions::default().with_events(sink)),
    )
    .await
    .expect("no hang");
    let stage = report.stage("fan").expect("known");
    assert_eq!(stage.fan_out.len(), 1, "{label}");
    let summary = &stage.fan_out[0];
    assert_eq!(summary.items, items as usize, "{label}");
    assert_eq!(
        summary.succeeded + summary.failures.len() + summary.not_run,
        summary.items,
        "{label}: {summary}"
    );
    let mut started = HashMap::new();
    let mut finished = HashMap::new();
    let mut done = Vec::new();
    while let Ok(event) = events.try_recv() {
        match event {
            StageEvent::ItemStarted { item, total, .. } => {
                assert_eq!(total, items as usize);
                assert!(
                    started.insert(item, ()).is_none(),
                    "{label}: item {item} started twice"
                );
            }
            StageEvent::ItemFinished {
                item,
                succeeded,
                attempts,
                done: so_far,
                total,
                ..
            } => {
                assert_eq!(total, items as usize);
                assert!(
                    started.contains_key(&item),
                    "{label}: {item} finished unstarted"
                );
                assert!(
                    finished.insert(item, (succeeded, attempts)).is_none(),
                    "{label}: {item}"
                );
                done.push(so_far);
            }
            _ => {}
        }
    }
    assert_eq!(
        done,
        (1..=finished.len()).collect::<Vec<_>>(),
        "{label}: done counts"
    );
    let finished_ok = finished
        .values()
        .filter(|(succeeded, _)| *succeeded)
        .count();
    assert_eq!(finished_ok, summary.succeeded, "{label}: {summary}");
    assert_eq!(
        finished.len() - finished_ok,
        summary.failures.len(),
        "{label}: {summary}"
    );
    for (index, attempts) in &summary.retried {
        assert_eq!(
            finished.get(index).map(|(_, made)| *made),
            Some(*attempts),
            "{label}"
        );
    }
    let seen_by_stage = seen.lock().clone();
    if let Some(Ok((succeeded, counted, failed, not_run))) = seen_by_stage {
        assert_eq!(succeeded, counted, "{label}");
        assert_eq!(
            (succeeded, failed, not_run),
            (summary.succeeded, summary.failures.len(), summary.not_run),
            "{label}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn fan_out_books_balance_for_every_policy() {
    let retry = RetryPolicy::attempts(2).with_backoff(Backoff::fixed(Duration::from_millis(3)));
    check(FanOut::new(3), "all, width 3").await;
    check(FanOut::new(3).retry(retry), "all, retried").await;
    check(FanOut::new(4).require(5).retry(retry), "5 of 12, retried").await;
    check(FanOut::new(2).require(5), "5 of 12").await;
    check(FanOut::new(12).require(5).wait_all(), "5 of 12, wait all").await;
    check(FanOut::new(1).require(0), "0 of 12").await;
    check(
        FanOut::new(usize::MAX).require(12).retry(retry).wait_all(),
        "12 of 12",
    )
    .await;
}
