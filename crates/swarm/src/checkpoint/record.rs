//! What a checkpoint holds: the run's header (input, the pipeline's shape and its fingerprint) and
//! one record per finished stage, all JSON; and [`CheckpointError`].

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::store::StoreError;
use crate::pipeline::{PipelineInner, StageKind};
use crate::report::{AttemptRecord, StageStatus};

/// The version of the record layout written here. Format 1 wrote the header of a run without
/// input with `"input":null`, so it could not tell that run from one whose input is `null`;
/// format 2 leaves the field out instead. Both are read (format 1's `null` as no input).
pub(crate) const FORMAT: u32 = 2;

/// Record keys: a stage's record, and the value a resume hands an interrupted stage.
pub(crate) const STAGE_PREFIX: &str = "s:";
pub(crate) const VALUE_PREFIX: &str = "v:";
/// The value record of a stage that failed to decode the value it was handed: no value (empty,
/// which no JSON value is), and the stage may be handed another as if it had interrupted.
pub(crate) const REJECTED_VALUE: &[u8] = b"";
/// An item of a durable fan-out: `i:{stage index}:{fan-out number}:{items}:{item}`.
pub(crate) const ITEM_PREFIX: &str = "i:";
/// The records of one iteration of a loop stage: `l:{stage index}:{body fingerprint}:{iteration}/`
/// and then the iteration's own keys (stages, items, nested loops).
pub(crate) const LOOP_PREFIX: &str = "l:";

/// A checkpoint could not be written or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `start` was given the id of a run the store already has.
    #[error("run `{run}` already exists in the checkpoint store")]
    RunExists {
        /// The run.
        run: String,
    },
    /// `resume` was given the id of a run in progress on the same [`Durable`](super::Durable)
    /// handle (or a clone): resumed beside itself, its stage in flight would run twice.
    #[error("run `{run}` is in progress: it cannot be resumed before it ends")]
    RunInProgress {
        /// The run.
        run: String,
    },
    /// `resume` was given the id of a run the store does not have.
    #[error("no checkpoint for run `{run}`")]
    UnknownRun {
        /// The run.
        run: String,
    },
    /// The run's input cannot be checkpointed: it was not made with
    /// [`RunInput::serializable`](crate::RunInput::serializable), or serializing it failed.
    #[error("the input of run `{run}` cannot be checkpointed: {reason}")]
    InputNotSerializable {
        /// The run.
        run: String,
        /// Why.
        reason: String,
    },
    /// The checkpoint has an input and the [`Durable`](super::Durable) handle was not told its
    /// type ([`Durable::with_input`](super::Durable::with_input)), or it does not decode as it.
    #[error("the input of run `{run}` cannot be read back: {reason}")]
    InputNotReadable {
        /// The run.
        run: String,
        /// Why.
        reason: String,
    },
    /// The pipeline resumed is not the one checkpointed.
    #[error("run `{run}` was checkpointed with another pipeline: {difference}")]
    ShapeMismatch {
        /// The run.
        run: String,
        /// The first difference found, in words.
        difference: String,
    },
    /// The run's header is unreadable (corrupt, truncated, or of an unknown format).
    #[error("checkpoint of run `{run}` has a corrupt header: {reason}")]
    CorruptHeader {
        /// The run.
        run: String,
        /// What failed to decode.
        reason: String,
    },
    /// A stage's record is unreadable (corrupt or truncated), or its artifact does not decode as
    /// the stage's type.
    #[error("checkpoint of run `{run}` has a corrupt record for stage `{stage}`: {reason}")]
    CorruptRecord {
        /// The run.
        run: String,
        /// The stage.
        stage: String,
        /// What failed to decode.
        reason: String,
    },
    /// `resume_with` was called on a run no stage of which is waiting for a value.
    #[error("run `{run}` has no interrupted stage to hand a value to")]
    NotInterrupted {
        /// The run.
        run: String,
    },
    /// [`Durable::resume_with_values`](super::Durable::resume_with_values) named a stage that is
    /// not waiting for a value (no such stage, or it did not interrupt the run).
    #[error("stage `{stage}` of run `{run}` is not waiting for a value")]
    StageNotInterrupted {
        /// The run.
        run: String,
        /// The stage named.
        stage: String,
    },
    /// The value for an interrupted stage cannot be serialized.
    #[error("the resume value for run `{run}` cannot be serialized: {reason}")]
    ValueNotSerializable {
        /// The run.
        run: String,
        /// Why.
        reason: String,
    },
}

/// Whether JSON `bytes` may hold a `null`: the only way serde_json writes a value that does not
/// read back (a non-finite float, a `Some` of a value written as `null`), so the only records
/// worth checking before they are written.
/// Looks for a byte `n` eight bytes at a time (a few instructions per word; most records hold
/// none), then for `null` itself.
pub(crate) fn may_hold_null(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const NS: u64 = u64::from_ne_bytes([b'n'; 8]);
    let mut chunks = bytes.chunks_exact(8);
    let mut has_n = chunks.remainder().contains(&b'n');
    for chunk in &mut chunks {
        let mut word = [0_u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_ne_bytes(word) ^ NS;
        // A zero byte of `word` is an `n` of the chunk.
        if word.wrapping_sub(ONES) & !word & HIGHS != 0 {
            has_n = true;
            break;
        }
    }
    has_n && bytes.windows(4).any(|window| window == b"null")
}

/// Whether a stage's record, as `encode` wrote it, decodes as `decode_stage` reads it back.
pub(crate) fn reads_back(
    codec: &crate::hooks::Codec,
    bytes: &[u8],
) -> Result<(), serde_json::Error> {
    let record: StageRecord = serde_json::from_slice(bytes)?;
    match record.artifact_for(codec) {
        Some(artifact) => (codec.decode)(artifact).map(drop),
        None => Ok(()),
    }
}

/// One stage of the pipeline's shape: what a resume compares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ShapeStage {
    pub(crate) name: String,
    pub(crate) after: Vec<String>,
    pub(crate) kind: String,
    pub(crate) output: String,
}

/// A run's header.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Header {
    pub(crate) format: u32,
    pub(crate) pipeline: String,
    pub(crate) fingerprint: u64,
    pub(crate) shape: Vec<ShapeStage>,
    /// The run's input: `None` when the header has none (the run was started without one),
    /// `Some(Null)` for an input written as `null` (a `None`, a `()`), as for an artifact.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub(crate) input: Option<serde_json::Value>,
}

impl Header {
    /// Run `run`'s header from its bytes, of any format this build reads.
    pub(crate) fn read(run: &str, bytes: &[u8]) -> Result<Self, CheckpointError> {
        let corrupt = |reason: String| CheckpointError::CorruptHeader {
            run: run.to_owned(),
            reason,
        };
        let mut header: Header =
            serde_json::from_slice(bytes).map_err(|error| corrupt(error.to_string()))?;
        if !(1..=FORMAT).contains(&header.format) {
            return Err(corrupt(format!(
                "unknown format {} (this build reads 1 to {FORMAT})",
                header.format
            )));
        }
        if header.format == 1 {
            // Format 1 wrote a run without input as `"input":null` (see `FORMAT`).
            header.input = header.input.filter(|input| !input.is_null());
        }
        Ok(header)
    }
}

/// A run's header as written (borrowing what the pipeline caches).
#[derive(Serialize)]
pub(crate) struct HeaderRef<'a> {
    pub(crate) format: u32,
    pub(crate) pipeline: &'a str,
    pub(crate) fingerprint: u64,
    pub(crate) shape: &'a [ShapeStage],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) input: Option<&'a serde_json::Value>,
}

/// What a pipeline's checkpoints record of its shape, worked out once per pipeline (by its first
/// durable run) rather than once per run: the shape, its fingerprint, and the header of a run
/// without input, ready to write.
pub(crate) struct ShapeCache {
    pub(crate) shape: Vec<ShapeStage>,
    pub(crate) fingerprint: u64,
    pub(crate) header: Vec<u8>,
}

/// The pipeline's cached shape.
pub(crate) fn shape_cache(pipeline: &PipelineInner) -> &ShapeCache {
    pipeline.checkpoint_shape.get_or_init(|| {
        let shape = shape(pipeline);
        let fingerprint = fingerprint(&shape);
        let header = header(pipeline, &shape, fingerprint, None);
        ShapeCache {
            shape,
            fingerprint,
            header,
        }
    })
}

/// A run's header as bytes.
pub(crate) fn header(
    pipeline: &PipelineInner,
    shape: &[ShapeStage],
    fingerprint: u64,
    input: Option<&serde_json::Value>,
) -> Vec<u8> {
    let header = HeaderRef {
        format: FORMAT,
        pipeline: &pipeline.name,
        fingerprint,
        shape,
        input,
    };
    // Strings, numbers and a JSON value: nothing here can fail to serialize.
    serde_json::to_vec(&header).unwrap_or_default()
}

/// A finished stage's record.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StageRecord {
    pub(crate) status: StageStatus,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) failed_attempts: Vec<AttemptRecord>,
    /// The artifact of a durable stage that succeeded, as the JSON text written (decoded
    /// straight into the stage's type, so that what no `serde_json::Value` holds, such as a
    /// 128-bit integer, reads back): `None` when the record has none (the stage was not durable
    /// when it ran), `Some` of the text `null` for an artifact written as `null` (a `None`, a
    /// `()`): the two must not be confused, or a stage made durable after it ran would be
    /// restored with a `null` it never returned.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub(crate) artifact: Option<Box<RawValue>>,
    /// Why the stage interrupted the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) interrupt: Option<String>,
}

impl StageRecord {
    /// The artifact's JSON to decode with `codec`, or `None` when the record holds none to
    /// restore. A `()` stage's artifact is always `null`, written or not.
    pub(crate) fn artifact_for(&self, codec: &crate::hooks::Codec) -> Option<&str> {
        match &self.artifact {
            None if !codec.verify => Some("null"),
            artifact => artifact.as_deref().map(RawValue::get),
        }
    }
}

/// Reads a field that is there as `Some`, `null` included (a missing one is `None` by `default`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// The pipeline's shape: stage names in declaration order, their dependencies (a set: sorted by
/// name, so that `after(["b", "a"])` is the graph `after(["a", "b"])` is), kinds and artifact
/// types.
pub(crate) fn shape(pipeline: &PipelineInner) -> Vec<ShapeStage> {
    (0..pipeline.stages.len())
        .map(|index| {
            let spec = &pipeline.stages[index];
            let mut after: Vec<String> = pipeline
                .dependencies(index)
                .iter()
                .map(|&dependency| pipeline.stages[dependency as usize].name.to_string())
                .collect();
            after.sort_unstable();
            ShapeStage {
                name: spec.name.to_string(),
                after,
                kind: match spec.kind {
                    StageKind::Plain => "stage",
                    StageKind::Router => "router",
                    StageKind::Loop => "loop",
                }
                .to_owned(),
                output: spec.output_type.to_owned(),
            }
        })
        .collect()
}

/// FNV-1a over the shape's JSON: stable across Rust releases (unlike `DefaultHasher`).
pub(crate) fn fingerprint(shape: &[ShapeStage]) -> u64 {
    let bytes = serde_json::to_vec(shape).unwrap_or_default();
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A shape read from a checkpoint as `shape` makes it now: checkpoints written before
/// dependencies were sorted list them in the order they were declared.
pub(crate) fn normalize(shape: &mut [ShapeStage]) {
    for stage in shape {
        stage.after.sort_unstable();
    }
}

/// The first difference between a checkpoint's shape and a pipeline's, in words.
pub(crate) fn first_difference(stored: &[ShapeStage], current: &[ShapeStage]) -> String {
    for (position, (old, new)) in stored.iter().zip(current).enumerate() {
        if old.name != new.name {
            return format!(
                "stage {} is `{}` in the checkpoint but `{}` in the pipeline",
                position + 1,
                old.name,
                new.name
            );
        }
        if old.after != new.after {
            return format!(
                "stage `{}` runs after [{}] in the checkpoint but after [{}] in the pipeline",
                old.name,
                old.after.join(", "),
                new.after.join(", ")
            );
        }
        if old.kind != new.kind {
            return format!(
                "stage `{}` is a {} in the checkpoint but a {} in the pipeline",
                old.name, old.kind, new.kind
            );
        }
        if old.output != new.output {
            return format!(
                "stage `{}` has artifact type `{}` in the checkpoint but `{}` in the pipeline",
                old.name, old.output, new.output
            );
        }
    }
    match (stored.get(current.len()), current.get(stored.len())) {
        (Some(extra), _) => format!(
            "the checkpoint has {} stages, the pipeline {} (first missing: `{}`)",
            stored.len(),
            current.len(),
            extra.name
        ),
        (_, Some(extra)) => format!(
            "the checkpoint has {} stages, the pipeline {} (first new: `{}`)",
            stored.len(),
            current.len(),
            extra.name
        ),
        (None, None) => "the fingerprints differ".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::may_hold_null;

    /// The word-at-a-time search finds `null` exactly where a plain search does, wherever it falls
    /// against the eight-byte words.
    #[test]
    fn may_hold_null_agrees_with_a_plain_search() {
        let pieces: [&[u8]; 7] = [b"null", b"n", b"nul", b"ull", b"x", b"{\"a\":1}", b"nn"];
        let mut inputs: Vec<Vec<u8>> = vec![Vec::new()];
        for _ in 0..4 {
            let longer: Vec<Vec<u8>> = inputs
                .iter()
                .flat_map(|input| {
                    pieces
                        .iter()
                        .map(move |piece| [input.as_slice(), piece].concat())
                })
                .collect();
            inputs.extend(longer);
        }
        for pad in 0..9 {
            for input in &inputs {
                let bytes = [vec![b' '; pad], input.clone()].concat();
                let plain = bytes.windows(4).any(|window| window == b"null");
                assert_eq!(
                    may_hold_null(&bytes),
                    plain,
                    "{:?}",
                    String::from_utf8_lossy(&bytes)
                );
            }
        }
    }
}
