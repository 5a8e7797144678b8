//! Auditable decisions: who proposed what, how every voter voted, and how a decision reads.

mod support;

use std::time::Duration;

use hivekit_hive::{
    AgentError, AgentFailure, AgentId, ConsensusPolicy, FailureKind, Hive, Phase, ProposalId,
    Tally, VoterChoice, VoterRecord,
};
use support::{Behaviour, Choice, Ledger, Writer};

const TIMEOUT: Duration = Duration::from_secs(1);

/// Three writers on key 7 (ids 1, 2, 3), a heavy voter for 2, a voter that fails, one that hangs.
fn contested_hive() -> (Hive<Ledger>, Vec<AgentId>) {
    let hive = Hive::builder(Ledger::default())
        .policy(ConsensusPolicy {
            weighted: true,
            ..ConsensusPolicy::majority()
        })
        .agent_timeout(TIMEOUT)
        .build()
        .unwrap();
    let ids = vec![
        hive.spawn(Writer::new(1, 7).choosing(Choice::For(1))),
        hive.spawn_weighted(Writer::new(2, 7).choosing(Choice::For(2)), 3.0)
            .unwrap(),
        hive.spawn(Writer::new(3, 7).choosing(Choice::Abstain)),
        hive.spawn(Writer::silent().voting(Behaviour::Fail)),
        hive.spawn(Writer::silent().voting(Behaviour::Never)),
    ];
    (hive, ids)
}

#[tokio::test(start_paused = true)]
async fn a_decision_names_every_proposer_and_every_voters_choice_and_weight() {
    let (hive, ids) = contested_hive();
    let decision = hive.decide().await.unwrap();
    for (id, agent) in [(1, ids[0]), (2, ids[1]), (3, ids[2])] {
        assert_eq!(decision.proposer(ProposalId(id)), Some(agent));
    }
    assert_eq!(decision.proposer(ProposalId(9)), None);
    assert_eq!(decision.accepted, [ProposalId(2)]);

    let ballot = &decision.ballots[0];
    let voters: Vec<VoterRecord> = ballot.voters().collect();
    assert_eq!(voters.len(), 5);
    assert_eq!(
        voters[..4],
        [
            VoterRecord {
                voter: ids[0],
                weight: 1.0,
                choice: VoterChoice::For(ProposalId(1)),
            },
            VoterRecord {
                voter: ids[1],
                weight: 3.0,
                choice: VoterChoice::For(ProposalId(2)),
            },
            VoterRecord {
                voter: ids[2],
                weight: 1.0,
                choice: VoterChoice::Abstain,
            },
            VoterRecord {
                voter: ids[3],
                weight: 1.0,
                choice: VoterChoice::Failed,
            },
        ]
    );
    // The hanging voter is not waited for: 3 of 7 weight for #2 is 60% of what was cast for
    // candidates, and the last voter's 1 cannot take that below a majority.
    assert_eq!(ballot.choice_of(ids[4]), Some(VoterChoice::NotCounted));
    assert_eq!(ballot.choice_of(AgentId(99)), None);
    assert!(decision
        .failures
        .iter()
        .any(|failure| failure.agent == ids[3] && failure.phase == Phase::Vote));
}

#[tokio::test(start_paused = true)]
async fn a_decision_displays_one_line_per_item_and_voters_in_the_alternate_form() {
    let (hive, ids) = contested_hive();
    let decision = hive.decide().await.unwrap();
    let text = decision.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with(
            "round 1: 5 agents, 3 proposals, 1 accepted, 2 rejected; version 0 -> 1 in "
        ),
        "{text}"
    );
    assert_eq!(lines[1], format!("  accepted #2 from {}", ids[1]));
    assert!(lines.contains(&&*format!(
        "  rejected #1 from {}: lost the vote to proposal #2",
        ids[0]
    )));
    assert!(
        lines.iter().any(|line| line.starts_with(
            "  ballot on 7 (write-write) between #1, #2, #3: decided for #2 with 75% support; 3 votes"
        )),
        "{text}"
    );
    assert!(lines.contains(&&*format!(
        "  failed: {} returned an error: agent failed on purpose in vote",
        ids[3]
    )));
    assert_eq!(lines.len(), 1 + 1 + 2 + 1 + decision.failures.len());

    let detailed = format!("{decision:#}");
    assert!(detailed.contains(&format!("\n    {} for #2 (weight 3)", ids[1])));
    assert!(detailed.contains(&format!("\n    {} abstained", ids[2])));
    assert!(detailed.contains(&format!("\n    {} failed", ids[3])));
}

#[test]
fn tallies_failures_and_agent_failures_read_as_sentences() {
    let decided = Tally::Decided {
        winner: ProposalId(4),
        support: 2.0 / 3.0,
    };
    assert_eq!(decided.to_string(), "decided for #4 with 67% support");
    let no_quorum = Tally::NoQuorum {
        turnout: 1.0,
        required: 2.0,
    };
    assert_eq!(no_quorum.to_string(), "no quorum (turnout 1 of 2 required)");
    let tie = Tally::Tie {
        candidates: vec![ProposalId(1), ProposalId(2)],
    };
    assert_eq!(tie.to_string(), "tie between #1, #2");
    assert_eq!(
        Tally::Undecided.to_string(),
        "undecided (no candidate reached the threshold)"
    );

    let kinds = [
        (FailureKind::TimedOut, "timed out"),
        (
            FailureKind::Panicked {
                message: "boom".into(),
            },
            "panicked: boom",
        ),
        (
            FailureKind::Errored {
                error: AgentError::msg("model offline"),
            },
            "returned an error: model offline",
        ),
        (
            FailureKind::DuplicateProposal {
                id: ProposalId(3),
                holder: AgentId(1),
            },
            "proposed #3, an id agent 1 already proposed",
        ),
        (
            FailureKind::InvalidVote {
                candidate: ProposalId(9),
            },
            "voted for #9, which is not a candidate",
        ),
    ];
    for (kind, text) in kinds {
        assert_eq!(kind.to_string(), text);
    }
    let failure = AgentFailure {
        agent: AgentId(2),
        phase: Phase::Propose,
        kind: FailureKind::TimedOut,
    };
    assert_eq!(failure.to_string(), "agent 2 timed out in propose");
}

#[tokio::test]
async fn hive_assigned_ids_read_as_their_serial() {
    struct Assigned;
    impl hivekit_hive::Agent<Ledger> for Assigned {
        async fn propose(
            &self,
            ctx: &hivekit_hive::AgentContext,
            _: &hivekit_hive::Snapshot<Ledger>,
        ) -> Result<Option<support::LedgerProposal>, AgentError> {
            let change = support::Add {
                id: ctx.proposal_id(),
                key: 1,
                delta: 1,
            };
            Ok(Some(ctx.proposal(change).writes([1])))
        }
    }
    let hive = Hive::new(Ledger::default());
    let agent = hive.spawn(Assigned);
    let decision = hive.decide().await.unwrap();
    assert_eq!(
        decision.to_string().lines().nth(1),
        Some(&*format!("  accepted #h0 from {agent}"))
    );
}
