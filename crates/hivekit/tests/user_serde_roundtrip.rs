//! Decisions, hive stats, policies and run reports through JSON and back (feature `serde`), compared with the originals.
#![cfg(all(
    feature = "serde",
    feature = "runtime",
    feature = "hive",
    feature = "swarm"
))]

use std::future::Future;
use std::task::Poll;
use std::time::Duration;

use hivekit::hive::{
    Agent, AgentContext, AgentError, ConsensusPolicy, Decision, Hive, HiveStats, PolicyError,
    Proposal, ProposalId, Snapshot, State, Threshold,
};
use hivekit::runtime::execute;
use hivekit::swarm::{
    hive_stage, Backoff, FailurePolicy, Pipeline, RetryPolicy, RunOptions, RunReport, StageContext,
    StageError,
};
use serde::Deserialize;

const TIMEOUT: Duration = Duration::from_secs(10);

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
    output.unwrap_or_else(|| panic!("did not finish within {TIMEOUT:?}"))
}

#[derive(Clone, Debug, Default)]
struct Board(Vec<(String, i64)>);

impl State for Board {
    type Key = String;
    type Change = (String, i64);
    fn apply(&mut self, change: &(String, i64)) {
        self.0.push(change.clone());
    }
}

enum Behaviour {
    Propose { id: u64, key: &'static str },
    Fail,
    Panic,
    Hang,
}

struct Member(Behaviour);

impl Agent<Board> for Member {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Board>,
    ) -> Result<Option<Proposal<String, (String, i64)>>, AgentError> {
        match self.0 {
            Behaviour::Propose { id, key } => Ok(Some(
                Proposal::new(ProposalId(id), (key.to_owned(), id as i64)).writes([key.to_owned()]),
            )),
            Behaviour::Fail => Err(AgentError::msg("the model refused")),
            Behaviour::Panic => panic!("agent panicked"),
            Behaviour::Hang => {
                std::future::pending::<()>().await;
                unreachable!()
            }
        }
    }
}

fn board_hive() -> Hive<Board> {
    let hive = Hive::builder(Board::default())
        .agent_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    hive.spawn(Member(Behaviour::Propose { id: 1, key: "a" }));
    hive.spawn(Member(Behaviour::Propose { id: 2, key: "a" }));
    hive.spawn(Member(Behaviour::Propose { id: 3, key: "b" }));
    hive.spawn(Member(Behaviour::Fail));
    hive.spawn(Member(Behaviour::Panic));
    hive.spawn(Member(Behaviour::Hang));
    hive
}

#[test]
fn a_decision_with_ballots_and_failures_reads_back_equal() {
    let hive = board_hive();
    let stats_hive = hive.clone();
    let pipeline = Pipeline::builder()
        .stage("decide", hive_stage(hive.clone()))
        .export()
        .stage("stats", move |_: StageContext| {
            let hive = stats_hive.clone();
            async move { Ok::<_, StageError>(hive.stats()) }
        })
        .after(["decide"])
        .export()
        .stage("policy", |_: StageContext| async {
            Ok::<_, StageError>(ConsensusPolicy::new(
                Threshold::Supermajority { num: 2, den: 3 },
                0.5,
            )?)
        })
        .export()
        .build()
        .unwrap();
    let report = execute(within(pipeline.run()));
    assert!(report.is_success(), "{report}");
    let decision = report.artifact::<Decision<Board>>("decide").unwrap();
    assert_eq!(decision.failures.len(), 3, "{decision:?}");
    assert_eq!(decision.ballots.len(), 1);

    let json = report.to_json().unwrap();
    let back = RunReport::from_json(&json).unwrap();
    assert_eq!(
        back.to_json().unwrap(),
        json,
        "the report reads back to the same JSON"
    );

    let read: Decision<Board> =
        Decision::deserialize(back.artifact_json("decide").unwrap()).unwrap();
    assert_eq!(
        format!("{read:?}"),
        format!("{decision:?}"),
        "the decision reads back equal"
    );
    assert_eq!(read.id, decision.id, "the 128-bit id survives");
    assert_eq!(read.failures, decision.failures);
    assert_eq!(read.rejected, decision.rejected);
    assert_eq!(read.elapsed, decision.elapsed);

    let stats = report.artifact::<HiveStats>("stats").unwrap();
    let read = HiveStats::deserialize(back.artifact_json("stats").unwrap()).unwrap();
    assert_eq!(read, *stats);
    assert_eq!((stats.panics, stats.errors, stats.timeouts), (1, 1, 1));

    let policy = report.artifact::<ConsensusPolicy>("policy").unwrap();
    let read = ConsensusPolicy::deserialize(back.artifact_json("policy").unwrap()).unwrap();
    assert_eq!(read, *policy);
}

#[test]
fn an_invalid_policy_read_from_json_is_refused() {
    // A policy is validated when built; one read from JSON must not slip past that check.
    let pipeline = Pipeline::builder()
        .stage("policy", |_: StageContext| async {
            Ok::<_, StageError>(ConsensusPolicy::new(Threshold::Majority, 0.5)?)
        })
        .export()
        .build()
        .unwrap();
    let report = execute(within(pipeline.run()));
    let json = report.to_json().unwrap();
    let tampered = json.replace("\"quorum\": 0.5", "\"quorum\": 7.0");
    assert_ne!(tampered, json, "the quorum field was found in {json}");
    let back = RunReport::from_json(&tampered).unwrap();
    let value = back.artifact_json("policy").unwrap();
    let read = ConsensusPolicy::deserialize(value);
    match read {
        Err(_) => {}
        Ok(policy) => {
            // Accepted: then a hive must refuse it with the typed error.
            let Err(error) = Hive::builder(Board::default()).policy(policy).build() else {
                panic!("a hive with quorum 7.0 must be refused");
            };
            assert!(error.to_string().contains("quorum"), "{error}");
        }
    }
    // The policy error itself round-trips.
    let error = ConsensusPolicy::new(Threshold::Supermajority { num: 1, den: 0 }, 0.5).unwrap_err();
    let pipeline = Pipeline::builder()
        .stage("error", move |_: StageContext| {
            let error = error.clone();
            async move { Ok::<_, StageError>(error) }
        })
        .export()
        .build()
        .unwrap();
    let report = execute(within(pipeline.run()));
    let back = RunReport::from_json(&report.to_json().unwrap()).unwrap();
    let read = PolicyError::deserialize(back.artifact_json("error").unwrap()).unwrap();
    assert_eq!(read, *report.artifact::<PolicyError>("error").unwrap());
}

#[test]
fn a_failing_run_report_reads_back_and_explains_the_same() {
    let pipeline = Pipeline::builder()
        .stage("parse", |_: StageContext| async {
            let n: u32 = "x".parse()?;
            Ok::<_, StageError>(n)
        })
        .stage("flaky", |ctx: StageContext| async move {
            if ctx.attempt() < 3 {
                return Err(StageError::msg(format!("attempt {} failed", ctx.attempt())));
            }
            Ok::<_, StageError>(ctx.attempt())
        })
        .retry(RetryPolicy::attempts(3).with_backoff(Backoff::NONE))
        .export()
        .stage("slow", |_: StageContext| async {
            hivekit::runtime::sleep(Duration::from_secs(60)).await;
            Ok::<_, StageError>(())
        })
        .timeout(Duration::from_millis(20))
        .stage("report", |ctx: StageContext| async move {
            Ok::<_, StageError>(*ctx.input::<u32>("parse")?)
        })
        .after(["parse"])
        .stage("chain", |_: StageContext| async { Ok::<_, StageError>(()) })
        .after(["report"])
        .build()
        .unwrap();
    let report = execute(within(pipeline.run_with(
        RunOptions::default().with_failure(FailurePolicy::ContinueIndependent),
    )));
    assert!(!report.is_success());
    let json = report.to_json().unwrap();
    let back = RunReport::from_json(&json).unwrap();
    assert_eq!(back.to_json().unwrap(), json);
    assert_eq!(back.outcome(), report.outcome());
    for stage in ["parse", "flaky", "slow", "report", "chain"] {
        assert_eq!(
            back.status(stage),
            report.status(stage),
            "status of {stage}"
        );
        assert_eq!(
            back.explain(stage),
            report.explain(stage),
            "explanation of {stage}"
        );
        assert_eq!(
            back.stage(stage).unwrap().failed_attempts.len(),
            report.stage(stage).unwrap().failed_attempts.len(),
            "failed attempts of {stage}"
        );
    }
    assert_eq!(back.artifact_json("flaky").unwrap(), 3);
    assert_eq!(back.to_mermaid(), report.to_mermaid());
}
