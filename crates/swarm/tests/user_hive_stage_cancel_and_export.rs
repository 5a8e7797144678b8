//! A hive round as a pipeline stage, as a user runs it: cut off by the run's cancellation or
//! deadline (the round's agents are told and nothing is committed), its exported decision read
//! back from the report's JSON, and the hive usable afterwards.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, Decision, Hive, Proposal, ProposalId, ProposalOf,
    ResourceCost, Snapshot, State,
};
use hivekit_swarm::{
    hive_stage, CancellationToken, Pipeline, RunOptions, StageContext, StageError, StageStatus,
};

#[derive(Clone, Default, Debug)]
struct Tally(Vec<u64>);

impl State for Tally {
    type Key = u64;
    type Change = u64;
    fn apply(&mut self, change: &u64) {
        self.0.push(*change);
    }
}

/// Waits for its round's cancellation on its first call (noting that it saw it, and whether its
/// call was dropped), then proposes at once.
struct Waiter {
    heavy: bool,
    calls: Arc<AtomicUsize>,
    saw_cancel: Arc<AtomicBool>,
    dropped: Arc<AtomicBool>,
}

struct OnDrop(Arc<AtomicBool>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Agent<Tally> for Waiter {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _: &Snapshot<Tally>,
    ) -> Result<Option<ProposalOf<Tally>>, AgentError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            let _guard = OnDrop(self.dropped.clone());
            ctx.cancelled().await;
            self.saw_cancel.store(true, Ordering::SeqCst);
        }
        Ok(Some(Proposal::new(ProposalId(7), 7).writes([0])))
    }

    fn cost(&self) -> ResourceCost {
        if self.heavy {
            ResourceCost::Moderate
        } else {
            ResourceCost::Light
        }
    }
}

struct Flags {
    calls: Arc<AtomicUsize>,
    saw_cancel: Arc<AtomicBool>,
    dropped: Arc<AtomicBool>,
}

fn waiting_hive(heavy: bool) -> (Hive<Tally>, Flags) {
    let hive = Hive::builder(Tally::default())
        .agent_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let flags = Flags {
        calls: Arc::new(AtomicUsize::new(0)),
        saw_cancel: Arc::new(AtomicBool::new(false)),
        dropped: Arc::new(AtomicBool::new(false)),
    };
    hive.spawn(Waiter {
        heavy,
        calls: flags.calls.clone(),
        saw_cancel: flags.saw_cancel.clone(),
        dropped: flags.dropped.clone(),
    });
    (hive, flags)
}

async fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what} did not happen within 2 s");
}

async fn cancelled_run(heavy: bool) {
    let (hive, flags) = waiting_hive(heavy);
    let pipeline = Pipeline::builder()
        .stage("decide", hive_stage(hive.clone()))
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    let canceller = {
        let cancel = cancel.clone();
        let calls = flags.calls.clone();
        tokio::spawn(async move {
            while calls.load(Ordering::SeqCst) == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            cancel.cancel();
        })
    };
    let report = tokio::time::timeout(
        Duration::from_secs(5),
        pipeline.run_with(RunOptions::default().with_cancel(cancel)),
    )
    .await
    .expect("the cancelled run ends long before the agent timeout");
    canceller.await.unwrap();
    assert_eq!(
        report.status("decide"),
        Some(&StageStatus::Cancelled),
        "{report:?}"
    );
    assert_eq!(hive.memory().version(), 0, "the cancelled round committed");
    // The agent's call was stopped: dropped, or told through its context.
    eventually("the agent's call stopping", || {
        flags.dropped.load(Ordering::SeqCst) || flags.saw_cancel.load(Ordering::SeqCst)
    })
    .await;
    // The hive decides again afterwards.
    let decision = tokio::time::timeout(Duration::from_secs(5), hive.decide())
        .await
        .expect("the next round ends")
        .unwrap();
    assert_eq!(decision.round, 2);
    assert_eq!(decision.accepted, [ProposalId(7)]);
    assert_eq!(hive.memory().load().0, [7]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_the_run_stops_a_light_agents_round_and_commits_nothing() {
    cancelled_run(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_the_run_stops_a_heavy_agents_round_and_commits_nothing() {
    cancelled_run(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runs_deadline_stops_a_heavy_agents_round_and_commits_nothing() {
    let (hive, flags) = waiting_hive(true);
    let pipeline = Pipeline::builder()
        .stage("decide", hive_stage(hive.clone()))
        .build()
        .unwrap();
    let report = tokio::time::timeout(
        Duration::from_secs(5),
        pipeline.run_with(RunOptions::default().with_deadline(Duration::from_millis(100))),
    )
    .await
    .expect("the run ends at its deadline");
    assert!(!report.status("decide").unwrap().is_success(), "{report:?}");
    assert_eq!(hive.memory().version(), 0);
    eventually("the heavy agent's call stopping", || {
        flags.dropped.load(Ordering::SeqCst) || flags.saw_cancel.load(Ordering::SeqCst)
    })
    .await;
}

struct Writer(u64);

impl Agent<Tally> for Writer {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _: &Snapshot<Tally>,
    ) -> Result<Option<ProposalOf<Tally>>, AgentError> {
        let key = if self.0 == 3 { 3 } else { 0 };
        Ok(Some(
            Proposal::new(ProposalId(self.0), self.0).writes([key]),
        ))
    }
}

#[tokio::test]
async fn an_exported_decision_reads_back_as_the_stages_decision() {
    let hive = Hive::builder(Tally::default()).build().unwrap();
    for id in 1..=3 {
        hive.spawn_weighted(Writer(id), id as f64).unwrap();
    }
    let pipeline = Pipeline::builder()
        .stage("decide", hive_stage(hive.clone()))
        .export()
        .stage("check", |ctx: StageContext| async move {
            let decision = ctx.input::<Decision<Tally>>("decide")?;
            Ok::<_, StageError>(decision.version)
        })
        .after(["decide"])
        .build()
        .unwrap();
    let report = tokio::time::timeout(Duration::from_secs(5), pipeline.run())
        .await
        .unwrap();
    let decision = report.artifact::<Decision<Tally>>("decide").unwrap();
    assert_eq!(*report.artifact::<u64>("check").unwrap(), decision.version);
    assert_eq!(hive.memory().version(), decision.version);
    let json = report.artifact_json("decide").unwrap();
    let back: Decision<Tally> = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(back.id, decision.id);
    assert_eq!(back.round, decision.round);
    assert_eq!(back.version, decision.version);
    assert_eq!(back.accepted, decision.accepted);
    assert_eq!(back.rejected, decision.rejected);
    assert_eq!(back.proposers, decision.proposers);
    assert_eq!(back.ballots.len(), decision.ballots.len());
    for (read, made) in back.ballots.iter().zip(&decision.ballots) {
        assert_eq!(
            read.voters().collect::<Vec<_>>(),
            made.voters().collect::<Vec<_>>()
        );
        assert_eq!(read.tally, made.tally);
    }
    assert_eq!(format!("{back:#}"), format!("{decision:#}"));
    assert_eq!(serde_json::to_value(&back).unwrap(), json);
}
