//! Many runs of pipelines whose stages hold hive rounds, at once, the way an agent system runs
//! them: on one multi-thread runtime, on a current-thread runtime, and on several current-thread
//! runtimes (threads) sharing one hive. Everything is counted: every stage runs once per run,
//! never more stages in flight than the run's limit, every round commits one gapless version that
//! the hive's history holds exactly once, every change is applied once, events agree with the
//! report, and every agent and every agent call's future is dropped exactly once.

use std::collections::{BTreeMap, HashSet};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, Decision, Hive, ProposalOf, ResourceCost, Snapshot, State,
};
use hivekit_swarm::{
    hive_stage, EventSink, Pipeline, RunOptions, RunReport, StageContext, StageError, StageEvent,
};
use parking_lot::Mutex;

const TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Clone, Debug, Default)]
struct Board(BTreeMap<String, i64>);

impl State for Board {
    type Key = String;
    type Change = (String, i64);
    fn apply(&mut self, (key, delta): &(String, i64)) {
        *self.0.entry(key.clone()).or_default() += delta;
    }
}

/// Counts of agents alive, agent call futures made and dropped.
#[derive(Default)]
struct Counts {
    agents_made: AtomicUsize,
    agents_dropped: AtomicUsize,
    calls_made: AtomicUsize,
    calls_dropped: AtomicUsize,
}

struct CallGuard(Arc<Counts>);

impl CallGuard {
    fn new(counts: &Arc<Counts>) -> Self {
        counts.calls_made.fetch_add(1, Ordering::SeqCst);
        Self(counts.clone())
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.0.calls_dropped.fetch_add(1, Ordering::SeqCst);
    }
}

/// Proposes `+1` on its key; several agents share the key "hot", so each round holds a contest.
struct Adder {
    key: String,
    heavy: bool,
    yields: bool,
    counts: Arc<Counts>,
}

impl Adder {
    fn new(key: &str, heavy: bool, yields: bool, counts: &Arc<Counts>) -> Self {
        counts.agents_made.fetch_add(1, Ordering::SeqCst);
        Self {
            key: key.to_owned(),
            heavy,
            yields,
            counts: counts.clone(),
        }
    }
}

impl Drop for Adder {
    fn drop(&mut self) {
        self.counts.agents_dropped.fetch_add(1, Ordering::SeqCst);
    }
}

impl Agent<Board> for Adder {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Board>,
    ) -> Result<Option<ProposalOf<Board>>, AgentError> {
        let _guard = CallGuard::new(&self.counts);
        if self.yields {
            tokio::task::yield_now().await;
        }
        Ok(Some(
            ctx.proposal((self.key.clone(), 1))
                .writes([self.key.clone()]),
        ))
    }

    fn cost(&self) -> ResourceCost {
        if self.heavy {
            ResourceCost::Heavy
        } else {
            ResourceCost::Light
        }
    }
}

/// Independent keys `k0..k3` plus three contenders for "hot": four accepted changes a round.
fn shared_hive(counts: &Arc<Counts>, depth: usize) -> Hive<Board> {
    let hive = Hive::builder(Board::default())
        .history(depth)
        .agent_timeout(Duration::from_secs(10))
        .build()
        .expect("a hive");
    for index in 0..4 {
        hive.spawn(Adder::new(
            &format!("k{index}"),
            index % 2 == 1,
            index == 2,
            counts,
        ));
    }
    for index in 0..3 {
        hive.spawn(Adder::new("hot", false, index == 0, counts));
    }
    hive
}

/// Per-run stage counters and the run's in-flight high-water mark.
#[derive(Default)]
struct StageCounts {
    calls: Mutex<BTreeMap<String, usize>>,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
}

struct InFlight<'a>(&'a StageCounts);

impl<'a> InFlight<'a> {
    fn enter(counts: &'a StageCounts, name: &str) -> Self {
        *counts.calls.lock().entry(name.to_owned()).or_default() += 1;
        let now = counts.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        counts.most_in_flight.fetch_max(now, Ordering::SeqCst);
        Self(counts)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

type Decided = Decision<Board>;

/// `fetch` -> {`decide` (inline hive stage), `decide_spawned` (spawned hive stage), `own_hive`
/// (a hive built and decided inside the stage, heavy agents)} -> `check`. The run's counters are
/// the run input, so one pipeline serves every run.
fn pipeline(hive: &Hive<Board>, counts: &Arc<Counts>) -> Pipeline {
    let wrap = |hive: Hive<Board>| {
        let decide = Arc::new(hive_stage(hive));
        move |ctx: StageContext| {
            let decide = decide.clone();
            async move {
                let stage = ctx.run_input::<StageCounts>()?;
                let _in = InFlight::enter(&stage, ctx.name());
                decide(ctx.clone()).await
            }
        }
    };
    let own_counts = counts.clone();
    Pipeline::builder()
        .stage("fetch", |ctx: StageContext| async move {
            let stage = ctx.run_input::<StageCounts>()?;
            let _in = InFlight::enter(&stage, "fetch");
            tokio::task::yield_now().await;
            Ok::<_, StageError>(())
        })
        .stage("decide", wrap(hive.clone()))
        .after(["fetch"])
        .stage("decide_spawned", wrap(hive.clone()))
        .after(["fetch"])
        .spawn()
        .stage("own_hive", move |ctx: StageContext| {
            let counts = own_counts.clone();
            async move {
                let stage = ctx.run_input::<StageCounts>()?;
                let _in = InFlight::enter(&stage, "own_hive");
                let own = Hive::builder(Board::default())
                    .build()
                    .map_err(StageError::permanent)?;
                for index in 0..3 {
                    own.spawn(Adder::new(
                        &format!("own{index}"),
                        true,
                        index == 0,
                        &counts,
                    ));
                }
                own.spawn(Adder::new("own0", false, true, &counts));
                let first = own.decide().await.map_err(StageError::permanent)?;
                let second = own.decide().await.map_err(StageError::permanent)?;
                assert_eq!((first.version, second.version), (1, 2));
                Ok::<_, StageError>(own.memory().load().0.clone())
            }
        })
        .after(["fetch"])
        .stage("check", |ctx: StageContext| async move {
            let stage = ctx.run_input::<StageCounts>()?;
            let _in = InFlight::enter(&stage, "check");
            let inline = ctx.input::<Decided>("decide")?;
            let spawned = ctx.input::<Decided>("decide_spawned")?;
            let own = ctx.input::<BTreeMap<String, i64>>("own_hive")?;
            assert_ne!(inline.version, spawned.version);
            assert_eq!(own.values().sum::<i64>(), 2 * 3, "three accepted a round");
            Ok::<_, StageError>((inline.id, spawned.id))
        })
        .after(["decide", "decide_spawned", "own_hive"])
        .build()
        .expect("the pipeline builds")
}

const STAGES: [&str; 5] = ["fetch", "decide", "decide_spawned", "own_hive", "check"];

/// Checks one run's report against its events and stage counters.
fn check_run(report: &RunReport, events: &[StageEvent], stage: &StageCounts, limit: usize) {
    assert!(report.is_success(), "{report}");
    let calls = stage.calls.lock().clone();
    for name in STAGES {
        assert_eq!(
            calls.get(name),
            Some(&1),
            "stage {name} runs once: {calls:?}"
        );
        assert_eq!(report.status(name).map(|s| s.attempts()), Some(1));
        let started = events
            .iter()
            .filter(|e| matches!(e, StageEvent::Started { .. }) && e.stage() == name)
            .count();
        let finished = events
            .iter()
            .filter(|e| matches!(e, StageEvent::Finished { .. }) && e.stage() == name)
            .count();
        assert_eq!((started, finished), (1, 1), "events of {name}: {events:?}");
    }
    assert!(
        stage.most_in_flight.load(Ordering::SeqCst) <= limit,
        "at most {limit} stages in flight, saw {}",
        stage.most_in_flight.load(Ordering::SeqCst)
    );
    assert_eq!(stage.in_flight.load(Ordering::SeqCst), 0);
    let dones: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            StageEvent::Finished { done, total, .. } => {
                assert_eq!(*total, STAGES.len());
                Some(*done)
            }
            _ => None,
        })
        .collect();
    assert_eq!(dones, (1..=STAGES.len()).collect::<Vec<_>>());
    assert_eq!(events.len(), 2 * STAGES.len(), "{events:?}");
}

/// One run whose counters the caller keeps (the input is an `Arc` the stages share).
async fn one_counted_run(pipeline: Pipeline, limit: usize) -> (Decided, Decided) {
    let stage = Arc::new(StageCounts::default());
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = {
        let events = events.clone();
        EventSink::callback(move |event| events.lock().push(event))
    };
    let options = RunOptions::default()
        .with_run_input(hivekit_swarm::RunInput::from_arc(stage.clone()))
        .with_max_concurrency(NonZeroUsize::new(limit).expect("a limit above 0"))
        .with_events(sink);
    let report = pipeline.run_with(options).await;
    check_run(&report, &events.lock(), &stage, limit);
    let ids = *report.artifact::<(u128, u128)>("check").expect("check ran");
    let inline = (*report.artifact::<Decided>("decide").unwrap()).clone();
    let spawned = (*report.artifact::<Decided>("decide_spawned").unwrap()).clone();
    assert_eq!((inline.id, spawned.id), ids);
    (inline, spawned)
}

/// After `rounds` rounds of the shared hive: gapless versions, every accepted change applied
/// once, and the history holding each decision at most once, with the state its version had.
/// `whole_history`: rounds never overlapped in a commit (one thread), so none was left out
/// (`HiveMemory::at`: a version overtaken while being recorded is left out).
fn check_hive(hive: &Hive<Board>, decisions: &[Decided], rounds: usize, whole_history: bool) {
    assert_eq!(decisions.len(), rounds);
    assert_eq!(hive.memory().version(), rounds as u64);
    let mut versions: Vec<u64> = decisions.iter().map(|d| d.version).collect();
    versions.sort_unstable();
    assert_eq!(versions, (1..=rounds as u64).collect::<Vec<_>>());
    let ids: HashSet<u128> = decisions.iter().map(|d| d.id).collect();
    assert_eq!(ids.len(), rounds, "decision ids are unique");
    let history = hive.memory().history();
    if whole_history {
        assert_eq!(
            history.len(),
            rounds,
            "every committed version is in the history"
        );
    }
    let mut seen = HashSet::new();
    let mut last = 0;
    for entry in &history {
        let version = entry.snapshot.version();
        assert!(
            version > last,
            "the history is sorted by version, each once"
        );
        last = version;
        assert_eq!(entry.decision.version, version);
        assert!(
            ids.contains(&entry.decision.id),
            "history holds a decision no stage returned"
        );
        assert!(
            seen.insert(entry.decision.id),
            "a decision appears twice in the history"
        );
        // Each round adds one to each of five keys: the recorded state is the version's.
        for key in ["k0", "k1", "k2", "k3", "hot"] {
            assert_eq!(
                entry.snapshot.0.get(key),
                Some(&(version as i64)),
                "{key} at {version}"
            );
        }
    }
    for decision in decisions {
        assert_eq!(decision.accepted.len(), 5, "{decision}");
        assert_eq!(decision.rejected.len(), 2, "{decision}");
        assert!(decision.failures.is_empty(), "{decision}");
    }
    let board = hive.memory().load();
    for key in ["k0", "k1", "k2", "k3", "hot"] {
        assert_eq!(
            board.0.get(key),
            Some(&(rounds as i64)),
            "{key}: {:?}",
            board.0
        );
    }
    let stats = hive.stats();
    assert_eq!(
        (stats.rounds, stats.commits),
        (rounds as u64, rounds as u64)
    );
}

fn check_drops(counts: &Counts) {
    let made = counts.agents_made.load(Ordering::SeqCst);
    assert_eq!(
        counts.agents_dropped.load(Ordering::SeqCst),
        made,
        "every agent dropped once"
    );
    let calls = counts.calls_made.load(Ordering::SeqCst);
    assert!(calls > 0);
    assert_eq!(
        counts.calls_dropped.load(Ordering::SeqCst),
        calls,
        "every call dropped once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_runs_on_a_multi_thread_runtime_count_every_stage_round_and_drop() {
    const RUNS: usize = 40;
    let counts = Arc::new(Counts::default());
    let hive = shared_hive(&counts, 4 * RUNS);
    let pipeline = pipeline(&hive, &counts);
    let tasks: Vec<_> = (0..RUNS)
        .map(|run| {
            let pipeline = pipeline.clone();
            tokio::spawn(one_counted_run(pipeline, 1 + run % 3))
        })
        .collect();
    let mut decisions = Vec::new();
    for task in tasks {
        let (inline, spawned) = tokio::time::timeout(TIMEOUT, task)
            .await
            .expect("the run ends")
            .expect("the run's task does not panic");
        decisions.extend([inline, spawned]);
    }
    check_hive(&hive, &decisions, 2 * RUNS, false);
    drop((pipeline, hive, decisions));
    check_drops(&counts);
}

#[tokio::test(flavor = "current_thread")]
async fn thirty_runs_interleaved_on_a_current_thread_runtime_count_every_stage_round_and_drop() {
    const RUNS: usize = 30;
    let counts = Arc::new(Counts::default());
    let hive = shared_hive(&counts, 4 * RUNS);
    let pipeline = pipeline(&hive, &counts);
    let runs = futures::future::join_all(
        (0..RUNS).map(|run| one_counted_run(pipeline.clone(), 1 + run % 4)),
    );
    let results = tokio::time::timeout(TIMEOUT, runs)
        .await
        .expect("the runs end");
    let decisions: Vec<Decided> = results.into_iter().flat_map(|(a, b)| [a, b]).collect();
    check_hive(&hive, &decisions, 2 * RUNS, true);
    drop((pipeline, hive, decisions));
    check_drops(&counts);
}

#[test]
fn runs_on_four_current_thread_runtimes_share_one_hive_without_losing_a_commit() {
    const THREADS: usize = 4;
    const RUNS: usize = 8;
    let counts = Arc::new(Counts::default());
    let hive = shared_hive(&counts, 4 * THREADS * RUNS);
    let pipeline = pipeline(&hive, &counts);
    let threads: Vec<_> = (0..THREADS)
        .map(|thread| {
            let pipeline = pipeline.clone();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime");
                runtime.block_on(async {
                    let runs = futures::future::join_all(
                        (0..RUNS)
                            .map(|run| one_counted_run(pipeline.clone(), 1 + (run + thread) % 3)),
                    );
                    tokio::time::timeout(TIMEOUT, runs)
                        .await
                        .expect("the runs end")
                })
            })
        })
        .collect();
    let mut decisions = Vec::new();
    for thread in threads {
        let results = thread.join().expect("the thread's runs pass their checks");
        decisions.extend(results.into_iter().flat_map(|(a, b)| [a, b]));
    }
    check_hive(&hive, &decisions, 2 * THREADS * RUNS, false);
    assert_eq!(
        decisions.iter().filter(|d| d.rebased).count() as u64,
        hive.stats().rebases
    );
    drop((pipeline, hive, decisions));
    check_drops(&counts);
}
