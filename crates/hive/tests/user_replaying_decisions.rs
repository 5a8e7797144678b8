//! An audit log replays decisions: applying a decision's accepted proposals, in the order the
//! decision lists them, to the state it was based on must give the committed state. Checked with a
//! state where order matters (a log), agents answering in an order unlike their ids, and concurrent
//! rounds that rebase. Every wait is bounded.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, Hive, ProposalId, ProposalOf, Snapshot, State,
};

const BOUND: Duration = Duration::from_secs(10);

/// The order changes were applied in.
#[derive(Clone, Default, Debug, PartialEq)]
struct Log(Vec<u64>);

impl State for Log {
    type Key = u64;
    type Change = u64;
    fn apply(&mut self, change: &u64) {
        self.0.push(*change);
    }
}

/// Answers after `delay`, proposing `tag` on its own key.
struct Late {
    tag: u64,
    delay: Duration,
}

impl Agent<Log> for Late {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Log>,
    ) -> Result<Option<ProposalOf<Log>>, AgentError> {
        tokio::time::sleep(self.delay).await;
        Ok(Some(ctx.proposal(self.tag).writes([self.tag])))
    }
}

fn tags(hive_changes: &BTreeMap<ProposalId, u64>, accepted: &[ProposalId]) -> Vec<u64> {
    accepted.iter().map(|id| hive_changes[id]).collect()
}

#[tokio::test(start_paused = true)]
async fn replaying_a_decision_in_its_listed_order_gives_the_committed_state() {
    let hive = Hive::builder(Log::default()).history(4).build().unwrap();
    // Ids 0..5 answer in the order 3, 1, 4, 0, 2.
    for (tag, delay) in [(10, 40), (11, 20), (12, 50), (13, 10), (14, 30)] {
        hive.spawn(Late {
            tag,
            delay: Duration::from_millis(delay),
        });
    }
    let decision = tokio::time::timeout(BOUND, hive.decide())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(decision.accepted.len(), 5);
    let entry = hive.memory().at(1).expect("kept");
    // Which tag each accepted proposal carries: read back from the proposer's spawn order.
    let agents = hive.agents();
    let tag_of: BTreeMap<ProposalId, u64> = decision
        .accepted
        .iter()
        .map(|id| {
            let agent = decision.proposer(*id).unwrap();
            let index = agents.iter().position(|a| *a == agent).unwrap() as u64;
            (*id, 10 + index)
        })
        .collect();
    assert_eq!(entry.snapshot.0, tags(&tag_of, &decision.accepted));
}

/// Proposes `tag * 1000 + round` on its own key after yielding, so concurrent rounds overlap.
struct Tagger {
    tag: u64,
}

impl Agent<Log> for Tagger {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Log>,
    ) -> Result<Option<ProposalOf<Log>>, AgentError> {
        tokio::task::yield_now().await;
        Ok(Some(
            ctx.proposal(self.tag * 1000 + ctx.round())
                .writes([1000 + self.tag]),
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_committed_history_is_the_decisions_replayed_in_version_order() {
    const ROUNDS: u64 = 12;
    let hive = Arc::new(Hive::builder(Log::default()).build().unwrap());
    for tag in 1..=3 {
        hive.spawn(Tagger { tag });
    }
    let decisions = tokio::time::timeout(
        BOUND,
        futures::future::join_all((0..ROUNDS).map(|_| {
            let hive = Arc::clone(&hive);
            tokio::spawn(async move { hive.decide().await.unwrap() })
        })),
    )
    .await
    .expect("every round ends");
    let mut decisions: Vec<_> = decisions.into_iter().map(Result::unwrap).collect();
    decisions.sort_by_key(|decision| decision.version);
    // Replay every decision's accepted changes, by version, in the listed order.
    let mut replayed = Vec::new();
    for decision in &decisions {
        let mut changes: Vec<u64> = decision
            .accepted
            .iter()
            .map(|id| {
                let agent = decision.proposer(*id).unwrap();
                (agent.0 + 1) * 1000 + decision.round
            })
            .collect();
        replayed.append(&mut changes);
    }
    assert_eq!(hive.memory().load().0, replayed);
}
