//! What a round's vote calls log at debug level: each light call, answered at once or polled
//! later, runs in its `agent_call` span (its own test binary, as `hive_tracing.rs`: tracing's
//! callsite interest is process-wide).

mod support;

use std::time::Duration;

use hivekit_hive::{Agent, AgentContext, AgentError, Contest, Hive, Snapshot, Vote};
use support::{capture_logs, Behaviour, Choice, Ledger, LedgerProposal, Writer};

/// A [`Writer`] that logs when it is asked to vote and when it answers.
struct Logging(Writer);

impl Agent<Ledger> for Logging {
    async fn propose(
        &self,
        ctx: &AgentContext,
        view: &Snapshot<Ledger>,
    ) -> Result<Option<LedgerProposal>, AgentError> {
        self.0.propose(ctx, view).await
    }

    async fn vote(
        &self,
        ctx: &AgentContext,
        view: &Snapshot<Ledger>,
        contest: &Contest<Ledger>,
    ) -> Result<Vote, AgentError> {
        tracing::debug!("asked to vote");
        let vote = self.0.vote(ctx, view, contest).await;
        tracing::debug!("answered");
        vote
    }
}

#[tokio::test(start_paused = true)]
async fn at_debug_level_every_light_vote_call_logs_in_its_agent_call_span() {
    let (captured, _guard) = capture_logs(tracing::Level::DEBUG);

    let hive = Hive::builder(Ledger::default())
        .agent_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    // Two proposals on key 7: a ballot among the two agents, one answering at once, the other
    // after a while (its call is polled again, by the round's `FuturesUnordered`). The first
    // backs #2, so the ballot waits for the second (which could tie, and a tie goes to #1).
    let at_once = hive.spawn(Logging(Writer::new(1, 7).choosing(Choice::For(2))));
    let later = hive.spawn(Logging(
        Writer::new(2, 7).voting(Behaviour::Slow(Duration::from_millis(10))),
    ));
    let decision = hive.decide().await.unwrap();
    assert_eq!(decision.ballots.len(), 1);

    let log = captured.text();
    for (agent, message) in [
        (at_once, "asked to vote"),
        (at_once, "answered"),
        (later, "asked to vote"),
        (later, "answered"),
    ] {
        let span = format!("agent_call{{agent={} phase=Vote}}", agent.0);
        assert!(
            log.lines()
                .any(|line| line.contains(&span) && line.ends_with(message)),
            "no `{message}` in `{span}`:\n{log}"
        );
    }
}
