//! With the `serde` feature, decisions, stats, policies and failures serialize both ways.

mod support;

use std::time::Duration;

use hivekit_hive::{
    AgentFailure, ConsensusPolicy, Decision, FailureKind, Hive, HiveStats, Threshold, TieBreak,
};
use support::{Behaviour, Choice, Ledger, Writer};

#[tokio::test(start_paused = true)]
async fn a_decision_survives_a_json_round_trip_with_its_audit() {
    let hive = Hive::builder(Ledger::default())
        .agent_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    hive.spawn(Writer::new(1, 7).choosing(Choice::For(1)));
    hive.spawn(Writer::new(2, 7).choosing(Choice::For(2)));
    hive.spawn(Writer::new(3, 8).voting(Behaviour::Panic));
    hive.spawn(Writer::silent().proposing(Behaviour::Fail));
    let decision = hive.decide().await.unwrap();
    assert!(!decision.failures.is_empty());

    let json = serde_json::to_string(&decision).unwrap();
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    // The id is 32 hex digits (a JSON number would lose precision).
    assert_eq!(value["id"].as_str().unwrap().len(), 32);
    assert!(value["ballots"][0]["voters"].as_array().unwrap().len() == 4);

    let back: Decision<Ledger> = serde_json::from_str(&json).unwrap();
    assert_eq!(back.id, decision.id);
    assert_eq!(back.accepted, decision.accepted);
    assert_eq!(back.rejected, decision.rejected);
    assert_eq!(back.proposers, decision.proposers);
    assert_eq!(back.failures, decision.failures);
    assert_eq!(back.elapsed, decision.elapsed);
    assert_eq!(
        back.ballots[0].voters().collect::<Vec<_>>(),
        decision.ballots[0].voters().collect::<Vec<_>>()
    );
    // Same decision, same reading.
    assert_eq!(format!("{back:#}"), format!("{decision:#}"));
}

#[test]
fn stats_policies_and_failures_survive_a_json_round_trip() {
    let stats = HiveStats {
        rounds: 3,
        timeouts: 1,
        ..HiveStats::default()
    };
    let json = serde_json::to_string(&stats).unwrap();
    assert_eq!(serde_json::from_str::<HiveStats>(&json).unwrap(), stats);

    let policy = ConsensusPolicy {
        threshold: Threshold::Supermajority { num: 2, den: 3 },
        quorum: 0.5,
        weighted: true,
        tie_break: TieBreak::NoDecision,
    };
    let json = serde_json::to_string(&policy).unwrap();
    assert_eq!(
        serde_json::from_str::<ConsensusPolicy>(&json).unwrap(),
        policy
    );

    let failure = AgentFailure {
        agent: hivekit_hive::AgentId(4),
        phase: hivekit_hive::Phase::Vote,
        kind: FailureKind::Errored {
            error: hivekit_hive::AgentError::msg("model offline"),
        },
    };
    let json = serde_json::to_string(&failure).unwrap();
    assert_eq!(
        serde_json::from_str::<AgentFailure>(&json).unwrap(),
        failure
    );
}

#[test]
fn a_decision_id_that_is_not_hex_is_refused_naming_it() {
    let error = serde_json::from_str::<Decision<Ledger>>(
        r#"{"id":"xyz","round":1,"base_version":0,"version":0,"rebased":false,"agents":0,
            "proposals":0,"proposers":[],"accepted":[],"rejected":[],"ballots":[],"failures":[],
            "elapsed":{"secs":0,"nanos":0}}"#,
    )
    .unwrap_err();
    assert!(
        error.to_string().contains("decision id `xyz` is not hex"),
        "{error}"
    );
}

#[tokio::test]
async fn a_decision_with_a_supervised_agent_survives_a_json_round_trip() {
    let hive = Hive::builder(Ledger::default())
        .supervision(hivekit_hive::Supervision::quarantine(1, 3))
        .build()
        .unwrap();
    hive.spawn(Writer::new(1, 1).proposing(Behaviour::Fail));
    hive.spawn(Writer::new(2, 2));
    let decision = hive.decide().await.unwrap();
    assert_eq!(decision.supervised.len(), 1);
    let json = serde_json::to_string(&decision).unwrap();
    let back: Decision<Ledger> = serde_json::from_str(&json).unwrap();
    assert_eq!(back.supervised, decision.supervised);
    assert_eq!(back.to_string(), decision.to_string());

    let stats = hive.stats();
    assert_eq!(stats.quarantines, 1);
    let json = serde_json::to_string(&stats).unwrap();
    assert_eq!(serde_json::from_str::<HiveStats>(&json).unwrap(), stats);
    // Stats written before supervision existed still read.
    let old = r#"{"rounds":1,"commits":0,"rebases":0,"proposals":0,"accepted":0,"rejected":0,"conflicts":0,"votes":0,"cancelled_votes":0,"timeouts":0,"panics":0,"errors":0,"invalid":0}"#;
    assert_eq!(
        serde_json::from_str::<HiveStats>(old).unwrap().quarantines,
        0
    );
}
