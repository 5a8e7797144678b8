//! Where checkpoints live: the [`CheckpointStore`] trait and the in-memory [`MemoryStore`].

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;

/// One run as a store lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunEntry {
    /// The run's id.
    pub run: String,
    /// When the run was started, in milliseconds since the Unix epoch (retention removes the
    /// oldest runs first). [`Durable::start`](super::Durable::start) keeps these strictly
    /// increasing within a process: a run started in the same millisecond as the one before is
    /// stamped a millisecond later, so runs keep their start order.
    pub created_ms: u64,
}

/// A run as read back from a store: its header and its records, by key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoredRun {
    /// The run's header, as written by [`CheckpointStore::create_run`].
    pub header: Vec<u8>,
    /// Every record written with [`CheckpointStore::put_record`], by key, in key order.
    pub records: Vec<(String, Vec<u8>)>,
}

/// A store failed (an I/O error, a database error, a lock held by another process).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store's backing database failed.
    #[error("checkpoint store failed for run `{run}`: {message}")]
    Backend {
        /// The run the operation was about (empty for whole-store operations).
        run: String,
        /// What the database said.
        message: String,
    },
    /// A record was written for a run that was never created (or was deleted).
    #[error("checkpoint store has no run `{run}`")]
    UnknownRun {
        /// The run.
        run: String,
    },
    /// The store could not be opened.
    #[error("cannot open checkpoint store at {path}: {message}")]
    Open {
        /// Where.
        path: String,
        /// Why.
        message: String,
    },
}

/// A store of run checkpoints: a header per run and records keyed by name within a run, as bytes
/// (the checkpoint layer encodes them). Every write is atomic: after a crash at any point a record
/// is either wholly there or absent, never torn.
///
/// Implemented by [`MemoryStore`] (tests, one process) and `RedbStore` (on disk, with the
/// `durable` feature). Methods are synchronous: a durable run records a stage before releasing its
/// dependents, so the write is on the run's path either way.
pub trait CheckpointStore: Send + Sync + 'static {
    /// Creates run `run` with `header`, replacing any run of that id and its records, atomically.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store fails.
    fn create_run(&self, run: &str, created_ms: u64, header: &[u8]) -> Result<(), StoreError>;

    /// Creates run `run` with `header` unless the store has a run of that id; whether it created
    /// it (`false`: the run existed and was left as it was).
    /// [`Durable::start`](super::Durable::start) creates runs with this, so that two starts of one
    /// run id (two workers taking the same job) start it once.
    ///
    /// The provided implementation is [`load_run`](CheckpointStore::load_run) then
    /// [`create_run`](CheckpointStore::create_run): it is **not atomic**, two callers racing on
    /// one id may both see it absent and both create it (the second replacing the first). Stores
    /// shared between threads or processes override it with one atomic step, as [`MemoryStore`]
    /// (one lock) and `RedbStore` (one write transaction) do.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store fails.
    fn create_run_if_absent(
        &self,
        run: &str,
        created_ms: u64,
        header: &[u8],
    ) -> Result<bool, StoreError> {
        if self.load_run(run)?.is_some() {
            return Ok(false);
        }
        self.create_run(run, created_ms, header)?;
        Ok(true)
    }

    /// Writes (or replaces) one record of run `run`, atomically.
    ///
    /// # Errors
    ///
    /// [`StoreError::UnknownRun`] when the run was not created (or was deleted), another
    /// [`StoreError`] when the store fails.
    fn put_record(&self, run: &str, key: &str, record: &[u8]) -> Result<(), StoreError>;

    /// Reads run `run` back (`None` if there is no such run).
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store fails.
    fn load_run(&self, run: &str) -> Result<Option<StoredRun>, StoreError>;

    /// Every run, oldest first.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store fails.
    fn runs(&self) -> Result<Vec<RunEntry>, StoreError>;

    /// Deletes run `run` and its records, atomically; whether it existed.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store fails.
    fn delete_run(&self, run: &str) -> Result<bool, StoreError>;
}

impl<S: CheckpointStore + ?Sized> CheckpointStore for Arc<S> {
    fn create_run(&self, run: &str, created_ms: u64, header: &[u8]) -> Result<(), StoreError> {
        (**self).create_run(run, created_ms, header)
    }
    fn create_run_if_absent(
        &self,
        run: &str,
        created_ms: u64,
        header: &[u8],
    ) -> Result<bool, StoreError> {
        (**self).create_run_if_absent(run, created_ms, header)
    }
    fn put_record(&self, run: &str, key: &str, record: &[u8]) -> Result<(), StoreError> {
        (**self).put_record(run, key, record)
    }
    fn load_run(&self, run: &str) -> Result<Option<StoredRun>, StoreError> {
        (**self).load_run(run)
    }
    fn runs(&self) -> Result<Vec<RunEntry>, StoreError> {
        (**self).runs()
    }
    fn delete_run(&self, run: &str) -> Result<bool, StoreError> {
        (**self).delete_run(run)
    }
}

#[derive(Debug, Default)]
struct MemoryRun {
    created_ms: u64,
    header: Vec<u8>,
    records: BTreeMap<String, Vec<u8>>,
}

/// A checkpoint store in memory: for tests, and for runs that only need to survive a cancelled or
/// interrupted run within one process. Cloning shares the store.
///
/// # Examples
///
/// ```
/// use hivekit_swarm::checkpoint::{CheckpointStore, MemoryStore};
///
/// let store = MemoryStore::new();
/// store.create_run("pr-7", 1, b"header")?;
/// store.put_record("pr-7", "s:fetch", b"{}")?;
/// let run = store.load_run("pr-7")?.unwrap();
/// assert_eq!(run.records.len(), 1);
/// assert!(store.delete_run("pr-7")?);
/// assert!(store.runs()?.is_empty());
/// # Ok::<(), hivekit_swarm::checkpoint::StoreError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    runs: Arc<Mutex<BTreeMap<String, MemoryRun>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl CheckpointStore for MemoryStore {
    fn create_run(&self, run: &str, created_ms: u64, header: &[u8]) -> Result<(), StoreError> {
        self.runs.lock().insert(
            run.to_owned(),
            MemoryRun {
                created_ms,
                header: header.to_vec(),
                records: BTreeMap::new(),
            },
        );
        Ok(())
    }

    /// Atomic: the check and the insertion happen under one lock.
    fn create_run_if_absent(
        &self,
        run: &str,
        created_ms: u64,
        header: &[u8],
    ) -> Result<bool, StoreError> {
        match self.runs.lock().entry(run.to_owned()) {
            std::collections::btree_map::Entry::Occupied(_) => Ok(false),
            std::collections::btree_map::Entry::Vacant(entry) => {
                entry.insert(MemoryRun {
                    created_ms,
                    header: header.to_vec(),
                    records: BTreeMap::new(),
                });
                Ok(true)
            }
        }
    }

    fn put_record(&self, run: &str, key: &str, record: &[u8]) -> Result<(), StoreError> {
        match self.runs.lock().get_mut(run) {
            Some(stored) => {
                stored.records.insert(key.to_owned(), record.to_vec());
                Ok(())
            }
            None => Err(StoreError::UnknownRun {
                run: run.to_owned(),
            }),
        }
    }

    fn load_run(&self, run: &str) -> Result<Option<StoredRun>, StoreError> {
        Ok(self.runs.lock().get(run).map(|stored| StoredRun {
            header: stored.header.clone(),
            records: stored
                .records
                .iter()
                .map(|(key, record)| (key.clone(), record.clone()))
                .collect(),
        }))
    }

    fn runs(&self) -> Result<Vec<RunEntry>, StoreError> {
        let mut runs: Vec<RunEntry> = self
            .runs
            .lock()
            .iter()
            .map(|(run, stored)| RunEntry {
                run: run.clone(),
                created_ms: stored.created_ms,
            })
            .collect();
        runs.sort_by(|a, b| (a.created_ms, &a.run).cmp(&(b.created_ms, &b.run)));
        Ok(runs)
    }

    fn delete_run(&self, run: &str) -> Result<bool, StoreError> {
        Ok(self.runs.lock().remove(run).is_some())
    }
}
