//! Every Rust snippet of README.md's quick start as a test, plus the claims its text makes around each snippet.
#![cfg(all(
    feature = "runtime",
    feature = "lockfree",
    feature = "hive",
    feature = "swarm"
))]

use std::sync::Arc;
use std::time::Duration;

#[test]
fn runtime_snippet_and_its_claims() -> Result<(), Box<dyn std::error::Error>> {
    use hivekit::runtime::{execute, spawn};

    let answer = execute(async { 6 * 7 });
    let background = spawn(async { "done" });
    assert_eq!((answer, execute(background)?), (42, "done"));

    // "from anywhere: a plain thread, a runtime worker (no deadlock), a spawn_blocking thread"
    let from_thread = std::thread::spawn(|| execute(async { 1 })).join().unwrap();
    let from_worker = execute(spawn(async {
        execute(async {
            hivekit::runtime::sleep(Duration::from_millis(1)).await;
            2
        })
    }))?;
    let from_blocking = execute(hivekit::runtime::spawn_blocking(|| {
        execute(async {
            hivekit::runtime::sleep(Duration::from_millis(1)).await;
            3
        })
    }))?;
    assert_eq!((from_thread, from_worker, from_blocking), (1, 2, 3));
    Ok(())
}

#[test]
fn lockfree_snippet_and_its_claims() -> Result<(), Box<dyn std::error::Error>> {
    use hivekit::lockfree::{
        CommitError, Priority, PriorityScheduler, SchedulingHint, SnapshotCell,
    };

    let memory = SnapshotCell::new(0_u64);
    memory.update(|count| count + 1);
    let seen = memory.load();
    memory.commit(seen.stage(*seen + 10))?;
    assert_eq!(memory.read(|count, version| (*count, version)), (11, 2));

    // "fails if someone wrote since `seen`", giving the value back.
    let stale = memory.load();
    memory.update(|count| count + 1);
    match memory.commit(stale.stage(1000)) {
        Err(CommitError::Conflict {
            base,
            current,
            value,
        }) => {
            assert_eq!((base, current, value), (2, 3, 1000));
        }
        other => panic!("a stale commit must conflict: {other:?}"),
    }
    assert_eq!(*memory.load(), 12, "nothing of the stale commit landed");

    let work = PriorityScheduler::new();
    work.push(SchedulingHint::with_priority(Priority::Low), "tidy up")?;
    work.push(SchedulingHint::with_priority(Priority::High), "recruit")?;
    assert_eq!(work.pop(), Some("recruit"));
    assert_eq!(work.pop(), Some("tidy up"));
    assert_eq!(work.pop(), None);
    Ok(())
}

#[test]
fn hive_snippet_and_its_claims() -> Result<(), Box<dyn std::error::Error>> {
    use hivekit::hive::{
        Agent, AgentContext, AgentError, Hive, Proposal, ProposalId, RejectReason, Snapshot, State,
    };
    use hivekit::runtime::execute;

    #[derive(Clone, Debug, Default)]
    struct Counter(i64);

    impl State for Counter {
        type Key = &'static str;
        type Change = i64;
        fn apply(&mut self, change: &i64) {
            self.0 += change;
        }
    }

    struct Adder(u64);

    impl Agent<Counter> for Adder {
        async fn propose(
            &self,
            _ctx: &AgentContext,
            _view: &Snapshot<Counter>,
        ) -> Result<Option<Proposal<&'static str, i64>>, AgentError> {
            Ok(Some(
                Proposal::new(ProposalId(self.0), self.0 as i64).writes(["counter"]),
            ))
        }
    }

    let hive = Hive::builder(Counter::default()).build()?;
    hive.spawn_many(3, |index| Adder(index as u64 + 1));
    let decision = execute(hive.decide())?;
    assert_eq!((decision.accepted.len(), decision.rejected.len()), (1, 2));
    let counter = hive.memory().load();
    assert_eq!((counter.0, counter.version()), (1, 1));

    // "by default agents vote for the lowest id", "settles conflicting ones by ballot".
    assert_eq!(decision.accepted, vec![ProposalId(1)]);
    assert_eq!(decision.ballots.len(), 1, "one contested key, one ballot");
    for (id, reason) in &decision.rejected {
        assert!(
            matches!(reason, RejectReason::LostVote { .. }),
            "{id:?}: {reason:?}"
        );
    }
    Ok(())
}

#[test]
fn swarm_snippet_and_its_claims() -> Result<(), Box<dyn std::error::Error>> {
    use hivekit::runtime::execute;
    use hivekit::swarm::{Pipeline, RetryPolicy, StageContext, StageError};

    let pipeline = Pipeline::builder()
        .stage("fetch", |_: StageContext| async {
            Ok::<_, StageError>(vec![3_u64, 4])
        })
        .stage("sum", |ctx: StageContext| async move {
            Ok::<_, StageError>(ctx.input::<Vec<u64>>("fetch")?.iter().sum::<u64>())
        })
        .after(["fetch"])
        .timeout(Duration::from_secs(5))
        .retry(RetryPolicy::attempts(3))
        .build()?;
    let report = execute(pipeline.run());
    assert!(report.is_success());
    assert_eq!(*report.artifact::<u64>("sum")?, 7);

    // "read their dependencies' typed outputs without copying": the dependent sees the very
    // allocation the report holds.
    let pipeline = Pipeline::builder()
        .stage("fetch", |_: StageContext| async {
            Ok::<_, StageError>(vec![3_u64, 4])
        })
        .stage("address", |ctx: StageContext| async move {
            let input: Arc<Vec<u64>> = ctx.input("fetch")?;
            Ok::<_, StageError>(input.as_ptr() as usize)
        })
        .after(["fetch"])
        .build()?;
    let report = execute(pipeline.run());
    assert_eq!(
        *report.artifact::<usize>("address")?,
        report.artifact::<Vec<u64>>("fetch")?.as_ptr() as usize
    );
    Ok(())
}
