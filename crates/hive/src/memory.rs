//! The memory seam: where a hive's committed versions live.
//!
//! A round reads a [`Snapshot`] from its [`Memory`], and commits the accepted changes of its decision
//! against the version it read. The in-process [`LocalMemory`] (a [`SnapshotCell`]) is the default
//! and the fastest path; `hivekit-etcd` implements the same trait on an etcd cluster so that hives in
//! many processes share one history.
//!
//! The rebase rule is the same for every backend: when another commit landed after `base`, the
//! accepted changes are applied, in order, to the newest state instead, and the commit says
//! [`Committed::rebased`]. No committed change is ever lost or applied twice.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use tokio::sync::Notify;

use crate::agent::{AgentId, ProposalOf};
use crate::lockfree::{Snapshot, SnapshotCell};
use crate::state::State;

/// A boxed error from a memory backend, kept with its source chain.
pub type BoxError = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// One accepted proposal of a decision, as a memory commits it.
pub struct AcceptedChange<'a, S: State> {
    /// The accepted proposal (its id, the keys it reads and writes, and the change).
    pub proposal: &'a ProposalOf<S>,
    /// The agent that proposed it, when an agent did.
    pub proposer: Option<AgentId>,
}

impl<S: State> Clone for AcceptedChange<'_, S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S: State> Copy for AcceptedChange<'_, S> {}

impl<S: State> fmt::Debug for AcceptedChange<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcceptedChange")
            .field("proposal", &self.proposal.id)
            .field("proposer", &self.proposer)
            .finish()
    }
}

/// What a round asks its memory to commit.
pub struct CommitRequest<'a, S: State> {
    /// Identifies the decision across retries and processes (a backend that can lose the answer to
    /// a commit reads it back to tell whether the commit landed).
    pub decision_id: u128,
    /// The round number of the hive that decided.
    pub round: u64,
    /// The version the round read.
    pub base: u64,
    /// The accepted changes, applied in this order.
    pub accepted: &'a [AcceptedChange<'a, S>],
}

impl<S: State> fmt::Debug for CommitRequest<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommitRequest")
            .field("decision_id", &self.decision_id)
            .field("round", &self.round)
            .field("base", &self.base)
            .field("accepted", &self.accepted)
            .finish()
    }
}

impl<S: State> CommitRequest<'_, S> {
    /// Applies the accepted changes, in order, to a copy of `state`.
    pub fn apply_to(&self, state: &S) -> S {
        let mut next = state.clone();
        for change in self.accepted {
            next.apply(&change.proposal.payload);
        }
        next
    }
}

/// A commit that landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Committed {
    /// The version the commit created.
    pub version: u64,
    /// Whether another commit landed after the base version, so that the changes were applied to a
    /// newer state.
    pub rebased: bool,
}

impl Committed {
    /// A commit that created `version`, rebased or not.
    pub fn new(version: u64, rebased: bool) -> Self {
        Committed { version, rebased }
    }
}

/// Why a memory could not read or commit.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum MemoryError {
    /// The backend could not be reached in time; nothing was committed.
    #[error("memory backend unavailable: {source}")]
    Unavailable {
        /// What failed.
        #[source]
        source: BoxError,
    },
    /// A state or change larger than the backend accepts in one request.
    #[error("commit of {bytes} bytes exceeds the backend's limit of {limit} bytes")]
    TooLarge {
        /// The size of the request.
        bytes: usize,
        /// The backend's limit.
        limit: usize,
    },
    /// A stored value could not be read back.
    #[error("stored value at `{key}` is not valid: {source}")]
    Corrupt {
        /// Where the value is stored.
        key: String,
        /// Why it could not be read.
        #[source]
        source: BoxError,
    },
    /// A commit was sent but its outcome could not be learned: it may or may not have landed.
    ///
    /// Unlike every other variant this does not say the commit failed, so a caller must not simply
    /// retry it as a new decision. The backend can settle it (the etcd backend:
    /// `EtcdMemory::resolve(decision_id)`, which reports the version it created or fences it off).
    #[error("outcome of decision {decision_id:#x} unknown, it may have committed: {source}")]
    OutcomeUnknown {
        /// The decision whose commit is in doubt.
        decision_id: u128,
        /// Why its outcome could not be learned.
        #[source]
        source: BoxError,
    },
    /// Any other backend failure.
    #[error("memory backend failed: {source}")]
    Backend {
        /// What failed.
        #[source]
        source: BoxError,
    },
}

impl PartialEq for MemoryError {
    /// Two errors are equal when they are the same variant and print the same.
    fn eq(&self, other: &Self) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
            && self.to_string() == other.to_string()
    }
}

impl MemoryError {
    /// A [`MemoryError::Unavailable`] from any error.
    pub fn unavailable(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        MemoryError::Unavailable {
            source: Arc::new(error),
        }
    }

    /// A [`MemoryError::Backend`] from any error.
    pub fn backend(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        MemoryError::Backend {
            source: Arc::new(error),
        }
    }

    /// Whether the commit may have landed despite the error ([`MemoryError::OutcomeUnknown`]); for
    /// every other variant nothing was committed.
    ///
    /// # Examples
    ///
    /// ```
    /// use hivekit_hive::MemoryError;
    ///
    /// let lost = MemoryError::OutcomeUnknown {
    ///     decision_id: 7,
    ///     source: std::sync::Arc::new(std::io::Error::other("connection reset")),
    /// };
    /// assert!(lost.may_have_committed());
    /// assert!(!MemoryError::backend(std::io::Error::other("refused")).may_have_committed());
    /// ```
    pub fn may_have_committed(&self) -> bool {
        matches!(self, MemoryError::OutcomeUnknown { .. })
    }
}

/// A fresh decision id: unique within this process, and across processes with overwhelming
/// probability (a random per-process half beside a counter).
///
/// # Examples
///
/// ```
/// let (a, b) = (hivekit_hive::new_decision_id(), hivekit_hive::new_decision_id());
/// assert_ne!(a, b);
/// assert_eq!(a >> 64, b >> 64);
/// ```
pub fn new_decision_id() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;

    static PROCESS: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let process = *PROCESS.get_or_init(|| {
        // `RandomState` is seeded from the operating system's randomness; the pid and the time make
        // two processes that fork from one parent differ too.
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos());
        hasher.write_u128(now);
        hasher.finish()
    });
    (u128::from(process) << 64) | u128::from(NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Where a hive's committed versions live: a snapshot with its version, a commit against a base
/// version, and a way to follow newer versions.
///
/// Commits must be linearizable per memory: versions start at the initial state's version and
/// grow by one per commit, with no gaps; a change is applied exactly once. Reads need not be:
/// [`snapshot`](Memory::snapshot) is a local read of what this process has seen, and may lag a
/// commit made through another handle or process for a moment (a shared backend's handle learns
/// of it as it follows the newest version; [`changed`](Memory::changed) waits for it).
pub trait Memory<S: State>: Send + Sync + 'static {
    /// The newest version this process has seen, without waiting (a local, lock-free read).
    fn snapshot(&self) -> Snapshot<S>;

    /// Commits `request.accepted` on top of `request.base`, or, if a newer version exists, on top
    /// of the newest one (a rebase).
    ///
    /// # Errors
    ///
    /// [`MemoryError`] when the backend fails; then nothing was committed.
    fn commit<'a>(
        &'a self,
        request: CommitRequest<'a, S>,
    ) -> impl Future<Output = Result<Committed, MemoryError>> + Send + 'a;

    /// Waits until a version newer than `after` is visible here, and returns it.
    ///
    /// # Errors
    ///
    /// [`MemoryError`] when the backend fails while waiting.
    fn changed(
        &self,
        after: u64,
    ) -> impl Future<Output = Result<Snapshot<S>, MemoryError>> + Send + '_;
}

/// The in-process memory: a [`SnapshotCell`], lock-free reads and a compare-and-swap commit.
pub struct LocalMemory<S> {
    /// Wakes `committed`'s waiters after every write, through this memory or through the cell.
    cell: SnapshotCell<S>,
    committed: Arc<Notify>,
}

impl<S: State> fmt::Debug for LocalMemory<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalMemory")
            .field("version", &self.cell.version())
            .finish()
    }
}

impl<S: State> LocalMemory<S> {
    /// A memory at version 0 holding `initial`.
    pub fn new(initial: S) -> Self {
        let committed = Arc::new(Notify::new());
        let wake = committed.clone();
        LocalMemory {
            cell: SnapshotCell::with_watcher(initial, 0, move |_| wake.notify_waiters()),
            committed,
        }
    }

    /// The cell that holds the versions. A write through it is a new version like a round's
    /// commit: [`changed`](Memory::changed) waiters wake for it.
    pub fn cell(&self) -> &SnapshotCell<S> {
        &self.cell
    }

    /// Commits without waiting (the in-process commit never blocks).
    pub fn commit_now(&self, request: &CommitRequest<'_, S>) -> Committed {
        self.commit_from(&self.cell.load(), request)
    }

    /// [`commit_now`](Self::commit_now) with `view`, a snapshot of this memory the caller already
    /// holds (a round's): applied to `view` when the memory is still at the request's base and
    /// `view` is that version, else to the newer state.
    ///
    /// The round holds the snapshot it read its base from; loading another one here cost a
    /// second reference count increment and decrement on the current version, a cache line that
    /// every round running at once writes. Checking the version only reads it.
    pub(crate) fn commit_from(
        &self,
        view: &Snapshot<S>,
        request: &CommitRequest<'_, S>,
    ) -> Committed {
        let committed = if view.version() == request.base && self.cell.version() == request.base {
            match self.cell.commit(view.stage(request.apply_to(view))) {
                Ok(version) => Committed::new(version, false),
                Err(_) => Committed::new(self.cell.update(|state| request.apply_to(state)), true),
            }
        } else {
            Committed::new(self.cell.update(|state| request.apply_to(state)), true)
        };
        // The cell's watcher has woken `changed`'s waiters.
        committed
    }
}

impl<S: State> Memory<S> for LocalMemory<S> {
    fn snapshot(&self) -> Snapshot<S> {
        self.cell.load()
    }

    fn commit<'a>(
        &'a self,
        request: CommitRequest<'a, S>,
    ) -> impl Future<Output = Result<Committed, MemoryError>> + Send + 'a {
        std::future::ready(Ok(self.commit_now(&request)))
    }

    async fn changed(&self, after: u64) -> Result<Snapshot<S>, MemoryError> {
        loop {
            // Register before checking so that a commit between the check and the wait is seen.
            let notified = self.committed.notified();
            let snapshot = self.cell.load();
            if snapshot.version() > after {
                return Ok(snapshot);
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lockfree::{Proposal, ProposalId};

    #[derive(Clone, Debug, Default, PartialEq)]
    struct Counter(i64);

    impl State for Counter {
        type Key = u8;
        type Change = i64;
        fn apply(&mut self, delta: &i64) {
            self.0 += delta;
        }
    }

    fn request<'a>(
        base: u64,
        accepted: &'a [AcceptedChange<'a, Counter>],
    ) -> CommitRequest<'a, Counter> {
        CommitRequest {
            decision_id: 1,
            round: 1,
            base,
            accepted,
        }
    }

    #[test]
    fn a_commit_on_the_current_version_is_not_rebased_and_a_stale_one_is() {
        let memory = LocalMemory::new(Counter(0));
        let proposal = Proposal::new(ProposalId(1), 5).writes([0]);
        let accepted = [AcceptedChange {
            proposal: &proposal,
            proposer: None,
        }];

        assert_eq!(
            memory.commit_now(&request(0, &accepted)),
            Committed::new(1, false)
        );
        assert_eq!(
            memory.commit_now(&request(0, &accepted)),
            Committed::new(2, true)
        );
        let snapshot = memory.snapshot();
        assert_eq!((snapshot.version(), snapshot.0), (2, 10));
    }

    /// A round commits from the snapshot it read its base from: applied to that snapshot while
    /// the memory is still at its version, rebased onto the newer state (the change applied once,
    /// on top of the other commit's) when another commit landed since.
    #[test]
    fn a_commit_from_a_held_view_is_rebased_exactly_when_another_commit_landed_since() {
        let memory = LocalMemory::new(Counter(1));
        let proposal = Proposal::new(ProposalId(1), 5).writes([0]);
        let accepted = [AcceptedChange {
            proposal: &proposal,
            proposer: None,
        }];
        let view = memory.snapshot();
        assert_eq!(
            memory.commit_from(&view, &request(0, &accepted)),
            Committed::new(1, false)
        );
        assert_eq!(memory.snapshot().0, 6);
        // `view` is now stale: the same request lands on version 1, not on the view's state.
        assert_eq!(
            memory.commit_from(&view, &request(0, &accepted)),
            Committed::new(2, true)
        );
        let snapshot = memory.snapshot();
        assert_eq!((snapshot.version(), snapshot.0), (2, 11));
        // A view at the current version commits without a rebase.
        let current = memory.snapshot();
        assert_eq!(
            memory.commit_from(&current, &request(2, &accepted)),
            Committed::new(3, false)
        );
        assert_eq!(memory.snapshot().0, 16);
    }

    #[tokio::test]
    async fn changed_wakes_on_the_next_commit_and_returns_at_once_for_an_older_version() {
        let memory = Arc::new(LocalMemory::new(Counter(0)));
        let follower = tokio::spawn({
            let memory = Arc::clone(&memory);
            async move { memory.changed(0).await.map(|s| s.version()) }
        });
        tokio::task::yield_now().await;
        let proposal = Proposal::new(ProposalId(1), 1).writes([0]);
        let accepted = [AcceptedChange {
            proposal: &proposal,
            proposer: None,
        }];
        memory.commit(request(0, &accepted)).await.unwrap();
        assert_eq!(follower.await.unwrap().unwrap(), 1);
        assert_eq!(memory.changed(0).await.unwrap().version(), 1);
    }
}
