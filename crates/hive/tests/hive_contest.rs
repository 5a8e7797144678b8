//! What a voter sees of a contest: each candidate's access to the contested key.
#![allow(missing_docs)]

mod support;

use std::sync::{Arc, Mutex};

use hivekit_hive::{
    Agent, AgentContext, AgentError, Contest, Hive, Proposal, ProposalId, Snapshot, Vote,
};
use support::{Add, Ledger, LedgerProposal};

/// Proposes what it is given; as a voter, records each candidate's `writes_key` and abstains.
struct Recorder {
    proposal: Option<LedgerProposal>,
    seen: Arc<Mutex<Vec<(ProposalId, bool)>>>,
}

impl Agent<Ledger> for Recorder {
    async fn propose(
        &self,
        _: &AgentContext,
        _: &Snapshot<Ledger>,
    ) -> Result<Option<LedgerProposal>, AgentError> {
        Ok(self.proposal.clone())
    }

    async fn vote(
        &self,
        _: &AgentContext,
        _: &Snapshot<Ledger>,
        contest: &Contest<Ledger>,
    ) -> Result<Vote, AgentError> {
        let mut seen = self.seen.lock().unwrap();
        seen.extend(contest.candidates.iter().map(|c| (c.id, c.writes_key)));
        Ok(Vote::Abstain)
    }
}

fn change(id: u64, key: u64) -> Add {
    Add {
        id: ProposalId(id),
        key,
        delta: 1,
    }
}

#[tokio::test]
async fn a_contest_marks_writers_and_readers_of_the_key_as_the_conflict_report_does() {
    let hive = Hive::builder(Ledger::default()).build().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let proposals = [
        // Writes key 1.
        Proposal::new(ProposalId(1), change(1, 1)).writes([1]),
        // Only reads key 1 (writes key 2, which nobody else touches).
        Proposal::new(ProposalId(2), change(2, 2))
            .reads([1])
            .writes([2]),
        // Reads and writes key 1: a writer.
        Proposal::new(ProposalId(3), change(3, 1))
            .reads([1])
            .writes([1]),
    ];
    for proposal in proposals {
        hive.spawn(Recorder {
            proposal: Some(proposal),
            seen: Arc::clone(&seen),
        });
    }
    let decision = hive.decide().await.unwrap();
    assert_eq!(decision.ballots.len(), 1);
    let mut seen = seen.lock().unwrap().clone();
    seen.sort_unstable_by_key(|(id, _)| id.0);
    seen.dedup();
    assert_eq!(
        seen,
        vec![
            (ProposalId(1), true),
            (ProposalId(2), false),
            (ProposalId(3), true)
        ]
    );
}
