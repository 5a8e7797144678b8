//! The facade's side of DESIGN.md: every public name DESIGN.md gives is reachable through
//! `hivekit::{runtime, lockfree, hive, swarm}` with the default features, and the crates work
//! together through those paths (a swarm stage running a hive round, driven from sync code).

use std::time::Duration;

use hivekit::hive::{
    Agent, AgentContext, AgentError, Ballot, ConsensusPolicy, Contest, Decision, Hive, Proposal,
    ProposalId, ResolutionStrategy, Snapshot, State, Tally, Threshold, TieBreak, Vote,
};
use hivekit::lockfree::{
    detect_conflicts, Aggregate, Aggregator, CommitError, ConflictGroup, ConflictKind,
    ConflictReport, Full, LatencyTier, Merge, Priority, PriorityScheduler, ResourceCost,
    SchedulerConfig, SchedulingHint, SnapshotCell, Staged,
};
use hivekit::runtime::{
    configure, execute, handle, spawn, spawn_blocking, stats, try_execute, Flavor, RuntimeConfig,
    RuntimeError, RuntimeStats,
};
use hivekit::swarm::{
    hive_stage, BuildError, CancellationToken, FailurePolicy, Pipeline, RetryPolicy, RunOptions,
    RunReport, StageContext, StageError, StageStatus,
};

#[derive(Clone, Debug, Default)]
struct Tasks(Vec<&'static str>);

impl State for Tasks {
    type Key = &'static str;
    type Change = &'static str;
    fn apply(&mut self, change: &&'static str) {
        self.0.push(change);
    }
}

struct Planner(u64, &'static str);

impl Agent<Tasks> for Planner {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Tasks>,
    ) -> Result<Option<Proposal<&'static str, &'static str>>, AgentError> {
        Ok(Some(
            Proposal::new(ProposalId(self.0), self.1).writes(["plan"]),
        ))
    }

    async fn vote(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Tasks>,
        contest: &Contest<Tasks>,
    ) -> Result<Vote, AgentError> {
        // Everyone backs the highest id.
        Ok(contest
            .candidates
            .iter()
            .map(|candidate| candidate.id)
            .max()
            .map_or(Vote::Abstain, Vote::For))
    }
}

#[derive(Debug, PartialEq)]
struct Words(Vec<String>);

impl Merge for Words {
    fn merge(&mut self, other: Self) {
        self.0.extend(other.0);
    }
}

/// Names DESIGN.md gives as types: all reachable (a compile-time check), with the defaults it
/// implies.
#[test]
fn every_type_design_names_is_reachable_through_the_facade() {
    fn exists<T>() {}
    exists::<RuntimeStats>();
    exists::<RuntimeError>();
    exists::<Staged<u8>>();
    exists::<CommitError<u8>>();
    exists::<Full<u8>>();
    exists::<ConflictGroup<u8>>();
    exists::<ConflictReport<u8>>();
    exists::<Aggregate<u8, Words>>();
    exists::<Decision<Tasks>>();
    exists::<BuildError>();
    exists::<RunReport>();
    exists::<CancellationToken>();
    let _: fn(RuntimeConfig) -> Result<(), RuntimeError> = |config| configure(config);
    let _: fn() -> &'static _ = handle;
    let _: fn() -> RuntimeStats = stats;
    assert_eq!(RuntimeConfig::default().flavor, Flavor::MultiThread);
    assert_eq!(
        SchedulingHint::new(Priority::Normal, LatencyTier::Warm, ResourceCost::Light),
        SchedulingHint::default()
    );
    assert_eq!(SchedulerConfig::default().max_bypass, None);
    assert_eq!(RunOptions::default().failure, FailurePolicy::FailFast);
    assert_eq!(ResolutionStrategy::default(), ResolutionStrategy::Vote);
    assert_eq!(ConsensusPolicy::default().tie_break, TieBreak::LowestId);
    assert_eq!(ConflictKind::WriteWrite.to_string(), "write-write");
}

#[test]
fn the_lockfree_pieces_work_through_the_facade() {
    let cell = SnapshotCell::new(1_u32);
    assert_eq!(cell.update(|value| value * 2), 1);
    let scheduler = PriorityScheduler::new();
    scheduler
        .push(SchedulingHint::with_priority(Priority::Low), 1)
        .unwrap();
    scheduler
        .push(SchedulingHint::with_priority(Priority::Critical), 2)
        .unwrap();
    assert_eq!(scheduler.pop(), Some(2));

    let aggregator = Aggregator::new();
    aggregator
        .submit(Proposal::new(1, Words(vec!["a".into()])).writes(["k"]))
        .unwrap();
    aggregator
        .submit(Proposal::new(2, Words(vec!["b".into()])).writes(["j"]))
        .unwrap();
    let aggregate = aggregator.finish(hivekit::lockfree::Resolution::RejectAll);
    let mut merged = aggregate.merged.unwrap().0;
    merged.sort();
    assert_eq!(merged, ["a", "b"]);
    let report = detect_conflicts(&[
        Proposal::new(1, ()).writes(["k"]),
        Proposal::new(2, ()).reads(["k"]),
    ])
    .unwrap();
    assert_eq!(report.groups[0].kind, ConflictKind::ReadWrite);
}

#[test]
fn a_ballot_through_the_facade() {
    let electorate = hivekit::hive::Electorate::equal([hivekit::hive::AgentId(1)]).unwrap();
    let policy = ConsensusPolicy {
        threshold: Threshold::Unanimous,
        quorum: 1.0,
        weighted: false,
        tie_break: TieBreak::NoDecision,
    };
    let mut ballot = Ballot::new(policy, electorate, [ProposalId(5)]).unwrap();
    ballot
        .cast(hivekit::hive::AgentId(1), Vote::For(ProposalId(5)))
        .unwrap();
    assert!(ballot.is_settled());
    assert!(matches!(ballot.tally(), Tally::Decided { winner, .. } if winner == ProposalId(5)));
}

#[test]
fn a_swarm_stage_runs_a_hive_round_driven_from_sync_code() {
    let hive = Hive::builder(Tasks::default())
        .agent_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    hive.spawn_many(3, |index| {
        Planner(index as u64 + 1, ["draft", "review", "ship"][index])
    });
    let pipeline = Pipeline::builder()
        .stage("decide", hive_stage(hive.clone()))
        .stage("summarise", |ctx: StageContext| async move {
            let decision = ctx.input::<Decision<Tasks>>("decide")?;
            Ok::<_, StageError>((decision.accepted.clone(), decision.rejected.len()))
        })
        .after(["decide"])
        .retry(RetryPolicy::attempts(2))
        .build()
        .unwrap();
    // From a plain thread, inside spawn_blocking, and as a spawned task: the same result.
    let report = execute(pipeline.run());
    assert!(report.is_success());
    assert_eq!(
        *report
            .artifact::<(Vec<ProposalId>, usize)>("summarise")
            .unwrap(),
        (vec![ProposalId(3)], 2)
    );
    assert_eq!(hive.memory().load().0, ["ship"]);
    assert_eq!(
        report.status("decide"),
        Some(&StageStatus::Succeeded { attempts: 1 })
    );

    let blocking = spawn_blocking({
        let pipeline = pipeline.clone();
        move || execute(pipeline.run()).is_success()
    });
    assert!(execute(blocking).unwrap());
    let task = spawn({
        let pipeline = pipeline.clone();
        async move { pipeline.run().await.is_success() }
    });
    assert!(try_execute(task).unwrap().unwrap());
    assert_eq!(hive.memory().version(), 3);
}
