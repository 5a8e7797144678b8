//! LangGraph users call `invoke` from plain threads and `ainvoke` from event loops on the same
//! checkpointer, and resume a thread from wherever the answer arrives
//! (`test_concurrent_execution_thread_safety`, `test_interrupt_*` across sync and async). Here one
//! durable run is interrupted from a plain thread, resumed from a current-thread runtime and
//! finished from a blocking-pool thread of a multi-thread runtime, on one redb file; and ten plain
//! threads run ten threads (run ids) of one pipeline at once, each answered with its own value.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::checkpoint::{Durable, DurableOutcome, MemoryStore, RedbStore};
use hivekit_swarm::{Pipeline, RunInput, RunOptions, StageContext, StageError};

#[derive(Default)]
struct Calls {
    draft: AtomicU32,
    approve: AtomicU32,
    sign: AtomicU32,
}

/// draft (from the input) -> approve (asks for a string) -> sign (asks for a number).
fn pipeline(calls: &Arc<Calls>) -> Pipeline {
    let (a, b, c) = (calls.clone(), calls.clone(), calls.clone());
    Pipeline::builder()
        .durable()
        .stage("draft", move |ctx: StageContext| {
            a.draft.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, StageError>(format!("draft of {}", ctx.run_input::<String>()?)) }
        })
        .durable()
        .stage("approve", move |ctx: StageContext| {
            b.approve.fetch_add(1, Ordering::SeqCst);
            async move {
                match ctx.resume_value::<String>()? {
                    None => Err(ctx.interrupt("who approves?")),
                    Some(who) => Ok(format!(
                        "{} approved by {who}",
                        ctx.input::<String>("draft")?
                    )),
                }
            }
        })
        .durable()
        .after(["draft"])
        .spawn()
        .stage("sign", move |ctx: StageContext| {
            c.sign.fetch_add(1, Ordering::SeqCst);
            async move {
                match ctx.resume_value::<u64>()? {
                    None => Err(ctx.interrupt("which key?")),
                    Some(key) => Ok(format!(
                        "{} signed with {key}",
                        ctx.input::<String>("approve")?
                    )),
                }
            }
        })
        .durable()
        .after(["approve"])
        .blocking()
        .build()
        .expect("a valid durable pipeline")
}

fn input(text: &str) -> RunOptions {
    RunOptions::default().with_run_input(RunInput::serializable(text.to_owned()))
}

fn waiting_on(outcome: &DurableOutcome) -> Option<(&str, &str)> {
    match outcome {
        DurableOutcome::Interrupted { stage, reason, .. } => Some((stage, reason)),
        _ => None,
    }
}

/// Runs `f` on a new plain thread, failing the test if it does not end within ten seconds.
fn on_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(f());
    });
    receiver
        .recv_timeout(Duration::from_secs(10))
        .expect("the thread ends in time")
}

#[test]
fn one_run_is_interrupted_on_a_plain_thread_resumed_on_a_current_thread_runtime_and_finished_on_the_blocking_pool(
) {
    let directory = tempfile::tempdir().unwrap();
    let durable = Durable::new(RedbStore::open(directory.path().join("threads.redb")).unwrap())
        .with_input::<String>();
    let calls = Arc::new(Calls::default());
    let pipeline = pipeline(&calls);

    // A plain thread, through the global runtime.
    let first = on_thread({
        let (durable, pipeline) = (durable.clone(), pipeline.clone());
        move || hivekit_runtime::execute(durable.start(&pipeline, "thread-1", input("spec")))
    })
    .expect("starts");
    assert_eq!(waiting_on(&first), Some(("approve", "who approves?")));

    // A current-thread runtime of the caller's own.
    let second = on_thread({
        let (durable, pipeline) = (durable.clone(), pipeline.clone());
        move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(durable.resume_with(
                &pipeline,
                "thread-1",
                "ada",
                RunOptions::default(),
            ))
        }
    })
    .expect("resumes");
    assert_eq!(waiting_on(&second), Some(("sign", "which key?")));

    // A blocking-pool thread of a multi-thread runtime, through execute.
    let third = on_thread({
        let (durable, pipeline) = (durable.clone(), pipeline.clone());
        move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                tokio::task::spawn_blocking(move || {
                    hivekit_runtime::execute(durable.resume_with(
                        &pipeline,
                        "thread-1",
                        7u64,
                        RunOptions::default(),
                    ))
                })
                .await
                .unwrap()
            })
        }
    })
    .expect("resumes again");
    let report = third.report();
    assert!(report.is_success(), "{report}");
    assert_eq!(
        *report.artifact::<String>("sign").unwrap(),
        "draft of spec approved by ada signed with 7"
    );
    assert_eq!(
        [
            calls.draft.load(Ordering::SeqCst),
            calls.approve.load(Ordering::SeqCst),
            calls.sign.load(Ordering::SeqCst)
        ],
        [1, 2, 2],
        "draft once; approve and sign each asked, then answered"
    );
}

#[test]
fn ten_plain_threads_run_ten_threads_of_one_pipeline_at_once_each_answered_with_its_own_values() {
    const THREADS: usize = 10;
    let durable = Durable::new(MemoryStore::new()).with_input::<String>();
    let calls = Arc::new(Calls::default());
    let pipeline = pipeline(&calls);
    let barrier = Arc::new(std::sync::Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|index| {
            let (durable, pipeline, barrier) = (durable.clone(), pipeline.clone(), barrier.clone());
            std::thread::spawn(move || {
                let id = format!("t{index}");
                barrier.wait();
                let first = hivekit_runtime::execute(durable.start(
                    &pipeline,
                    &id,
                    input(&format!("doc{index}")),
                ))
                .expect("starts");
                assert_eq!(waiting_on(&first).map(|(stage, _)| stage), Some("approve"));
                barrier.wait();
                let second = hivekit_runtime::execute(durable.resume_with(
                    &pipeline,
                    &id,
                    format!("user{index}"),
                    RunOptions::default(),
                ))
                .expect("resumes");
                assert_eq!(waiting_on(&second).map(|(stage, _)| stage), Some("sign"));
                let third = hivekit_runtime::execute(durable.resume_with(
                    &pipeline,
                    &id,
                    index as u64,
                    RunOptions::default(),
                ))
                .expect("resumes again");
                third
                    .report()
                    .artifact::<String>("sign")
                    .expect("signed")
                    .as_ref()
                    .clone()
            })
        })
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut results = Vec::new();
    for handle in handles {
        while !handle.is_finished() {
            assert!(std::time::Instant::now() < deadline, "a thread hung");
            std::thread::yield_now();
        }
        results.push(handle.join().expect("the thread's checks passed"));
    }
    for (index, result) in results.iter().enumerate() {
        assert_eq!(
            result,
            &format!("draft of doc{index} approved by user{index} signed with {index}")
        );
    }
    assert_eq!(calls.draft.load(Ordering::SeqCst), THREADS as u32);
    assert_eq!(calls.approve.load(Ordering::SeqCst), 2 * THREADS as u32);
    assert_eq!(calls.sign.load(Ordering::SeqCst), 2 * THREADS as u32);
    assert_eq!(durable.runs().unwrap().len(), THREADS);
}

/// A resume that is dropped while its spawned stage waits (the caller gave up) leaves the run
/// resumable: the answer given to it is kept, so a plain resume finishes the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_with_dropped_mid_stage_keeps_its_answer_for_the_next_resume() {
    let hold = Arc::new(tokio::sync::Semaphore::new(0));
    let entered = Arc::new(tokio::sync::Notify::new());
    let calls = Arc::new(AtomicU32::new(0));
    let (h, e, c) = (hold.clone(), entered.clone(), calls.clone());
    let pipeline = Pipeline::builder()
        .stage("approve", move |ctx: StageContext| {
            let (hold, entered) = (h.clone(), e.clone());
            c.fetch_add(1, Ordering::SeqCst);
            async move {
                let Some(who) = ctx.resume_value::<String>()? else {
                    return Err(ctx.interrupt("who approves?"));
                };
                entered.notify_one();
                let _permit = hold.acquire().await.map_err(StageError::msg)?;
                Ok::<_, StageError>(who)
            }
        })
        .durable()
        .spawn()
        .build()
        .unwrap();
    let durable = Durable::new(MemoryStore::new());
    let first = durable
        .start(&pipeline, "r", RunOptions::default())
        .await
        .unwrap();
    assert_eq!(first.interrupted_stage(), Some("approve"));
    {
        let resume = durable.resume_with(&pipeline, "r", "grace", RunOptions::default());
        tokio::pin!(resume);
        tokio::select! {
            _ = &mut resume => panic!("the stage is held: the resume cannot end"),
            () = entered.notified() => {}
        }
        // Dropped here, the stage mid-way.
    }
    hold.add_permits(10);
    let done = tokio::time::timeout(
        Duration::from_secs(5),
        durable.resume(&pipeline, "r", RunOptions::default()),
    )
    .await
    .expect("no hang")
    .expect("the dropped resume let go of the run");
    assert!(done.report().is_success(), "{}", done.report());
    assert_eq!(
        *done.report().artifact::<String>("approve").unwrap(),
        "grace"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}
