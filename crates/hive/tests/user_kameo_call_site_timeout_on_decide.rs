//! Kameo's and ractor's habit of putting the timeout at the call site (`ask(..).reply_timeout(d)`,
//! `call_t!`), ported to a round: users wrap `hive.decide()` in `tokio::time::timeout`, which
//! drops the round's future when it expires. Such a round sent `AgentFailed` for the calls that
//! failed before it was dropped, as a round cancelled through `DecideOptions::cancel` does; the
//! two must agree on what those failures count for:
//!
//! - `HiveStats::panics` is "Agent calls that panicked" (hive.rs), and a round cancelled by its
//!   token counts them (`user_cancelling_rounds`);
//! - `Supervision`: "A round counts as a failure of an agent when any of its calls in that round
//!   timed out, panicked or returned an error" (supervision.rs).
//!
//! A panicking agent in a hive whose rounds always hit the caller's timeout (another agent hangs
//! in its vote) must show up in the stats and be quarantined, however the round was stopped.

use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, AgentId, CancellationToken, Contest, DecideOptions,
    FailureKind, Hive, HiveError, HiveEvent, HiveEventSink, ProposalOf, Snapshot, State,
    Supervision, Vote,
};
use parking_lot::Mutex;

/// How long the caller waits for a round (the agents' own timeout is the default 30 s).
const CALL_SITE_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Clone, Default, Debug)]
struct Sum(u64);

impl State for Sum {
    type Key = u64;
    type Change = u64;
    fn apply(&mut self, change: &u64) {
        self.0 += change;
    }
}

/// Panics in `propose`; votes at once.
struct Panicker;

impl Agent<Sum> for Panicker {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Sum>,
    ) -> Result<Option<ProposalOf<Sum>>, AgentError> {
        panic!("the model returned garbage");
    }
}

/// Proposes on key 0 (so the two of them conflict) and never answers its vote.
struct SlowVoter;

impl Agent<Sum> for SlowVoter {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Sum>,
    ) -> Result<Option<ProposalOf<Sum>>, AgentError> {
        Ok(Some(ctx.proposal(1).writes([0])))
    }

    async fn vote(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Sum>,
        _contest: &Contest<Sum>,
    ) -> Result<Vote, AgentError> {
        std::future::pending().await
    }
}

type Events = Arc<Mutex<Vec<HiveEvent<u64>>>>;

fn hive(supervision: Option<Supervision>) -> (Hive<Sum>, AgentId, Events) {
    let events: Events = Arc::default();
    let mut builder = Hive::builder(Sum::default()).events(HiveEventSink::callback({
        let events = Arc::clone(&events);
        move |event| events.lock().push(event)
    }));
    if let Some(policy) = supervision {
        builder = builder.supervision(policy);
    }
    let hive = builder.build().unwrap();
    let panicker = hive.spawn(Panicker);
    hive.spawn(SlowVoter);
    hive.spawn(SlowVoter);
    (hive, panicker, events)
}

fn panics_reported(events: &Events, panicker: AgentId) -> usize {
    events
        .lock()
        .iter()
        .filter(|event| {
            matches!(event, HiveEvent::AgentFailed { failure, .. }
                if failure.agent == panicker && matches!(failure.kind, FailureKind::Panicked { .. }))
        })
        .count()
}

/// How the caller stops a round that takes longer than it will wait.
#[derive(Debug, Clone, Copy)]
enum Stop {
    /// `DecideOptions::cancel`, cancelled when the caller gives up.
    Token,
    /// `tokio::time::timeout(CALL_SITE_TIMEOUT, hive.decide())`.
    CallSiteTimeout,
}

async fn stopped_round(hive: &Hive<Sum>, stop: Stop) {
    match stop {
        Stop::Token => {
            let cancel = CancellationToken::new();
            let canceller = {
                let cancel = cancel.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(CALL_SITE_TIMEOUT).await;
                    cancel.cancel();
                })
            };
            let outcome = hive
                .decide_with(DecideOptions::default().with_cancel(cancel))
                .await;
            assert!(matches!(outcome, Err(HiveError::Cancelled { .. })));
            canceller.await.unwrap();
        }
        Stop::CallSiteTimeout => {
            let outcome = tokio::time::timeout(CALL_SITE_TIMEOUT, hive.decide()).await;
            assert!(outcome.is_err(), "the round outlived the caller's timeout");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_panic_reported_by_a_round_stopped_at_the_call_site_is_counted_in_the_stats() {
    for stop in [Stop::Token, Stop::CallSiteTimeout] {
        let (hive, panicker, events) = hive(None);
        stopped_round(&hive, stop).await;
        assert_eq!(
            panics_reported(&events, panicker),
            1,
            "{stop:?}: the round reported the panic"
        );
        assert!(matches!(
            events.lock().last(),
            Some(HiveEvent::RoundFailed { .. })
        ));
        let stats = hive.stats();
        assert_eq!(
            stats.panics, 1,
            "{stop:?}: an AgentFailed event reported a panicked call, but HiveStats::panics is {}",
            stats.panics
        );
    }
}

#[tokio::test(start_paused = true)]
async fn an_agent_that_panics_in_every_round_stopped_at_the_call_site_is_quarantined() {
    for stop in [Stop::Token, Stop::CallSiteTimeout] {
        let (hive, panicker, events) = hive(Some(Supervision::quarantine(2, 5)));
        for _ in 0..2 {
            stopped_round(&hive, stop).await;
        }
        assert_eq!(
            panics_reported(&events, panicker),
            2,
            "{stop:?}: both rounds reported the panic"
        );
        assert!(
            hive.quarantined_until(panicker).is_some(),
            "{stop:?}: the agent panicked in 2 rounds in a row (AgentFailed sent twice) under \
             Supervision::quarantine(2, 5) and is not quarantined"
        );
        assert_eq!(hive.stats().quarantines, 1, "{stop:?}");
    }
}
