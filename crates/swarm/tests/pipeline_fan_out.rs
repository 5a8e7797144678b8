//! Dynamic fan-out: bounded width, k-of-n success, every sub-task reported.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::{FanOut, Pipeline, StageContext, StageError, StageStatus, SubtaskOutcome};
use proptest::prelude::*;
use support::LiveGuard;

/// A stage fanning out over `items` sub-tasks; those whose index is in `failing` fail.
fn fan_out_pipeline(
    items: usize,
    policy: FanOut,
    failing: Vec<usize>,
    in_flight: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
) -> Pipeline {
    Pipeline::builder()
        .stage("fan", move |ctx: StageContext| {
            let (failing, in_flight, peak) = (failing.clone(), in_flight.clone(), peak.clone());
            async move {
                let report = ctx
                    .fan_out(0..items, policy, |item| {
                        let (failing, in_flight, peak) =
                            (failing.clone(), in_flight.clone(), peak.clone());
                        async move {
                            // Counts itself out when it ends or is dropped unfinished.
                            let _live = LiveGuard::new(&in_flight);
                            peak.fetch_max(in_flight.load(Ordering::SeqCst), Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(1 + (item as u64 * 7) % 5))
                                .await;
                            if failing.contains(&item) {
                                Err(StageError::msg(format!("item {item} failed")))
                            } else {
                                Ok(item)
                            }
                        }
                    })
                    .await?;
                Ok::<_, StageError>(report.outcomes)
            }
        })
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn k_of_n_matches_a_sequential_model(
        items in 0usize..20,
        width in 1usize..6,
        required_fraction in 0.0f64..=1.0,
        failing in proptest::collection::vec(0usize..20, 0..10),
        wait_all in any::<bool>(),
    ) {
        let required = (items as f64 * required_fraction).round() as usize;
        let mut policy = FanOut::new(width).require(required);
        if wait_all {
            policy = policy.wait_all();
        }
        let (in_flight, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let pipeline = fan_out_pipeline(items, policy, failing.clone(), in_flight.clone(), peak.clone());
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
        let report = runtime.block_on(pipeline.run());

        let succeeding = (0..items).filter(|item| !failing.contains(item)).count();
        let should_succeed = succeeding >= required;
        prop_assert_eq!(report.status("fan").unwrap().is_success(), should_succeed);
        prop_assert!(peak.load(Ordering::SeqCst) <= width);
        prop_assert_eq!(in_flight.load(Ordering::SeqCst), 0, "unfinished sub-tasks were dropped");
        let summary = &report.stage("fan").unwrap().fan_out[0];
        prop_assert_eq!(summary.items, items);
        prop_assert_eq!(summary.succeeded + summary.failures.len() + summary.not_run, items);
        for (item, error) in &summary.failures {
            prop_assert!(failing.contains(item));
            prop_assert_eq!(error, &StageError::msg(format!("item {item} failed")));
        }
        if wait_all {
            prop_assert_eq!(summary.not_run, 0);
            prop_assert_eq!(summary.succeeded, succeeding);
        }
        if should_succeed {
            prop_assert!(summary.succeeded >= required);
            let outcomes = report.artifact::<Vec<SubtaskOutcome<usize>>>("fan").unwrap();
            for (item, outcome) in outcomes.iter().enumerate() {
                match outcome {
                    SubtaskOutcome::Succeeded(value) => prop_assert_eq!(*value, item),
                    SubtaskOutcome::Failed(_) => prop_assert!(failing.contains(&item)),
                    SubtaskOutcome::NotRun => prop_assert!(!wait_all),
                    other => prop_assert!(false, "unexpected outcome {:?}", other),
                }
            }
        } else {
            let expected = StageError::FanOut { required, launched: items, succeeded: summary.succeeded };
            prop_assert_eq!(report.status("fan").unwrap(), &StageStatus::Failed { error: expected, attempts: 1 });
        }
    }
}

#[tokio::test(start_paused = true)]
async fn invalid_fan_outs_are_typed_errors() {
    for (policy, items) in [(FanOut::new(0), 3), (FanOut::new(2).require(4), 3)] {
        let pipeline = fan_out_pipeline(
            items,
            policy,
            vec![],
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
        );
        let report = pipeline.run().await;
        assert!(matches!(
            report.status("fan"),
            Some(StageStatus::Failed {
                error: StageError::InvalidFanOut { .. },
                ..
            })
        ));
    }
}

#[tokio::test]
async fn panicking_sub_tasks_count_as_failures() {
    let pipeline = Pipeline::builder()
        .stage("fan", |ctx: StageContext| async move {
            let report = ctx
                .fan_out(
                    0..4u32,
                    FanOut::new(4).require(2).wait_all(),
                    |item| async move {
                        if item % 2 == 0 {
                            panic!("sub-task {item} panicked");
                        }
                        Ok(item)
                    },
                )
                .await?;
            Ok::<_, StageError>(report.failed)
        })
        .build()
        .unwrap();
    let report = pipeline.run().await;
    assert_eq!(*report.artifact::<usize>("fan").unwrap(), 2);
    let summary = &report.stage("fan").unwrap().fan_out[0];
    assert_eq!(
        summary.failures[0],
        (0, StageError::Panicked("sub-task 0 panicked".into()))
    );
    assert_eq!(
        summary.to_string(),
        "2 of 4 succeeded (2 required), 2 failed, 0 not run"
    );
}
