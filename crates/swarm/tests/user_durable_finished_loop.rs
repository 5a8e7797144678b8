//! A loop that finished before the run failed further on: the resume reads every iteration back
//! (the body does not run again), stops where the first run stopped, and emits each iteration's
//! event once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::checkpoint::{Durable, MemoryStore};
use hivekit_swarm::{
    EventSink, Iteration, LoopPolicy, LoopReport, LoopStop, Pipeline, RunOptions, StageContext,
    StageError, StageEvent,
};

fn pipeline(steps: Arc<AtomicUsize>, broken: bool) -> Pipeline {
    let body = Pipeline::builder()
        .stage("step", move |ctx: StageContext| {
            let steps = steps.clone();
            async move {
                steps.fetch_add(1, Ordering::SeqCst);
                Ok::<_, StageError>(ctx.run_input::<Iteration>()?.number())
            }
        })
        .durable()
        .build()
        .unwrap();
    Pipeline::builder()
        .repeat(
            "loop",
            body,
            LoopPolicy::new(5).until(|report| *report.artifact::<u32>("step").unwrap() == 2),
        )
        .stage("after", move |ctx: StageContext| async move {
            if broken {
                return Err(StageError::permanent("not yet"));
            }
            Ok::<_, StageError>(ctx.input::<LoopReport>("loop")?.iterations.len())
        })
        .durable()
        .after(["loop"])
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_finished_loop_is_read_back_whole_and_stops_where_it_stopped() {
    let steps = Arc::new(AtomicUsize::new(0));
    let durable = Durable::new(MemoryStore::new());
    let first = tokio::time::timeout(
        Duration::from_secs(5),
        durable.start(&pipeline(steps.clone(), true), "r", RunOptions::default()),
    )
    .await
    .expect("ended")
    .expect("started");
    assert!(!first.report().is_success());
    assert_eq!(steps.load(Ordering::SeqCst), 2);

    let (sink, mut events) = EventSink::channel();
    let resumed = tokio::time::timeout(
        Duration::from_secs(5),
        durable.resume(
            &pipeline(steps.clone(), false),
            "r",
            RunOptions::default().with_events(sink),
        ),
    )
    .await
    .expect("ended")
    .expect("resumed");
    let report = resumed.report();
    assert!(report.is_success(), "{report:?}");
    assert_eq!(steps.load(Ordering::SeqCst), 2, "no iteration ran again");
    let looped = report.artifact::<LoopReport>("loop").unwrap();
    assert_eq!(looped.stopped, LoopStop::Condition);
    assert_eq!(looped.iterations.len(), 2);
    assert_eq!(*looped.iterations[1].artifact::<u32>("step").unwrap(), 2);
    assert!(looped.iterations[0].stage("step").unwrap().resumed);
    assert_eq!(*report.artifact::<usize>("after").unwrap(), 2);
    let mut iterations = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let StageEvent::IterationFinished { iteration, .. } = event {
            iterations.push(iteration);
        }
    }
    assert_eq!(iterations, [1, 2], "each iteration's event once, in order");
}
