//! The hive's handle on its memory: the in-process [`LocalMemory`] on a direct path, any other
//! [`Memory`] behind an object-safe adapter.

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::agent::BoxFuture;
use crate::decision::Decision;
use crate::lockfree::Snapshot;
use crate::memory::{CommitRequest, Committed, LocalMemory, Memory, MemoryError};
use crate::state::State;

/// How many committed versions a hive's history keeps unless told otherwise
/// ([`HiveBuilder::history`](crate::HiveBuilder::history)): none, because each kept version costs
/// a copy of its decision (about 12% more instructions on a 10-agent round); turn it on while
/// debugging agents.
pub const DEFAULT_HISTORY: usize = 0;

/// The object-safe face of [`Memory`], for backends other than [`LocalMemory`].
trait DynMemory<S: State>: Send + Sync + 'static {
    fn snapshot(&self) -> Snapshot<S>;

    fn commit_boxed<'a>(
        &'a self,
        request: CommitRequest<'a, S>,
    ) -> BoxFuture<'a, Result<Committed, MemoryError>>;

    fn changed_boxed(&self, after: u64) -> BoxFuture<'_, Result<Snapshot<S>, MemoryError>>;

    fn as_any(&self) -> &dyn Any;
}

impl<S: State, M: Memory<S>> DynMemory<S> for M {
    fn snapshot(&self) -> Snapshot<S> {
        Memory::snapshot(self)
    }

    fn commit_boxed<'a>(
        &'a self,
        request: CommitRequest<'a, S>,
    ) -> BoxFuture<'a, Result<Committed, MemoryError>> {
        Box::pin(Memory::commit(self, request))
    }

    fn changed_boxed(&self, after: u64) -> BoxFuture<'_, Result<Snapshot<S>, MemoryError>> {
        Box::pin(Memory::changed(self, after))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Where the versions live: in this process (no allocation, no dynamic call per commit), or in any
/// other backend, reached through boxed futures (a remote commit costs far more than the box).
enum Backend<S: State> {
    Local(LocalMemory<S>),
    Remote(Box<dyn DynMemory<S>>),
}

/// A hive's collective memory, read with [`Hive::memory`](crate::Hive::memory): the current version
/// of the state, whatever [`Memory`] backend holds it.
///
/// # Examples
///
/// ```
/// use hivekit_hive::{Hive, LocalMemory, State};
///
/// #[derive(Clone, Default)]
/// struct Counter(u64);
/// impl State for Counter {
///     type Key = ();
///     type Change = u64;
///     fn apply(&mut self, change: &u64) { self.0 += change; }
/// }
///
/// let hive = Hive::builder(Counter(7)).build()?;
/// assert_eq!(hive.memory().load().0, 7);
/// assert_eq!(hive.memory().version(), 0);
/// // The in-process default gives access to its cell.
/// assert!(hive.memory().local().is_some());
/// assert!(hive.memory().downcast_ref::<LocalMemory<Counter>>().is_some());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct HiveMemory<S: State> {
    backend: Backend<S>,
    /// The newest committed versions this hive made, oldest first, at most `depth`.
    history: Mutex<VecDeque<HistoryEntry<S>>>,
    depth: usize,
}

/// One version in a hive's history: the state as committed, and the decision that produced it.
pub struct HistoryEntry<S: State> {
    /// The state at that version.
    pub snapshot: Snapshot<S>,
    /// The round's decision.
    pub decision: Arc<Decision<S>>,
}

impl<S: State> Clone for HistoryEntry<S> {
    fn clone(&self) -> Self {
        Self {
            snapshot: self.snapshot.clone(),
            decision: Arc::clone(&self.decision),
        }
    }
}

impl<S: State> fmt::Debug for HistoryEntry<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HistoryEntry")
            .field("version", &self.snapshot.version())
            .field("decision", &self.decision)
            .finish()
    }
}

impl<S: State> fmt::Debug for HiveMemory<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let backend = match self.backend {
            Backend::Local(_) => "local",
            Backend::Remote(_) => "remote",
        };
        f.debug_struct("HiveMemory")
            .field("backend", &backend)
            .field("version", &self.version())
            .finish()
    }
}

impl<S: State> HiveMemory<S> {
    /// Wraps `memory`, keeping a [`LocalMemory`] on the direct path.
    pub(crate) fn new<M: Memory<S>>(memory: M) -> Self {
        let mut slot = Some(memory);
        // A `LocalMemory` passed to `builder_with_memory` takes the same path as `builder`'s.
        let local = (&mut slot as &mut dyn Any)
            .downcast_mut::<Option<LocalMemory<S>>>()
            .and_then(Option::take);
        let backend = match (local, slot) {
            (Some(local), _) => Backend::Local(local),
            (None, Some(memory)) => Backend::Remote(Box::new(memory)),
            (None, None) => unreachable!("the memory is taken only when it is a LocalMemory"),
        };
        HiveMemory {
            backend,
            history: Mutex::new(VecDeque::new()),
            depth: DEFAULT_HISTORY,
        }
    }

    pub(crate) fn set_depth(&mut self, depth: usize) {
        self.depth = depth;
    }

    /// How many committed versions the history keeps.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// The state at `version` and the decision that produced it, while the history holds it (the
    /// newest [`HiveMemory::depth`] versions this hive committed). A round records its version
    /// right after committing it; when another round commits in that instant, the version it
    /// overtook is left out rather than recorded with the wrong state.
    ///
    /// # Examples
    ///
    /// ```
    /// use hivekit_hive::{Hive, State};
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
    /// let hive = Hive::builder(Counter::default()).history(2).build()?;
    /// hive.spawn(Bump);
    /// for _ in 0..3 {
    ///     hive.decide().await?;
    /// }
    /// let second = hive.memory().at(2).expect("kept");
    /// assert_eq!((second.snapshot.0, second.decision.round), (2, 2));
    /// assert!(hive.memory().at(1).is_none(), "only the newest two are kept");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn at(&self, version: u64) -> Option<HistoryEntry<S>> {
        self.history
            .lock()
            .iter()
            .find(|entry| entry.snapshot.version() == version)
            .cloned()
    }

    /// Every version the history holds, oldest first.
    pub fn history(&self) -> Vec<HistoryEntry<S>> {
        self.history.lock().iter().cloned().collect()
    }

    /// Records a version this hive committed, if the history keeps any and `snapshot` is it.
    pub(crate) fn remember(&self, snapshot: Snapshot<S>, decision: &Decision<S>) {
        if self.depth == 0 || snapshot.version() != decision.version {
            return;
        }
        let entry = HistoryEntry {
            snapshot,
            decision: Arc::new(decision.clone()),
        };
        let mut history = self.history.lock();
        // Concurrent rounds may finish out of order: keep the entries sorted by version.
        let at = history.partition_point(|kept| kept.snapshot.version() < entry.snapshot.version());
        history.insert(at, entry);
        while history.len() > self.depth {
            history.pop_front();
        }
    }

    /// The current version of the state, as this process sees it (for a remote backend, the
    /// newest version it has followed).
    ///
    /// # Progress
    ///
    /// Lock-free for [`LocalMemory`]; whatever the backend's [`Memory::snapshot`] gives otherwise.
    pub fn load(&self) -> Snapshot<S> {
        match &self.backend {
            Backend::Local(local) => local.cell().load(),
            Backend::Remote(remote) => remote.snapshot(),
        }
    }

    /// Runs `reader` on the current state and its version, as [`SnapshotCell::read`] does: for
    /// [`LocalMemory`] without taking a snapshot (no reference count touched), for another backend
    /// on the newest version it has followed.
    ///
    /// # Progress
    ///
    /// Lock-free for [`LocalMemory`] (the cell's fast path); whatever the backend's
    /// [`Memory::snapshot`] gives otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// use hivekit_hive::{Hive, State};
    ///
    /// #[derive(Clone, Default)]
    /// struct Counter(u64);
    /// impl State for Counter {
    ///     type Key = ();
    ///     type Change = u64;
    ///     fn apply(&mut self, change: &u64) { self.0 += change; }
    /// }
    ///
    /// let hive = Hive::builder(Counter(7)).build()?;
    /// assert_eq!(hive.memory().read(|counter, version| (counter.0, version)), (7, 0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// [`SnapshotCell::read`]: hivekit_lockfree::SnapshotCell::read
    pub fn read<R>(&self, reader: impl FnOnce(&S, u64) -> R) -> R {
        match &self.backend {
            Backend::Local(local) => local.cell().read(reader),
            Backend::Remote(remote) => {
                let snapshot = remote.snapshot();
                reader(&snapshot, snapshot.version())
            }
        }
    }

    /// The current version number.
    pub fn version(&self) -> u64 {
        match &self.backend {
            Backend::Local(local) => local.cell().version(),
            Backend::Remote(remote) => remote.snapshot().version(),
        }
    }

    /// The in-process memory, when the hive uses it (always for [`Hive::builder`](crate::Hive::builder)).
    pub fn local(&self) -> Option<&LocalMemory<S>> {
        match &self.backend {
            Backend::Local(local) => Some(local),
            Backend::Remote(_) => None,
        }
    }

    /// The backend as its own type, when it is an `M`: a remote backend's own methods (membership,
    /// election, ...) stay reachable from the hive.
    pub fn downcast_ref<M: Memory<S>>(&self) -> Option<&M> {
        match &self.backend {
            Backend::Local(local) => (local as &dyn Any).downcast_ref(),
            Backend::Remote(remote) => remote.as_any().downcast_ref(),
        }
    }

    /// Waits until a version newer than `after` is visible here, and returns it.
    ///
    /// # Errors
    ///
    /// [`MemoryError`] when the backend fails while waiting (never for [`LocalMemory`]).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future stops waiting and changes nothing.
    pub async fn changed(&self, after: u64) -> Result<Snapshot<S>, MemoryError> {
        match &self.backend {
            Backend::Local(local) => Memory::changed(local, after).await,
            Backend::Remote(remote) => remote.changed_boxed(after).await,
        }
    }

    /// Commits a round's accepted changes: at once for [`LocalMemory`] (from `view`, the round's
    /// snapshot of this memory, see [`LocalMemory::commit_from`]), through the backend otherwise.
    pub(crate) async fn commit(
        &self,
        view: &Snapshot<S>,
        request: CommitRequest<'_, S>,
    ) -> Result<Committed, MemoryError> {
        match &self.backend {
            Backend::Local(local) => Ok(local.commit_from(view, &request)),
            Backend::Remote(remote) => remote.commit_boxed(request).await,
        }
    }
}
