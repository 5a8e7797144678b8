//! Durable runs: every finished stage checkpointed, a crashed or interrupted run resumed where it
//! stopped.
//!
//! - A [`CheckpointStore`] keeps runs: [`MemoryStore`] in memory, `RedbStore` in one file on disk
//!   (with the `durable` feature, which builds the database; off by default).
//! - [`Durable::start`] runs a pipeline under a run id. The run's input (made with
//!   [`RunInput::serializable`](crate::RunInput::serializable)) and the pipeline's shape (stage
//!   names, dependencies, kinds, artifact types, and their fingerprint) are written first; then each
//!   stage, when it ends, is written as one atomic record (status, attempts, failed attempts, and the
//!   artifact of a stage declared [`durable`](crate::StageBuilder::durable)) *before* any of its
//!   dependents starts.
//! - [`Durable::resume`] reads the checkpoint back: stages that succeeded are not run again (their
//!   artifacts are decoded and handed to their dependents, their reports marked
//!   [`resumed`](crate::StageReport::resumed)), everything else runs. The report equals an
//!   uninterrupted run's apart from timings and the `resumed` marks.
//! - [`StageContext::interrupt`](crate::StageContext::interrupt) pauses a run for outside input;
//!   [`Durable::resume_with`] continues it with a value.
//!
//! # What "exactly once" means here
//!
//! A stage whose record was written is never run again by a resume. A stage that was running
//! when the process died (started, not recorded) runs again, so *its* side effects may happen twice:
//! make such effects idempotent, or split them into a stage of their own. Because a record is
//! written before dependents are released, no stage ever runs on an artifact that was not recorded.
//! Stages that are not declared durable (and do not return `()`) have no artifact to read back and
//! run again on resume; [`PipelineBuilder::durable`](crate::PipelineBuilder::durable) makes that a
//! [`BuildError`](crate::BuildError).
//!
//! A stage's attempts are recorded when it ends: a stage running its retries (or waiting out a
//! backoff) when the process died starts again at its first attempt, with its whole
//! [`RetryPolicy`](crate::RetryPolicy), and its backoff waits are not timers that survive a crash.
//! `max_attempts` bounds the attempts of one process's run of the stage.
//!
//! # Finer than a stage: loop iterations and fan-out items
//!
//! - Each iteration of a loop stage ([`PipelineBuilder::repeat`](crate::PipelineBuilder::repeat))
//!   runs its body under a journal of its own (keys `l:{stage}:{body fingerprint}:{iteration}/…`
//!   in the same run): the body's durable stages are recorded as they end. A loop stage that runs
//!   again (a resume, a retry) reads back every iteration an earlier run finished (their reports
//!   are live, artifacts included, their stages marked `resumed`) and resumes the iteration it
//!   was in at its first unfinished body stage: a crash in iteration 3 does not run 1 and 2 again.
//! - [`StageContext::durable_fan_out`](crate::StageContext::durable_fan_out) records each item
//!   that succeeds (keys `i:{stage}:{fan-out}:{items}:{item}`); the stage run again reads those
//!   items back and runs only the others: a crash after 5 of 8 items runs 3.
//!
//! Either way the unit in flight at the crash (an item, a body stage) may run twice, as a stage does.
//!
//! # What reads back
//!
//! Artifacts, fan-out items and resume values are read back from the JSON text written, straight
//! into their type: integers of every width (128-bit ones included) and floats (bit for bit) read back as
//! the values the stage returned. The run input is kept as a `serde_json::Value`, which holds
//! floats bit for bit but no integer beyond 64 bits: such an input is refused at start
//! ([`CheckpointError::InputNotSerializable`]). An input that is `null` itself (a `None`, a `()`)
//! reads back as itself.
//!
//! JSON's `null` is where values get lost. serde_json writes a non-finite float (`NaN`,
//! infinities) as `null`, which no `f64` reads and an `Option` reads as `None` (`Some(NaN)` as
//! `None`), and a `Some` of a value written as `null` (the `Some(None)` of a nested `Option`, a
//! `Some(())`) as that `null` alone, which reads back as `None`. A record holding `null` (only
//! those records: the checks cost nothing on others) has its value searched for both and is
//! decoded before it is written; an artifact or item that would not read back as itself is not
//! recorded and fails its stage or item with a
//! [`StageError::Permanent`](crate::StageError::Permanent) naming the stage (or item), its type
//! and why, so a checkpoint never holds a record that would fail every resume or read back as
//! another value. A run input whose JSON holds `null` is checked the same way before the run is
//! created (searched, and decoded as the handle's input type, [`Durable::with_input`], when it
//! has one), and refused with [`CheckpointError::InputNotSerializable`] when it would not read
//! back as itself; a resume value, searched the same way, is refused with
//! [`CheckpointError::ValueNotSerializable`] before anything is written.
//!
//! # Retention
//!
//! [`Retention`]: a store keeps at most `max_runs` runs (1024 by default); starting a run deletes
//! the oldest beyond that (by [`RunEntry::created_ms`], which the starts of one process keep
//! strictly increasing, so that runs started in one millisecond keep their order), and [`Durable::prune`] does it on demand. Neither ever deletes the run
//! being started (it counts among the `max_runs`, so `max_runs(0)` keeps it alone, as 1 would) nor
//! a run in progress on the same [`Durable`] handle or its clones (started or resumed and not yet
//! ended): the store may hold more than `max_runs` runs while those run. Runs in progress in
//! another process or on another handle cannot be told from ended ones and may be deleted (they
//! then fail at their next checkpoint write). With `delete_succeeded` a run that ends successfully
//! is deleted at once. [`Durable::runs`] lists runs and [`Durable::delete`] deletes one.
//!
//! # Examples
//!
//! ```
//! use hivekit_swarm::checkpoint::{Durable, MemoryStore};
//! use hivekit_swarm::{Pipeline, RunOptions, StageContext, StageError};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let pipeline = Pipeline::builder()
//!     .stage("draft", |_: StageContext| async { Ok::<_, StageError>(String::from("text")) })
//!     .durable()
//!     .stage("publish", |ctx: StageContext| async move {
//!         match ctx.resume_value::<bool>()? {
//!             Some(approved) => Ok::<_, StageError>(approved),
//!             None => Err(ctx.interrupt("needs an editor's approval")),
//!         }
//!     })
//!     .durable()
//!     .after(["draft"])
//!     .build()?;
//! let durable = Durable::new(MemoryStore::new());
//! let first = durable.start(&pipeline, "post-1", RunOptions::default()).await?;
//! assert_eq!(first.interrupted_stage(), Some("publish"));
//! let second = durable.resume_with(&pipeline, "post-1", true, RunOptions::default()).await?;
//! let report = second.report();
//! assert!(report.is_success());
//! assert!(report.stage("draft").unwrap().resumed); // not run again
//! assert!(*report.artifact::<bool>("publish")?);
//! # Ok(())
//! # }
//! ```

mod finite;
mod inspect;
mod journal;
mod outcome;
mod record;
#[cfg(feature = "durable")]
mod redb_store;
mod retention;
mod store;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;

pub use inspect::{RunState, StageState};
pub use outcome::DurableOutcome;
pub use record::CheckpointError;
#[cfg(feature = "durable")]
pub use redb_store::RedbStore;
pub use retention::Retention;
pub use store::{CheckpointStore, MemoryStore, RunEntry, StoreError, StoredRun};

use crate::hooks::Restored;
use crate::input::RunInput;
use crate::options::RunOptions;
use crate::pipeline::Pipeline;
use crate::pipeline::PipelineInner;
use crate::report::RunOutcome;
pub(crate) use finite::{lossy_null, LossyNull};
pub(crate) use journal::run_iteration;
use journal::Journal;
pub(crate) use record::ShapeCache;
use record::{
    Header, StageRecord, ITEM_PREFIX, LOOP_PREFIX, REJECTED_VALUE, STAGE_PREFIX, VALUE_PREFIX,
};

type InputDecoder = fn(serde_json::Value) -> Result<RunInput, serde_json::Error>;

fn decode_input<T>(value: serde_json::Value) -> Result<RunInput, serde_json::Error>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    serde_json::from_value::<T>(value).map(RunInput::serializable)
}

/// Runs pipelines durably on a [`CheckpointStore`] (see the [module docs](self)).
#[derive(Clone)]
pub struct Durable {
    store: Arc<dyn CheckpointStore>,
    retention: Retention,
    input: Option<InputDecoder>,
    /// The runs in progress on this handle and its clones (one entry per `start` or `resume`
    /// under way): retention never deletes them.
    active: Arc<Mutex<Vec<String>>>,
}

/// A run registered as in progress for as long as this lives (a dropped run future included).
struct InProgress<'a> {
    active: &'a Mutex<Vec<String>>,
    run: &'a str,
}

impl<'a> InProgress<'a> {
    fn new(active: &'a Mutex<Vec<String>>, run: &'a str) -> Self {
        active.lock().push(run.to_owned());
        Self { active, run }
    }

    /// Registers `run` unless it is in progress already (`None`).
    fn alone(active: &'a Mutex<Vec<String>>, run: &'a str) -> Option<Self> {
        let mut runs = active.lock();
        if runs.iter().any(|running| running == run) {
            return None;
        }
        runs.push(run.to_owned());
        Some(Self { active, run })
    }
}

impl Drop for InProgress<'_> {
    fn drop(&mut self) {
        let mut active = self.active.lock();
        if let Some(at) = active.iter().position(|run| run == self.run) {
            active.swap_remove(at);
        }
    }
}

impl std::fmt::Debug for Durable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Durable")
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

/// A run's creation stamp: milliseconds since the Unix epoch, strictly increasing within the
/// process. Retention deletes the oldest runs first and stores break ties by run id, so runs
/// started in the same millisecond (a worker taking quick jobs) would otherwise be deleted in id
/// order, the newer before the older; a start in the millisecond of the last one is stamped a
/// millisecond after it instead (a burst of starts runs ahead of the wall clock by as much).
fn creation_stamp() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        });
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let stamp = now.max(last.saturating_add(1));
        match LAST.compare_exchange_weak(last, stamp, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return stamp,
            Err(seen) => last = seen,
        }
    }
}

impl Durable {
    /// Durable runs on `store`, with the default [`Retention`].
    pub fn new(store: impl CheckpointStore) -> Self {
        Self {
            store: Arc::new(store),
            retention: Retention::default(),
            input: None,
            active: Arc::default(),
        }
    }

    /// This handle with another retention policy (see [`Retention`]; `max_runs(0)` is allowed: a
    /// start keeps the run it starts, and [`prune`](Durable::prune) keeps only runs in progress).
    #[must_use]
    pub fn with_retention(self, retention: Retention) -> Self {
        Self { retention, ..self }
    }

    /// This handle, reading runs' inputs back as `T` when it resumes them (the type the stages
    /// read with [`run_input`](crate::StageContext::run_input)).
    #[must_use]
    pub fn with_input<T>(self) -> Self
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        Self {
            input: Some(decode_input::<T>),
            ..self
        }
    }

    /// The store.
    pub fn store(&self) -> &dyn CheckpointStore {
        &*self.store
    }

    /// Starts run `run` of `pipeline` with `options`, checkpointing every stage as it ends.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::RunExists`] when the store has a run of that id (the run is created with
    /// [`CheckpointStore::create_run_if_absent`], so of two starts of one id racing on a store
    /// that makes it atomic, as [`MemoryStore`] and `RedbStore` do, exactly one runs),
    /// [`CheckpointError::InputNotSerializable`] for an input not made with
    /// [`RunInput::serializable`], one holding a non-finite float or a `Some` of a value written
    /// as `null` (a `Some(None)`: JSON writes either as `null`, so it would not read back as
    /// itself), one holding an integer beyond 64 bits, or one whose JSON does not read back as
    /// the type given to [`with_input`](Durable::with_input) (checked when the handle has that
    /// type), [`CheckpointError::Store`] when the store cannot list or create runs or the header
    /// cannot be written. A stage whose record cannot be written fails (and the report says why).
    ///
    /// After creating the run it applies the [`Retention`]: the oldest other runs are deleted
    /// until at most `max_runs` remain, this one included (at least this one: `max_runs(0)` acts
    /// as 1 here); runs in progress on this handle are kept. The run exists by then, so a
    /// deletion that fails does not fail the start (which could then not be retried: the run
    /// exists): it is logged (`tracing` warning) and only costs space until the next start or
    /// [`prune`](Durable::prune).
    pub async fn start(
        &self,
        pipeline: &Pipeline,
        run: &str,
        options: RunOptions,
    ) -> Result<DurableOutcome, CheckpointError> {
        // Registered before the run exists, so a concurrent start's retention never sees it
        // ended.
        let _in_progress = InProgress::new(&self.active, run);
        let input = match &options.input {
            None => None,
            Some(input) => match input.to_json() {
                Some(Ok(value)) => Some(value),
                Some(Err(error)) => {
                    return Err(CheckpointError::InputNotSerializable {
                        run: run.to_owned(),
                        reason: error.to_string(),
                    })
                }
                None => {
                    return Err(CheckpointError::InputNotSerializable {
                        run: run.to_owned(),
                        reason: format!(
                            "an input of type `{}` not made with RunInput::serializable",
                            input.type_name()
                        ),
                    })
                }
            },
        };
        if let Some(value) = input.as_ref().filter(|value| holds_null(value)) {
            // As for records: an input that would not read back as itself is refused rather than
            // written, or every resume would fail on it or read another value.
            if let Some(lossy) = options.input.as_ref().and_then(RunInput::lossy_null) {
                return Err(CheckpointError::InputNotSerializable {
                    run: run.to_owned(),
                    reason: format!("it holds {lossy}"),
                });
            }
            if let Some(Err(error)) = self.input.map(|decode| decode(value.clone())) {
                return Err(CheckpointError::InputNotSerializable {
                    run: run.to_owned(),
                    reason: format!("it would not read back: {error}"),
                });
            }
        }
        let inner = pipeline.inner();
        let cache = record::shape_cache(inner);
        let fresh;
        let bytes = match &input {
            None => &cache.header,
            Some(input) => {
                fresh = record::header(inner, &cache.shape, cache.fingerprint, Some(input));
                &fresh
            }
        };
        if !self
            .store
            .create_run_if_absent(run, creation_stamp(), bytes)?
        {
            return Err(CheckpointError::RunExists {
                run: run.to_owned(),
            });
        }
        if let Err(error) = self.prune_to(self.retention.max_runs.max(1)) {
            tracing::warn!(run, %error, "could not apply the retention policy");
        }
        Ok(self
            .execute(
                pipeline,
                run,
                options,
                Vec::new(),
                HashMap::new(),
                BTreeMap::new(),
            )
            .await)
    }

    /// Resumes run `run`: stages that succeeded are restored, not run; the rest run. The run's
    /// input is read back from the checkpoint (replacing `options.input`).
    ///
    /// # Errors
    ///
    /// [`CheckpointError::UnknownRun`], [`CheckpointError::RunInProgress`] when the run is being
    /// started or resumed on this handle (or a clone) at the time,
    /// [`CheckpointError::ShapeMismatch`] naming the first difference when `pipeline` is not the
    /// one checkpointed, [`CheckpointError::CorruptHeader`]
    /// and [`CheckpointError::CorruptRecord`] (naming the stage) for unreadable records,
    /// [`CheckpointError::InputNotReadable`], [`CheckpointError::Store`].
    pub async fn resume(
        &self,
        pipeline: &Pipeline,
        run: &str,
        options: RunOptions,
    ) -> Result<DurableOutcome, CheckpointError> {
        self.resume_inner(pipeline, run, Handed::None, options)
            .await
    }

    /// Resumes run `run` as [`resume`](Durable::resume) does, handing `value` to the stages that
    /// interrupted it (each reads it with [`resume_value`](crate::StageContext::resume_value)). The
    /// value is checkpointed first, so a crash after this call keeps it. A stage that failed
    /// because the value it was handed did not decode (see
    /// [`resume_value`](crate::StageContext::resume_value)) counts as interrupted: this hands it
    /// the new value.
    ///
    /// # Errors
    ///
    /// As [`resume`](Durable::resume), and [`CheckpointError::NotInterrupted`] when no stage of the
    /// run interrupted it, [`CheckpointError::ValueNotSerializable`].
    pub async fn resume_with<V: Serialize>(
        &self,
        pipeline: &Pipeline,
        run: &str,
        value: V,
        options: RunOptions,
    ) -> Result<DurableOutcome, CheckpointError> {
        let value = resume_json(run, &value)?;
        self.resume_inner(pipeline, run, Handed::All(value), options)
            .await
    }

    /// Resumes run `run` as [`resume`](Durable::resume) does, handing each named stage its own
    /// value (LangGraph's resume map): two stages that interrupted the run side by side, such as
    /// two reviewers asked at once, get different answers. An interrupted stage given no value
    /// here runs again with the value it was last handed, if any, as under
    /// [`resume`](Durable::resume) (and may interrupt again). A stage named twice gets the last
    /// of its values. Values are checkpointed first. Inside a loop, the loop stage is what waits
    /// (see [`Durable::inspect`]): naming it hands the value to its body's waiting stages.
    ///
    /// # Errors
    ///
    /// As [`resume_with`](Durable::resume_with), and [`CheckpointError::StageNotInterrupted`]
    /// naming a stage that is not waiting for a value (nothing is written or run then).
    ///
    /// # Examples
    ///
    /// ```
    /// use hivekit_swarm::checkpoint::{Durable, MemoryStore};
    /// use hivekit_swarm::{Pipeline, RunOptions, StageContext, StageError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let ask = |question: &'static str| {
    ///     move |ctx: StageContext| async move {
    ///         match ctx.resume_value::<String>()? {
    ///             Some(answer) => Ok(answer),
    ///             None => Err(ctx.interrupt(question)),
    ///         }
    ///     }
    /// };
    /// let pipeline = Pipeline::builder()
    ///     .stage("legal", ask("may we ship?"))
    ///     .durable()
    ///     .stage("design", ask("is it pretty?"))
    ///     .durable()
    ///     .build()?;
    /// let durable = Durable::new(MemoryStore::new());
    /// durable.start(&pipeline, "launch", RunOptions::default()).await?;
    /// let outcome = durable
    ///     .resume_with_values(
    ///         &pipeline,
    ///         "launch",
    ///         [("legal", "yes"), ("design", "very")],
    ///         RunOptions::default(),
    ///     )
    ///     .await?;
    /// assert_eq!(*outcome.report().artifact::<String>("legal")?, "yes");
    /// assert_eq!(*outcome.report().artifact::<String>("design")?, "very");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn resume_with_values<N, V>(
        &self,
        pipeline: &Pipeline,
        run: &str,
        values: impl IntoIterator<Item = (N, V)>,
        options: RunOptions,
    ) -> Result<DurableOutcome, CheckpointError>
    where
        N: AsRef<str>,
        V: Serialize,
    {
        let values = values
            .into_iter()
            .map(|(stage, value)| Ok((stage.as_ref().to_owned(), resume_json(run, &value)?)))
            .collect::<Result<Vec<_>, CheckpointError>>()?;
        self.resume_inner(pipeline, run, Handed::Each(values), options)
            .await
    }

    async fn resume_inner(
        &self,
        pipeline: &Pipeline,
        run: &str,
        handed: Handed,
        mut options: RunOptions,
    ) -> Result<DurableOutcome, CheckpointError> {
        // A run in progress on this handle is not resumed beside itself: its stage in flight would
        // run twice. (Runs in progress elsewhere cannot be seen, as for retention.)
        let Some(_in_progress) = InProgress::alone(&self.active, run) else {
            return Err(CheckpointError::RunInProgress {
                run: run.to_owned(),
            });
        };
        let loaded = self.load(pipeline, run)?;
        options.input = loaded.input;
        let mut values = loaded.values;
        let handed: Vec<(u32, Box<RawValue>)> = match handed {
            Handed::None => Vec::new(),
            Handed::All(value) => {
                if loaded.interrupted.is_empty() {
                    return Err(CheckpointError::NotInterrupted {
                        run: run.to_owned(),
                    });
                }
                (loaded.interrupted.iter())
                    .map(|&stage| (stage, value.clone()))
                    .collect()
            }
            Handed::Each(each) => {
                // Every name checked before anything is written.
                let mut handed = Vec::with_capacity(each.len());
                for (name, value) in each {
                    match pipeline.inner().lookup(&name) {
                        Some(stage) if loaded.interrupted.contains(&(stage as u32)) => {
                            handed.push((stage as u32, value));
                        }
                        _ => {
                            return Err(CheckpointError::StageNotInterrupted {
                                run: run.to_owned(),
                                stage: name,
                            })
                        }
                    }
                }
                handed
            }
        };
        for (stage, value) in handed {
            let name = &pipeline.inner().stages[stage as usize].name;
            self.store.put_record(
                run,
                &format!("{VALUE_PREFIX}{name}"),
                value.get().as_bytes(),
            )?;
            values.insert(stage, value);
        }
        Ok(self
            .execute(pipeline, run, options, loaded.restored, values, loaded.memo)
            .await)
    }

    /// Reads run `run`'s checkpoint and checks it against `pipeline`.
    fn load(&self, pipeline: &Pipeline, run: &str) -> Result<Loaded, CheckpointError> {
        let Some(stored) = self.store.load_run(run)? else {
            return Err(CheckpointError::UnknownRun {
                run: run.to_owned(),
            });
        };
        let mut header = Header::read(run, &stored.header)?;
        let inner = pipeline.inner();
        let cache = record::shape_cache(inner);
        if header.fingerprint != cache.fingerprint || header.shape != cache.shape {
            // The shapes decide (the fingerprint is a hash of the shape): a checkpoint written
            // before dependencies were sorted has another fingerprint for the same graph.
            record::normalize(&mut header.shape);
            if header.shape != cache.shape {
                return Err(CheckpointError::ShapeMismatch {
                    run: run.to_owned(),
                    difference: record::first_difference(&header.shape, &cache.shape),
                });
            }
        }
        let input = match (header.input, self.input) {
            (None, _) => None,
            (Some(_), None) => {
                return Err(CheckpointError::InputNotReadable {
                    run: run.to_owned(),
                    reason:
                        "the Durable handle was not told the input's type (Durable::with_input)"
                            .to_owned(),
                })
            }
            (Some(value), Some(decode)) => {
                Some(
                    decode(value).map_err(|error| CheckpointError::InputNotReadable {
                        run: run.to_owned(),
                        reason: error.to_string(),
                    })?,
                )
            }
        };
        // Stages that failed to decode the value they were handed: they may be handed another.
        let mut rejected = Vec::new();
        let mut loaded = Loaded {
            input,
            restored: Vec::new(),
            interrupted: Vec::new(),
            values: HashMap::new(),
            memo: BTreeMap::new(),
        };
        for (key, bytes) in stored.records {
            let (name, is_value) = if let Some(name) = key.strip_prefix(STAGE_PREFIX) {
                (name, false)
            } else if let Some(name) = key.strip_prefix(VALUE_PREFIX) {
                (name, true)
            } else {
                if key.starts_with(ITEM_PREFIX) || key.starts_with(LOOP_PREFIX) {
                    // Read when the fan-out or the loop iteration runs again.
                    loaded.memo.insert(key, bytes);
                }
                continue;
            };
            if is_value {
                let Some(stage) = inner.lookup(name) else {
                    return Err(CheckpointError::CorruptRecord {
                        run: run.to_owned(),
                        stage: name.to_owned(),
                        reason: "the pipeline has no such stage".to_owned(),
                    });
                };
                if bytes == REJECTED_VALUE {
                    rejected.push(stage as u32);
                    continue;
                }
                let value: Box<RawValue> = serde_json::from_slice(&bytes).map_err(|error| {
                    CheckpointError::CorruptRecord {
                        run: run.to_owned(),
                        stage: name.to_owned(),
                        reason: format!("resume value: {error}"),
                    }
                })?;
                loaded.values.insert(stage as u32, value);
                continue;
            }
            let (stage, interrupted, restored) = decode_stage(run, inner, name, &bytes)?;
            if interrupted {
                loaded.interrupted.push(stage);
            }
            loaded.restored.extend(restored);
        }
        for stage in rejected {
            // Unless it recovered and succeeded (restored) or interrupted again (already there).
            if !loaded
                .restored
                .iter()
                .any(|restored| restored.stage == stage)
                && !loaded.interrupted.contains(&stage)
            {
                loaded.interrupted.push(stage);
            }
        }
        topological(inner, &mut loaded.restored);
        Ok(loaded)
    }

    async fn execute(
        &self,
        pipeline: &Pipeline,
        run: &str,
        options: RunOptions,
        restored: Vec<Restored>,
        values: HashMap<u32, Box<RawValue>>,
        memo: BTreeMap<String, Vec<u8>>,
    ) -> DurableOutcome {
        let journal = Arc::new(Journal {
            store: self.store.clone(),
            run: run.to_owned(),
            prefix: String::new(),
            enclosing_values: Vec::new(),
            restored: Mutex::new(restored),
            values,
            memo: Arc::new(Mutex::new(memo)),
            fan_outs: Mutex::new(HashMap::new()),
        });
        let report =
            crate::run::execute_hooked(pipeline.shared_inner(), options.into(), Some(journal))
                .await;
        let interrupt = match (report.outcome(), report.interrupted()) {
            (RunOutcome::Interrupted, Some((stage, reason))) => {
                Some((stage.to_owned(), reason.to_owned()))
            }
            _ => None,
        };
        match interrupt {
            Some((stage, reason)) => DurableOutcome::Interrupted {
                stage,
                reason,
                report,
            },
            None => {
                if self.retention.delete_succeeded && report.is_success() {
                    // The run is done; failing to forget it only costs space.
                    if let Err(error) = self.store.delete_run(run) {
                        tracing::warn!(run, %error, "could not delete a succeeded run");
                    }
                }
                DurableOutcome::Finished(report)
            }
        }
    }

    /// Run `run` as the store holds it, read without its pipeline and without running anything:
    /// each stage's recorded status, failed attempts, artifact, interrupt and the value a resume
    /// would hand it (LangGraph's `get_state`). A stage running when the run stopped, or the
    /// process died, has no status.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::UnknownRun`], [`CheckpointError::CorruptHeader`],
    /// [`CheckpointError::CorruptRecord`] (naming the stage), [`CheckpointError::Store`].
    ///
    /// # Examples
    ///
    /// ```
    /// use hivekit_swarm::checkpoint::{Durable, MemoryStore};
    /// use hivekit_swarm::{Pipeline, RunOptions, StageContext, StageError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let pipeline = Pipeline::builder()
    ///     .stage("draft", |_: StageContext| async { Ok::<_, StageError>(String::from("v1")) })
    ///     .durable()
    ///     .stage("approve", |ctx: StageContext| async move {
    ///         match ctx.resume_value::<bool>()? {
    ///             Some(true) => Ok(()),
    ///             _ => Err(ctx.interrupt("waiting for a reviewer")),
    ///         }
    ///     })
    ///     .after(["draft"])
    ///     .build()?;
    /// let durable = Durable::new(MemoryStore::new());
    /// durable.start(&pipeline, "doc-7", RunOptions::default()).await?;
    ///
    /// let state = durable.inspect("doc-7")?;
    /// let draft = state.stage("draft").unwrap();
    /// assert!(draft.is_restored_on_resume());
    /// assert_eq!(draft.artifact::<String>()?.as_deref(), Some("v1"));
    /// let waiting: Vec<&str> = state.interrupted().map(|stage| stage.name.as_str()).collect();
    /// assert_eq!(waiting, ["approve"]);
    /// assert!(!state.is_complete());
    /// # Ok(())
    /// # }
    /// ```
    pub fn inspect(&self, run: &str) -> Result<RunState, CheckpointError> {
        inspect::inspect(&*self.store, run)
    }

    /// Every run in the store, oldest first.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::Store`] when the store fails.
    pub fn runs(&self) -> Result<Vec<RunEntry>, CheckpointError> {
        Ok(self.store.runs()?)
    }

    /// Deletes run `run`; whether it existed.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::Store`] when the store fails.
    pub fn delete(&self, run: &str) -> Result<bool, CheckpointError> {
        Ok(self.store.delete_run(run)?)
    }

    /// Applies the retention policy: deletes the oldest runs beyond `max_runs` (all of them with
    /// `max_runs(0)`), except the runs in progress on this handle and its clones, which are
    /// skipped (the store then keeps more than `max_runs`); how many it deleted.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::Store`] when the store fails.
    pub fn prune(&self) -> Result<usize, CheckpointError> {
        self.prune_to(self.retention.max_runs)
    }

    /// Deletes the oldest runs not in progress until at most `max_runs` remain (or none of those
    /// is left); how many it deleted.
    fn prune_to(&self, max_runs: usize) -> Result<usize, CheckpointError> {
        let runs = self.store.runs()?;
        let mut excess = runs.len().saturating_sub(max_runs);
        if excess == 0 {
            return Ok(0);
        }
        // A copy: the store's deletions are not made under the lock.
        let active = self.active.lock().clone();
        let mut deleted = 0;
        for entry in &runs {
            if excess == 0 {
                break;
            }
            if active.contains(&entry.run) {
                continue;
            }
            excess -= 1;
            if self.store.delete_run(&entry.run)? {
                deleted += 1;
            }
        }
        Ok(deleted)
    }
}

/// One stage record read back: the stage, whether it waits for a resume value, and what restores
/// it when it succeeded with an artifact that can be read back.
pub(crate) fn decode_stage(
    run: &str,
    inner: &PipelineInner,
    name: &str,
    bytes: &[u8],
) -> Result<(u32, bool, Option<Restored>), CheckpointError> {
    let corrupt = |reason: String| CheckpointError::CorruptRecord {
        run: run.to_owned(),
        stage: name.to_owned(),
        reason,
    };
    let Some(stage) = inner.lookup(name) else {
        return Err(corrupt("the pipeline has no such stage".to_owned()));
    };
    let mut record: StageRecord =
        serde_json::from_slice(bytes).map_err(|error| corrupt(error.to_string()))?;
    let interrupted = record.interrupt.is_some()
        || matches!(record.status, crate::StageStatus::Interrupted { .. });
    let spec = &inner.stages[stage];
    let (true, Some(codec)) = (record.status.is_success(), spec.codec()) else {
        return Ok((stage as u32, interrupted, None));
    };
    let attempts = record.status.attempts();
    let failed = std::mem::take(&mut record.failed_attempts);
    // A record without an artifact (the stage was not durable when it ran) restores nothing: the
    // stage runs again, as a stage without a codec does.
    let Some(artifact) = record.artifact_for(&codec) else {
        return Ok((stage as u32, interrupted, None));
    };
    let artifact = (codec.decode)(artifact)
        .map_err(|error| corrupt(format!("artifact of type `{}`: {error}", spec.output_type)))?;
    let restored = Restored {
        stage: stage as u32,
        artifact,
        attempts,
        failed,
    };
    Ok((stage as u32, interrupted, Some(restored)))
}

/// What a resume hands the stages that interrupted the run.
enum Handed {
    /// Nothing.
    None,
    /// One value, to every one of them.
    All(Box<RawValue>),
    /// A value per stage, by name.
    Each(Vec<(String, Box<RawValue>)>),
}

/// A resume value as the JSON text checkpointed for run `run`: kept as text and decoded straight
/// into the type the stage asks for, with no `serde_json::Value` between (which holds no integer
/// past 64 bits). As for records, a value that would read back as another one is refused.
fn resume_json<V: Serialize + ?Sized>(
    run: &str,
    value: &V,
) -> Result<Box<RawValue>, CheckpointError> {
    let not_serializable = |reason: String| CheckpointError::ValueNotSerializable {
        run: run.to_owned(),
        reason,
    };
    let json = serde_json::to_string(value).map_err(|error| not_serializable(error.to_string()))?;
    if record::may_hold_null(json.as_bytes()) {
        if let Some(lossy) = lossy_null(value) {
            return Err(not_serializable(format!("it holds {lossy}")));
        }
    }
    RawValue::from_string(json).map_err(|error| not_serializable(error.to_string()))
}

/// Whether a JSON value holds a `null` anywhere: the only way serde_json writes a value that does
/// not read back (a non-finite float, a `Some` of a value written as `null`).
fn holds_null(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Null => true,
        serde_json::Value::Array(values) => values.iter().any(holds_null),
        serde_json::Value::Object(fields) => fields.values().any(holds_null),
        _ => false,
    }
}

/// Puts restored stages in the pipeline's topological order (the order the run completes them).
pub(crate) fn topological(inner: &PipelineInner, restored: &mut [Restored]) {
    let mut position = vec![0_usize; inner.stages.len()];
    for (at, &stage) in inner.order.iter().enumerate() {
        position[stage as usize] = at;
    }
    restored.sort_by_key(|restored| position[restored.stage as usize]);
}

/// A checkpoint read back and checked.
struct Loaded {
    input: Option<RunInput>,
    restored: Vec<Restored>,
    interrupted: Vec<u32>,
    values: HashMap<u32, Box<RawValue>>,
    /// Records of loop iterations and fan-out items.
    memo: BTreeMap<String, Vec<u8>>,
}
