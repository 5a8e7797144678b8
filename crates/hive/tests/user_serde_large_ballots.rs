//! With the `serde` feature: a decision whose ballot has more candidates than the compact vote
//! codes hold (130 contesting agents) survives a JSON round trip with every voter's choice, and
//! a hand-edited record naming a choice that is not a candidate is refused, not misread.
#![cfg(feature = "serde")]

mod support;

use hivekit_hive::{Agent, AgentContext, AgentError, Contest, Decision, Hive, Snapshot, Vote};
use support::{add, Ledger, LedgerProposal};

/// Every agent writes key 0; each votes for the candidate `offset` places after its own.
struct Contender {
    offset: usize,
}

impl Agent<Ledger> for Contender {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
    ) -> Result<Option<LedgerProposal>, AgentError> {
        Ok(Some(add(ctx.proposal_id().0, 0, 1)))
    }

    async fn vote(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
        contest: &Contest<Ledger>,
    ) -> Result<Vote, AgentError> {
        let own = contest
            .candidates
            .iter()
            .position(|candidate| candidate.proposer == ctx.agent())
            .unwrap_or(0);
        let target = (own + self.offset) % contest.candidates.len();
        Ok(Vote::For(contest.candidates[target].id))
    }
}

#[tokio::test]
async fn a_decision_with_a_130_candidate_ballot_round_trips_through_json() {
    let hive = Hive::new(Ledger::default());
    // Most vote for candidate 129 (the last position), so high positions carry the count.
    hive.spawn_many(130, |index| Contender {
        offset: if index % 3 == 0 { 1 } else { 129 - index },
    });
    let decision = hive.decide().await.unwrap();
    assert_eq!(decision.ballots.len(), 1);
    assert_eq!(decision.ballots[0].candidates.len(), 130);
    let json = serde_json::to_string(&decision).unwrap();
    let back: Decision<Ledger> = serde_json::from_str(&json).unwrap();
    assert_eq!(back.accepted, decision.accepted);
    assert_eq!(back.rejected, decision.rejected);
    assert_eq!(back.ballots[0].tally, decision.ballots[0].tally);
    let before: Vec<_> = decision.ballots[0].voters().collect();
    let after: Vec<_> = back.ballots[0].voters().collect();
    assert_eq!(before.len(), 130);
    assert_eq!(after, before);
    assert_eq!(format!("{back:#}"), format!("{decision:#}"));
}

#[tokio::test]
async fn a_record_naming_a_choice_that_is_not_a_candidate_is_refused() {
    let hive = Hive::new(Ledger::default());
    hive.spawn_many(3, |_| Contender { offset: 1 });
    let decision = hive.decide().await.unwrap();
    let mut value = serde_json::to_value(&decision).unwrap();
    let voters = value["ballots"][0]["voters"].as_array_mut().unwrap();
    let choice = voters
        .iter_mut()
        .map(|voter| &mut voter["choice"])
        .find(|choice| choice.get("for").is_some())
        .expect("someone voted for a candidate");
    *choice = serde_json::json!({ "for": 4_242_424_242_u64 });
    let error = serde_json::from_value::<Decision<Ledger>>(value)
        .expect_err("an unknown candidate is refused");
    assert!(
        error.to_string().contains("invalid ballot voters"),
        "{error}"
    );
}
