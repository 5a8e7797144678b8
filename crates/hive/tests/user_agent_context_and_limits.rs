//! What an agent knows about itself (AgentContext: id, round, deadline, cancellation), bad
//! weights refused by name, and `max_in_flight` never exceeded, counted inside the agents.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, AgentId, CancellationToken, DecideOptions, Hive, HiveError,
    ResourceCost, Snapshot,
};
use parking_lot::Mutex;
use support::{add, cost, Ledger, LedgerProposal};

/// What one propose call saw.
#[derive(Debug, Clone)]
struct Seen {
    agent: AgentId,
    round: u64,
    remaining: Duration,
    token: CancellationToken,
}

struct Recorder {
    seen: Arc<Mutex<Vec<Seen>>>,
    key: u64,
}

impl Agent<Ledger> for Recorder {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
    ) -> Result<Option<LedgerProposal>, AgentError> {
        self.seen.lock().push(Seen {
            agent: ctx.agent(),
            round: ctx.round(),
            remaining: ctx.remaining(),
            token: ctx.cancellation().clone(),
        });
        Ok(Some(add(ctx.proposal_id().0, self.key, 1)))
    }
}

#[tokio::test(start_paused = true)]
async fn agents_see_their_own_id_the_round_and_the_timeout_and_the_token_ends_with_the_round() {
    let hive = Hive::builder(Ledger::default())
        .agent_timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let ids: Vec<AgentId> = (0..3)
        .map(|key| {
            hive.spawn(Recorder {
                seen: Arc::clone(&seen),
                key,
            })
        })
        .collect();
    for round in 1..=2_u64 {
        let decision = hive.decide().await.unwrap();
        assert_eq!(decision.round, round);
        let calls: Vec<Seen> = std::mem::take(&mut *seen.lock());
        let mut agents: Vec<AgentId> = calls.iter().map(|s| s.agent).collect();
        agents.sort_unstable();
        assert_eq!(agents, ids, "each agent asked once, under its own id");
        for call in &calls {
            assert_eq!(call.round, round);
            assert_eq!(
                call.remaining,
                Duration::from_secs(3),
                "paused clock: the full timeout"
            );
            assert!(
                call.token.is_cancelled(),
                "the round is over: its token is cancelled"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_round_deadline_shorter_than_the_timeout_is_the_agents_deadline() {
    let hive = Hive::builder(Ledger::default())
        .agent_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    hive.spawn(Recorder {
        seen: Arc::clone(&seen),
        key: 0,
    });
    hive.decide_with(DecideOptions::default().with_deadline(Duration::from_secs(2)))
        .await
        .unwrap();
    assert_eq!(seen.lock()[0].remaining, Duration::from_secs(2));
}

/// Waits for its round's cancellation (bounded), and says whether it saw it.
struct Patient {
    saw_cancel: Arc<AtomicUsize>,
}

impl Agent<Ledger> for Patient {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
    ) -> Result<Option<LedgerProposal>, AgentError> {
        let token = ctx.cancellation().clone();
        let saw = Arc::clone(&self.saw_cancel);
        // Work the agent started for the round, outside the call: it must learn the round ended.
        tokio::spawn(async move {
            if tokio::time::timeout(Duration::from_secs(60), token.cancelled())
                .await
                .is_ok()
            {
                saw.fetch_add(1, Ordering::SeqCst);
            }
        });
        ctx.cancelled().await;
        Ok(None)
    }
}

#[tokio::test(start_paused = true)]
async fn a_long_agent_sees_the_cancellation_of_its_round() {
    let hive = Hive::builder(Ledger::default())
        .agent_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let saw = Arc::new(AtomicUsize::new(0));
    hive.spawn(Patient {
        saw_cancel: Arc::clone(&saw),
    });
    let cancel = CancellationToken::new();
    let round = {
        let hive = hive.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            hive.decide_with(DecideOptions::default().with_cancel(cancel))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    cancel.cancel();
    let result = tokio::time::timeout(Duration::from_secs(1), round)
        .await
        .expect("a cancelled round returns promptly")
        .unwrap();
    assert!(
        matches!(result, Err(HiveError::Cancelled { round: 1 })),
        "{result:?}"
    );
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(saw.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_long_agent_that_times_out_sees_its_round_end() {
    let hive = Hive::builder(Ledger::default())
        .agent_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let saw = Arc::new(AtomicUsize::new(0));
    hive.spawn(Patient {
        saw_cancel: Arc::clone(&saw),
    });
    let decision = tokio::time::timeout(Duration::from_secs(5), hive.decide())
        .await
        .expect("the agent timeout ends the round")
        .unwrap();
    assert_eq!(decision.failures.len(), 1);
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        saw.load(Ordering::SeqCst),
        1,
        "the round's token is cancelled when it ends"
    );
}

struct Nobody;

impl Agent<Ledger> for Nobody {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
    ) -> Result<Option<LedgerProposal>, AgentError> {
        Ok(None)
    }
}

#[test]
fn bad_weights_are_refused_by_name_and_change_nothing() {
    let hive = Hive::new(Ledger::default());
    for weight in [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        -1.0,
        -f64::MIN_POSITIVE,
    ] {
        match hive.spawn_weighted(Nobody, weight) {
            Err(HiveError::InvalidWeight { weight: named }) => {
                assert!(named.to_bits() == weight.to_bits(), "{named} vs {weight}")
            }
            other => panic!("weight {weight}: {other:?}"),
        }
    }
    assert!(hive.is_empty());
    let zero = hive.spawn_weighted(Nobody, 0.0).unwrap();
    let max = hive.spawn_weighted(Nobody, f64::MAX).unwrap();
    assert_eq!(
        (hive.weight(zero), hive.weight(max)),
        (Some(0.0), Some(f64::MAX))
    );
    assert!(matches!(
        hive.set_weight(zero, f64::NAN),
        Err(HiveError::InvalidWeight { .. })
    ));
    assert_eq!(hive.weight(zero), Some(0.0));
    assert!(matches!(
        hive.set_weight(AgentId(99), 1.0),
        Err(HiveError::UnknownAgent { agent: AgentId(99) })
    ));
    let many = hive.spawn_many(3, |_| Nobody);
    assert_eq!(many.len(), 3);
    assert_eq!(hive.len(), 5);
    assert!(many.iter().all(|id| hive.weight(*id) == Some(1.0)));
}

/// Counts calls in flight and the most seen at once.
struct Busy {
    now: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
    calls: Arc<AtomicUsize>,
    heavy: bool,
}

impl Agent<Ledger> for Busy {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
    ) -> Result<Option<LedgerProposal>, AgentError> {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(10)).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        Ok(None)
    }

    fn cost(&self) -> ResourceCost {
        cost(self.heavy)
    }
}

#[tokio::test(start_paused = true)]
async fn max_in_flight_is_never_exceeded_and_every_agent_is_asked() {
    for heavy in [false, true] {
        for limit in [1_usize, 2, 3] {
            let hive = Hive::builder(Ledger::default())
                .max_in_flight(std::num::NonZeroUsize::new(limit).unwrap())
                .build()
                .unwrap();
            let (now, most, calls) = (
                Arc::new(AtomicUsize::new(0)),
                Arc::new(AtomicUsize::new(0)),
                Arc::new(AtomicUsize::new(0)),
            );
            hive.spawn_many(10, |_| Busy {
                now: Arc::clone(&now),
                most: Arc::clone(&most),
                calls: Arc::clone(&calls),
                heavy,
            });
            let decision = tokio::time::timeout(Duration::from_secs(10), hive.decide())
                .await
                .unwrap()
                .unwrap();
            assert!(decision.failures.is_empty(), "{:?}", decision.failures);
            assert_eq!(
                calls.load(Ordering::SeqCst),
                10,
                "heavy {heavy} limit {limit}"
            );
            assert_eq!(
                most.load(Ordering::SeqCst),
                limit,
                "heavy {heavy}: at most (and, with 10 waiting, exactly) {limit} at once"
            );
        }
    }
}

/// Proposes a write to key 0 (so every agent contests it) and votes slowly, counting the calls
/// in flight across both phases.
struct BusyVoter {
    now: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
    heavy: bool,
}

impl BusyVoter {
    async fn busy(&self) {
        /// Counts the call out even when the round drops it (a settled ballot stops waiting).
        struct Out<'a>(&'a AtomicUsize);
        impl Drop for Out<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        let _out = Out(&self.now);
        self.most.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

impl Agent<Ledger> for BusyVoter {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
    ) -> Result<Option<LedgerProposal>, AgentError> {
        self.busy().await;
        Ok(Some(add(ctx.proposal_id().0, 0, 1)))
    }

    async fn vote(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
        contest: &hivekit_hive::Contest<Ledger>,
    ) -> Result<hivekit_hive::Vote, AgentError> {
        self.busy().await;
        Ok(support::preferred(contest))
    }

    fn cost(&self) -> ResourceCost {
        cost(self.heavy)
    }
}

#[tokio::test(start_paused = true)]
async fn max_in_flight_also_bounds_the_vote_phase() {
    for heavy in [false, true] {
        for limit in [1_usize, 2] {
            let hive = Hive::builder(Ledger::default())
                .max_in_flight(std::num::NonZeroUsize::new(limit).unwrap())
                .build()
                .unwrap();
            let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
            hive.spawn_many(8, |_| BusyVoter {
                now: Arc::clone(&now),
                most: Arc::clone(&most),
                heavy,
            });
            let decision = tokio::time::timeout(Duration::from_secs(10), hive.decide())
                .await
                .unwrap()
                .unwrap();
            assert!(decision.failures.is_empty(), "{:?}", decision.failures);
            assert_eq!(decision.ballots.len(), 1, "{decision}");
            assert_eq!(decision.accepted.len(), 1, "{decision}");
            assert_eq!(
                most.load(Ordering::SeqCst),
                limit,
                "heavy {heavy} limit {limit}"
            );
            assert_eq!(now.load(Ordering::SeqCst), 0);
        }
    }
}

/// Proposes to key 0 after `delay`, and records the time its vote call is told it has.
struct Timed {
    delay: Duration,
    vote_remaining: Arc<Mutex<Vec<Duration>>>,
}

impl Agent<Ledger> for Timed {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
    ) -> Result<Option<LedgerProposal>, AgentError> {
        tokio::time::sleep(self.delay).await;
        Ok(Some(add(ctx.proposal_id().0, 0, 1)))
    }

    async fn vote(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
        contest: &hivekit_hive::Contest<Ledger>,
    ) -> Result<hivekit_hive::Vote, AgentError> {
        self.vote_remaining.lock().push(ctx.remaining());
        Ok(support::preferred(contest))
    }
}

#[tokio::test(start_paused = true)]
async fn the_vote_phase_has_its_own_timeout_capped_by_the_round_deadline() {
    for (round_deadline, expected) in [
        (None, Duration::from_secs(1)),
        (
            Some(Duration::from_millis(1_500)),
            Duration::from_millis(600),
        ),
    ] {
        let hive = Hive::builder(Ledger::default())
            .agent_timeout(Duration::from_secs(1))
            .build()
            .unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        for delay in [900, 100] {
            hive.spawn(Timed {
                delay: Duration::from_millis(delay),
                vote_remaining: Arc::clone(&seen),
            });
        }
        let options = match round_deadline {
            Some(deadline) => DecideOptions::default().with_deadline(deadline),
            None => DecideOptions::default(),
        };
        let decision = hive.decide_with(options).await.unwrap();
        assert!(decision.failures.is_empty(), "{decision}");
        let seen = seen.lock().clone();
        assert!(!seen.is_empty());
        assert!(
            seen.iter().all(|&remaining| remaining == expected),
            "round deadline {round_deadline:?}: {seen:?}"
        );
    }
}
