//! Temporal's long-history tests (the reason for continue-as-new), ported: a workflow with
//! thousands of steps in its history replays from where it stopped, without running a finished
//! step again and without the replay costing more than the work left. hivekit has no
//! continue-as-new: a loop keeps every iteration's record in its run, so these tests check that a
//! long history still resumes exactly and quickly, on the on-disk store (on tmpfs where there is
//! one, as the crash tests keep it: every record is a committed write transaction).

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hivekit_swarm::checkpoint::{Durable, RedbStore};
use hivekit_swarm::{
    CancellationToken, FanOut, Iteration, LoopPolicy, LoopReport, Pipeline, RunOptions,
    StageContext, StageError,
};

type Counts = Arc<Vec<AtomicU32>>;

fn counts(len: usize) -> Counts {
    Arc::new((0..len).map(|_| AtomicU32::new(0)).collect())
}

fn loaded(counts: &Counts) -> Vec<u32> {
    counts
        .iter()
        .map(|count| count.load(Ordering::SeqCst))
        .collect()
}

/// A loop of `rounds` iterations whose body stage adds its number to the previous total; in
/// iteration `stop_at` (on its first run only) it cancels the run and hangs there.
fn ledger(rounds: u32, stop_at: u32, cancel: CancellationToken, ran: Counts) -> Pipeline {
    let body = Pipeline::builder()
        .stage("post", move |ctx: StageContext| {
            let (cancel, ran) = (cancel.clone(), ran.clone());
            async move {
                let iteration = ctx.run_input::<Iteration>()?;
                let number = iteration.number();
                let before = ran[number as usize - 1].fetch_add(1, Ordering::SeqCst);
                if number == stop_at && before == 0 {
                    cancel.cancel();
                    std::future::pending::<()>().await;
                }
                let previous = match iteration.previous() {
                    Some(report) => *report.artifact::<u64>("post")?,
                    None => 0,
                };
                Ok::<_, StageError>(previous + u64::from(number))
            }
        })
        .durable()
        .build()
        .expect("a valid body");
    Pipeline::builder()
        .repeat("ledger", body, LoopPolicy::new(rounds))
        .build()
        .expect("a valid pipeline")
}

#[tokio::test]
async fn a_two_thousand_iteration_loop_stopped_at_1500_replays_from_there_running_each_once() {
    const ROUNDS: u32 = 2000;
    const STOP: u32 = 1500;
    let dir = support::crash::scratch();
    let store = RedbStore::open(dir.path().join("runs.redb")).expect("opens");
    let durable = Durable::new(store);
    let ran = counts(ROUNDS as usize);
    let cancel = CancellationToken::new();
    let pipeline = ledger(ROUNDS, STOP, cancel.clone(), ran.clone());

    let first = tokio::time::timeout(
        Duration::from_secs(30),
        durable.start(
            &pipeline,
            "ledger",
            RunOptions::default().with_cancel(cancel),
        ),
    )
    .await
    .expect("the first run stops at its cancellation")
    .expect("starts")
    .into_report();
    assert!(!first.is_success());
    let state = durable.inspect("ledger").expect("stored");
    assert_eq!(
        state.stage("ledger").expect("ledger").memo_records,
        (STOP - 1) as usize,
        "one record per finished iteration"
    );

    let began = Instant::now();
    let report = tokio::time::timeout(
        Duration::from_secs(30),
        durable.resume(&pipeline, "ledger", RunOptions::default()),
    )
    .await
    .expect("the replay ends")
    .expect("resumes")
    .into_report();
    let replay = began.elapsed();
    assert!(report.is_success(), "{report:?}");
    let ran = loaded(&ran);
    let twice: Vec<usize> = (0..ROUNDS as usize).filter(|&at| ran[at] != 1).collect();
    assert_eq!(
        twice,
        [STOP as usize - 1],
        "only iteration {STOP} ran twice"
    );
    assert_eq!(ran[STOP as usize - 1], 2);

    let ledger = report.artifact::<LoopReport>("ledger").expect("looped");
    assert_eq!(ledger.iterations.len(), ROUNDS as usize);
    let total = *ledger
        .last()
        .expect("a last iteration")
        .artifact::<u64>("post")
        .expect("posted");
    assert_eq!(total, u64::from(ROUNDS) * u64::from(ROUNDS + 1) / 2);
    // Restored iterations read back their artifacts: the running total carried through them.
    assert_eq!(
        *ledger.iterations[STOP as usize - 2]
            .artifact::<u64>("post")
            .expect("restored"),
        u64::from(STOP - 1) * u64::from(STOP) / 2
    );
    assert!(
        replay < Duration::from_secs(10),
        "replaying a history of {STOP} iterations took {replay:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_thousand_item_fan_out_stopped_half_way_replays_only_the_items_not_recorded() {
    const ITEMS: usize = 10_000;
    const STOP: usize = 5_000;
    const WIDTH: usize = 8;
    let dir = support::crash::scratch();
    let durable = Durable::new(RedbStore::open(dir.path().join("runs.redb")).expect("opens"));
    let ran = counts(ITEMS);
    let cancel = CancellationToken::new();
    let pipeline = {
        let (ran, cancel) = (ran.clone(), cancel.clone());
        Pipeline::builder()
            .stage("score", move |ctx: StageContext| {
                let (ran, cancel) = (ran.clone(), cancel.clone());
                async move {
                    let scores = ctx
                        .durable_fan_out(0..ITEMS, FanOut::new(WIDTH), |item| {
                            let (ran, cancel) = (ran.clone(), cancel.clone());
                            async move {
                                let before = ran[item].fetch_add(1, Ordering::SeqCst);
                                // An item does some I/O: it yields once, as a real call would.
                                tokio::task::yield_now().await;
                                if item == STOP && before == 0 {
                                    cancel.cancel();
                                    std::future::pending::<()>().await;
                                }
                                Ok::<_, StageError>(item as u64 * 3)
                            }
                        })
                        .await?;
                    Ok::<_, StageError>(scores.into_successes().sum::<u64>())
                }
            })
            .durable()
            .build()
            .expect("a valid pipeline")
    };

    let first = tokio::time::timeout(
        Duration::from_secs(30),
        durable.start(
            &pipeline,
            "scores",
            RunOptions::default().with_cancel(cancel),
        ),
    )
    .await
    .expect("the first run stops at its cancellation")
    .expect("starts")
    .into_report();
    assert!(!first.is_success());
    let recorded = durable
        .inspect("scores")
        .expect("stored")
        .stage("score")
        .expect("score")
        .memo_records;
    assert!(
        (STOP - WIDTH..=STOP + WIDTH).contains(&recorded),
        "about half the items were recorded: {recorded}"
    );
    let ran_first = loaded(&ran);
    let started_first = ran_first.iter().filter(|&&count| count > 0).count();

    let report = tokio::time::timeout(
        Duration::from_secs(30),
        durable.resume(&pipeline, "scores", RunOptions::default()),
    )
    .await
    .expect("the replay ends")
    .expect("resumes")
    .into_report();
    assert!(report.is_success(), "{report:?}");
    let expected: u64 = (0..ITEMS as u64).map(|item| item * 3).sum();
    assert_eq!(*report.artifact::<u64>("score").expect("scored"), expected);
    let summary = report.stage("score").expect("score").fan_out[0].clone();
    assert_eq!(summary.resumed, recorded, "every recorded item read back");
    assert_eq!(summary.succeeded, ITEMS);

    let ran = loaded(&ran);
    assert!(ran.iter().all(|&count| count >= 1), "every item ran");
    let twice = ran.iter().filter(|&&count| count == 2).count();
    assert!(ran.iter().all(|&count| count <= 2));
    // Only items started but not recorded before the stop run again: at most the width in flight.
    assert_eq!(twice, started_first - recorded);
    assert!(twice <= WIDTH, "{twice} items ran twice");
    assert_eq!(
        ran.iter().map(|&count| count as usize).sum::<usize>(),
        ITEMS + twice
    );
}
