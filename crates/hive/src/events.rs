//! Round events: started, proposals in, conflict found, ballot settled, agent failed, committed;
//! to a callback or a channel, for progress bars and live logs.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use hivekit_runtime::take_panic_message;
use tokio::sync::mpsc;

use crate::ballot::Tally;
use crate::context::label;
use crate::decision::AgentFailure;
use crate::lockfree::{ConflictKind, ProposalId};
use crate::supervision::Supervised;

/// Something that happened in a round ([`Hive::decide`](crate::Hive::decide)), in the order it
/// happened.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum HiveEvent<K> {
    /// The round asked its agents to propose.
    RoundStarted {
        /// The round.
        round: u64,
        /// Agents asked.
        agents: usize,
        /// The memory version they see.
        version: u64,
    },
    /// Every agent answered, failed or timed out.
    ProposalsIn {
        /// The round.
        round: u64,
        /// Proposals received.
        proposals: usize,
    },
    /// Proposals contend for a key.
    ConflictFound {
        /// The round.
        round: u64,
        /// The contested key.
        key: K,
        /// How they conflict.
        kind: ConflictKind,
        /// The contending proposals.
        candidates: Vec<ProposalId>,
    },
    /// A ballot on a contested key closed.
    BallotSettled {
        /// The round.
        round: u64,
        /// The contested key.
        key: K,
        /// The outcome.
        tally: Tally,
        /// Votes counted.
        votes: usize,
    },
    /// An agent's call failed (timed out, panicked, erred or answered invalidly).
    AgentFailed {
        /// The round.
        round: u64,
        /// Who, in which call, and how.
        failure: AgentFailure,
    },
    /// Supervision quarantined or removed an agent that kept failing.
    AgentSupervised {
        /// The round.
        round: u64,
        /// Who, and what was done.
        record: Supervised,
    },
    /// The round's accepted changes were committed.
    Committed {
        /// The round.
        round: u64,
        /// The new version.
        version: u64,
        /// Proposals applied.
        accepted: usize,
        /// True when another commit landed first and the changes were applied on top of it.
        rebased: bool,
    },
    /// The round ended without changes to commit.
    NothingToCommit {
        /// The round.
        round: u64,
    },
    /// The round ended without a decision: `decide` returned this error (cancelled, its commit
    /// refused or failed, ...). The events of every round end with exactly one of `Committed`,
    /// `NothingToCommit` and this: a round whose future is dropped before it ends, or that a panic
    /// (a memory's commit) unwinds, sends this too, with an error saying so.
    RoundFailed {
        /// The round.
        round: u64,
        /// The error `decide` returned, as text.
        error: String,
    },
}

impl<K> HiveEvent<K> {
    /// The round the event belongs to.
    pub fn round(&self) -> u64 {
        match self {
            Self::RoundStarted { round, .. }
            | Self::ProposalsIn { round, .. }
            | Self::ConflictFound { round, .. }
            | Self::BallotSettled { round, .. }
            | Self::AgentFailed { round, .. }
            | Self::AgentSupervised { round, .. }
            | Self::Committed { round, .. }
            | Self::NothingToCommit { round }
            | Self::RoundFailed { round, .. } => *round,
        }
    }
}

impl<K: fmt::Debug> fmt::Display for HiveEvent<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RoundStarted {
                round,
                agents,
                version,
            } => write!(f, "round {round}: {agents} agents on version {version}"),
            Self::ProposalsIn { round, proposals } => {
                write!(f, "round {round}: {proposals} proposals in")
            }
            Self::ConflictFound {
                round,
                key,
                kind,
                candidates,
            } => {
                write!(f, "round {round}: {kind} conflict on {key:?} between ")?;
                for (index, candidate) in candidates.iter().enumerate() {
                    let separator = if index == 0 { "" } else { ", " };
                    write!(f, "{separator}{}", label(*candidate))?;
                }
                Ok(())
            }
            Self::BallotSettled {
                round,
                key,
                tally,
                votes,
            } => write!(
                f,
                "round {round}: ballot on {key:?} {tally} ({votes} votes)"
            ),
            Self::AgentFailed { round, failure } => write!(f, "round {round}: {failure}"),
            Self::AgentSupervised { round, record } => write!(f, "round {round}: {record}"),
            Self::Committed {
                round,
                version,
                accepted,
                rebased,
            } => {
                write!(
                    f,
                    "round {round}: committed {accepted} changes as version {version}"
                )?;
                if *rebased {
                    f.write_str(" (rebased)")?;
                }
                Ok(())
            }
            Self::NothingToCommit { round } => write!(f, "round {round}: nothing to commit"),
            Self::RoundFailed { round, error } => write!(f, "round {round} failed: {error}"),
        }
    }
}

/// Where a hive sends its [`HiveEvent`]s: a callback (called on the thread that observed the
/// event; keep it short) or an unbounded channel. Set with
/// [`HiveBuilder::events`](crate::HiveBuilder::events); a hive without one builds no events.
///
/// # Examples
///
/// ```
/// use hivekit_hive::{Hive, HiveEvent, HiveEventSink, State};
/// # use hivekit_hive::{Agent, AgentContext, AgentError, ProposalOf, Snapshot};
/// # #[derive(Clone, Default)]
/// # struct Counter(u64);
/// # impl State for Counter {
/// #     type Key = ();
/// #     type Change = u64;
/// #     fn apply(&mut self, change: &u64) { self.0 += change; }
/// # }
/// # struct Bump;
/// # impl Agent<Counter> for Bump {
/// #     async fn propose(&self, ctx: &AgentContext, _: &Snapshot<Counter>)
/// #         -> Result<Option<ProposalOf<Counter>>, AgentError> { Ok(Some(ctx.proposal(1))) }
/// # }
///
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// let (sink, mut events) = HiveEventSink::channel();
/// let hive = Hive::builder(Counter::default()).events(sink).build()?;
/// hive.spawn(Bump);
/// hive.decide().await?;
/// assert!(matches!(events.recv().await, Some(HiveEvent::RoundStarted { round: 1, .. })));
/// assert!(matches!(events.recv().await, Some(HiveEvent::ProposalsIn { proposals: 1, .. })));
/// assert!(matches!(events.recv().await, Some(HiveEvent::Committed { version: 1, .. })));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct HiveEventSink<K> {
    deliver: Arc<dyn Fn(HiveEvent<K>) + Send + Sync>,
}

impl<K> Clone for HiveEventSink<K> {
    fn clone(&self) -> Self {
        Self {
            deliver: Arc::clone(&self.deliver),
        }
    }
}

impl<K> fmt::Debug for HiveEventSink<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HiveEventSink").finish_non_exhaustive()
    }
}

impl<K: Send + 'static> HiveEventSink<K> {
    /// Calls `callback` with every event. A callback that panics does not stop the round: the
    /// panic is caught and logged (`tracing`, at ERROR), and that event is lost.
    pub fn callback(callback: impl Fn(HiveEvent<K>) + Send + Sync + 'static) -> Self {
        Self {
            deliver: Arc::new(move |event| {
                // The callback is the user's code: a panic in it costs its event, not the round.
                if let Err(panic) = catch_unwind(AssertUnwindSafe(|| callback(event))) {
                    // Taken before logging: tracing does not evaluate fields nobody records.
                    let message = take_panic_message(panic);
                    tracing::error!(
                        panic = %message,
                        "an event callback panicked; its event is lost"
                    );
                }
            }),
        }
    }

    /// Sends every event into `sender`; events sent after the receiver is dropped are discarded.
    pub fn sender(sender: mpsc::UnboundedSender<HiveEvent<K>>) -> Self {
        Self::callback(move |event| {
            // A dropped receiver means nobody listens any more; that is not the round's failure.
            let _ = sender.send(event);
        })
    }

    /// A new unbounded channel and a sink that sends into it.
    pub fn channel() -> (Self, mpsc::UnboundedReceiver<HiveEvent<K>>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        (Self::sender(sender), receiver)
    }
}

impl<K> HiveEventSink<K> {
    pub(crate) fn emit(&self, event: HiveEvent<K>) {
        (self.deliver)(event);
    }
}
