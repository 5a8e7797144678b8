//! Durable runs (on the redb store) whose stages hold hive rounds, many at once: each run decides,
//! pauses for an approval (`interrupt`), is resumed with a value, and decides again; one run is
//! crashed (its future dropped) in the middle of a round and resumed. Counted: a round recorded
//! before a pause or crash is restored, never decided (and committed) again, every run commits
//! exactly its two rounds, every agent call is dropped once.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{Agent, AgentContext, AgentError, Decision, Hive, ProposalOf, Snapshot, State};
use hivekit_swarm::checkpoint::{Durable, DurableOutcome, RedbStore};
use hivekit_swarm::{hive_stage, Pipeline, RunOptions, StageContext, StageError, StageStatus};
use tokio::sync::Notify;

const TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Clone, Debug, Default)]
struct Ledger(Vec<i64>);

impl State for Ledger {
    type Key = String;
    type Change = i64;
    fn apply(&mut self, change: &i64) {
        self.0.push(*change);
    }
}

#[derive(Default)]
struct Counts {
    calls_made: AtomicUsize,
    calls_dropped: AtomicUsize,
}

struct CallGuard(Arc<Counts>);

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.0.calls_dropped.fetch_add(1, Ordering::SeqCst);
    }
}

/// Proposes `amount` on the key "ledger"; while `block` is set, says so and waits for ever.
struct Payer {
    amount: i64,
    counts: Arc<Counts>,
    block: Arc<AtomicBool>,
    blocked: Arc<Notify>,
}

impl Agent<Ledger> for Payer {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
    ) -> Result<Option<ProposalOf<Ledger>>, AgentError> {
        self.counts.calls_made.fetch_add(1, Ordering::SeqCst);
        let _guard = CallGuard(self.counts.clone());
        if self.block.load(Ordering::SeqCst) {
            self.blocked.notify_one();
            std::future::pending::<()>().await;
        }
        tokio::task::yield_now().await;
        Ok(Some(
            ctx.proposal(self.amount).writes(["ledger".to_owned()]),
        ))
    }
}

struct Setup {
    hive: Hive<Ledger>,
    counts: Arc<Counts>,
    block: Arc<AtomicBool>,
    blocked: Arc<Notify>,
    approvals_asked: Arc<AtomicUsize>,
    pipeline: Pipeline,
}

/// `pay` (a round) -> `approve` (pauses for a bool) -> `settle` (a round), all durable.
fn setup() -> Setup {
    let counts = Arc::new(Counts::default());
    let block = Arc::new(AtomicBool::new(false));
    let blocked = Arc::new(Notify::new());
    let hive = Hive::builder(Ledger::default())
        .agent_timeout(Duration::from_secs(15))
        .build()
        .expect("a hive");
    hive.spawn(Payer {
        amount: 1,
        counts: counts.clone(),
        block: block.clone(),
        blocked: blocked.clone(),
    });
    let approvals_asked = Arc::new(AtomicUsize::new(0));
    let asked = approvals_asked.clone();
    let pipeline = Pipeline::builder()
        .durable()
        .stage("pay", hive_stage(hive.clone()))
        .durable()
        .stage("approve", move |ctx: StageContext| {
            let asked = asked.clone();
            async move {
                let paid = ctx.input::<Decision<Ledger>>("pay")?;
                match ctx.resume_value::<bool>()? {
                    None => {
                        asked.fetch_add(1, Ordering::SeqCst);
                        Err(ctx.interrupt("the payment needs an approval"))
                    }
                    Some(approved) => Ok::<_, StageError>((approved, paid.version)),
                }
            }
        })
        .durable()
        .after(["pay"])
        .stage("settle", hive_stage(hive.clone()))
        .durable()
        .after(["approve"])
        .build()
        .expect("a durable pipeline of rounds");
    Setup {
        hive,
        counts,
        block,
        blocked,
        approvals_asked,
        pipeline,
    }
}

fn store() -> (tempfile::TempDir, Durable) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = RedbStore::open(dir.path().join("runs.redb")).expect("the store opens");
    (dir, Durable::new(store))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twelve_durable_runs_of_rounds_paused_and_resumed_at_once_commit_each_round_once() {
    const RUNS: usize = 12;
    let setup = setup();
    let (_dir, durable) = store();
    let starts: Vec<_> = (0..RUNS)
        .map(|run| {
            let (durable, pipeline) = (durable.clone(), setup.pipeline.clone());
            tokio::spawn(async move {
                durable
                    .start(&pipeline, &format!("run-{run}"), RunOptions::default())
                    .await
            })
        })
        .collect();
    let mut paid = HashSet::new();
    for start in starts {
        let outcome = tokio::time::timeout(TIMEOUT, start)
            .await
            .expect("the start ends")
            .expect("no panic")
            .expect("the run starts");
        let DurableOutcome::Interrupted { stage, report, .. } = outcome else {
            panic!("every run pauses for its approval: {}", outcome.report());
        };
        assert_eq!(stage, "approve");
        assert_eq!(
            report.status("settle").map(StageStatus::is_success),
            Some(false)
        );
        paid.insert(report.artifact::<Decision<Ledger>>("pay").unwrap().id);
    }
    assert_eq!(paid.len(), RUNS);
    assert_eq!(setup.hive.stats().commits, RUNS as u64);
    assert_eq!(setup.approvals_asked.load(Ordering::SeqCst), RUNS);

    let resumes: Vec<_> = (0..RUNS)
        .map(|run| {
            let (durable, pipeline) = (durable.clone(), setup.pipeline.clone());
            tokio::spawn(async move {
                durable
                    .resume_with(
                        &pipeline,
                        &format!("run-{run}"),
                        true,
                        RunOptions::default(),
                    )
                    .await
            })
        })
        .collect();
    let mut settled = HashSet::new();
    for resume in resumes {
        let report = tokio::time::timeout(TIMEOUT, resume)
            .await
            .expect("the resume ends")
            .expect("no panic")
            .expect("the run resumes")
            .into_report();
        assert!(report.is_success(), "{report}");
        assert!(
            report.stage("pay").unwrap().resumed,
            "the paid round is restored"
        );
        let restored = report.artifact::<Decision<Ledger>>("pay").unwrap();
        assert!(
            paid.contains(&restored.id),
            "the restored decision is the recorded one"
        );
        let (approved, version) = *report.artifact::<(bool, u64)>("approve").unwrap();
        assert!(approved);
        assert_eq!(version, restored.version);
        let settle = report.artifact::<Decision<Ledger>>("settle").unwrap();
        assert!(settled.insert(settle.id));
        assert!(!paid.contains(&settle.id));
    }
    assert_eq!(settled.len(), RUNS);
    assert_eq!(
        setup.hive.stats().commits,
        2 * RUNS as u64,
        "two rounds a run, no more"
    );
    assert_eq!(setup.hive.memory().version(), 2 * RUNS as u64);
    assert_eq!(setup.hive.memory().load().0.len(), 2 * RUNS);
    assert_eq!(
        setup.approvals_asked.load(Ordering::SeqCst),
        RUNS,
        "asked once a run"
    );
    let calls = setup.counts.calls_made.load(Ordering::SeqCst);
    assert_eq!(calls, 2 * RUNS);
    assert_eq!(setup.counts.calls_dropped.load(Ordering::SeqCst), calls);
    assert_eq!(durable.runs().expect("the runs list").len(), RUNS);
}

#[tokio::test(flavor = "current_thread")]
async fn a_resume_crashed_in_the_middle_of_a_round_commits_that_round_once_when_resumed_again() {
    let setup = setup();
    let (_dir, durable) = store();
    let paused = tokio::time::timeout(
        TIMEOUT,
        durable.start(&setup.pipeline, "crashy", RunOptions::default()),
    )
    .await
    .expect("the start ends")
    .expect("the run starts");
    assert!(matches!(paused, DurableOutcome::Interrupted { .. }));
    assert_eq!(setup.hive.stats().commits, 1);

    // The resume reaches `settle`, whose round hangs in its agent: the process "crashes" there.
    setup.block.store(true, Ordering::SeqCst);
    {
        let resume = durable.resume_with(&setup.pipeline, "crashy", true, RunOptions::default());
        tokio::pin!(resume);
        tokio::select! {
            outcome = &mut resume => panic!("the resume ended: {}", outcome.unwrap().report()),
            () = setup.blocked.notified() => {}
            () = tokio::time::sleep(TIMEOUT) => panic!("the settle round never started"),
        }
    } // dropped mid-round
    assert_eq!(
        setup.hive.stats().commits,
        1,
        "a dropped round commits nothing"
    );
    assert_eq!(
        setup.counts.calls_dropped.load(Ordering::SeqCst),
        setup.counts.calls_made.load(Ordering::SeqCst),
        "the hanging call was dropped with the run"
    );

    setup.block.store(false, Ordering::SeqCst);
    let report = tokio::time::timeout(
        TIMEOUT,
        durable.resume(&setup.pipeline, "crashy", RunOptions::default()),
    )
    .await
    .expect("the resume ends")
    .expect("the run resumes")
    .into_report();
    assert!(report.is_success(), "{report}");
    assert!(report.stage("pay").unwrap().resumed);
    assert!(
        report.stage("approve").unwrap().resumed,
        "the approval was recorded before the crash"
    );
    assert!(!report.stage("settle").unwrap().resumed);
    assert_eq!(setup.approvals_asked.load(Ordering::SeqCst), 1);
    assert_eq!(setup.hive.stats().commits, 2, "pay once, settle once");
    assert_eq!(setup.hive.memory().load().0, vec![1, 1]);
    assert_eq!(
        setup.counts.calls_dropped.load(Ordering::SeqCst),
        setup.counts.calls_made.load(Ordering::SeqCst)
    );
}
