//! What a round's propose calls log at debug level: each light call, answered at once or polled
//! later, runs in its `agent_call` span (its own test binary, as `hive_tracing.rs`: tracing's
//! callsite interest is process-wide). The round builds the span only when the level may record
//! it; this checks that a subscriber at that level still sees every call in its span.

mod support;

use std::time::Duration;

use hivekit_hive::{Agent, AgentContext, AgentError, Hive, Snapshot};
use support::{capture_logs, Behaviour, Ledger, LedgerProposal, Writer};

/// A [`Writer`] that logs when it is asked to propose and when it answers.
struct Logging(Writer);

impl Agent<Ledger> for Logging {
    async fn propose(
        &self,
        ctx: &AgentContext,
        view: &Snapshot<Ledger>,
    ) -> Result<Option<LedgerProposal>, AgentError> {
        tracing::debug!("asked to propose");
        let proposal = self.0.propose(ctx, view).await;
        tracing::debug!("proposed");
        proposal
    }
}

#[tokio::test(start_paused = true)]
async fn at_debug_level_every_light_propose_call_logs_in_its_agent_call_span() {
    let (captured, _guard) = capture_logs(tracing::Level::DEBUG);

    let hive = Hive::builder(Ledger::default())
        .agent_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    // One agent answers at once, the other after a while (its call is polled again, by the
    // round's `FuturesUnordered`).
    let at_once = hive.spawn(Logging(Writer::new(1, 7)));
    let later = hive.spawn(Logging(
        Writer::new(2, 8).proposing(Behaviour::Slow(Duration::from_millis(10))),
    ));
    let decision = hive.decide().await.unwrap();
    assert_eq!(decision.accepted.len(), 2);

    let log = captured.text();
    for (agent, message) in [
        (at_once, "asked to propose"),
        (at_once, "proposed"),
        (later, "asked to propose"),
        (later, "proposed"),
    ] {
        let span = format!("agent_call{{agent={} phase=Propose}}", agent.0);
        assert!(
            log.lines()
                .any(|line| line.contains(&span) && line.ends_with(message)),
            "no `{message}` in `{span}`:\n{log}"
        );
    }
}
