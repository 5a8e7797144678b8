//! `RunOptions::try_with_max_concurrency`: any integer a user has at hand sets the run's bound, and a
//! number that bounds nothing sensible is a typed error, never a panic or an unbounded run.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hivekit_swarm::{ConcurrencyLimitError, Pipeline, RunOptions, StageContext, StageError};

#[test]
fn integers_of_every_type_set_the_bound() {
    let slots = |options: RunOptions| options.max_concurrency.slots();
    let options = || RunOptions::default();
    assert_eq!(slots(options().try_with_max_concurrency(8).unwrap()), 8);
    assert_eq!(slots(options().try_with_max_concurrency(3_u8).unwrap()), 3);
    assert_eq!(slots(options().try_with_max_concurrency(5_i64).unwrap()), 5);
    assert_eq!(
        slots(options().try_with_max_concurrency(1_usize).unwrap()),
        1
    );
}

#[test]
fn zero_and_negative_numbers_are_refused_by_name() {
    assert_eq!(
        RunOptions::default()
            .try_with_max_concurrency(0)
            .unwrap_err(),
        ConcurrencyLimitError::Zero
    );
    assert_eq!(
        RunOptions::default()
            .try_with_max_concurrency(-2_i32)
            .unwrap_err(),
        ConcurrencyLimitError::Negative { limit: -2 }
    );
}

/// The bound set from a plain integer holds in a run: ten stages that wait for each other's company
/// never run more than two at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bound_from_an_integer_holds_in_a_run() {
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let mut builder = Pipeline::builder();
    for index in 0..10 {
        let (running, most) = (Arc::clone(&running), Arc::clone(&most));
        builder = builder
            .stage(format!("s{index}"), move |_: StageContext| {
                let (running, most) = (Arc::clone(&running), Arc::clone(&most));
                async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    Ok::<_, StageError>(())
                }
            })
            .spawn()
            .into_builder();
    }
    let pipeline = builder.build().expect("valid pipeline");
    let options = RunOptions::default().try_with_max_concurrency(2).unwrap();
    let report = pipeline.run_with(options).await;
    assert!(report.is_success(), "{report:?}");
    assert!(most.load(Ordering::SeqCst) <= 2, "bound exceeded");
    assert!(most.load(Ordering::SeqCst) >= 1);
}
