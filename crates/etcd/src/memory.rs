//! [`EtcdMemory`]: a hive's collective memory on etcd, shared by every process that opens the same
//! prefix.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use etcd_client::{
    Client, Compare, CompareOp, DeleteOptions, GetOptions, KeyValue, PutOptions, Txn, TxnOp,
    TxnOpResponse,
};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::Notify;

use hivekit_hive::{CommitRequest, Committed, Memory, MemoryError, Snapshot, SnapshotCell, State};

use crate::config::EtcdConfig;
use crate::error::{lease_not_found, not_applied, unreachable_now, EtcdError};
use crate::layout::{
    json, prefix_end, Head, HeadRef, HeadWithEntry, HistoryChange, HistoryEntry, HistoryEntryRef,
    Keys, Layout, Meta, Whole, DECISIONS_LEASED, FENCED, FORMAT, FORMAT_VERSION,
};

mod commit;
mod decisions;
mod follow;
mod limits;
mod load;
mod went_back;

use decisions::{lease_old_decisions, DecisionLeases};
use follow::follow;
use limits::TxnSize;
use load::{initialize, load, read_head_and_range, read_range};

/// Keys read per request when scanning a range.
const PAGE: i64 = 256;

/// Counters of what an [`EtcdMemory`] did, since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EtcdMemoryStats {
    /// Commits made by this process.
    pub commits: u64,
    /// Of those, commits applied to a newer version than the round read.
    pub rebased: u64,
    /// Transactions that lost to another commit and were retried.
    pub conflicts: u64,
    /// Commits whose answer was lost and that were settled by reading the decision back.
    pub ambiguous: u64,
    /// Versions committed elsewhere and installed here.
    pub followed: u64,
    /// Times this process fell behind and reloaded: its follower behind etcd's compaction (reading
    /// the history again), or its next history entry trimmed (reading the whole state).
    pub reloads: u64,
}

#[derive(Debug, Default)]
struct Counters {
    commits: AtomicU64,
    rebased: AtomicU64,
    conflicts: AtomicU64,
    ambiguous: AtomicU64,
    followed: AtomicU64,
    reloads: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Where the local copy stands in etcd's revisions. Changed only with the cell, under one lock.
#[derive(Debug, Clone)]
struct Position {
    /// The revision of the transaction that created the cell's version (the `head` key's
    /// `mod_revision`): what the next commit compares.
    revision: i64,
    /// The decision that created the cell's version (hexadecimal; empty for version 0): which
    /// version it is in etcd's chain of versions, where a revision cannot say (an etcd restored
    /// from a backup commits other decisions at the same revisions again).
    decision: String,
    /// Every history entry up to this revision is installed: where the watch resumes.
    seen_through: i64,
    /// The `head` key's `create_revision`: the memory's identity. A head created at another
    /// revision belongs to a memory created since (the prefix wiped, or etcd restored).
    head_created: i64,
    /// Set once the memory went back under this process ([`EtcdError::WentBack`]): the version
    /// etcd holds now, if any. Nothing is installed after it.
    went_back: Option<Option<u64>>,
    /// Set while the follower is stopped at a stored value it cannot read (the key, and why):
    /// the next version cannot be installed, so `changed` reports it rather than wait. Cleared
    /// when a newer version is installed (a reload past it).
    unreadable: Option<(String, Arc<serde_json::Error>)>,
}

/// A hive's collective memory in etcd: every process that opens the same prefix shares one history.
///
/// - [`snapshot`](Memory::snapshot) is local and lock-free: a [`SnapshotCell`] that follows
///   commits made elsewhere through an etcd watch on the history; a process further behind than
///   the history keeps reloads the whole state ([`EtcdMemoryStats::reloads`]).
/// - [`commit`](Memory::commit) is one etcd transaction, conditioned on the revision of the version
///   it applies to, that writes the new state (or only the entries it touched, with
///   [`Keyed`](crate::Keyed)), a history entry and the decision's id, and deletes the history entry
///   that falls out of the newest [`history_depth`](EtcdConfig::history_depth) versions. A
///   commit that loses to another reads the newer versions, re-applies its changes on top and
///   retries (reported `rebased`).
/// - A commit whose answer is lost (connection dropped, leader changed, timeout) is retried with
///   the same decision id; the transaction only applies while that id is absent, so it lands at most
///   once, and a retry that finds the id reports the version it created (this handle's own
///   copy then catches up within the commit timeout; if it cannot, say a member it reads from is
///   paused, [`snapshot`](Memory::snapshot) may lag the version returned for a moment, until the
///   follower installs it). The id's key lives for the
///   [decision window](EtcdConfig::decision_window) (ten minutes by default, at least the commit
///   timeout), then etcd deletes it: the keys stay bounded however many commits are made.
/// - A version committed elsewhere that this process cannot read (a change type that differs
///   between processes, say) stops the follower there: [`changed`](Memory::changed) then fails
///   with [`MemoryError::Corrupt`] naming the key, and commits with [`EtcdError::Corrupt`].
///
/// Dropping the memory stops its follower task.
pub struct EtcdMemory<S, L = Whole> {
    shared: Arc<Shared<S, L>>,
    follower: tokio::task::JoinHandle<()>,
}

struct Shared<S, L> {
    config: EtcdConfig,
    client: Client,
    keys: Keys,
    cell: SnapshotCell<S>,
    position: Mutex<Position>,
    changed: Notify,
    counters: Counters,
    decision_leases: DecisionLeases,
    /// The decisions this process is committing (hexadecimal, as in the history): the follower
    /// may install one before its commit hears back (etcd notifies watchers first), and must not
    /// count it as followed.
    committing: Mutex<Vec<String>>,
    _layout: PhantomData<fn() -> L>,
}

impl<S: State, L> fmt::Debug for EtcdMemory<S, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdMemory")
            .field("prefix", &self.shared.keys.prefix)
            .field("version", &self.shared.cell.version())
            .finish()
    }
}

impl<S, L> Drop for EtcdMemory<S, L> {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

impl<S, L> EtcdMemory<S, L>
where
    S: State,
    S::Change: Serialize + DeserializeOwned,
    L: Layout<S>,
{
    /// Connects and opens the memory under `config`'s prefix, creating it with `initial` at
    /// version 0 when the prefix is empty; otherwise `initial` is ignored and the stored state is
    /// loaded. History entries older than the configured depth ([`EtcdConfig::history`]) are
    /// trimmed.
    ///
    /// # Errors
    ///
    /// [`EtcdError::DecisionWindowTooShort`] when the configured
    /// [decision window](EtcdConfig::decision_window) is shorter than the commit timeout;
    /// [`EtcdError::Unreachable`] when etcd does not answer within the connect timeout;
    /// [`EtcdError::NotAMemory`] when the prefix holds other data; [`EtcdError::LayoutMismatch`]
    /// when the memory was created with another layout; [`EtcdError::Corrupt`] naming the key of a
    /// stored value that does not deserialize; [`EtcdError::TooManyOperations`] or
    /// [`EtcdError::TooLarge`] when the prefix is empty and `initial` does not fit in the one
    /// transaction that creates the memory (its marker, head and state together, so that no process
    /// ever sees half of it): with [`Keyed`](crate::Keyed), one operation per entry, so at most
    /// etcd's `--max-txn-ops` less two (126 by default). Create a larger keyed state with fewer
    /// entries and add the rest by commits, or raise etcd's limit and
    /// [`max_txn_ops`](EtcdConfig::max_txn_ops).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a cancelled open leaves at most an initialized, empty memory.
    pub async fn open(config: EtcdConfig, initial: S) -> Result<Self, EtcdError> {
        // Before connecting: a configuration that cannot work fails at once, etcd up or not.
        config.validate_memory()?;
        let client = config.connect().await?;
        Self::open_with_client(client, config, initial).await
    }

    /// Like [`open`](Self::open), on a client already connected.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    pub async fn open_with_client(
        client: Client,
        config: EtcdConfig,
        initial: S,
    ) -> Result<Self, EtcdError> {
        config.validate_memory()?;
        let keys = Keys::new(&config.prefix);
        initialize::<S, L>(&client, &config, &keys, &initial).await?;
        drop(initial);
        let loaded = load::<S, L>(&client, &config, &keys).await?;
        let shared = Arc::new(Shared {
            config,
            client,
            keys,
            cell: SnapshotCell::with_version(loaded.state, loaded.version),
            position: Mutex::new(Position {
                revision: loaded.head_revision,
                decision: loaded.decision,
                seen_through: loaded.read_revision,
                head_created: loaded.head_created,
                went_back: None,
                unreadable: None,
            }),
            changed: Notify::new(),
            counters: Counters::default(),
            committing: Mutex::new(Vec::new()),
            decision_leases: DecisionLeases::default(),
            _layout: PhantomData,
        });
        if let Err(error) = shared.trim_history(loaded.version).await {
            // Housekeeping: the next open, or the commits' own trimming, removes them later.
            tracing::warn!(%error, "trimming the history's older entries failed");
        }
        match lease_old_decisions(
            &shared.client,
            &shared.config,
            &shared.keys,
            &shared.decision_leases,
        )
        .await
        {
            Ok(0) => {}
            Ok(attached) => tracing::info!(
                prefix = %shared.keys.prefix,
                attached,
                "decision keys written before they expired now expire after the decision window"
            ),
            // Housekeeping: the next open tries again.
            Err(error) => tracing::warn!(%error, "attaching old decision keys to a lease failed"),
        }
        let follower = tokio::spawn(follow(Arc::clone(&shared)));
        Ok(EtcdMemory { shared, follower })
    }

    /// The newest version this process has seen.
    pub fn version(&self) -> u64 {
        self.shared.cell.version()
    }

    /// What this memory did since it was opened.
    pub fn stats(&self) -> EtcdMemoryStats {
        let counters = &self.shared.counters;
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        EtcdMemoryStats {
            commits: read(&counters.commits),
            rebased: read(&counters.rebased),
            conflicts: read(&counters.conflicts),
            ambiguous: read(&counters.ambiguous),
            followed: read(&counters.followed),
            reloads: read(&counters.reloads),
        }
    }

    /// The configuration the memory was opened with.
    pub fn config(&self) -> &EtcdConfig {
        &self.shared.config
    }

    /// The etcd client the memory uses (cheap to clone), e.g. for [`Membership`](crate::Membership).
    pub fn client(&self) -> &Client {
        &self.shared.client
    }

    /// The history entries for versions `from..=to` that etcd still holds, read in order.
    ///
    /// The history keeps the newest [`history_depth`](EtcdConfig::history_depth) versions: older
    /// ones are trimmed, so the first entry returned may be later than `from`, and with a depth of
    /// 0 none is returned.
    ///
    /// # Errors
    ///
    /// [`EtcdError`] when etcd fails or an entry does not deserialize.
    pub async fn history(
        &self,
        from: u64,
        to: u64,
    ) -> Result<Vec<HistoryEntry<S::Change>>, EtcdError> {
        let keys = &self.shared.keys;
        let end = keys.history(to.saturating_add(1));
        let (pairs, _) = read_range(
            &self.shared.client,
            &self.shared.config,
            keys.history(from).into_bytes(),
            end.into_bytes(),
        )
        .await?;
        pairs
            .iter()
            .map(|pair| decode(pair.key(), pair.value()))
            .collect()
    }

    /// Settles the outcome of a decision for good: the version it created, or `None` after fencing
    /// it off so that it can never commit (for a decision whose commit returned
    /// [`EtcdError::OutcomeUnknown`]).
    ///
    /// Call it within the [decision window](EtcdConfig::decision_window) after the commit gave up:
    /// the decision's key then still says whether it landed. Later the key may have expired; the
    /// history entries still held (and the head) are searched for the decision whenever its key
    /// is found fenced (by this call, or by one that failed midway or runs at the same time), and
    /// a decision that landed before all of them is reported `None` although it committed.
    ///
    /// # Errors
    ///
    /// [`EtcdError`] when etcd cannot be reached; then nothing is settled: a later call answers as
    /// this one would have.
    pub async fn resolve(&self, decision_id: u128) -> Result<Option<u64>, EtcdError> {
        let shared = &self.shared;
        let key = shared.keys.decision(decision_id);
        let kv = crate::clients::kv(&shared.client);
        let response = shared
            .with_decision_lease(|options| {
                let kv = kv.clone();
                let txn = Txn::new()
                    .when([Compare::version(key.clone(), CompareOp::Equal, 0)])
                    .and_then([TxnOp::put(key.clone(), FENCED, options)])
                    .or_else([TxnOp::get(key.clone(), None)]);
                shared.config.request("resolve decision", move || {
                    let mut kv = kv.clone();
                    let txn = txn.clone();
                    async move { kv.txn(txn).await }
                })
            })
            .await?;
        if !response.succeeded() {
            if let Some(found) = first_kv(&response.op_responses(), 0) {
                if let Ok(version) = decided_version(&found)? {
                    return Ok(Some(version));
                }
            }
        }
        // The key is fenced now, by this call or an earlier one (which may have failed before it
        // searched, or be searching now): the decision never landed, or it landed longer than the
        // window ago and its key expired before the fence. No copy of it can land any more either
        // way, so a history entry or head naming it says it landed before the fence.
        let Some(version) = shared.find_decided(decision_id).await? else {
            return Ok(None);
        };
        // It landed: the key says so again, for the next `resolve`.
        shared
            .with_decision_lease(|options| {
                let (kv, key) = (kv.clone(), key.clone());
                shared.config.request("resolve decision", move || {
                    let mut kv = kv.clone();
                    let (key, options) = (key.clone(), options.clone());
                    async move { kv.put(key, version.to_string(), options).await }
                })
            })
            .await?;
        Ok(Some(version))
    }
}

impl<S, L> Memory<S> for EtcdMemory<S, L>
where
    S: State,
    S::Change: Serialize + DeserializeOwned,
    L: Layout<S>,
{
    fn snapshot(&self) -> Snapshot<S> {
        self.shared.cell.load()
    }

    async fn commit<'a>(&'a self, request: CommitRequest<'a, S>) -> Result<Committed, MemoryError> {
        self.shared
            .commit(&request)
            .await
            .map_err(MemoryError::from)
    }

    async fn changed(&self, after: u64) -> Result<Snapshot<S>, MemoryError> {
        loop {
            // Created before the check, so that an install between the check and the wait wakes it.
            let notified = self.shared.changed.notified();
            let snapshot = self.shared.cell.load();
            if snapshot.version() > after {
                return Ok(snapshot);
            }
            // No newer version will ever come to this handle.
            self.shared.check_not_gone_back()?;
            // None comes until the follower gets past a value it cannot read.
            self.shared.check_followable()?;
            notified.await;
        }
    }
}

/// The fields of a history entry that name its decision (the changes are skipped unread).
#[derive(serde::Deserialize)]
struct Decided {
    version: u64,
    decision_id: String,
}

/// A loaded memory: the state at `version`, created by `decision` at `head_revision`, read at
/// `read_revision`.
struct Loaded<S> {
    state: S,
    version: u64,
    decision: String,
    head_revision: i64,
    head_created: i64,
    read_revision: i64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or(0)
}

fn decode<T: DeserializeOwned>(key: &[u8], value: &[u8]) -> Result<T, EtcdError> {
    serde_json::from_slice(value).map_err(|source| EtcdError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        source,
    })
}

/// The first key-value of the `index`th response of a transaction, when it is a read that found
/// one.
fn first_kv(responses: &[TxnOpResponse], index: usize) -> Option<KeyValue> {
    match responses.get(index) {
        Some(TxnOpResponse::Get(get)) => get.kvs().first().cloned(),
        _ => None,
    }
}

/// What a decision key holds: `Ok(version)` or `Err(())` when it was fenced off.
fn decided_version(pair: &KeyValue) -> Result<Result<u64, ()>, EtcdError> {
    if pair.value() == FENCED.as_bytes() {
        return Ok(Err(()));
    }
    decode::<u64>(pair.key(), pair.value()).map(Ok)
}

impl<S, L> Shared<S, L>
where
    S: State,
    S::Change: Serialize + DeserializeOwned,
    L: Layout<S>,
{
    /// The cell's version, its state, the revision and the decision that created it, read
    /// together.
    fn position(&self) -> (Snapshot<S>, i64, String) {
        let position = self.position.lock();
        (
            self.cell.load(),
            position.revision,
            position.decision.clone(),
        )
    }

    /// Runs `request` with the put options of the decision lease; when etcd no longer knows that
    /// lease (restored from a backup, revoked by an operator), forgets it and runs `request` once
    /// more with a new one (nothing was applied: etcd refuses the whole request).
    async fn with_decision_lease<T, F, Fut>(&self, mut request: F) -> Result<T, EtcdError>
    where
        F: FnMut(Option<PutOptions>) -> Fut,
        Fut: Future<Output = Result<T, EtcdError>>,
    {
        let mut retried = false;
        loop {
            let lease = self
                .decision_leases
                .lease(&self.client, &self.config)
                .await?;
            match request(lease.map(|id| PutOptions::new().with_lease(id))).await {
                Err(EtcdError::Client { source, .. })
                    if !retried && lease.is_some() && lease_not_found(&source) =>
                {
                    if let Some(id) = lease {
                        self.decision_leases.forget(id);
                    }
                    retried = true;
                }
                outcome => return outcome,
            }
        }
    }

    /// Installs `version`, computed from the version before it by `next`, when it is the next one;
    /// returns whether it was installed (false: already there).
    /// `followed` says whether the version was committed elsewhere (counted before waiters wake,
    /// so that a woken reader sees the count).
    fn install(
        &self,
        version: u64,
        revision: i64,
        decision: &str,
        followed: bool,
        next: impl FnOnce(&S) -> S,
    ) -> Result<bool, EtcdError> {
        let installed = {
            let mut position = self.position.lock();
            let current = self.cell.load();
            if let Some(stored) = position.went_back {
                return Err(self.went_back_error(current.version(), stored));
            }
            if version <= current.version() {
                false
            } else if version != current.version() + 1 {
                return Err(EtcdError::HistoryGap {
                    prefix: self.keys.prefix.clone(),
                    expected: current.version() + 1,
                    found: version,
                });
            } else {
                // The only writer: the lock is held, so the store lands exactly at `version`.
                self.cell.store(next(&current));
                position.unreadable = None;
                position.revision = revision;
                decision.clone_into(&mut position.decision);
                position.seen_through = position.seen_through.max(revision);
                true
            }
        };
        if installed {
            if followed {
                bump(&self.counters.followed);
            }
            self.changed.notify_waiters();
        }
        Ok(installed)
    }

    /// Installs a history entry read from etcd.
    fn install_entry(
        &self,
        pair: &KeyValue,
        entry: &HistoryEntry<S::Change>,
    ) -> Result<bool, EtcdError> {
        let followed = !self.committing.lock().contains(&entry.decision_id);
        self.install(
            entry.version,
            pair.mod_revision(),
            &entry.decision_id,
            followed,
            |state| {
                let mut next = state.clone();
                for change in &entry.changes {
                    next.apply(&change.change);
                }
                next
            },
        )
    }

    /// Reads and installs every version newer than the local one, from the history while it holds
    /// them, otherwise by reloading the whole state; returns whether it reloaded (the caller counts
    /// it, see [`EtcdMemoryStats::reloads`]).
    ///
    /// The head is read with the entries, at the same revision, and checked first: entries under a
    /// head created at another revision belong to a memory created since (the prefix wiped while
    /// this process was cut off, and etcd compacted the head's delete away), and installed onto this
    /// process's state they would make a state no memory ever held, which its next commit would
    /// write.
    async fn catch_up(&self) -> Result<bool, EtcdError> {
        self.check_not_gone_back()?;
        // From the local version's own entry, which says whether etcd still holds that version.
        let base = self.cell.version();
        let read = read_head_and_range(
            &self.client,
            &self.config,
            self.keys.head(),
            self.keys.history(base).into_bytes(),
            prefix_end(&self.keys.history_prefix()),
        )
        .await?;
        let Some(head_pair) = &read.head else {
            return Err(self.mark_went_back(None));
        };
        let head: HeadWithEntry<S::Change> = decode(head_pair.key(), head_pair.value())?;
        self.check_head(head_pair, head.version)?;
        self.check_chain(base, head.version, &head.decision, head.previous.as_deref())?;
        for pair in &read.pairs {
            let entry: HistoryEntry<S::Change> = decode(pair.key(), pair.value())?;
            if entry.version == base {
                self.check_chain(base, entry.version, &entry.decision_id, None)?;
                continue;
            }
            match self.install_entry(pair, &entry) {
                Ok(_) => {}
                // The entry after the local version was trimmed (the first one kept is later).
                Err(EtcdError::HistoryGap { .. }) => return self.reload().await,
                Err(error) => return Err(error),
            }
        }
        // The head may be newer than every entry read: nothing is stored for its version when its
        // committer keeps no history (depth 0: the head carries the entry), or the newer entries
        // were trimmed. Stopping short of it would leave this process a version behind for good:
        // the follower's watch resumes after the revision read.
        let local = self.cell.version();
        if head.version > local {
            match head.entry {
                Some(entry) if head.version == local + 1 => {
                    self.install_entry(head_pair, &entry)?;
                }
                _ => return self.reload().await,
            }
        }
        let mut position = self.position.lock();
        position.seen_through = position.seen_through.max(read.revision);
        Ok(false)
    }

    /// Loads the whole state and installs it when it is newer than the local one (returned): for a
    /// process whose next history entry is no longer stored.
    async fn reload(&self) -> Result<bool, EtcdError> {
        let base = self.cell.version();
        let loaded = load::<S, L>(&self.client, &self.config, &self.keys).await?;
        if loaded.head_created != self.position.lock().head_created {
            return Err(self.mark_went_back(Some(loaded.version)));
        }
        self.check_chain(base, loaded.version, &loaded.decision, None)?;
        tracing::info!(
            prefix = %self.keys.prefix,
            local = self.cell.version(),
            loaded = loaded.version,
            "the history no longer holds the next version; reloaded the whole state"
        );
        let installed = {
            let mut position = self.position.lock();
            // The only writer: the lock is held, so nothing lands between the check and the store.
            let installed = self.cell.store_at(loaded.version, loaded.state).is_ok();
            if installed {
                position.unreadable = None;
                position.revision = loaded.head_revision;
                position.decision = loaded.decision;
            }
            position.seen_through = position.seen_through.max(loaded.read_revision);
            installed
        };
        if installed {
            self.changed.notify_waiters();
        }
        Ok(installed)
    }

    /// Catches up and counts a reload.
    async fn catch_up_counted(&self) -> Result<(), EtcdError> {
        if self.catch_up().await? {
            bump(&self.counters.reloads);
        }
        Ok(())
    }

    /// The version `decision_id` created, when a history entry still held or the head names it.
    async fn find_decided(&self, decision_id: u128) -> Result<Option<u64>, EtcdError> {
        let hex = format!("{decision_id:032x}");
        let (pairs, _) = read_range(
            &self.client,
            &self.config,
            self.keys.head().into_bytes(),
            prefix_end(&self.keys.head()),
        )
        .await?;
        for pair in &pairs {
            let head: Head = decode(pair.key(), pair.value())?;
            if head.decision == hex {
                return Ok(Some(head.version));
            }
        }
        let (pairs, _) = read_range(
            &self.client,
            &self.config,
            self.keys.history_prefix().into_bytes(),
            prefix_end(&self.keys.history_prefix()),
        )
        .await?;
        for pair in &pairs {
            let entry: Decided = decode(pair.key(), pair.value())?;
            if entry.decision_id == hex {
                return Ok(Some(entry.version));
            }
        }
        Ok(None)
    }

    /// Deletes the history entries older than this process's window (left by a deeper history
    /// before, or by processes with another depth), once, when the memory is opened.
    async fn trim_history(&self, version: u64) -> Result<(), EtcdError> {
        let keep_from = Keys::oldest_kept(version, self.config.history_depth);
        if keep_from <= 1 {
            return Ok(());
        }
        let kv = crate::clients::kv(&self.client);
        let (start, end) = (self.keys.history_prefix(), self.keys.history(keep_from));
        self.config
            .request("trim history", || {
                let mut kv = kv.clone();
                let (start, end) = (start.clone(), end.clone());
                async move {
                    kv.delete(start, Some(DeleteOptions::new().with_range(end)))
                        .await
                }
            })
            .await?;
        Ok(())
    }
}
