//! A swarm pipeline whose stages run hive rounds (hive_stage and hand-written), with per-run input, routing, a loop, fan-out and events watched from another task.
#![cfg(all(feature = "runtime", feature = "hive", feature = "swarm"))]

use std::future::Future;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use hivekit::runtime::execute;

use hivekit::hive::{
    Agent, AgentContext, AgentError, Decision, Hive, Proposal, ProposalId, Snapshot, State,
};
use hivekit::swarm::{
    hive_stage, EventSink, FanOut, LoopPolicy, LoopReport, Pipeline, Route, RunOptions, SkipReason,
    StageContext, StageError, StageEvent, StageStatus,
};

#[derive(Clone, Debug, Default)]
struct Counter(i64);

impl State for Counter {
    type Key = &'static str;
    type Change = i64;
    fn apply(&mut self, change: &i64) {
        self.0 += change;
    }
}

/// Proposes `+step` on the key "counter", where `step` is read at proposal time.
struct Adder {
    id: u64,
    step: Arc<AtomicI64>,
    calls: Arc<AtomicUsize>,
}

impl Agent<Counter> for Adder {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Counter>,
    ) -> Result<Option<Proposal<&'static str, i64>>, AgentError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let step = self.step.load(Ordering::SeqCst);
        Ok(Some(
            Proposal::new(ProposalId(self.id), step).writes(["counter"]),
        ))
    }
}

fn hive(agents: u64, step: &Arc<AtomicI64>, calls: &Arc<AtomicUsize>) -> Hive<Counter> {
    let hive = Hive::builder(Counter::default()).build().expect("a hive");
    for id in 1..=agents {
        hive.spawn(Adder {
            id,
            step: step.clone(),
            calls: calls.clone(),
        });
    }
    hive
}

#[derive(Debug)]
struct Job {
    step: i64,
    threshold: i64,
}

const TIMEOUT: Duration = Duration::from_secs(10);

/// `future`, or a panic when it takes longer than [`TIMEOUT`] (the facade has no tokio
/// dev-dependency, so no `tokio::time::timeout`).
async fn within<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut sleep = std::pin::pin!(hivekit::runtime::sleep(TIMEOUT));
    let output = std::future::poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        if sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await;
    output.unwrap_or_else(|| panic!("did not finish within {TIMEOUT:?} (hung?)"))
}

/// plan -> vote (hive_stage) + manual (hand-written decide) -> route -> big | small -> summary
fn pipeline(voted: Hive<Counter>, manual: Hive<Counter>, step: Arc<AtomicI64>) -> Pipeline {
    let manual_hive = manual.clone();
    Pipeline::builder()
        .name("hive-pipeline")
        .stage("plan", move |ctx: StageContext| {
            let step = step.clone();
            async move {
                let job = ctx.run_input::<Job>()?;
                step.store(job.step, Ordering::SeqCst);
                Ok::<_, StageError>(job.step)
            }
        })
        .stage("vote", hive_stage(voted))
        .after(["plan"])
        .stage("manual", move |_ctx: StageContext| {
            let hive = manual_hive.clone();
            async move {
                let decision = hive.decide().await?;
                Ok::<_, StageError>((decision.version, hive.memory().load().0))
            }
        })
        .after(["plan"])
        .router("route", |ctx: StageContext| async move {
            let decision = ctx.input::<Decision<Counter>>("vote")?;
            let (_, manual_total) = *ctx.input::<(u64, i64)>("manual")?;
            let job = ctx.run_input::<Job>()?;
            let accepted = decision.accepted.len() as i64;
            Ok::<_, StageError>(if manual_total * accepted >= job.threshold {
                Route::to(["big"])
            } else {
                Route::to(["small"])
            })
        })
        .after(["vote", "manual"])
        .stage("big", |ctx: StageContext| async move {
            Ok::<_, StageError>(format!("big {}", ctx.input::<(u64, i64)>("manual")?.1))
        })
        .after(["route"])
        .reads(["manual"])
        .stage("small", |ctx: StageContext| async move {
            Ok::<_, StageError>(format!("small {}", ctx.input::<(u64, i64)>("manual")?.1))
        })
        .after(["route"])
        .reads(["manual"])
        .stage("summary", |ctx: StageContext| async move {
            let big = ctx.input::<String>("big").ok();
            let small = ctx.input::<String>("small").ok();
            Ok::<_, StageError>(match (big, small) {
                (Some(text), None) | (None, Some(text)) => text.to_string(),
                other => return Err(StageError::msg(format!("both or neither ran: {other:?}"))),
            })
        })
        .after(["big", "small"])
        .build()
        .expect("a valid pipeline")
}

#[test]
fn hive_rounds_in_a_routed_pipeline_with_per_run_input() {
    execute(async {
        let step = Arc::new(AtomicI64::new(0));
        let calls = Arc::new(AtomicUsize::new(0));
        let voted = hive(3, &step, &calls);
        let manual = hive(1, &step, &calls);
        let pipeline = pipeline(voted.clone(), manual.clone(), step.clone());

        // First run: step 5, threshold 1 -> big.
        let report = within(pipeline.run_with(RunOptions::default().with_input(Job {
            step: 5,
            threshold: 1,
        })))
        .await;
        assert!(report.is_success(), "{report}");
        let decision = report.artifact::<Decision<Counter>>("vote").unwrap();
        assert_eq!(
            (decision.accepted.len(), decision.rejected.len()),
            (1, 2),
            "three agents writing one key: one accepted, two rejected"
        );
        assert_eq!(voted.memory().load().0, 5);
        assert_eq!(*report.artifact::<(u64, i64)>("manual").unwrap(), (1, 5));
        assert_eq!(*report.artifact::<String>("summary").unwrap(), "big 5");
        assert!(
            matches!(
                report.status("small"),
                Some(StageStatus::Skipped { because: SkipReason::RouteNotTaken { router } }) if router == "route"
            ),
            "{:?}",
            report.status("small")
        );

        // Second run of the same pipeline, another input: step -2, threshold 100 -> small.
        let report = within(pipeline.run_with(RunOptions::default().with_input(Job {
            step: -2,
            threshold: 100,
        })))
        .await;
        assert!(report.is_success(), "{report}");
        assert_eq!(voted.memory().load().0, 3);
        assert_eq!(voted.memory().load().version(), 2);
        assert_eq!(*report.artifact::<(u64, i64)>("manual").unwrap(), (2, 3));
        assert_eq!(*report.artifact::<String>("summary").unwrap(), "small 3");
        assert!(report.artifact::<String>("big").is_err());
        // 3 + 1 agents, two runs, one proposal each per run.
        assert_eq!(calls.load(Ordering::SeqCst), 8);
    });
}

#[test]
fn a_run_without_input_fails_the_stage_that_needs_it_and_names_the_type() {
    execute(async {
        let step = Arc::new(AtomicI64::new(0));
        let calls = Arc::new(AtomicUsize::new(0));
        let voted = hive(2, &step, &calls);
        let pipeline = pipeline(voted.clone(), hive(1, &step, &calls), step);
        let report = within(pipeline.run()).await;
        assert!(!report.is_success());
        let Some(StageStatus::Failed { error, .. }) = report.status("plan") else {
            panic!("plan should fail without input: {report}");
        };
        assert!(error.to_string().contains("plan"), "{error}");
        // An input of the wrong type names both types.
        let report = within(pipeline.run_with(RunOptions::default().with_input(7_u8))).await;
        let Some(StageStatus::Failed { error, .. }) = report.status("plan") else {
            panic!("plan should fail with a u8 input: {report}");
        };
        let text = error.to_string();
        assert!(text.contains("Job") && text.contains("u8"), "{text}");
        // Nothing downstream ran a round.
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        assert_eq!(voted.memory().load().version(), 0);
    });
}

#[test]
fn a_loop_of_hive_rounds_stops_when_the_memory_reaches_the_target() {
    execute(async {
        let step = Arc::new(AtomicI64::new(4));
        let calls = Arc::new(AtomicUsize::new(0));
        let hive = hive(2, &step, &calls);
        let body_hive = hive.clone();
        let body = Pipeline::builder()
            .stage("round", hive_stage(body_hive.clone()))
            .stage("read", move |ctx: StageContext| {
                let hive = body_hive.clone();
                async move {
                    let decision = ctx.input::<Decision<Counter>>("round")?;
                    Ok::<_, StageError>((decision.version, hive.memory().load().0))
                }
            })
            .after(["round"])
            .build()
            .unwrap();
        let pipeline = Pipeline::builder()
            .repeat(
                "refine",
                body,
                LoopPolicy::new(10).until(|round| {
                    round
                        .artifact::<(u64, i64)>("read")
                        .is_ok_and(|read| read.1 >= 12)
                }),
            )
            .stage("after", |ctx: StageContext| async move {
                let loop_report = ctx.input::<LoopReport>("refine")?;
                let last = loop_report
                    .last()
                    .ok_or_else(|| StageError::msg("no iteration"))?;
                Ok::<_, StageError>(*last.artifact::<(u64, i64)>("read")?)
            })
            .after(["refine"])
            .build()
            .unwrap();
        let report = within(pipeline.run()).await;
        assert!(report.is_success(), "{report}");
        // 4, 8, 12: three iterations, three versions.
        assert_eq!(*report.artifact::<(u64, i64)>("after").unwrap(), (3, 12));
        assert_eq!(hive.memory().load().0, 12);
        assert_eq!(calls.load(Ordering::SeqCst), 6);
    });
}

#[test]
fn fan_out_of_concurrent_rounds_on_one_hive_loses_no_commit() {
    execute(async {
        let step = Arc::new(AtomicI64::new(1));
        let calls = Arc::new(AtomicUsize::new(0));
        let hive = hive(1, &step, &calls);
        let stage_hive = hive.clone();
        let pipeline = Pipeline::builder()
            .stage("fan", move |ctx: StageContext| {
                let hive = stage_hive.clone();
                async move {
                    let report = ctx
                        .fan_out(0..20_u32, FanOut::new(4), |_| {
                            let hive = hive.clone();
                            async move {
                                let decision = hive.decide().await?;
                                Ok::<_, StageError>(decision.version)
                            }
                        })
                        .await?;
                    let mut versions: Vec<u64> = report.into_successes().collect();
                    versions.sort_unstable();
                    Ok::<_, StageError>(versions)
                }
            })
            .build()
            .unwrap();
        let report = within(pipeline.run()).await;
        assert!(report.is_success(), "{report}");
        let versions = report.artifact::<Vec<u64>>("fan").unwrap();
        assert_eq!(
            *versions,
            (1..=20).collect::<Vec<u64>>(),
            "each round its own version"
        );
        assert_eq!(hive.memory().load().0, 20);
        assert_eq!(hive.memory().load().version(), 20);
    });
}

#[test]
fn events_watched_from_another_task_account_for_every_stage() {
    execute(async {
        let step = Arc::new(AtomicI64::new(0));
        let calls = Arc::new(AtomicUsize::new(0));
        let pipeline = pipeline(hive(3, &step, &calls), hive(1, &step, &calls), step.clone());
        let total_stages = pipeline.len();
        let (sink, mut events) = EventSink::channel();
        let watcher = hivekit::runtime::spawn(async move {
            let mut ended = Vec::new();
            let mut started = Vec::new();
            let mut last_done = 0;
            while let Some(event) = events.recv().await {
                match event {
                    StageEvent::Started { stage } => started.push(stage.to_string()),
                    StageEvent::Finished {
                        stage, done, total, ..
                    }
                    | StageEvent::Skipped {
                        stage, done, total, ..
                    }
                    | StageEvent::Cancelled { stage, done, total } => {
                        assert_eq!(total, total_stages, "total in the event of {stage}");
                        assert!(done > last_done, "done must grow: {done} after {last_done}");
                        last_done = done;
                        ended.push(stage.to_string());
                    }
                    _ => {}
                }
            }
            (started, ended, last_done)
        });
        let report = within(
            pipeline.run_with(
                RunOptions::default()
                    .with_input(Job {
                        step: 1,
                        threshold: 1000,
                    })
                    .with_events(sink),
            ),
        )
        .await;
        assert!(report.is_success(), "{report}");
        drop(pipeline); // the run's sink is dropped with the run: the channel closes
        let (started, mut ended, last_done) = within(watcher).await.unwrap();
        assert_eq!(last_done, total_stages);
        ended.sort();
        let mut names: Vec<String> = report.stages().iter().map(|s| s.name.to_string()).collect();
        names.sort();
        assert_eq!(ended, names, "each stage ends exactly once in the events");
        assert!(
            !started.contains(&"big".to_owned()),
            "a route not taken never starts"
        );
    });
}
