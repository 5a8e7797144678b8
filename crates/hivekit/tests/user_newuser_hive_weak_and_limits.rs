//! A new user's triage hive, written from the README and the rustdoc only: `max_in_flight` given
//! as a plain number (`.max_in_flight(2)`), a bad number refused as `HiveError::MaxInFlight` when
//! built, and a coordinating agent that holds its own hive through `Hive::downgrade` (a
//! `WeakHive`) to read the memory and recruit helpers, and that goes away with the user's last
//! handle.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;

use hivekit::hive::{
    Agent, AgentContext, AgentError, ConcurrencyLimit, ConcurrencyLimitError, Hive, HiveError,
    ProposalOf, Snapshot, State, WeakHive,
};
use hivekit::runtime::execute;

/// Returns `Pending` once (waking itself), as a call waiting on a service would: the facade has
/// no tokio dev-dependency for `tokio::task::yield_now`.
async fn yield_once() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await;
}

/// How many tickets were triaged.
#[derive(Clone, Default, Debug)]
struct Triage(u64);

impl State for Triage {
    type Key = u64;
    type Change = u64;
    fn apply(&mut self, change: &u64) {
        self.0 += change;
    }
}

/// Counts the agent calls running at once, and the most seen.
#[derive(Default)]
struct Gauge {
    now: AtomicUsize,
    most: AtomicUsize,
}

/// An agent that takes a few polls to answer (as a service call would), each on its own key.
struct Triager {
    key: u64,
    gauge: Arc<Gauge>,
}

impl Agent<Triage> for Triager {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Triage>,
    ) -> Result<Option<ProposalOf<Triage>>, AgentError> {
        let now = self.gauge.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.gauge.most.fetch_max(now, Ordering::SeqCst);
        for _ in 0..4 {
            yield_once().await;
        }
        self.gauge.now.fetch_sub(1, Ordering::SeqCst);
        Ok(Some(ctx.proposal(1).writes([self.key])))
    }
}

/// The most calls in flight during one round of six triagers under `limit`.
fn most_in_flight(build: impl FnOnce() -> Result<Hive<Triage>, HiveError>) -> usize {
    let gauge = Arc::new(Gauge::default());
    let hive = build().expect("a valid limit builds");
    for key in 0..6 {
        hive.spawn(Triager {
            key,
            gauge: gauge.clone(),
        });
    }
    let decision = execute(hive.decide()).expect("the round commits");
    assert_eq!(decision.accepted.len(), 6, "no key is shared: all accepted");
    assert_eq!(hive.memory().load().0, 6);
    gauge.most.load(Ordering::SeqCst)
}

#[test]
fn max_in_flight_takes_a_plain_number_and_bounds_the_calls() {
    let bounded = most_in_flight(|| Hive::builder(Triage::default()).max_in_flight(2).build());
    assert!(
        (1..=2).contains(&bounded),
        "max_in_flight(2) let {bounded} calls run at once"
    );
    // The same round without a limit runs more than two at once, so the bound above is the
    // limit's doing.
    let unbounded = most_in_flight(|| Hive::builder(Triage::default()).build());
    assert!(
        unbounded > 2,
        "unbounded round ran at most {unbounded} at once"
    );
    // Other spellings the docs list: a typed number, a `ConcurrencyLimit`.
    let typed = most_in_flight(|| {
        Hive::builder(Triage::default())
            .max_in_flight(1_u64)
            .build()
    });
    assert_eq!(typed, 1);
    let limit = ConcurrencyLimit::new(3).expect("three is a limit");
    let typed = most_in_flight(|| {
        Hive::builder(Triage::default())
            .max_in_flight(limit)
            .build()
    });
    assert!((1..=3).contains(&typed), "{typed} calls at once under 3");
}

#[test]
fn zero_or_negative_max_in_flight_is_an_error_when_built() {
    let zero = Hive::builder(Triage::default()).max_in_flight(0).build();
    assert!(
        matches!(
            zero,
            Err(HiveError::MaxInFlight(ConcurrencyLimitError::Zero))
        ),
        "{zero:?}"
    );
    let negative = Hive::builder(Triage::default())
        .max_in_flight(-4_i64)
        .build();
    let Err(error) = negative else {
        panic!("a negative max_in_flight built a hive")
    };
    assert!(
        matches!(
            error,
            HiveError::MaxInFlight(ConcurrencyLimitError::Negative { limit: -4 })
        ),
        "{error:?}"
    );
    assert!(
        error.to_string().starts_with("invalid max_in_flight"),
        "{error}"
    );
    // A later valid setting replaces a bad one, as any builder setter does.
    let fixed = Hive::builder(Triage::default())
        .max_in_flight(0)
        .max_in_flight(4)
        .build();
    assert!(fixed.is_ok(), "{fixed:?}");
}

/// A coordinator: reads the memory through its hive and recruits one helper on its first round.
struct Coordinator {
    hive: WeakHive<Triage>,
    recruited: AtomicUsize,
    seen_versions: Arc<shared_log::Log>,
    drops: Arc<AtomicUsize>,
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

impl Agent<Triage> for Coordinator {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Triage>,
    ) -> Result<Option<ProposalOf<Triage>>, AgentError> {
        let hive = self
            .hive
            .upgrade()
            .ok_or_else(|| AgentError::msg("the hive is gone"))?;
        self.seen_versions.push(hive.memory().load().version());
        if self.recruited.fetch_add(1, Ordering::SeqCst) == 0 {
            hive.spawn(Coordinator {
                hive: self.hive.clone(),
                recruited: AtomicUsize::new(1),
                seen_versions: self.seen_versions.clone(),
                drops: self.drops.clone(),
            });
        }
        Ok(Some(ctx.proposal(1).writes([ctx.agent().0])))
    }
}

/// A tiny shared log, so the test needs no extra dependency.
mod shared_log {
    use std::sync::Mutex;

    #[derive(Default)]
    pub(crate) struct Log(Mutex<Vec<u64>>);

    impl Log {
        pub(crate) fn push(&self, value: u64) {
            self.0.lock().expect("not poisoned").push(value);
        }

        pub(crate) fn take(&self) -> Vec<u64> {
            std::mem::take(&mut *self.0.lock().expect("not poisoned"))
        }
    }
}

#[test]
fn an_agent_holding_a_weak_hive_recruits_and_goes_with_the_last_handle() {
    let drops = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(shared_log::Log::default());
    let hive = Hive::builder(Triage::default())
        .max_in_flight(8)
        .build()
        .expect("valid");
    hive.spawn(Coordinator {
        hive: hive.downgrade(),
        recruited: AtomicUsize::new(0),
        seen_versions: seen.clone(),
        drops: drops.clone(),
    });

    let first = execute(hive.decide()).expect("round 1");
    assert_eq!(
        first.accepted.len(),
        1,
        "the helper joins from the next round"
    );
    assert_eq!(
        hive.len(),
        2,
        "the coordinator recruited through its weak handle"
    );
    assert_eq!(seen.take(), [0]);

    let second = execute(hive.decide()).expect("round 2");
    assert_eq!(second.accepted.len(), 2);
    assert_eq!(seen.take(), [1, 1], "both read version 1 through the hive");
    assert_eq!(hive.memory().load().0, 3);

    let weak = hive.downgrade();
    let clone = weak.upgrade().expect("alive while `hive` is");
    drop(clone);
    assert!(format!("{weak:?}").contains("WeakHive"));
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    drop(hive);
    assert!(weak.upgrade().is_none(), "agents kept their hive alive");
    assert_eq!(
        drops.load(Ordering::SeqCst),
        2,
        "both agents went with the last handle"
    );
}
