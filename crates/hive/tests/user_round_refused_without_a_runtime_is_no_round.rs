//! A round refused for want of a runtime (`decide` polled outside tokio after hivekit's global
//! runtime was shut down returns `HiveError::NoRuntime`) never started: it takes no number, is not
//! counted in `stats().rounds` and sends no events, so the promise that every round's events end
//! with a terminal event holds. Own binary: it shuts the global runtime down.

use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, Hive, HiveError, HiveEvent, HiveEventSink, ProposalOf,
    Snapshot, State,
};
use parking_lot::Mutex;

#[derive(Clone, Default, Debug)]
struct Count(u64);

impl State for Count {
    type Key = ();
    type Change = u64;
    fn apply(&mut self, change: &u64) {
        self.0 += change;
    }
}

struct Idle;

impl Agent<Count> for Idle {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Count>,
    ) -> Result<Option<ProposalOf<Count>>, AgentError> {
        Ok(None)
    }
}

#[test]
fn a_round_refused_for_want_of_a_runtime_is_not_numbered_and_sends_no_events() {
    let seen: Arc<Mutex<Vec<HiveEvent<()>>>> = Arc::default();
    let hive = Hive::builder(Count::default())
        .events(HiveEventSink::callback({
            let seen = Arc::clone(&seen);
            move |event| seen.lock().push(event)
        }))
        .build()
        .expect("valid");
    hive.spawn(Idle);
    hivekit_runtime::shutdown(Duration::from_secs(2)).expect("the global runtime shuts down");
    // A plain thread, no tokio runtime: `decide` falls back to the global runtime, which is gone.
    let error = futures::executor::block_on(hive.decide()).expect_err("no runtime");
    assert!(matches!(error, HiveError::NoRuntime { .. }), "{error:?}");
    assert_eq!(
        hive.stats().rounds,
        0,
        "a round that cannot start is not numbered or counted"
    );
    let events: Vec<HiveEvent<()>> = seen.lock().clone();
    assert!(
        events.is_empty(),
        "decide returned {error:?} before the round started, but events were sent: {events:?}"
    );
}
