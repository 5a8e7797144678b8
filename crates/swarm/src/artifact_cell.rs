//! A stage's artifact slot: written once when the stage succeeds, read by its dependents (which
//! may run on other threads) and by the report.
//!
//! `std::sync::OnceLock::set` costs about 80 instructions (its `Once` state machine behind an
//! out-of-line call, with a closure and a waiter list): more than a tenth of what a no-op stage
//! costs the run. Here a stage's artifact is written by one party only (the run, when the stage
//! ends), and nobody ever waits for it (a dependent starts after its dependencies ended), so one
//! compare-and-swap to claim the slot and one release store to publish it are enough.
//!
//! A unit output (`()`, a stage run for its effects) is a state of its own, not a stored `Arc`:
//! every unit output is the one shared artifact of [`unit_artifact`], so storing it would only
//! clone that `Arc` (an atomic read-modify-write) and dropping the cell would undo it (another).

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::pipeline::Artifact;
use crate::stage_fn::{unit_artifact, Output};

/// Nothing written.
const EMPTY: u8 = 0;
/// Claimed by a writer, not yet readable.
const WRITING: u8 = 1;
/// Written and published: readable, never written again.
const SET: u8 = 2;
/// Holds the unit output (the value stays `None`): readable, never written again.
const UNIT: u8 = 3;

/// Holds at most one artifact, set once and then read by any thread.
///
/// # Progress
///
/// Wait-free: `set` is one compare-and-swap and a store (`set_output` of a unit output a load and
/// a store), `get` one load.
pub(crate) struct ArtifactCell {
    state: AtomicU8,
    value: UnsafeCell<Option<Artifact>>,
}

// SAFETY: the value is written only by the one `set` that moved the state from EMPTY to WRITING
// (so never by two threads), and read only after an acquire load saw SET, which the writer stores
// with release after its write: every read happens after the write, and no write follows a read.
// A cell in the UNIT state was never written. `Artifact` is `Send + Sync`.
unsafe impl Sync for ArtifactCell {}

impl ArtifactCell {
    pub(crate) const fn new() -> Self {
        Self {
            state: AtomicU8::new(EMPTY),
            value: UnsafeCell::new(None),
        }
    }

    /// Stores `artifact` if nothing was stored before; otherwise hands it back.
    pub(crate) fn set(&self, artifact: Artifact) -> Result<(), Artifact> {
        if self
            .state
            .compare_exchange(EMPTY, WRITING, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return Err(artifact);
        }
        // SAFETY: the compare-and-swap above made this call the only writer, and no reader looks
        // at the value before the state is SET (stored below, after the write).
        unsafe { *self.value.get() = Some(artifact) };
        self.state.store(SET, Ordering::Release);
        Ok(())
    }

    /// Stores a stage's output if nothing was stored before; otherwise hands it back. A unit
    /// output is stored as the state alone, with a load and a store: no value is written, so
    /// there is nothing to claim. The run records each stage's end once, so its cells have one
    /// writer; were a unit stored while another store is under way, either output may be the one
    /// read afterwards, and every read stays sound (the value is still written at most once,
    /// by the one `set` that claimed the cell, and never read before SET is seen).
    pub(crate) fn set_output(&self, output: Output) -> Result<(), Output> {
        match output {
            Output::Value(artifact) => self.set(artifact).map_err(Output::Value),
            Output::Unit => {
                if self.state.load(Ordering::Relaxed) != EMPTY {
                    return Err(Output::Unit);
                }
                self.state.store(UNIT, Ordering::Release);
                Ok(())
            }
        }
    }

    /// The artifact, once `set` or `set_output` has returned (`None` before, and while a `set` is
    /// under way).
    #[inline]
    pub(crate) fn get(&self) -> Option<&Artifact> {
        match self.state.load(Ordering::Acquire) {
            // SAFETY: SET was stored with release after the value's only write, and the acquire
            // load above saw it: the write happened before this read, and none follows.
            SET => unsafe { (*self.value.get()).as_ref() },
            UNIT => Some(unit_artifact()),
            _ => None,
        }
    }
}

impl Default for ArtifactCell {
    fn default() -> Self {
        Self::new()
    }
}

impl From<Artifact> for ArtifactCell {
    fn from(artifact: Artifact) -> Self {
        Self {
            state: AtomicU8::new(SET),
            value: UnsafeCell::new(Some(artifact)),
        }
    }
}

impl Clone for ArtifactCell {
    fn clone(&self) -> Self {
        match self.get() {
            Some(artifact) => Self::from(artifact.clone()),
            None => Self::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_cell_is_empty_until_set_and_keeps_the_first_value() {
        let cell = ArtifactCell::new();
        assert!(cell.get().is_none());
        assert!(cell.set(Arc::new(1u32)).is_ok());
        let second = cell.set(Arc::new(2u32));
        assert!(second.is_err_and(|back| back.downcast_ref::<u32>() == Some(&2)));
        let value = cell
            .get()
            .and_then(|artifact| artifact.downcast_ref::<u32>());
        assert_eq!(value, Some(&1));
        let copy = cell.clone();
        let value = copy
            .get()
            .and_then(|artifact| artifact.downcast_ref::<u32>());
        assert_eq!(value, Some(&1));
        assert!(ArtifactCell::new().clone().get().is_none());
    }

    #[test]
    fn a_unit_output_reads_as_the_shared_unit_artifact_and_keeps_the_cell_taken() {
        let cell = ArtifactCell::new();
        assert!(cell.set_output(Output::Unit).is_ok());
        let unit = cell.get().expect("a unit output is readable");
        assert!(Arc::ptr_eq(unit, unit_artifact()));
        assert!(unit.downcast_ref::<()>().is_some());
        assert!(cell.set(Arc::new(2u32)).is_err());
        assert!(matches!(cell.set_output(Output::Unit), Err(Output::Unit)));
        assert!(cell.clone().get().is_some_and(|copy| copy.is::<()>()));

        let taken = ArtifactCell::new();
        assert!(taken.set_output(Output::of(7u32)).is_ok());
        assert!(matches!(taken.set_output(Output::Unit), Err(Output::Unit)));
        assert_eq!(taken.get().and_then(|a| a.downcast_ref::<u32>()), Some(&7));
    }

    #[test]
    fn a_dropped_cell_drops_its_artifact_once() {
        let artifact: Artifact = Arc::new(String::from("kept"));
        let cell = ArtifactCell::from(artifact.clone());
        assert_eq!(Arc::strong_count(&artifact), 2);
        drop(cell);
        assert_eq!(Arc::strong_count(&artifact), 1);
    }

    #[test]
    fn racing_setters_store_exactly_one_value_and_readers_see_only_that_value() {
        for _ in 0..200 {
            let cell = Arc::new(ArtifactCell::new());
            let threads: Vec<_> = (0..4u32)
                .map(|writer| {
                    let cell = cell.clone();
                    std::thread::spawn(move || {
                        let stored = cell.set(Arc::new(writer)).is_ok();
                        // Whatever a reader sees is some writer's whole value.
                        if let Some(seen) = cell.get() {
                            assert!(seen.downcast_ref::<u32>().is_some_and(|v| *v < 4));
                        }
                        stored
                    })
                })
                .collect();
            let stored = threads
                .into_iter()
                .map(|thread| thread.join().expect("no thread panics"))
                .filter(|&stored| stored)
                .count();
            assert_eq!(stored, 1);
            assert!(cell.get().is_some());
        }
    }
}
