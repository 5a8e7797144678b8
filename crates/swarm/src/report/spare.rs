//! A dropped report's stage list, kept by its pipeline for the next run.
//!
//! A run's report holds one [`StageReport`] per stage, each with the stage's name (an `Arc<str>`
//! shared with the pipeline). Making the list costs a run an allocation of the whole list and an
//! atomic increment per name, and dropping the report an atomic decrement per name and the free:
//! for a chain of no-op stages, about a fifth of the run. So a report whose pipeline is still alive
//! hands its list back when it is dropped, reset to what a new run starts from (the names kept),
//! and the pipeline's next run takes it instead of making one. A pipeline keeps at most one list
//! (the memory of one report's stage list, while no report holds it); runs that find none (the
//! first, or one beside a run in flight or a report still alive) make their own.

use std::time::Duration;

use super::{StageReport, StageStatus};
use crate::pipeline::PipelineInner;

/// The stage list of a dropped report of this pipeline, reset, if one was handed back.
#[derive(Default)]
pub(crate) struct SpareStages(parking_lot::Mutex<Vec<StageReport>>);

impl SpareStages {
    /// The stage list for a new run of `pipeline`: every stage undecided (`Cancelled` as a
    /// placeholder), never started, with nothing recorded.
    pub(crate) fn take(pipeline: &PipelineInner) -> Vec<StageReport> {
        // `try_lock`: a run never waits for another run's report being dropped.
        if let Some(mut spare) = pipeline.spare_stages.0.try_lock() {
            if spare.len() == pipeline.stages.len() && !spare.is_empty() {
                return std::mem::take(&mut *spare);
            }
        }
        pipeline
            .stages
            .iter()
            .map(|spec| StageReport {
                name: spec.name.clone(),
                status: StageStatus::Cancelled,
                started: None,
                elapsed: None,
                failed_attempts: Vec::new(),
                fan_out: Vec::new(),
                iterations: Vec::new(),
                resumed: false,
            })
            .collect()
    }

    /// Keeps `stages` (a dropped report's list, of `pipeline`'s stages in order), reset, for the
    /// next run; `false` (and `stages` untouched) if a list is kept already.
    pub(crate) fn keep(pipeline: &PipelineInner, stages: &mut Vec<StageReport>) -> bool {
        if stages.len() != pipeline.stages.len() || stages.is_empty() {
            return false;
        }
        let Some(mut spare) = pipeline.spare_stages.0.try_lock() else {
            return false;
        };
        if !spare.is_empty() {
            return false;
        }
        for stage in stages.iter_mut() {
            reset(stage);
        }
        *spare = std::mem::take(stages);
        true
    }
}

/// Resets a stage's report to what a new run starts from, keeping its name.
#[inline]
fn reset(stage: &mut StageReport) {
    // Every field, named: a field added to `StageReport` must be reset here.
    let StageReport {
        name: _,
        status,
        started,
        elapsed,
        failed_attempts,
        fan_out,
        iterations,
        resumed,
    } = stage;
    let placeholder = std::mem::replace(status, StageStatus::Cancelled);
    // Most statuses hold no data: forgetting them saves an out-of-line drop per stage (with the
    // lists' checks below, 35 instructions a stage, 6% of a no-op chain). Their fields are named,
    // not `..`: a field given to one of these variants stops this from compiling instead of
    // leaking.
    if matches!(
        placeholder,
        StageStatus::Succeeded { attempts: _ }
            | StageStatus::Cancelled
            | StageStatus::TimedOut { attempts: _ }
    ) {
        std::mem::forget(placeholder);
    } else {
        drop(placeholder);
    }
    // A list that never held anything has nothing to free; the others are dropped.
    if failed_attempts.capacity() != 0 {
        *failed_attempts = Vec::new();
    }
    if fan_out.capacity() != 0 {
        *fan_out = Vec::new();
    }
    if iterations.capacity() != 0 {
        *iterations = Vec::new();
    }
    *started = None::<Duration>;
    *elapsed = None;
    *resumed = false;
}
