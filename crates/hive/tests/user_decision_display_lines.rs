//! `Decision`'s `Display`: "A header line, then one line per accepted and rejected proposal (with
//! its proposer), per ballot and per failure; with `{:#}`, every voter's choice under its ballot"
//! and one line per supervision record (src/decision.rs); hive-assigned proposal ids show "as `#h`
//! and its serial (`#h12`)" (`AgentContext::proposal_id`); a voter's weight shows only when it is
//! not 1 (`VoterRecord`).

use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, AgentId, Decision, Hive, ProposalId, ProposalOf, Snapshot,
    State, Supervision, VoterChoice, VoterRecord,
};

#[derive(Clone, Default, Debug)]
struct Settings {
    writes: u64,
}

impl State for Settings {
    type Key = &'static str;
    type Change = u64;
    fn apply(&mut self, _level: &u64) {
        self.writes += 1;
    }
}

/// Proposes `level` for `key` under its hive-assigned id, or fails.
struct Setter {
    key: &'static str,
    level: u64,
    fails: bool,
}

impl Agent<Settings> for Setter {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Settings>,
    ) -> Result<Option<ProposalOf<Settings>>, AgentError> {
        if self.fails {
            return Err(AgentError::msg("configuration service down"));
        }
        Ok(Some(ctx.proposal(self.level).writes([self.key])))
    }
}

/// The label `Display` gives a hive-assigned id.
fn label(id: ProposalId) -> String {
    const ASSIGNED: u64 = 1 << 52;
    assert!(
        (ASSIGNED..2 * ASSIGNED).contains(&id.0),
        "hive-assigned ids lie in [2^52, 2^53): {id:?}"
    );
    format!("#h{}", id.0 - ASSIGNED)
}

async fn mixed_round() -> (Hive<Settings>, Decision<Settings>, [AgentId; 4]) {
    let hive = Hive::builder(Settings::default())
        .supervision(Supervision::quarantine(1, 1))
        .build()
        .expect("valid");
    let first = hive.spawn(Setter {
        key: "threads",
        level: 4,
        fails: false,
    });
    let second = hive.spawn(Setter {
        key: "threads",
        level: 8,
        fails: false,
    });
    let alone = hive
        .spawn_weighted(
            Setter {
                key: "cache",
                level: 1,
                fails: false,
            },
            2.5,
        )
        .expect("valid weight");
    let failing = hive.spawn(Setter {
        key: "cache",
        level: 0,
        fails: true,
    });
    let decision = tokio::time::timeout(Duration::from_secs(10), hive.decide())
        .await
        .expect("the round ends")
        .expect("the round decides");
    (hive, decision, [first, second, alone, failing])
}

#[tokio::test]
async fn a_decision_prints_a_header_and_one_line_per_item() {
    let (_hive, decision, [first, second, alone, failing]) = mixed_round().await;
    // The round as the test built it: two accepted, one rejected, one ballot, one failure, one
    // quarantine.
    assert_eq!(decision.accepted.len(), 2, "{decision:?}");
    assert_eq!(decision.rejected.len(), 1, "{decision:?}");
    assert_eq!(decision.ballots.len(), 1, "{decision:?}");
    assert_eq!(decision.failures.len(), 1, "{decision:?}");
    assert_eq!(decision.supervised.len(), 1, "{decision:?}");
    assert_eq!(decision.supervised[0].agent, failing);

    let text = decision.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1 + 2 + 1 + 1 + 1 + 1, "{text}");
    assert!(
        lines[0]
            .starts_with("round 1: 4 agents, 3 proposals, 2 accepted, 1 rejected; version 0 -> 1"),
        "{text}"
    );
    for &id in &decision.accepted {
        let proposer = decision.proposer(id).expect("a proposer");
        assert!([first, second, alone].contains(&proposer));
        let line = format!("accepted {} from {proposer}", label(id));
        assert_eq!(
            lines.iter().filter(|l| l.trim() == line).count(),
            1,
            "no line `{line}` in\n{text}"
        );
    }
    let (rejected, reason) = &decision.rejected[0];
    let proposer = decision.proposer(*rejected).expect("a proposer");
    let line = format!("rejected {} from {proposer}: {reason}", label(*rejected));
    assert_eq!(
        lines.iter().filter(|l| l.trim() == line).count(),
        1,
        "no line `{line}` in\n{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.trim() == format!("failed: {}", decision.failures[0])),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.trim() == format!("supervised: {}", decision.supervised[0])),
        "{text}"
    );
    // No 19-digit numbers: every proposal is shown by its serial.
    assert!(!text.contains(&(1u64 << 52).to_string()[..10]), "{text}");
}

#[tokio::test]
async fn the_alternate_form_adds_exactly_one_line_per_voter_under_its_ballot() {
    let (_hive, decision, [_, _, alone, _]) = mixed_round().await;
    let plain = decision.to_string();
    let alternate = format!("{decision:#}");
    let ballot = &decision.ballots[0];
    let voters: Vec<VoterRecord> = ballot.voters().collect();
    assert_eq!(voters.len(), 4, "every member votes: {ballot:#}");
    assert_eq!(
        alternate.lines().count(),
        plain.lines().count() + voters.len(),
        "{alternate}"
    );
    // The voters' lines follow their ballot's line, in the electorate's order.
    let lines: Vec<&str> = alternate.lines().collect();
    let at = lines
        .iter()
        .position(|line| line.trim() == ballot.to_string())
        .unwrap_or_else(|| panic!("no ballot line in\n{alternate}"));
    for (offset, voter) in voters.iter().enumerate() {
        assert_eq!(
            lines[at + 1 + offset].trim(),
            voter.to_string(),
            "{alternate}"
        );
    }
    // Weight 1 is not shown; any other weight is.
    for voter in &voters {
        let shown = voter.to_string();
        assert_eq!(
            shown.contains("(weight"),
            voter.voter == alone,
            "{shown} (weight {})",
            voter.weight
        );
        match voter.choice {
            VoterChoice::For(id) => assert!(shown.contains(&label(id)), "{shown}"),
            VoterChoice::Abstain => assert!(shown.contains("abstained")),
            VoterChoice::Failed => assert!(shown.contains("failed")),
            VoterChoice::NotCounted => assert!(shown.contains("not counted")),
        }
    }
    // The plain ballot line has no voters under it.
    assert!(!plain.contains(&voters[0].to_string()), "{plain}");
}
