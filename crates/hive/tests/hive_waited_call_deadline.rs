//! A call that `max_in_flight` made wait for a slot is told the time it really has: its
//! `AgentContext::deadline` counts from its own start, as the hive's timer for it does (qa3's case:
//! with the contexts built at the phase's start, the third of three 600 ms calls under a 1 s
//! timeout saw 0 remaining, though the hive gave it a whole second).

mod support;

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{Agent, AgentContext, AgentError, Contest, Hive, ResourceCost, Snapshot, Vote};
use parking_lot::Mutex;
use support::{add, Ledger, LedgerProposal};

const TIMEOUT: Duration = Duration::from_secs(1);
const CALL: Duration = Duration::from_millis(600);

/// Which call saw how much time: `(phase, remaining at the call's start)`.
type Seen = Arc<Mutex<Vec<(&'static str, Duration)>>>;

/// Takes 600 ms in every call; the first two propose on one key, so that the round votes.
struct Slow {
    key: Option<u64>,
    heavy: bool,
    batch: bool,
    seen: Seen,
}

impl Slow {
    async fn call(&self, phase: &'static str, ctx: &AgentContext) {
        self.seen.lock().push((phase, ctx.remaining()));
        tokio::time::sleep(CALL).await;
    }
}

impl Agent<Ledger> for Slow {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
    ) -> Result<Option<LedgerProposal>, AgentError> {
        self.call("propose", ctx).await;
        Ok(self.key.map(|key| add(ctx.proposal_id().0, key, 1)))
    }

    async fn vote(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
        contest: &Contest<Ledger>,
    ) -> Result<Vote, AgentError> {
        self.call("vote", ctx).await;
        Ok(support::preferred(contest))
    }

    fn batch_votes(&self) -> bool {
        self.batch
    }

    async fn vote_all(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
        contests: &[&Contest<Ledger>],
    ) -> Result<Vec<Vote>, AgentError> {
        self.call("vote_all", ctx).await;
        Ok(contests
            .iter()
            .map(|contest| support::preferred(contest))
            .collect())
    }

    fn cost(&self) -> ResourceCost {
        support::cost(self.heavy)
    }
}

/// One round of three slow agents, one call at a time; every call's view of its time.
async fn one_call_at_a_time(heavy: bool, batch: bool) -> Vec<(&'static str, Duration)> {
    let hive = Hive::builder(Ledger::default())
        .agent_timeout(TIMEOUT)
        .max_in_flight(NonZeroUsize::new(1).unwrap())
        .build()
        .unwrap();
    let seen = Seen::default();
    for key in [Some(7), Some(7), None] {
        hive.spawn(Slow {
            key,
            heavy,
            batch,
            seen: Arc::clone(&seen),
        });
    }
    let decision = hive.decide().await.unwrap();
    assert!(
        decision.failures.is_empty(),
        "each call has its own second: {:?}",
        decision.failures
    );
    let seen = seen.lock().clone();
    seen
}

/// Every call saw the whole timeout, and the phases asked three proposers and at least two voters
/// one after the other (so that at least one call of each phase waited for its slot).
fn assert_whole_timeout(seen: &[(&'static str, Duration)], vote_phase: &str) {
    let count = |phase: &str| seen.iter().filter(|(name, _)| *name == phase).count();
    assert_eq!(count("propose"), 3, "{seen:?}");
    assert!(count(vote_phase) >= 2, "{seen:?}");
    for (phase, remaining) in seen {
        assert_eq!(
            *remaining, TIMEOUT,
            "a {phase} call was told less: {seen:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn light_calls_that_waited_are_told_their_whole_timeout() {
    assert_whole_timeout(&one_call_at_a_time(false, false).await, "vote");
}

#[tokio::test(start_paused = true)]
async fn heavy_calls_that_waited_are_told_their_whole_timeout() {
    assert_whole_timeout(&one_call_at_a_time(true, false).await, "vote");
}

#[tokio::test(start_paused = true)]
async fn batch_votes_that_waited_are_told_their_whole_timeout() {
    assert_whole_timeout(&one_call_at_a_time(false, true).await, "vote_all");
    assert_whole_timeout(&one_call_at_a_time(true, true).await, "vote_all");
}
