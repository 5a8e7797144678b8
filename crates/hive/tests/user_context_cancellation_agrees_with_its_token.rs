//! `AgentContext::is_cancelled`: "True once [`AgentContext::cancellation`] is cancelled", and
//! `AgentContext::cancelled`: "Completes when [`AgentContext::cancellation`] is cancelled"
//! (src/context.rs). The token is a `CancellationToken` the agent holds: whoever cancels it (the
//! round, the caller's token, or the agent itself, to stop work it started), the three must agree.

use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, AgentId, CancellationToken, Contest, DecideOptions, Hive,
    ProposalOf, Snapshot, State, Vote,
};
use parking_lot::Mutex;

#[test]
fn a_context_whose_token_was_cancelled_says_it_is_cancelled() {
    let ctx = AgentContext::new(AgentId(3), 1);
    let copy = ctx.clone();
    assert!(!ctx.is_cancelled());
    // The agent stops what it started for the call (a request, a child process) through its token.
    ctx.cancellation().cancel();
    assert!(ctx.cancellation().is_cancelled());
    assert!(
        ctx.is_cancelled(),
        "the context's token is cancelled, yet is_cancelled() is false: {ctx:?}"
    );
    assert!(copy.is_cancelled(), "a clone shares the token: {copy:?}");
}

#[tokio::test]
async fn cancelled_completes_and_is_cancelled_agrees_once_the_token_is_cancelled() {
    let ctx = AgentContext::new(AgentId(0), 7);
    let token = ctx.cancellation().clone();
    token.cancel();
    tokio::time::timeout(Duration::from_secs(5), ctx.cancelled())
        .await
        .expect("cancelled() completes for a cancelled token");
    assert_eq!(ctx.is_cancelled(), ctx.cancellation().is_cancelled());
}

#[derive(Clone, Default, Debug)]
struct Level(u64);

impl State for Level {
    type Key = &'static str;
    type Change = u64;
    fn apply(&mut self, level: &u64) {
        self.0 = *level;
    }
}

/// What the agents saw: (agent, phase, `is_cancelled()`, `cancellation().is_cancelled()`).
type Seen = Arc<Mutex<Vec<(AgentId, &'static str, bool, bool)>>>;

/// Proposes a level for one key; the first agent cancels its round token once it has proposed
/// (it has no more work for the round), and every agent notes what its context says.
struct Noting {
    level: u64,
    cancels: bool,
    seen: Seen,
}

impl Noting {
    fn note(&self, ctx: &AgentContext, phase: &'static str) {
        self.seen.lock().push((
            ctx.agent(),
            phase,
            ctx.is_cancelled(),
            ctx.cancellation().is_cancelled(),
        ));
    }
}

impl Agent<Level> for Noting {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Level>,
    ) -> Result<Option<ProposalOf<Level>>, AgentError> {
        if self.cancels {
            ctx.cancellation().cancel();
        }
        self.note(ctx, "propose");
        Ok(Some(ctx.proposal(self.level).writes(["level"])))
    }

    async fn vote(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Level>,
        contest: &Contest<Level>,
    ) -> Result<Vote, AgentError> {
        self.note(ctx, "vote");
        Ok(contest.preferred().map_or(Vote::Abstain, Vote::For))
    }
}

#[tokio::test]
async fn every_call_of_a_round_sees_is_cancelled_agree_with_its_token() {
    let hive = Hive::new(Level(0));
    let seen: Seen = Arc::default();
    for (level, cancels) in [(1, true), (2, false), (3, false)] {
        hive.spawn(Noting {
            level,
            cancels,
            seen: Arc::clone(&seen),
        });
    }
    let decision = tokio::time::timeout(Duration::from_secs(10), hive.decide())
        .await
        .expect("the round ends")
        .expect("an agent's own token does not cancel the round");
    assert_eq!(decision.accepted.len(), 1);
    let seen = seen.lock();
    assert!(seen.len() >= 3, "{seen:?}");
    let disagreeing: Vec<_> = seen
        .iter()
        .filter(|(_, _, said, token)| said != token)
        .collect();
    assert!(
        disagreeing.is_empty(),
        "(agent, phase, is_cancelled(), cancellation().is_cancelled()): {disagreeing:?}"
    );
}

#[tokio::test]
async fn the_callers_token_is_left_alone_when_its_round_ends_and_serves_the_next_round() {
    let hive = Hive::new(Level(0));
    let seen: Seen = Arc::default();
    hive.spawn(Noting {
        level: 5,
        cancels: false,
        seen: Arc::clone(&seen),
    });
    let token = CancellationToken::new();
    for round in 1..=2 {
        let decision = tokio::time::timeout(
            Duration::from_secs(10),
            hive.decide_with(DecideOptions::default().with_cancel(token.clone())),
        )
        .await
        .expect("the round ends")
        .expect("the round decides");
        assert_eq!(decision.round, round);
        assert!(
            !token.is_cancelled(),
            "the end of round {round} cancelled the caller's token"
        );
    }
    // Every call of both rounds ran before its round ended: none saw a cancelled token.
    assert!(seen.lock().iter().all(|&(_, _, said, _)| !said));
}
