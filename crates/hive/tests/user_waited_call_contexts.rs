//! Calls that `max_in_flight` made wait for a slot get contexts of their own: those must still name
//! the agent, the round and the proposal id the hive assigned it (the decision attributes the
//! proposal to it; a waited voter finds its own candidate), follow the round's cancellation, and
//! never run past the round's deadline; with and without supervision (which assigns ids on its
//! own path).

mod support;

use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, AgentId, DecideOptions, Hive, ProposalId, ProposalOf,
    ResourceCost, Snapshot,
};
use parking_lot::Mutex;
use support::Count;
use tokio::time::Instant;

type Seen = Arc<Mutex<Vec<(AgentId, u64, ProposalId, Instant, AgentContext)>>>;

struct Recorder {
    key: u64,
    heavy: bool,
    seen: Seen,
}

impl Agent<Count> for Recorder {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Count>,
    ) -> Result<Option<ProposalOf<Count>>, AgentError> {
        self.seen.lock().push((
            ctx.agent(),
            ctx.round(),
            ctx.proposal_id(),
            ctx.deadline(),
            ctx.clone(),
        ));
        tokio::time::sleep(Duration::from_millis(30)).await;
        Ok(Some(ctx.proposal(1).writes([self.key])))
    }

    fn cost(&self) -> ResourceCost {
        if self.heavy {
            ResourceCost::Heavy
        } else {
            ResourceCost::Light
        }
    }
}

async fn check(heavy: bool) {
    check_with(heavy, false).await;
    check_with(heavy, true).await;
}

async fn check_with(heavy: bool, supervised: bool) {
    let seen: Seen = Arc::default();
    let mut builder = Hive::builder(Count::default());
    if supervised {
        builder = builder.supervision(hivekit_hive::Supervision::quarantine(3, 1));
    }
    let hive = builder
        .agent_timeout(Duration::from_secs(1))
        .max_in_flight(hivekit_hive::ConcurrencyLimit::new(1).unwrap())
        .build()
        .unwrap();
    let ids: Vec<AgentId> = (0..4)
        .map(|key| {
            hive.spawn(Recorder {
                key,
                heavy,
                seen: Arc::clone(&seen),
            })
        })
        .collect();
    let start = Instant::now();
    let round_deadline = Duration::from_millis(100);
    let decision = tokio::time::timeout(
        Duration::from_secs(10),
        hive.decide_with(DecideOptions::default().with_deadline(round_deadline)),
    )
    .await
    .unwrap()
    .unwrap();
    let seen = seen.lock().clone();
    assert_eq!(seen.len(), 4, "heavy {heavy}: every agent asked");
    for (agent, round, proposal, deadline, ctx) in &seen {
        assert!(ids.contains(agent));
        assert_eq!(*round, 1);
        assert!(
            *deadline <= start + round_deadline + Duration::from_millis(5),
            "heavy {heavy}: {agent} told a deadline {:?} past the round's ({:?})",
            deadline.duration_since(start),
            round_deadline
        );
        assert!(
            ctx.is_cancelled(),
            "heavy {heavy}: {agent}'s token not cancelled at round end"
        );
        if decision.accepted.contains(proposal) {
            assert_eq!(decision.proposer(*proposal), Some(*agent), "heavy {heavy}");
        }
    }
    // 4 calls of 30 ms one at a time under a 100 ms round deadline: 3 answer, the 4th times out.
    assert_eq!(decision.accepted.len(), 3, "heavy {heavy}: {decision:?}");
    assert_eq!(decision.failures.len(), 1, "heavy {heavy}: {decision:?}");
}

#[tokio::test(start_paused = true)]
async fn waited_light_calls_keep_their_identity_token_and_the_round_deadline() {
    check(false).await;
}

#[tokio::test(start_paused = true)]
async fn waited_heavy_calls_keep_their_identity_token_and_the_round_deadline() {
    check(true).await;
}

/// Each voter and the candidate its context says is its own.
type Votes = Arc<Mutex<Vec<(AgentId, Option<ProposalId>)>>>;

/// Proposes on key 9 and votes for its own candidate, recording what its context says.
struct SelfVoter {
    votes: Votes,
}

impl Agent<Count> for SelfVoter {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Count>,
    ) -> Result<Option<ProposalOf<Count>>, AgentError> {
        Ok(Some(ctx.proposal(1).writes([9])))
    }

    async fn vote(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Count>,
        contest: &hivekit_hive::Contest<Count>,
    ) -> Result<hivekit_hive::Vote, AgentError> {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let own = ctx.own(contest).map(|candidate| candidate.id);
        self.votes.lock().push((ctx.agent(), own));
        Ok(own.map_or(hivekit_hive::Vote::Abstain, hivekit_hive::Vote::For))
    }
}

#[tokio::test(start_paused = true)]
async fn waited_voters_find_their_own_candidate() {
    for supervised in [false, true] {
        let votes: Votes = Arc::default();
        let mut builder = Hive::builder(Count::default());
        if supervised {
            builder = builder.supervision(hivekit_hive::Supervision::quarantine(3, 1));
        }
        let hive = builder
            .policy(hivekit_hive::ConsensusPolicy::unanimous().with_weighted(false))
            .max_in_flight(hivekit_hive::ConcurrencyLimit::new(1).unwrap())
            .build()
            .unwrap();
        for _ in 0..3 {
            hive.spawn(SelfVoter {
                votes: Arc::clone(&votes),
            });
        }
        let decision = tokio::time::timeout(Duration::from_secs(10), hive.decide())
            .await
            .unwrap()
            .unwrap();
        let votes = votes.lock().clone();
        assert_eq!(votes.len(), 3, "supervised {supervised}");
        for (agent, own) in votes {
            let own = own.unwrap_or_else(|| {
                panic!("supervised {supervised}: {agent} found no own candidate")
            });
            assert_eq!(
                decision.proposer(own),
                Some(agent),
                "supervised {supervised}"
            );
        }
    }
}
