//! [`EtcdMemory`]: a hive's collective memory on etcd, shared by every process that opens the same
//! prefix.

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use etcd_client::{Client, Compare, CompareOp, GetOptions, KeyValue, Txn, TxnOp, TxnOpResponse};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::Notify;

use hivekit_hive::{CommitRequest, Committed, Memory, MemoryError, Snapshot, SnapshotCell, State};

use crate::config::EtcdConfig;
use crate::error::{not_applied, unreachable_now, EtcdError};
use crate::layout::{
    prefix_end, Head, HistoryChange, HistoryEntry, HistoryEntryRef, Keys, Layout, Meta, Whole,
    FENCED, FORMAT, FORMAT_VERSION,
};

/// Keys read per request when scanning a range.
const PAGE: i64 = 256;
/// Bytes counted per operation on top of its key and value, for etcd's request limit.
const OPERATION_OVERHEAD: usize = 16;

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
    /// Times the follower fell behind etcd's compaction and reloaded.
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
#[derive(Debug, Clone, Copy)]
struct Position {
    /// The revision of the transaction that created the cell's version (the `head` key's
    /// `mod_revision`): what the next commit compares.
    revision: i64,
    /// Every history entry up to this revision is installed: where the watch resumes.
    seen_through: i64,
}

/// A hive's collective memory in etcd: every process that opens the same prefix shares one history.
///
/// - [`snapshot`](Memory::snapshot) is local and lock-free: a [`SnapshotCell`] that follows
///   commits made elsewhere through an etcd watch on the history.
/// - [`commit`](Memory::commit) is one etcd transaction, conditioned on the revision of the version
///   it applies to, that writes the new state (or only the entries it touched, with
///   [`Keyed`](crate::Keyed)), a history entry and the decision's id. A commit that loses to another
///   reads the newer versions, re-applies its changes on top and retries (reported `rebased`).
/// - A commit whose answer is lost (connection dropped, leader changed, timeout) is retried with
///   the same decision id; the transaction only applies while that id is absent, so it lands at most
///   once, and a retry that finds the id reports the version it created.
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
    /// loaded.
    ///
    /// # Errors
    ///
    /// [`EtcdError::Unreachable`] when etcd does not answer within the connect timeout;
    /// [`EtcdError::NotAMemory`] when the prefix holds other data; [`EtcdError::LayoutMismatch`]
    /// when the memory was created with another layout; [`EtcdError::Corrupt`] naming the key of a
    /// stored value that does not deserialize.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a cancelled open leaves at most an initialized, empty memory.
    pub async fn open(config: EtcdConfig, initial: S) -> Result<Self, EtcdError> {
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
        config.validate()?;
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
                seen_through: loaded.read_revision,
            }),
            changed: Notify::new(),
            counters: Counters::default(),
            _layout: PhantomData,
        });
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

    /// The history entries for versions `from..=to`, read from etcd, in order.
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
            0,
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
    /// # Errors
    ///
    /// [`EtcdError`] when etcd cannot be reached; then nothing is settled.
    pub async fn resolve(&self, decision_id: u128) -> Result<Option<u64>, EtcdError> {
        let key = self.shared.keys.decision(decision_id);
        let txn = Txn::new()
            .when([Compare::version(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.clone(), FENCED, None)])
            .or_else([TxnOp::get(key.clone(), None)]);
        let kv = self.shared.client.kv_client();
        let response = self
            .shared
            .config
            .request("resolve decision", || {
                let mut kv = kv.clone();
                let txn = txn.clone();
                async move { kv.txn(txn).await }
            })
            .await?;
        if response.succeeded() {
            return Ok(None);
        }
        match first_kv(&response.op_responses(), 0) {
            Some(found) => decided_version(&found).map(|outcome| outcome.ok()),
            None => Ok(None),
        }
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
            notified.await;
        }
    }
}

/// A loaded memory: the state at `version`, created at `head_revision`, read at `read_revision`.
struct Loaded<S> {
    state: S,
    version: u64,
    head_revision: i64,
    read_revision: i64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or(0)
}

fn json<T: Serialize + ?Sized>(what: &'static str, value: &T) -> Result<Vec<u8>, EtcdError> {
    serde_json::to_vec(value).map_err(|source| EtcdError::Serialize { what, source })
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

/// Reads `[start, end)` page by page at one revision (`0`: the current one); returns the pairs and
/// the revision read.
async fn read_range(
    client: &Client,
    config: &EtcdConfig,
    start: Vec<u8>,
    end: Vec<u8>,
    revision: i64,
) -> Result<(Vec<KeyValue>, i64), EtcdError> {
    let kv = client.kv_client();
    let mut pairs = Vec::new();
    let mut start = start;
    let mut revision = revision;
    loop {
        let options = GetOptions::new()
            .with_range(end.clone())
            .with_limit(PAGE)
            .with_revision(revision);
        let mut response = config
            .request("range read", || {
                let mut kv = kv.clone();
                let (start, options) = (start.clone(), options.clone());
                async move { kv.get(start, Some(options)).await }
            })
            .await?;
        if revision == 0 {
            revision = response.header().map_or(0, |header| header.revision());
        }
        let more = response.more();
        let page = response.take_kvs();
        let Some(last) = page.last() else { break };
        start = last.key().to_vec();
        start.push(0);
        pairs.extend(page);
        if !more {
            break;
        }
    }
    Ok((pairs, revision))
}

/// Creates the memory (marker, head at version 0, initial state) when the prefix is empty.
async fn initialize<S: State, L: Layout<S>>(
    client: &Client,
    config: &EtcdConfig,
    keys: &Keys,
    initial: &S,
) -> Result<(), EtcdError> {
    let kv = client.kv_client();
    let marker = config
        .request("read marker", || {
            let mut kv = kv.clone();
            let key = keys.meta();
            async move { kv.get(key, None).await }
        })
        .await?;
    if !marker.kvs().is_empty() {
        return Ok(());
    }
    let others = config
        .request("scan prefix", || {
            let mut kv = kv.clone();
            let prefix = keys.prefix.clone();
            async move {
                kv.get(
                    prefix,
                    Some(GetOptions::new().with_prefix().with_count_only()),
                )
                .await
            }
        })
        .await?;
    if others.count() > 0 {
        // Another process may have created the memory since the marker was read (its marker and
        // state are written in one transaction, so a marker now means the keys are its).
        let marker = config
            .request("read marker", || {
                let mut kv = kv.clone();
                let key = keys.meta();
                async move { kv.get(key, None).await }
            })
            .await?;
        if !marker.kvs().is_empty() {
            return Ok(());
        }
        return Err(EtcdError::NotAMemory {
            prefix: keys.prefix.clone(),
            found: format!("{} keys and no hivekit marker", others.count()),
        });
    }
    let meta = json(
        "memory marker",
        &Meta {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            layout: L::NAME.into(),
        },
    )?;
    let head = json(
        "head",
        &Head {
            version: 0,
            decision: String::new(),
        },
    )?;
    let mut operations = vec![
        TxnOp::put(keys.meta(), meta, None),
        TxnOp::put(keys.head(), head, None),
    ];
    let mut bytes = 0;
    for (relative, value) in L::encode_state(initial)? {
        let key = keys.state(&relative);
        bytes += key.len() + value.len() + OPERATION_OVERHEAD;
        operations.push(TxnOp::put(key, value, None));
    }
    check_limits(config, bytes, operations.len())?;
    // Only the first process to get here creates it; the others load what it wrote.
    let txn = Txn::new()
        .when([Compare::create_revision(keys.meta(), CompareOp::Equal, 0)])
        .and_then(operations);
    let kv = client.kv_client();
    config
        .request("create memory", || {
            let mut kv = kv.clone();
            let txn = txn.clone();
            async move { kv.txn(txn).await }
        })
        .await?;
    Ok(())
}

fn check_limits(config: &EtcdConfig, bytes: usize, operations: usize) -> Result<(), EtcdError> {
    if bytes > config.max_request_bytes {
        return Err(EtcdError::TooLarge {
            bytes,
            limit: config.max_request_bytes,
        });
    }
    if operations > config.max_txn_ops {
        return Err(EtcdError::TooManyOperations {
            operations,
            limit: config.max_txn_ops,
        });
    }
    Ok(())
}

/// Reads the marker, the head and the state at one revision.
async fn load<S: State, L: Layout<S>>(
    client: &Client,
    config: &EtcdConfig,
    keys: &Keys,
) -> Result<Loaded<S>, EtcdError> {
    let kv = client.kv_client();
    let txn = Txn::new().and_then([TxnOp::get(keys.meta(), None), TxnOp::get(keys.head(), None)]);
    let response = config
        .request("read head", || {
            let mut kv = kv.clone();
            let txn = txn.clone();
            async move { kv.txn(txn).await }
        })
        .await?;
    let read_revision = response.header().map_or(0, |header| header.revision());
    let responses = response.op_responses();
    let not_a_memory = |found: &str| EtcdError::NotAMemory {
        prefix: keys.prefix.clone(),
        found: found.to_string(),
    };
    let meta = first_kv(&responses, 0).ok_or_else(|| not_a_memory("no hivekit marker"))?;
    let meta: Meta = serde_json::from_slice(meta.value())
        .map_err(|_| not_a_memory("a `meta` key that is not a hivekit marker"))?;
    if meta.format != FORMAT || meta.format_version != FORMAT_VERSION {
        return Err(not_a_memory(&format!(
            "format `{}` version {}",
            meta.format, meta.format_version
        )));
    }
    if meta.layout != L::NAME {
        return Err(EtcdError::LayoutMismatch {
            prefix: keys.prefix.clone(),
            stored: meta.layout,
            requested: L::NAME,
        });
    }
    let head_pair = first_kv(&responses, 1).ok_or_else(|| not_a_memory("a marker and no head"))?;
    let head: Head = decode(head_pair.key(), head_pair.value())?;
    let state_prefix = keys.state_prefix();
    let (pairs, _) = read_range(
        client,
        config,
        state_prefix.clone().into_bytes(),
        prefix_end(&state_prefix),
        read_revision,
    )
    .await?;
    let pairs = pairs
        .into_iter()
        .map(|pair| {
            let (key, value) = pair.into_key_value();
            let relative = String::from_utf8_lossy(&key[state_prefix.len()..]).into_owned();
            (relative, value)
        })
        .collect();
    let state = L::decode_state(pairs, &|relative| keys.state(relative))?;
    Ok(Loaded {
        state,
        version: head.version,
        head_revision: head_pair.mod_revision(),
        read_revision,
    })
}

impl<S, L> Shared<S, L>
where
    S: State,
    S::Change: Serialize + DeserializeOwned,
    L: Layout<S>,
{
    /// The cell's version, its state and the revision that created it, read together.
    fn position(&self) -> (Snapshot<S>, i64) {
        let position = self.position.lock();
        (self.cell.load(), position.revision)
    }

    /// Installs `version`, computed from the version before it by `next`, when it is the next one;
    /// returns whether it was installed (false: already there).
    /// `followed` says whether the version was committed elsewhere (counted before waiters wake,
    /// so that a woken reader sees the count).
    fn install(
        &self,
        version: u64,
        revision: i64,
        followed: bool,
        next: impl FnOnce(&S) -> S,
    ) -> Result<bool, EtcdError> {
        let installed = {
            let mut position = self.position.lock();
            let current = self.cell.load();
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
                position.revision = revision;
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
        self.install(entry.version, pair.mod_revision(), true, |state| {
            let mut next = state.clone();
            for change in &entry.changes {
                next.apply(&change.change);
            }
            next
        })
    }

    /// Reads and installs every version newer than the local one.
    async fn catch_up(&self) -> Result<(), EtcdError> {
        let from = self.cell.version() + 1;
        let (pairs, read_revision) = read_range(
            &self.client,
            &self.config,
            self.keys.history(from).into_bytes(),
            prefix_end(&self.keys.history_prefix()),
            0,
        )
        .await?;
        for pair in &pairs {
            let entry: HistoryEntry<S::Change> = decode(pair.key(), pair.value())?;
            self.install_entry(pair, &entry)?;
        }
        let mut position = self.position.lock();
        position.seen_through = position.seen_through.max(read_revision);
        Ok(())
    }

    async fn commit(&self, request: &CommitRequest<'_, S>) -> Result<Committed, EtcdError> {
        let started = Instant::now();
        let deadline = started + self.config.commit_timeout;
        let decision_hex = format!("{:032x}", request.decision_id);
        let decision_key = self.keys.decision(request.decision_id);
        let head_key = self.keys.head();
        let changes: Vec<HistoryChange<&S::Change>> = request
            .accepted
            .iter()
            .map(|accepted| HistoryChange {
                proposal: accepted.proposal.id.0,
                proposer: accepted.proposer.map(|agent| agent.0),
                change: &accepted.proposal.payload,
            })
            .collect();
        let time_ms = now_ms();
        // The last failure after which the commit may have landed, and the last one after which it
        // cannot have.
        let mut ambiguous: Option<String> = None;
        let mut unreachable: Option<EtcdError> = None;
        let mut backoff = Duration::from_millis(20);
        let mut kv = self.client.kv_client();
        while Instant::now() < deadline {
            let (current, revision) = self.position();
            let version = current.version() + 1;
            let rebased = current.version() != request.base;
            let next = request.apply_to(&current);
            drop(current);
            let entry = json(
                "history entry",
                &HistoryEntryRef {
                    version,
                    decision_id: &decision_hex,
                    round: request.round,
                    base: request.base,
                    rebased,
                    time_ms,
                    changes: &changes,
                },
            )?;
            let head = json(
                "head",
                &Head {
                    version,
                    decision: decision_hex.clone(),
                },
            )?;
            let history_key = self.keys.history(version);
            let mut bytes = head_key.len()
                + head.len()
                + history_key.len()
                + entry.len()
                + decision_key.len() * 2
                + 20
                + 3 * OPERATION_OVERHEAD;
            let mut operations = vec![
                TxnOp::put(head_key.clone(), head, None),
                TxnOp::put(history_key, entry, None),
                TxnOp::put(decision_key.clone(), version.to_string(), None),
            ];
            for (relative, value) in L::encode_commit(&next, request.accepted)? {
                let key = self.keys.state(&relative);
                bytes += key.len() + value.as_ref().map_or(0, Vec::len) + OPERATION_OVERHEAD;
                operations.push(match value {
                    Some(value) => TxnOp::put(key, value, None),
                    None => TxnOp::delete(key, None),
                });
            }
            check_limits(&self.config, bytes, operations.len())?;
            let txn = Txn::new()
                .when([
                    Compare::mod_revision(head_key.clone(), CompareOp::Equal, revision),
                    Compare::version(decision_key.clone(), CompareOp::Equal, 0),
                ])
                .and_then(operations)
                .or_else([
                    TxnOp::get(head_key.clone(), None),
                    TxnOp::get(decision_key.clone(), None),
                ]);
            let wait = self
                .config
                .request_timeout
                .min(deadline.saturating_duration_since(Instant::now()));
            match tokio::time::timeout(wait, kv.txn(txn)).await {
                Ok(Ok(response)) if response.succeeded() => {
                    let revision = response.header().map_or(0, |header| header.revision());
                    // The commit landed: whatever happens locally, it is reported committed
                    // (the follower installs it from the history if this could not).
                    if let Err(error) = self.install(version, revision, false, |_| next) {
                        tracing::error!(%error, version, "a committed version could not be installed here");
                    }
                    bump(&self.counters.commits);
                    if rebased {
                        bump(&self.counters.rebased);
                    }
                    return Ok(Committed::new(version, rebased));
                }
                Ok(Ok(response)) => {
                    if let Some(found) = first_kv(&response.op_responses(), 1) {
                        // An earlier attempt whose answer was lost did land.
                        let Ok(landed) = decided_version(&found)? else {
                            return Err(EtcdError::Fenced {
                                decision_id: request.decision_id,
                            });
                        };
                        let _ = self.catch_up().await;
                        bump(&self.counters.commits);
                        let rebased = landed != request.base + 1;
                        if rebased {
                            bump(&self.counters.rebased);
                        }
                        return Ok(Committed::new(landed, rebased));
                    }
                    // Another commit landed first: read it, then re-apply on top of it.
                    bump(&self.counters.conflicts);
                    match self.catch_up().await {
                        Ok(()) => {}
                        // Stored data that cannot be read: retrying cannot help.
                        Err(error @ (EtcdError::Corrupt { .. } | EtcdError::HistoryGap { .. })) => {
                            return Err(error)
                        }
                        Err(error) => {
                            tracing::debug!(%error, "catching up after a conflict failed; retrying");
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(Duration::from_millis(500));
                        }
                    }
                }
                Ok(Err(source)) => {
                    let error = EtcdError::client("commit", source);
                    if error.is_request_too_large() {
                        return Err(EtcdError::TooLarge {
                            bytes,
                            limit: self.config.max_request_bytes,
                        });
                    }
                    let EtcdError::Client { source, .. } = &error else {
                        return Err(error);
                    };
                    if unreachable_now(source) {
                        unreachable = Some(error);
                    } else if not_applied(source) {
                        return Err(error);
                    } else {
                        if ambiguous.is_none() {
                            bump(&self.counters.ambiguous);
                        }
                        tracing::warn!(decision = %decision_hex, %error, "commit outcome lost; reading it back");
                        ambiguous = Some(error.to_string());
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                }
                Err(_) => {
                    if ambiguous.is_none() {
                        bump(&self.counters.ambiguous);
                    }
                    tracing::warn!(decision = %decision_hex, "commit timed out; reading it back");
                    ambiguous = Some(format!("commit timed out after {wait:?}"));
                }
            }
        }
        let waited = started.elapsed();
        Err(match (ambiguous, unreachable) {
            (Some(detail), _) => EtcdError::OutcomeUnknown {
                decision_id: request.decision_id,
                waited,
                detail,
            },
            (None, Some(error)) => EtcdError::Unreachable {
                endpoints: self.config.endpoints.join(","),
                waited,
                detail: error.to_string(),
            },
            (None, None) => EtcdError::Timeout {
                operation: "commit",
                waited,
            },
        })
    }
}

/// Follows the history through a watch: installs every version committed elsewhere, resumes
/// after a lost connection, and reloads when it fell behind etcd's compaction.
async fn follow<S, L>(shared: Arc<Shared<S, L>>)
where
    S: State,
    S::Change: Serialize + DeserializeOwned,
    L: Layout<S>,
{
    let history_prefix = shared.keys.history_prefix();
    let mut backoff = Duration::from_millis(20);
    loop {
        let start = shared.position.lock().seen_through + 1;
        let options = etcd_client::WatchOptions::new()
            .with_prefix()
            .with_start_revision(start);
        let mut watch_client = shared.client.watch_client();
        let watched = tokio::time::timeout(
            shared.config.connect_timeout,
            watch_client.watch(history_prefix.clone(), Some(options)),
        )
        .await;
        let mut stream = match watched {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                tracing::debug!(%error, "history watch failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
            Err(_) => {
                tracing::debug!("history watch timed out; retrying");
                continue;
            }
        };
        loop {
            match stream.message().await {
                Ok(Some(response)) => {
                    if response.compact_revision() > 0 {
                        bump(&shared.counters.reloads);
                        tracing::warn!(
                            prefix = %shared.keys.prefix,
                            compacted = response.compact_revision(),
                            resume = start,
                            "follower fell behind etcd's compaction; reloading from the history"
                        );
                    }
                    if response.canceled() {
                        if let Err(error) = shared.catch_up().await {
                            tracing::warn!(%error, "reloading the history failed; retrying");
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(Duration::from_secs(1));
                        }
                        break;
                    }
                    backoff = Duration::from_millis(20);
                    for event in response.events() {
                        if event.event_type() != etcd_client::EventType::Put {
                            continue;
                        }
                        let Some(pair) = event.kv() else { continue };
                        let installed = decode::<HistoryEntry<S::Change>>(pair.key(), pair.value())
                            .and_then(|entry| shared.install_entry(pair, &entry));
                        match installed {
                            Ok(_) => {}
                            Err(EtcdError::HistoryGap { .. }) => {
                                if let Err(error) = shared.catch_up().await {
                                    tracing::warn!(%error, "catching up failed");
                                }
                            }
                            Err(error) => {
                                tracing::error!(%error, "history entry cannot be installed");
                            }
                        }
                    }
                }
                Ok(None) | Err(_) => {
                    // No catch-up here: the new watch starts after the last entry installed, so
                    // etcd replays what was missed, or says the start was compacted, and that path
                    // reloads and counts it (a reload here would hide the compaction).
                    tracing::debug!("history watch ended; resuming");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    break;
                }
            }
        }
    }
}
