//! A hive round as a stage.

use hivekit_hive::{
    Agent, AgentContext, AgentError, Decision, Hive, Proposal, ProposalId, Snapshot, State,
};
use hivekit_swarm::{hive_stage, Pipeline, RetryPolicy, StageContext, StageError, StageStatus};

#[derive(Clone, Default, Debug)]
struct Tally(Vec<u64>);

impl State for Tally {
    type Key = u64;
    type Change = u64;
    fn apply(&mut self, change: &u64) {
        self.0.push(*change);
    }
}

struct Writer(u64);

impl Agent<Tally> for Writer {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _: &Snapshot<Tally>,
    ) -> Result<Option<Proposal<u64, u64>>, AgentError> {
        // Writers 1 and 2 both write key 0 and conflict; writer 3 writes its own key.
        let key = if self.0 == 3 { 3 } else { 0 };
        Ok(Some(
            Proposal::new(ProposalId(self.0), self.0).writes([key]),
        ))
    }
}

#[tokio::test]
async fn the_decision_is_the_stage_artifact() {
    let hive = Hive::builder(Tally::default()).build().unwrap();
    for id in 1..=3 {
        hive.spawn(Writer(id));
    }
    let pipeline = Pipeline::builder()
        .stage("decide", hive_stage(hive.clone()))
        .stage("summarise", |ctx: StageContext| async move {
            let decision = ctx.input::<Decision<Tally>>("decide")?;
            Ok::<_, StageError>((decision.accepted.len(), decision.rejected.len()))
        })
        .after(["decide"])
        .build()
        .unwrap();
    let report = pipeline.run().await;
    assert!(report.is_success());
    assert_eq!(
        *report.artifact::<(usize, usize)>("summarise").unwrap(),
        (2, 1)
    );
    assert_eq!(hive.memory().load().0.len(), 2);
    // Run again: a second round on the same hive.
    let again = pipeline.run().await;
    assert_eq!(
        again.artifact::<Decision<Tally>>("decide").unwrap().round,
        2
    );
}

#[tokio::test]
async fn a_hive_without_agents_fails_the_stage_without_retries() {
    let hive = Hive::builder(Tally::default()).build().unwrap();
    let pipeline = Pipeline::builder()
        .stage("decide", hive_stage(hive))
        .retry(RetryPolicy::attempts(3))
        .build()
        .unwrap();
    let report = pipeline.run().await;
    assert!(matches!(
        report.status("decide"),
        Some(StageStatus::Failed {
            error: StageError::Permanent(_),
            attempts: 1
        })
    ));
}

#[tokio::test]
async fn an_exported_decision_is_in_the_run_reports_json() {
    let hive = Hive::builder(Tally::default()).build().unwrap();
    for id in 1..=3 {
        hive.spawn(Writer(id));
    }
    let pipeline = Pipeline::builder()
        .stage("decide", hive_stage(hive))
        .export()
        .build()
        .unwrap();
    let report = pipeline.run().await;
    let decision = report.artifact_json("decide").unwrap();
    assert_eq!(decision["round"], 1);
    assert_eq!(decision["accepted"].as_array().unwrap().len(), 2);
    assert_eq!(
        decision["ballots"][0]["voters"].as_array().unwrap().len(),
        3
    );
    assert!(report.to_json().unwrap().contains("\"ballots\""));
}
