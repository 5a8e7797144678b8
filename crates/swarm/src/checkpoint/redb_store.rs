//! The on-disk checkpoint store, on redb (see ARCHITECTURE.md for why redb).

use std::fmt::Display;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use hivekit_runtime::take_panic_message;
use redb::{Database, ReadableTable, TableDefinition, TableError};

use super::store::{CheckpointStore, RunEntry, StoreError, StoredRun};

/// Run id to (creation time in ms, header).
const RUNS: TableDefinition<'static, &str, (u64, &[u8])> = TableDefinition::new("hivekit_runs");
/// (run id, record key) to record.
const RECORDS: TableDefinition<'static, (&str, &str), &[u8]> =
    TableDefinition::new("hivekit_records");

/// A checkpoint store in one file on local disk, on [redb](https://docs.rs/redb): an embedded,
/// pure-Rust, ACID key-value store. Every write is one redb write transaction committed with
/// `Durability::Immediate` (fsync'd before the call returns); redb's copy-on-write pages and
/// checksummed commit slots mean a process killed at any point, mid-commit included, leaves the
/// file at the last committed transaction. Cloning shares the open database.
///
/// One process opens a file at a time (redb locks it); a second open fails with
/// [`StoreError::Open`].
///
/// A damaged file (cut short, a flipped byte) can make redb panic rather than return an error.
/// Every call into redb is guarded: such a panic is a [`StoreError::Open`] from
/// [`open`](RedbStore::open) and a [`StoreError::Backend`] from the other calls, never an unwind
/// into the caller. redb's state after a panic is not known to be sound, so the handle (and its
/// clones) then refuses every later call with [`StoreError::Backend`]; open the file again (once
/// repaired or replaced) for a new one.
///
/// # Examples
///
/// ```
/// use hivekit_swarm::checkpoint::{CheckpointStore, RedbStore};
///
/// let dir = tempfile::tempdir()?;
/// let store = RedbStore::open(dir.path().join("runs.redb"))?;
/// store.create_run("pr-7", 1, b"header")?;
/// store.put_record("pr-7", "s:fetch", b"{}")?;
/// assert_eq!(store.load_run("pr-7")?.unwrap().records.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct RedbStore {
    db: Arc<Database>,
    path: Arc<str>,
    /// Set when a call panicked inside redb: the database is not used again.
    poisoned: Arc<AtomicBool>,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn backend(run: &str) -> impl Fn(&dyn Display) -> StoreError + '_ {
    move |error| StoreError::Backend {
        run: run.to_owned(),
        message: error.to_string(),
    }
}

/// Runs `call`, a panic inside it (redb on a damaged file) becoming the error `panicked` makes
/// of its message.
fn unwound<T, E>(
    call: impl FnOnce() -> Result<T, E>,
    panicked: impl FnOnce(String) -> E,
) -> Result<T, E> {
    catch_unwind(AssertUnwindSafe(call)).unwrap_or_else(|panic| {
        Err(panicked(format!(
            "redb panicked (is the file damaged?): {}",
            take_panic_message(panic)
        )))
    })
}

impl RedbStore {
    /// Runs `call` on the database unless an earlier call panicked; a panic inside it poisons the
    /// handle and is a [`StoreError::Backend`] about `run`.
    fn guarded<T>(
        &self,
        run: &str,
        call: impl FnOnce(&Database) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(StoreError::Backend {
                run: run.to_owned(),
                message: format!(
                    "the store at {} is not used since redb panicked on an earlier call (open it \
                     again)",
                    self.path
                ),
            });
        }
        unwound(
            || call(&self.db),
            |message| {
                self.poisoned.store(true, Ordering::Release);
                StoreError::Backend {
                    run: run.to_owned(),
                    message,
                }
            },
        )
    }

    /// Opens the store at `path`, creating the file if it does not exist.
    ///
    /// # Errors
    ///
    /// [`StoreError::Open`] when the file cannot be created or opened (another process holds it,
    /// it is not a redb file, or it is damaged beyond redb's repair).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let open = |error: &dyn Display| StoreError::Open {
            path: path.display().to_string(),
            message: error.to_string(),
        };
        let db = unwound(
            || {
                if !path.exists() {
                    Self::create_whole(path).map_err(|error| open(&error))?;
                }
                Database::create(path).map_err(|error| open(&error))
            },
            |message| open(&message),
        )?;
        Ok(Self {
            db: Arc::new(db),
            path: path.display().to_string().into(),
            poisoned: Arc::default(),
        })
    }

    /// Creates an empty database beside `path` and links it into place, so that a process killed
    /// while creating the file never leaves a half-initialised one at `path` (which redb refuses
    /// to open). Linking fails if another process created `path` first; its file is kept.
    fn create_whole(path: &Path) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let mut partial = path.as_os_str().to_owned();
        partial.push(format!(".creating-{}", std::process::id()));
        let partial = std::path::PathBuf::from(partial);
        // A leftover from a process of the same id that was killed while creating.
        let _ = std::fs::remove_file(&partial);
        drop(Database::create(&partial)?);
        let linked = std::fs::hard_link(&partial, path);
        std::fs::remove_file(&partial)?;
        match linked {
            Err(error) if error.kind() != std::io::ErrorKind::AlreadyExists => Err(error.into()),
            _ => Ok(()),
        }
    }

    /// Removes the records of `run` inside an open write transaction.
    fn remove_records(
        records: &mut redb::Table<'_, (&'static str, &'static str), &'static [u8]>,
        run: &str,
    ) -> Result<(), StoreError> {
        let fail = backend(run);
        let mut keys = Vec::new();
        for entry in records.range((run, "")..).map_err(|error| fail(&error))? {
            let (key, _) = entry.map_err(|error| fail(&error))?;
            let (owner, name) = key.value();
            if owner != run {
                break;
            }
            keys.push(name.to_owned());
        }
        for key in keys {
            records
                .remove((run, key.as_str()))
                .map_err(|error| fail(&error))?;
        }
        Ok(())
    }
}

impl CheckpointStore for RedbStore {
    fn create_run(&self, run: &str, created_ms: u64, header: &[u8]) -> Result<(), StoreError> {
        self.guarded(run, |db| {
            let fail = backend(run);
            let txn = db.begin_write().map_err(|error| fail(&error))?;
            {
                let mut runs = txn.open_table(RUNS).map_err(|error| fail(&error))?;
                runs.insert(run, (created_ms, header))
                    .map_err(|error| fail(&error))?;
                let mut records = txn.open_table(RECORDS).map_err(|error| fail(&error))?;
                Self::remove_records(&mut records, run)?;
            }
            txn.commit().map_err(|error| fail(&error))
        })
    }

    /// Atomic: the check and the insertion are one write transaction (redb runs one at a time).
    fn create_run_if_absent(
        &self,
        run: &str,
        created_ms: u64,
        header: &[u8],
    ) -> Result<bool, StoreError> {
        self.guarded(run, |db| {
            let fail = backend(run);
            let txn = db.begin_write().map_err(|error| fail(&error))?;
            {
                let mut runs = txn.open_table(RUNS).map_err(|error| fail(&error))?;
                if runs.get(run).map_err(|error| fail(&error))?.is_some() {
                    // Nothing written: dropping the transaction aborts it.
                    return Ok(false);
                }
                runs.insert(run, (created_ms, header))
                    .map_err(|error| fail(&error))?;
                // Records never outlive their run (`delete_run` removes them in its transaction), so
                // there are none to clear.
            }
            txn.commit().map_err(|error| fail(&error))?;
            Ok(true)
        })
    }

    fn put_record(&self, run: &str, key: &str, record: &[u8]) -> Result<(), StoreError> {
        self.guarded(run, |db| {
            let fail = backend(run);
            let txn = db.begin_write().map_err(|error| fail(&error))?;
            {
                // In the same transaction: a record never outlives its run.
                let runs = txn.open_table(RUNS).map_err(|error| fail(&error))?;
                if runs.get(run).map_err(|error| fail(&error))?.is_none() {
                    return Err(StoreError::UnknownRun {
                        run: run.to_owned(),
                    });
                }
                let mut records = txn.open_table(RECORDS).map_err(|error| fail(&error))?;
                records
                    .insert((run, key), record)
                    .map_err(|error| fail(&error))?;
            }
            txn.commit().map_err(|error| fail(&error))
        })
    }

    fn load_run(&self, run: &str) -> Result<Option<StoredRun>, StoreError> {
        self.guarded(run, |db| {
            let fail = backend(run);
            let txn = db.begin_read().map_err(|error| fail(&error))?;
            let runs = match txn.open_table(RUNS) {
                Ok(table) => table,
                Err(TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(error) => return Err(fail(&error)),
            };
            let Some(entry) = runs.get(run).map_err(|error| fail(&error))? else {
                return Ok(None);
            };
            let mut stored = StoredRun {
                header: entry.value().1.to_vec(),
                records: Vec::new(),
            };
            let records = match txn.open_table(RECORDS) {
                Ok(table) => table,
                Err(TableError::TableDoesNotExist(_)) => return Ok(Some(stored)),
                Err(error) => return Err(fail(&error)),
            };
            for entry in records.range((run, "")..).map_err(|error| fail(&error))? {
                let (key, record) = entry.map_err(|error| fail(&error))?;
                let (owner, name) = key.value();
                if owner != run {
                    break;
                }
                stored
                    .records
                    .push((name.to_owned(), record.value().to_vec()));
            }
            Ok(Some(stored))
        })
    }

    fn runs(&self) -> Result<Vec<RunEntry>, StoreError> {
        self.guarded("", |db| {
            let fail = backend("");
            let txn = db.begin_read().map_err(|error| fail(&error))?;
            let runs = match txn.open_table(RUNS) {
                Ok(table) => table,
                Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(error) => return Err(fail(&error)),
            };
            let mut entries = Vec::new();
            for entry in runs.iter().map_err(|error| fail(&error))? {
                let (run, value) = entry.map_err(|error| fail(&error))?;
                entries.push(RunEntry {
                    run: run.value().to_owned(),
                    created_ms: value.value().0,
                });
            }
            entries.sort_by(|a, b| (a.created_ms, &a.run).cmp(&(b.created_ms, &b.run)));
            Ok(entries)
        })
    }

    fn delete_run(&self, run: &str) -> Result<bool, StoreError> {
        self.guarded(run, |db| {
            let fail = backend(run);
            let txn = db.begin_write().map_err(|error| fail(&error))?;
            let existed = {
                let mut runs = txn.open_table(RUNS).map_err(|error| fail(&error))?;
                let existed = runs.remove(run).map_err(|error| fail(&error))?.is_some();
                let mut records = txn.open_table(RECORDS).map_err(|error| fail(&error))?;
                Self::remove_records(&mut records, run)?;
                existed
            };
            txn.commit().map_err(|error| fail(&error))?;
            Ok(existed)
        })
    }
}
