//! A durable run's hooks: each finished stage written to the store before its dependents start,
//! the interrupts and resume values its stages see through their context, and the finer records:
//! each iteration of a loop stage (a nested journal under a key prefix) and each item of a
//! [`durable_fan_out`](StageContext::durable_fan_out).

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::record::{
    self, CheckpointError, ITEM_PREFIX, LOOP_PREFIX, REJECTED_VALUE, STAGE_PREFIX, VALUE_PREFIX,
};
use super::store::CheckpointStore;
use crate::context::StageContext;
use crate::error::StageError;
use crate::fan_out::{Durability, FanOut, FanOutReport};
use crate::hooks::{Restored, RunHooks};
use crate::options::RunOptions;
use crate::pipeline::{Artifact, Pipeline, PipelineInner};
use crate::report::{AttemptRecord, RunReport, StageStatus};

pub(crate) struct Journal {
    pub(crate) store: Arc<dyn CheckpointStore>,
    pub(crate) run: String,
    /// What this journal's keys start with: empty for the run itself; for an iteration of a loop
    /// stage, its parent's prefix and `l:{stage}:{body fingerprint}:{iteration}/`.
    pub(crate) prefix: String,
    /// The keys of the resume values of the loop stages this journal's iteration runs in, from
    /// the run's root down (empty for the run itself): a value a body stage rejects came to it
    /// through them, so each is marked rejected with it (see `resume_value`).
    pub(crate) enclosing_values: Vec<String>,
    pub(crate) restored: Mutex<Vec<Restored>>,
    /// Values handed to interrupted stages by `resume_with`, by stage.
    pub(crate) values: HashMap<u32, Box<serde_json::value::RawValue>>,
    /// The records of loop iterations and fan-out items, by key from the run's root: as loaded,
    /// and as written since (so that a retried stage restores what its earlier attempt finished).
    pub(crate) memo: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
    /// Durable fan-outs started so far by each (stage, attempt): a fan-out's key is its place.
    pub(crate) fan_outs: Mutex<HashMap<(u32, u32), u32>>,
}

impl Journal {
    /// The journal of iteration `iteration` of loop stage `stage` (named `name`), whose body is
    /// `body`: the body's stages that an earlier run (or attempt) finished in that iteration are
    /// restored.
    fn iteration(
        &self,
        body: &PipelineInner,
        stage: u32,
        name: &str,
        iteration: u32,
    ) -> Result<Self, CheckpointError> {
        let fingerprint = record::shape_cache(body).fingerprint;
        let prefix = format!(
            "{}{LOOP_PREFIX}{stage}:{fingerprint:016x}:{iteration}/",
            self.prefix
        );
        let stages = format!("{prefix}{STAGE_PREFIX}");
        let rejections = format!("{prefix}{VALUE_PREFIX}");
        let mut restored = Vec::new();
        // A resume value handed to the loop stage goes to the body's stages that interrupted this
        // iteration (the loop stage was interrupted because they were), and to those that
        // rejected the value they were handed (they may be handed another, as at the root).
        let value = self.values.get(&stage);
        let mut waiting = Vec::new();
        {
            let memo = self.memo.lock();
            for (key, bytes) in memo
                .range(stages.clone()..)
                .take_while(|(key, _)| key.starts_with(&stages))
            {
                let name = &key[stages.len()..];
                let (body_stage, interrupted, finished) =
                    super::decode_stage(&self.run, body, name, bytes)?;
                restored.extend(finished);
                if interrupted {
                    waiting.push(body_stage);
                }
            }
            for (key, _) in memo
                .range(rejections.clone()..)
                .take_while(|(key, _)| key.starts_with(&rejections))
            {
                // Written by this crate for a stage of `body` (same fingerprint): a name it does
                // not know is skipped, as the root skips records it does not read.
                if let Some(body_stage) = body.lookup(&key[rejections.len()..]) {
                    waiting.push(body_stage as u32);
                }
            }
        }
        let mut values = HashMap::new();
        if let Some(value) = value {
            for body_stage in waiting {
                if !restored.iter().any(|done| done.stage == body_stage) {
                    values.insert(body_stage, value.clone());
                }
            }
        }
        super::topological(body, &mut restored);
        let mut enclosing_values = self.enclosing_values.clone();
        enclosing_values.push(format!("{}{VALUE_PREFIX}{name}", self.prefix));
        Ok(Self {
            store: self.store.clone(),
            run: self.run.clone(),
            prefix,
            enclosing_values,
            restored: Mutex::new(restored),
            values,
            memo: self.memo.clone(),
            fan_outs: Mutex::new(HashMap::new()),
        })
    }

    /// Drops the resume value of stage `name` from the checkpoint: marks it rejected, and so the
    /// values of the loop stages it came through (at the root, the run counts as interrupted by
    /// the outermost loop stage again; in each iteration, the stage it went to waits for one).
    fn reject_value(&self, name: &str) -> Result<(), super::StoreError> {
        for key in &self.enclosing_values {
            self.put(key.clone(), REJECTED_VALUE.to_vec())?;
        }
        self.put(
            format!("{}{VALUE_PREFIX}{name}", self.prefix),
            REJECTED_VALUE.to_vec(),
        )
    }

    /// Writes one record; those below the run's own stages are remembered in `memo` too.
    fn put(&self, key: String, bytes: Vec<u8>) -> Result<(), super::StoreError> {
        self.store.put_record(&self.run, &key, &bytes)?;
        if !self.prefix.is_empty() || key.starts_with(ITEM_PREFIX) {
            self.memo.lock().insert(key, bytes);
        }
        Ok(())
    }

    /// The bytes of a finished stage's record, checked to read back.
    fn record(
        &self,
        spec: &crate::pipeline::StageSpec,
        status: &StageStatus,
        failed: &[AttemptRecord],
        artifact: Option<&Artifact>,
    ) -> Result<Vec<u8>, StageError> {
        // One pass from the typed artifact to the record's bytes; stages without a codec record
        // their status alone.
        let codec = status.is_success().then(|| spec.codec()).flatten();
        let (encode, artifact) = match codec {
            Some(codec) => (codec.encode, artifact.map(|artifact| &**artifact)),
            None => (
                crate::hooks::encode_record::<()> as crate::hooks::RecordEncoder,
                None,
            ),
        };
        let (bytes, artifact_at) = encode(status, failed, artifact).map_err(|error| {
            StageError::permanent(format!(
                "checkpoint of run `{}`: cannot serialize the record of stage `{}`: {error}",
                self.run, spec.name
            ))
        })?;
        // A record that would not read back is not written as if it would: every resume would
        // fail on it. The stage fails instead (not recorded, it runs again on resume).
        if let Some(codec) = codec.filter(|codec| codec.verify) {
            if record::may_hold_null(&bytes[artifact_at..]) {
                // A non-finite float or a `Some(None)` below an `Option` reads back as another
                // value (`None`), which decoding the record cannot tell: walking the value can.
                if let Some(lossy) = artifact.and_then(|artifact| (codec.lossy_null)(artifact)) {
                    return Err(StageError::permanent(format!(
                        "checkpoint of run `{}`: the artifact of stage `{}` (a `{}`) holds \
                         {lossy}, so it is not recorded",
                        self.run, spec.name, spec.output_type
                    )));
                }
                record::reads_back(&codec, &bytes).map_err(|error| {
                    StageError::permanent(format!(
                        "checkpoint of run `{}`: the artifact of stage `{}` (a `{}`) would not \
                         read back, so it is not recorded (a non-finite float is written as \
                         JSON null): {error}",
                        self.run, spec.name, spec.output_type
                    ))
                })?;
            }
        }
        Ok(bytes)
    }
}

impl RunHooks for Journal {
    fn take_restored(&self) -> Vec<Restored> {
        std::mem::take(&mut *self.restored.lock())
    }

    fn finished(
        &self,
        pipeline: &PipelineInner,
        stage: u32,
        status: &StageStatus,
        failed: &[AttemptRecord],
        artifact: Option<&Artifact>,
    ) -> Result<(), StageError> {
        let spec = &pipeline.stages[stage as usize];
        // The artifact's `Serialize` and `Deserialize` are the user's code: a panic in them fails
        // the stage, as a panic in the stage itself does, instead of unwinding through the run.
        let bytes = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.record(spec, status, failed, artifact)
        }))
        .unwrap_or_else(|panic| {
            Err(StageError::permanent(format!(
                "checkpoint of run `{}`: the serializer of stage `{}`'s record panicked: {}",
                self.run,
                spec.name,
                hivekit_runtime::take_panic_message(panic)
            )))
        })?;
        // Pushed rather than `format!`ed: the formatting machinery cost ~800 instructions a stage.
        let mut key =
            String::with_capacity(self.prefix.len() + STAGE_PREFIX.len() + spec.name.len());
        key.push_str(&self.prefix);
        key.push_str(STAGE_PREFIX);
        key.push_str(&spec.name);
        self.put(key, bytes)
            .map_err(|error| StageError::permanent(format!("checkpoint write failed: {error}")))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl StageContext {
    pub(crate) fn journal(&self) -> (Option<&Journal>, u32) {
        let (hooks, stage) = self.hooks();
        (
            hooks.and_then(|hooks| hooks.as_any().downcast_ref::<Journal>()),
            stage,
        )
    }

    /// Pauses a [durable](crate::checkpoint::Durable) run for outside input (an approval, a human
    /// edit): return the error this gives (`return Err(ctx.interrupt("needs approval"))`). The stage
    /// is never retried and ends [`StageStatus::Interrupted`](crate::StageStatus::Interrupted) (not
    /// failed), its dependents wait (skipped), stages independent of it still run, and the run ends
    /// [`RunOutcome::Interrupted`](crate::RunOutcome::Interrupted) (unless another stage failed),
    /// that is [`DurableOutcome::Interrupted`](crate::checkpoint::DurableOutcome::Interrupted), with
    /// the stage checkpointed as interrupted.
    /// [`Durable::resume_with`](crate::checkpoint::Durable::resume_with) runs the stage again with a
    /// value it reads with [`resume_value`](StageContext::resume_value).
    ///
    /// In a loop's body ([`repeat`](crate::PipelineBuilder::repeat)) the loop stage is interrupted
    /// with it; a resume re-enters the iteration it paused in (the iterations finished before are
    /// read back, not run) and hands the value to the body's stage that asked. An item of a
    /// [fan-out](StageContext::fan_out) that interrupts interrupts its stage when the stage cannot
    /// succeed without it (the fan-out's error is then this interrupt, naming the item); the items
    /// read the stage's own resume value, and a [durable fan-out](StageContext::durable_fan_out)
    /// runs only the items not recorded before.
    ///
    /// Outside a durable run nothing could resume it: the stage fails with this
    /// [`StageError::Interrupted`] (message `interrupted: <reason>`).
    ///
    /// # Examples
    ///
    /// ```
    /// use hivekit_swarm::{StageContext, StageError};
    ///
    /// async fn publish(ctx: StageContext) -> Result<&'static str, StageError> {
    ///     match ctx.resume_value::<bool>()? {
    ///         Some(true) => Ok("published"),
    ///         Some(false) => Ok("rejected"),
    ///         None => Err(ctx.interrupt("publishing needs an approval")),
    ///     }
    /// }
    /// ```
    pub fn interrupt(&self, reason: impl Display) -> StageError {
        StageError::Interrupted {
            reason: reason.to_string(),
        }
    }

    /// The value a [`resume_with`](crate::checkpoint::Durable::resume_with) handed this stage after
    /// it [interrupted](StageContext::interrupt) the run (`None`: the first time, or not a durable run).
    ///
    /// # Errors
    ///
    /// [`StageError::Permanent`] when the value does not decode as a `T`. The value is then
    /// dropped from the checkpoint, so that the run can be given the right one: a
    /// [`resume_with`](crate::checkpoint::Durable::resume_with) hands the stage a new value (the
    /// stage counts as interrupted again), and a plain
    /// [`resume`](crate::checkpoint::Durable::resume) runs it without one (`None`: it asks again).
    pub fn resume_value<T: DeserializeOwned>(&self) -> Result<Option<T>, StageError> {
        let (Some(journal), stage) = self.journal() else {
            return Ok(None);
        };
        let Some(value) = journal.values.get(&stage) else {
            return Ok(None);
        };
        serde_json::from_str(value.get())
            .map(Some)
            .map_err(|error| {
                // Kept, the value would be handed back to every later resume and fail it again.
                let dropped = journal.reject_value(self.name()).map_or_else(
                    |error| format!(" (dropping it from the checkpoint failed: {error})"),
                    |()| String::new(),
                );
                StageError::permanent(format!(
                    "the resume value of stage `{}` is not a {}: {error}{dropped}",
                    self.name(),
                    std::any::type_name::<T>()
                ))
            })
    }

    /// [`fan_out`](StageContext::fan_out) with every item checkpointed on its own: in a
    /// [durable](crate::checkpoint::Durable) run, each item that succeeds is written to the store
    /// (its value as JSON) as it finishes, and when the stage runs again (a resume after a crash,
    /// or a retry of the stage) the items already written are read back instead of run: a crash
    /// after 5 of 8 items runs only the other 3. Items are matched by position (and count), so the
    /// stage must fan out over the same items in the same order, as it does when they come from
    /// its inputs; the fan-outs of one stage attempt are told apart by their order. An item whose
    /// record cannot be written fails (not retried: its effects happened), as does an item whose
    /// JSON would not read back as itself (a non-finite float, or a `Some(None)`, both written as
    /// `null`): it is not recorded. Outside a durable run, exactly `fan_out`.
    ///
    /// The stage's [`FanOutSummary`](crate::FanOutSummary) counts the items read back in
    /// `resumed`.
    ///
    /// # Errors
    ///
    /// As [`fan_out`](StageContext::fan_out), and [`StageError::Permanent`] naming the run, stage
    /// and item when a checkpointed item does not decode as a `T`.
    ///
    /// # Examples
    ///
    /// ```
    /// use hivekit_swarm::checkpoint::{Durable, MemoryStore};
    /// use hivekit_swarm::{FanOut, Pipeline, RunOptions, StageContext, StageError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let pipeline = Pipeline::builder()
    ///     .stage("review", |ctx: StageContext| async move {
    ///         let files = ["a.rs", "b.rs", "c.rs"];
    ///         let reviews = ctx
    ///             .durable_fan_out(files, FanOut::new(2), |file| async move {
    ///                 Ok::<_, StageError>(format!("{file}: fine"))
    ///             })
    ///             .await?;
    ///         Ok::<_, StageError>(reviews.into_successes().collect::<Vec<_>>())
    ///     })
    ///     .durable()
    ///     .build()?;
    /// let outcome = Durable::new(MemoryStore::new())
    ///     .start(&pipeline, "pr-1", RunOptions::default())
    ///     .await?;
    /// assert_eq!(outcome.report().artifact::<Vec<String>>("review")?.len(), 3);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn durable_fan_out<I, F, Fut, T>(
        &self,
        items: I,
        policy: FanOut,
        f: F,
    ) -> Result<FanOutReport<T>, StageError>
    where
        I: IntoIterator,
        I::Item: Clone,
        F: FnMut(I::Item) -> Fut,
        Fut: Future<Output = Result<T, StageError>>,
        T: Serialize + DeserializeOwned,
    {
        let (Some(journal), stage) = self.journal() else {
            return self.fan_out(items, policy, f).await;
        };
        let items: Vec<I::Item> = items.into_iter().collect();
        let sequence = {
            let mut started = journal.fan_outs.lock();
            let next = started.entry((stage, self.attempt())).or_insert(0);
            *next += 1;
            *next - 1
        };
        let keys = format!(
            "{}{ITEM_PREFIX}{stage}:{sequence}:{}:",
            journal.prefix,
            items.len()
        );
        let mut resumed = Vec::new();
        for (key, bytes) in journal
            .memo
            .lock()
            .range(keys.clone()..)
            .take_while(|(key, _)| key.starts_with(&keys))
        {
            let Ok(index) = key[keys.len()..].parse::<usize>() else {
                continue;
            };
            let value = serde_json::from_slice::<T>(bytes).map_err(|error| {
                StageError::permanent(format!(
                    "checkpoint of run `{}`: item {index} of stage `{}` is not a {}: {error}",
                    journal.run,
                    self.name(),
                    std::any::type_name::<T>()
                ))
            })?;
            resumed.push((index, value));
        }
        let record = |index: usize, value: &T| {
            let bytes = serde_json::to_vec(value).map_err(|error| {
                StageError::permanent(format!(
                    "checkpoint of run `{}`: cannot serialize item {index} of stage `{}`: {error}",
                    journal.run,
                    self.name()
                ))
            })?;
            // As for a stage's artifact: an item that would not read back is not recorded.
            if record::may_hold_null(&bytes) {
                if let Some(lossy) = super::lossy_null(value) {
                    return Err(StageError::permanent(format!(
                        "checkpoint of run `{}`: item {index} of stage `{}` (a `{}`) holds \
                         {lossy}, so it is not recorded",
                        journal.run,
                        self.name(),
                        std::any::type_name::<T>()
                    )));
                }
                if let Err(error) = serde_json::from_slice::<T>(&bytes) {
                    return Err(StageError::permanent(format!(
                        "checkpoint of run `{}`: item {index} of stage `{}` would not read back, \
                         so it is not recorded (a non-finite float is written as JSON null): \
                         {error}",
                        journal.run,
                        self.name()
                    )));
                }
            }
            journal
                .put(format!("{keys}{index}"), bytes)
                .map_err(|error| StageError::permanent(format!("checkpoint write failed: {error}")))
        };
        self.fan_out_with(items, policy, Durability { resumed, record }, f)
            .await
    }
}

/// Runs one iteration of a loop stage's body: in a durable run under a journal of its own, so
/// that its stages are checkpointed and an iteration an earlier run finished is read back.
pub(crate) async fn run_iteration(
    context: &StageContext,
    body: &Pipeline,
    iteration: u32,
    options: RunOptions,
) -> Result<RunReport, StageError> {
    let (Some(journal), stage) = context.journal() else {
        return Ok(body.run_with(options).await);
    };
    let nested = journal
        .iteration(body.inner(), stage, context.name(), iteration)
        .map_err(|error| StageError::permanent(format!("iteration {iteration}: {error}")))?;
    Ok(
        crate::run::execute_hooked(body.shared_inner(), options.into(), Some(Arc::new(nested)))
            .await,
    )
}
