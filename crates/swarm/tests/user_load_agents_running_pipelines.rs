//! Hives whose agents run pipelines, inside pipelines whose stages run those hives' rounds: the
//! layers an agent system stacks. Counted through every layer: each inner stage runs once per
//! agent call, each agent call's future is dropped once, the sync bridge works (or refuses with a
//! typed error) from inside agents, and cancellation, deadlines and panics cut through the layers
//! without leaving a stage or a call behind.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, Decision, FailureKind, Hive, ProposalOf, ResourceCost,
    Snapshot, State,
};
use hivekit_runtime::RuntimeError;
use hivekit_swarm::{
    hive_stage, Backoff, CancellationToken, Pipeline, RetryPolicy, RunOptions, StageContext,
    StageError, StageStatus,
};

const TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Clone, Debug, Default)]
struct Sum(i64);

impl State for Sum {
    type Key = u64;
    type Change = i64;
    fn apply(&mut self, change: &i64) {
        self.0 += change;
    }
}

/// Counters shared by every layer.
#[derive(Default)]
struct Counts {
    calls_made: AtomicUsize,
    calls_dropped: AtomicUsize,
    inner_stages: AtomicUsize,
    inner_live: AtomicUsize,
}

/// Counts one thing made now and dropped later.
struct Live<'a>(&'a AtomicUsize);

impl<'a> Live<'a> {
    fn new(made: &AtomicUsize, live: &'a AtomicUsize) -> Self {
        made.fetch_add(1, Ordering::SeqCst);
        live.fetch_add(1, Ordering::SeqCst);
        Self(live)
    }
}

impl Drop for Live<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

struct CallGuard(Arc<Counts>);

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.0.calls_dropped.fetch_add(1, Ordering::SeqCst);
    }
}

fn call_guard(counts: &Arc<Counts>) -> CallGuard {
    counts.calls_made.fetch_add(1, Ordering::SeqCst);
    CallGuard(counts.clone())
}

/// What an inner pipeline's `wait` stage does.
#[derive(Clone, Copy, PartialEq)]
enum Inner {
    /// Yields once and ends.
    Finish,
    /// Waits forever (until dropped).
    Hang,
    /// Panics.
    Panic,
}

/// `seed` -> {`work` (spawned), `wait`} -> `sum`: the artifact is 3 unless `wait` hangs or panics.
fn inner_pipeline(counts: &Arc<Counts>, behaviour: Inner) -> Pipeline {
    let (a, b, c, d) = (
        counts.clone(),
        counts.clone(),
        counts.clone(),
        counts.clone(),
    );
    Pipeline::builder()
        .name("inner")
        .stage("seed", move |_: StageContext| {
            let counts = a.clone();
            async move {
                let _live = Live::new(&counts.inner_stages, &counts.inner_live);
                Ok::<_, StageError>(1_i64)
            }
        })
        .stage("work", move |ctx: StageContext| {
            let counts = b.clone();
            async move {
                let _live = Live::new(&counts.inner_stages, &counts.inner_live);
                tokio::task::yield_now().await;
                if behaviour == Inner::Hang {
                    std::future::pending::<()>().await;
                }
                Ok::<_, StageError>(*ctx.input::<i64>("seed")?)
            }
        })
        .after(["seed"])
        .spawn()
        .stage("wait", move |ctx: StageContext| {
            let counts = c.clone();
            async move {
                let _live = Live::new(&counts.inner_stages, &counts.inner_live);
                match behaviour {
                    Inner::Finish => tokio::task::yield_now().await,
                    Inner::Hang => std::future::pending::<()>().await,
                    Inner::Panic => panic!("inner stage gives up"),
                }
                Ok::<_, StageError>(*ctx.input::<i64>("seed")?)
            }
        })
        .after(["seed"])
        .stage("sum", move |ctx: StageContext| {
            let counts = d.clone();
            async move {
                let _live = Live::new(&counts.inner_stages, &counts.inner_live);
                Ok::<_, StageError>(
                    *ctx.input::<i64>("seed")?
                        + *ctx.input::<i64>("work")?
                        + *ctx.input::<i64>("wait")?,
                )
            }
        })
        .after(["seed", "work", "wait"])
        .build()
        .expect("the inner pipeline builds")
}

/// How an agent reaches its inner pipeline.
#[derive(Clone, Copy, PartialEq)]
enum Drive {
    /// `pipeline.run().await` inside `propose`.
    Await,
    /// `hivekit_runtime::try_execute(pipeline.run())`, synchronously inside `propose`.
    Bridge,
}

/// Proposes the artifact of a pipeline it runs on every call; panics after the run when told.
struct Runner {
    id: u64,
    pipeline: Pipeline,
    drive: Drive,
    heavy: bool,
    panic_after: bool,
    counts: Arc<Counts>,
    refused: Arc<AtomicUsize>,
}

impl Agent<Sum> for Runner {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Sum>,
    ) -> Result<Option<ProposalOf<Sum>>, AgentError> {
        let _guard = call_guard(&self.counts);
        let report = match self.drive {
            Drive::Await => self.pipeline.run().await,
            Drive::Bridge => match hivekit_runtime::try_execute(self.pipeline.run()) {
                Ok(report) => report,
                Err(error @ RuntimeError::WouldDeadlock) => {
                    self.refused.fetch_add(1, Ordering::SeqCst);
                    return Err(AgentError::new(error));
                }
                Err(other) => panic!("the bridge failed with {other}"),
            },
        };
        if self.panic_after {
            panic!("agent {} panics after its pipeline", self.id);
        }
        let sum = *report
            .artifact::<i64>("sum")
            .map_err(|error| AgentError::msg(format!("{report}: {error}")))?;
        Ok(Some(ctx.proposal(sum).writes([self.id])))
    }

    fn cost(&self) -> ResourceCost {
        if self.heavy {
            ResourceCost::Heavy
        } else {
            ResourceCost::Light
        }
    }
}

struct Setup {
    hive: Hive<Sum>,
    counts: Arc<Counts>,
    refused: Arc<AtomicUsize>,
}

/// A hive of `light` light and `heavy` heavy runners, all running `inner`.
fn hive_of_runners(light: u64, heavy: u64, drive: Drive, inner: Inner, panicking: &[u64]) -> Setup {
    let counts = Arc::new(Counts::default());
    let refused = Arc::new(AtomicUsize::new(0));
    let pipeline = inner_pipeline(&counts, inner);
    let hive = Hive::builder(Sum::default())
        .agent_timeout(Duration::from_secs(15))
        .build()
        .expect("a hive");
    for id in 0..light + heavy {
        hive.spawn(Runner {
            id,
            pipeline: pipeline.clone(),
            drive,
            heavy: id >= light,
            panic_after: panicking.contains(&id),
            counts: counts.clone(),
            refused: refused.clone(),
        });
    }
    Setup {
        hive,
        counts,
        refused,
    }
}

/// An outer pipeline: `prepare` -> `decide` (the hive's round) -> `after`.
fn outer_pipeline(hive: &Hive<Sum>) -> Pipeline {
    Pipeline::builder()
        .name("outer")
        .stage("prepare", |_: StageContext| async {
            Ok::<_, StageError>(())
        })
        .stage("decide", hive_stage(hive.clone()))
        .after(["prepare"])
        .stage("after", |ctx: StageContext| async move {
            Ok::<_, StageError>(ctx.input::<Decision<Sum>>("decide")?.version)
        })
        .after(["decide"])
        .build()
        .expect("the outer pipeline builds")
}

async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} did not happen within 3 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twelve_outer_runs_of_rounds_whose_agents_run_pipelines_count_every_layer() {
    const RUNS: usize = 12;
    const AGENTS: u64 = 8;
    let setup = hive_of_runners(6, 2, Drive::Await, Inner::Finish, &[]);
    let outer = outer_pipeline(&setup.hive);
    let tasks: Vec<_> = (0..RUNS)
        .map(|_| {
            let outer = outer.clone();
            tokio::spawn(async move { outer.run().await })
        })
        .collect();
    let mut versions = Vec::new();
    for task in tasks {
        let report = tokio::time::timeout(TIMEOUT, task)
            .await
            .expect("ends")
            .expect("no panic");
        assert!(report.is_success(), "{report}");
        let decision = report.artifact::<Decision<Sum>>("decide").unwrap();
        assert!(decision.failures.is_empty(), "{decision}");
        versions.push(*report.artifact::<u64>("after").unwrap());
    }
    versions.sort_unstable();
    assert_eq!(
        versions,
        (1..=RUNS as u64).collect::<Vec<_>>(),
        "one gapless version per run"
    );
    let calls = setup.counts.calls_made.load(Ordering::SeqCst);
    assert_eq!(
        calls,
        RUNS * AGENTS as usize,
        "every agent asked once per round"
    );
    assert_eq!(setup.counts.calls_dropped.load(Ordering::SeqCst), calls);
    assert_eq!(setup.counts.inner_stages.load(Ordering::SeqCst), 4 * calls);
    assert_eq!(setup.counts.inner_live.load(Ordering::SeqCst), 0);
    assert_eq!(
        setup.hive.memory().load().0,
        (RUNS * AGENTS as usize * 3) as i64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_bridging_into_their_pipeline_with_execute_on_a_multi_thread_runtime_all_succeed() {
    let setup = hive_of_runners(4, 2, Drive::Bridge, Inner::Finish, &[]);
    let outer = outer_pipeline(&setup.hive);
    // Each run on a task of its own (a worker polls it): the same on the test's `block_on`
    // thread loses wake-ups (see the `block_on` tests below).
    let runs = futures::future::join_all((0..6).map(|_| {
        let outer = outer.clone();
        tokio::spawn(async move { outer.run().await })
    }));
    for report in tokio::time::timeout(TIMEOUT, runs)
        .await
        .expect("the runs end")
    {
        let report = report.expect("the run's task does not panic");
        assert!(report.is_success(), "{report}");
        let decision = report.artifact::<Decision<Sum>>("decide").unwrap();
        assert!(decision.failures.is_empty(), "{decision}");
        assert_eq!(decision.accepted.len(), 6);
    }
    assert_eq!(setup.refused.load(Ordering::SeqCst), 0);
    assert_eq!(setup.counts.calls_made.load(Ordering::SeqCst), 36);
    assert_eq!(setup.counts.calls_dropped.load(Ordering::SeqCst), 36);
    assert_eq!(setup.counts.inner_stages.load(Ordering::SeqCst), 4 * 36);
    assert_eq!(setup.hive.memory().load().0, 3 * 36);
}

#[tokio::test(flavor = "current_thread")]
async fn agents_bridging_on_a_current_thread_runtime_are_refused_with_would_deadlock_and_recorded()
{
    let setup = hive_of_runners(3, 2, Drive::Bridge, Inner::Finish, &[]);
    let outer = outer_pipeline(&setup.hive);
    let report = tokio::time::timeout(TIMEOUT, outer.run())
        .await
        .expect("the run ends");
    assert!(report.is_success(), "{report}");
    let decision = report.artifact::<Decision<Sum>>("decide").unwrap();
    // Every agent's call runs on the thread that drives the current-thread scheduler (light ones
    // polled by the round, heavy ones as tasks of that runtime): the bridge must refuse them all.
    assert_eq!(setup.refused.load(Ordering::SeqCst), 5, "{decision}");
    assert_eq!(decision.failures.len(), 5, "{decision}");
    assert!(decision
        .failures
        .iter()
        .all(|failure| matches!(failure.kind, FailureKind::Errored { .. })));
    assert!(decision.accepted.is_empty());
    assert_eq!(
        setup.counts.inner_stages.load(Ordering::SeqCst),
        0,
        "no inner run started"
    );
    assert_eq!(setup.counts.calls_dropped.load(Ordering::SeqCst), 5);
}

/// The outer run is stopped (by `stop`) while every agent's inner pipeline waits in two stages
/// (one inline, one spawned). Returns the counts and the report's status of `decide`.
async fn stopped_while_agents_wait(
    light: u64,
    heavy: u64,
    stop: impl FnOnce(&CancellationToken) -> RunOptions,
) -> (Arc<Counts>, StageStatus, Hive<Sum>) {
    let setup = hive_of_runners(light, heavy, Drive::Await, Inner::Hang, &[]);
    let outer = outer_pipeline(&setup.hive);
    let cancel = CancellationToken::new();
    let options = stop(&cancel);
    let counts = setup.counts.clone();
    let agents = (light + heavy) as usize;
    let canceller = {
        let counts = counts.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            // Every agent's inner run has its `seed`, `work` and `wait` started.
            eventually("every inner run waiting", || {
                counts.inner_stages.load(Ordering::SeqCst) == 3 * agents
            })
            .await;
            cancel.cancel();
        })
    };
    let report = tokio::time::timeout(TIMEOUT, outer.run_with(options))
        .await
        .expect("the stopped run ends");
    canceller.abort();
    let status = report.status("decide").unwrap().clone();
    assert_eq!(
        setup.hive.memory().version(),
        0,
        "a stopped round commits nothing"
    );
    (counts, status, setup.hive)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_the_outer_run_ends_every_stage_of_the_pipelines_its_light_agents_run() {
    let (counts, status, _hive) = stopped_while_agents_wait(6, 0, |cancel| {
        RunOptions::default().with_cancel(cancel.clone())
    })
    .await;
    assert_eq!(status, StageStatus::Cancelled);
    // `Pipeline::run`: a run that returns its report has no stage of a run nested in it left
    // running. The inner runs were first polled inside the `decide` stage (light agents are
    // polled by the round the stage polls).
    assert_eq!(
        counts.inner_live.load(Ordering::SeqCst),
        0,
        "inner stages still alive"
    );
    let made = counts.calls_made.load(Ordering::SeqCst);
    assert_eq!(made, 6);
    assert_eq!(
        counts.calls_dropped.load(Ordering::SeqCst),
        made,
        "agent calls still alive"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn the_outer_runs_deadline_ends_every_stage_of_its_light_agents_pipelines_on_a_current_thread_runtime(
) {
    let (counts, status, _hive) = stopped_while_agents_wait(5, 0, |_| {
        RunOptions::default().with_deadline(Duration::from_millis(300))
    })
    .await;
    assert!(
        matches!(
            status,
            StageStatus::Cancelled | StageStatus::TimedOut { .. }
        ),
        "{status:?}"
    );
    assert_eq!(
        counts.inner_live.load(Ordering::SeqCst),
        0,
        "inner stages still alive"
    );
    assert_eq!(
        counts.calls_dropped.load(Ordering::SeqCst),
        counts.calls_made.load(Ordering::SeqCst)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_the_outer_run_drops_heavy_agents_calls_and_their_pipelines_once() {
    let (counts, status, hive) = stopped_while_agents_wait(2, 3, |cancel| {
        RunOptions::default().with_cancel(cancel.clone())
    })
    .await;
    assert_eq!(status, StageStatus::Cancelled);
    // Heavy calls run as tasks of their own, aborted when the round is dropped: they end on the
    // workers shortly after.
    eventually("every agent call dropped", || {
        counts.calls_dropped.load(Ordering::SeqCst) == counts.calls_made.load(Ordering::SeqCst)
    })
    .await;
    eventually("every inner stage dropped", || {
        counts.inner_live.load(Ordering::SeqCst) == 0
    })
    .await;
    assert_eq!(counts.calls_made.load(Ordering::SeqCst), 5);
    assert_eq!(hive.memory().version(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panicking_agents_and_panicking_inner_stages_are_recorded_and_the_round_goes_on() {
    // Agents 0 and 3 panic after their run; every inner run's `wait` stage panics too, so no
    // agent gets a `sum`: the others err. Then a second hive whose inner runs succeed.
    let failing = hive_of_runners(3, 2, Drive::Await, Inner::Panic, &[0, 3]);
    let outer = outer_pipeline(&failing.hive);
    let report = tokio::time::timeout(TIMEOUT, outer.run())
        .await
        .expect("ends");
    assert!(
        report.is_success(),
        "a round with failing agents still decides: {report}"
    );
    let decision = report.artifact::<Decision<Sum>>("decide").unwrap();
    let panicked = decision
        .failures
        .iter()
        .filter(|f| matches!(f.kind, FailureKind::Panicked { .. }))
        .count();
    let errored = decision
        .failures
        .iter()
        .filter(|f| matches!(f.kind, FailureKind::Errored { .. }))
        .count();
    assert_eq!((panicked, errored), (2, 3), "{decision}");
    assert_eq!(failing.hive.stats().panics, 2);
    assert_eq!(failing.counts.calls_dropped.load(Ordering::SeqCst), 5);
    // Each inner run: `seed` and `wait` ran, `work` too unless fail-fast stopped it before it
    // started; `sum` never did.
    let inner = failing.counts.inner_stages.load(Ordering::SeqCst);
    assert!((10..=15).contains(&inner), "{inner} inner stages ran");
    assert_eq!(failing.counts.inner_live.load(Ordering::SeqCst), 0);

    let panicking = hive_of_runners(2, 2, Drive::Await, Inner::Finish, &[1, 2]);
    let report = outer_pipeline(&panicking.hive).run().await;
    let decision = report.artifact::<Decision<Sum>>("decide").unwrap();
    assert_eq!(decision.accepted.len(), 2, "{decision}");
    assert_eq!(panicking.hive.memory().load().0, 6);
    assert_eq!(panicking.counts.inner_stages.load(Ordering::SeqCst), 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_that_decides_then_panics_is_retried_and_each_attempt_commits_one_round() {
    let setup = hive_of_runners(2, 0, Drive::Await, Inner::Finish, &[]);
    let attempts = Arc::new(AtomicUsize::new(0));
    let decided_versions = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let panicked = Arc::new(AtomicBool::new(false));
    let pipeline = {
        let hive = setup.hive.clone();
        let (attempts, decided_versions, panicked) =
            (attempts.clone(), decided_versions.clone(), panicked.clone());
        Pipeline::builder()
            .stage("decide_then_check", move |_: StageContext| {
                let hive = hive.clone();
                let (attempts, decided_versions, panicked) =
                    (attempts.clone(), decided_versions.clone(), panicked.clone());
                async move {
                    let attempt = attempts.fetch_add(1, Ordering::SeqCst) + 1;
                    let decision = hive.decide().await.map_err(StageError::from_error)?;
                    decided_versions.lock().push(decision.version);
                    if attempt < 3 {
                        panicked.store(true, Ordering::SeqCst);
                        panic!("the check after the round fails on attempt {attempt}");
                    }
                    Ok::<_, StageError>(decision.version)
                }
            })
            .retry(RetryPolicy::attempts(3).with_backoff(Backoff::fixed(Duration::ZERO)))
            .build()
            .unwrap()
    };
    let report = tokio::time::timeout(TIMEOUT, pipeline.run())
        .await
        .expect("ends");
    assert!(report.is_success(), "{report}");
    assert_eq!(report.status("decide_then_check").unwrap().attempts(), 3);
    assert_eq!(
        report
            .stage("decide_then_check")
            .unwrap()
            .failed_attempts
            .len(),
        2
    );
    assert_eq!(
        *decided_versions.lock(),
        vec![1, 2, 3],
        "one commit per attempt"
    );
    assert_eq!(*report.artifact::<u64>("decide_then_check").unwrap(), 3);
    assert_eq!(setup.hive.stats().commits, 3);
    assert_eq!(setup.hive.memory().load().0, 3 * 2 * 3);
    assert_eq!(setup.counts.calls_made.load(Ordering::SeqCst), 6);
    assert_eq!(setup.counts.calls_dropped.load(Ordering::SeqCst), 6);
}

/// A light agent that waits for a signal, or one whose synchronous code bridges into async code
/// that sends it (then works a little longer).
struct Signalled {
    receiver: parking_lot::Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
    sender: parking_lot::Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

impl Agent<Sum> for Signalled {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Sum>,
    ) -> Result<Option<ProposalOf<Sum>>, AgentError> {
        let receiver = self.receiver.lock().take();
        if let Some(receiver) = receiver {
            receiver.await.map_err(AgentError::new)?;
            return Ok(Some(ctx.proposal(1).writes([1])));
        }
        let sender = self.sender.lock().take().expect("one sender");
        hivekit_runtime::execute(async move {
            sender.send(()).expect("the waiting agent waits");
            tokio::time::sleep(Duration::from_millis(20)).await;
        });
        Ok(Some(ctx.proposal(2).writes([2])))
    }
}

/// Two rounds (of two hives) polled together by the test's `block_on` thread (a multi-thread
/// runtime), as a program awaits several at once: an agent of the second wakes an agent of the
/// first from inside `hivekit_runtime::execute`. `execute` documents that it works on such a
/// thread, and both rounds should end in about 20 ms. The wake-up goes to the `block_on`
/// thread's parker while the nested `block_on` of `execute` parks on the same (thread-local)
/// parker and consumes it; the first round goes on only when its agent timeout's timer fires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_rounds_on_a_block_on_thread_see_a_wake_up_sent_from_inside_an_agents_execute() {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let hive = |receiver, sender| {
        let hive = Hive::builder(Sum::default())
            .agent_timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        hive.spawn(Signalled {
            receiver: parking_lot::Mutex::new(receiver),
            sender: parking_lot::Mutex::new(sender),
        });
        hive
    };
    let waiting = hive(Some(receiver), None);
    let bridging = hive(None, Some(sender));
    // Not even the agent timeout's timer wakes the round once the wake-up is lost (the call's
    // entry is already queued in the round's set of calls, so its timer's wake-up is not passed
    // on): without this timeout the round would hang for ever.
    let (first, second) = tokio::time::timeout(Duration::from_secs(4), async {
        tokio::join!(waiting.decide(), bridging.decide())
    })
    .await
    .expect("the round hung past its 2 s agent timeout: a wake-up was lost");
    let (first, second) = (first.expect("a decision"), second.expect("a decision"));
    assert_eq!(second.accepted.len(), 1, "{second}");
    assert!(
        first.elapsed < Duration::from_secs(1),
        "the waiting agent's wake-up was lost: its round went on only when the test's 4 s \
         timeout re-polled it, its own 2 s agent timeout did not ({:?}): {first}",
        first.elapsed
    );
    assert_eq!(first.accepted.len(), 1, "{first}");
}

/// The same with two pipeline runs polled together by the test's `block_on` thread: a stage of
/// the first waits, a stage of the second bridges into async code that wakes it. Nothing but the
/// first run's deadline (2 s) wakes that run again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_on_a_block_on_thread_see_a_wake_up_sent_from_inside_a_stages_execute() {
    let (sender, receiver) = tokio::sync::oneshot::channel::<()>();
    let receiver = Arc::new(parking_lot::Mutex::new(Some(receiver)));
    let sender = Arc::new(parking_lot::Mutex::new(Some(sender)));
    let waiting = Pipeline::builder()
        .stage("waiter", move |_: StageContext| {
            let receiver = receiver.lock().take();
            async move {
                receiver
                    .expect("one run")
                    .await
                    .map_err(StageError::from_error)?;
                Ok::<_, StageError>(())
            }
        })
        .build()
        .unwrap();
    let bridging = Pipeline::builder()
        .stage("bridge", move |_: StageContext| {
            let sender = sender.lock().take();
            async move {
                hivekit_runtime::execute(async move {
                    sender.expect("one run").send(()).expect("the waiter waits");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                });
                Ok::<_, StageError>(())
            }
        })
        .build()
        .unwrap();
    let start = std::time::Instant::now();
    let deadline = RunOptions::default().with_deadline(Duration::from_secs(2));
    let (first, second) = tokio::time::timeout(TIMEOUT, async {
        tokio::join!(waiting.run_with(deadline), bridging.run())
    })
    .await
    .expect("bounded by the deadline");
    assert!(second.is_success(), "{second}");
    assert!(
        first.is_success(),
        "the waiter's wake-up was lost while `bridge` blocked in execute; only the deadline woke \
         its run ({:?}): {first}",
        start.elapsed()
    );
}
