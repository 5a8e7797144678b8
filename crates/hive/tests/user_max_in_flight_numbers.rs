//! `HiveBuilder::max_in_flight` takes a plain number, as DESIGN.md writes it (`.max_in_flight(8)`),
//! and refuses zero or a negative number with a typed error when built, never a panic.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hivekit_hive::{
    Agent, AgentContext, AgentError, ConcurrencyLimit, ConcurrencyLimitError, Hive, HiveError,
    ProposalOf, Snapshot, State,
};

#[derive(Clone, Default)]
struct Counter(u64);

impl State for Counter {
    type Key = u64;
    type Change = u64;
    fn apply(&mut self, change: &u64) {
        self.0 += change;
    }
}

/// Counts how many of its kind are inside `propose` at once.
struct Gauge {
    now: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
}

impl Agent<Counter> for Gauge {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Counter>,
    ) -> Result<Option<ProposalOf<Counter>>, AgentError> {
        let inside = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(inside, Ordering::SeqCst);
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        Ok(Some(ctx.proposal(1)))
    }
}

#[test]
fn an_integer_literal_is_a_limit_and_the_round_keeps_it() {
    let hive = Hive::builder(Counter::default())
        .max_in_flight(3)
        .build()
        .expect("3 is a valid limit");
    let now = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    hive.spawn_many(12, |_| Gauge {
        now: Arc::clone(&now),
        most: Arc::clone(&most),
    });
    let decision = hivekit_runtime::execute(hive.decide()).expect("the round commits");
    assert_eq!(decision.accepted.len(), 12);
    let most = most.load(Ordering::SeqCst);
    assert!(
        (1..=3).contains(&most),
        "{most} calls ran at once, the limit is 3"
    );
}

#[test]
fn zero_and_negative_numbers_are_refused_when_built() {
    let zero = Hive::builder(Counter::default()).max_in_flight(0).build();
    assert_eq!(
        zero.err(),
        Some(HiveError::MaxInFlight(ConcurrencyLimitError::Zero))
    );
    let negative = Hive::builder(Counter::default()).max_in_flight(-2).build();
    let Err(error) = negative else {
        panic!("a negative limit is refused");
    };
    assert_eq!(
        error,
        HiveError::MaxInFlight(ConcurrencyLimitError::Negative { limit: -2 })
    );
    assert!(error.to_string().contains("-2"), "{error}");
}

#[test]
fn a_later_valid_limit_replaces_a_refused_one() {
    let hive = Hive::builder(Counter::default())
        .max_in_flight(0_usize)
        .max_in_flight(4_u64)
        .build();
    assert!(hive.is_ok(), "the last setting wins");
    let hive = Hive::builder(Counter::default())
        .max_in_flight(4_usize)
        .max_in_flight(0_i64)
        .build();
    assert_eq!(
        hive.err(),
        Some(HiveError::MaxInFlight(ConcurrencyLimitError::Zero))
    );
}

#[test]
fn every_kind_of_limit_still_builds() {
    for built in [
        Hive::builder(Counter::default())
            .max_in_flight(ConcurrencyLimit::Unbounded)
            .build(),
        Hive::builder(Counter::default())
            .max_in_flight(NonZeroUsize::MIN)
            .build(),
        Hive::builder(Counter::default())
            .max_in_flight(None::<NonZeroUsize>)
            .build(),
        Hive::builder(Counter::default())
            .max_in_flight(u64::MAX)
            .build(),
        Hive::builder(Counter::default())
            .max_in_flight(i64::MAX)
            .build(),
    ] {
        assert!(built.is_ok());
    }
}
