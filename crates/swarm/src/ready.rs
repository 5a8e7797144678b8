//! The queue of ready stages waiting for a concurrency slot, ordered by their scheduling hints.

use hivekit_lockfree::{PriorityScheduler, SchedulingHint};

/// Highest `sort_key` first, first in first out among equal keys: a [`PriorityScheduler`], created
/// the first time a stage has to wait, so runs whose slots never run out do not pay for its lanes.
#[derive(Default)]
pub(crate) struct ReadyQueue {
    scheduler: Option<PriorityScheduler<u32>>,
    waiting: usize,
}

impl ReadyQueue {
    pub(crate) fn push(&mut self, hint: SchedulingHint, stage: u32) {
        self.waiting += 1;
        let scheduler = self.scheduler.get_or_insert_with(PriorityScheduler::new);
        if scheduler.push(hint, stage).is_err() {
            unreachable!("a PriorityScheduler built without a capacity is never full");
        }
    }

    pub(crate) fn pop(&mut self) -> Option<u32> {
        if self.waiting == 0 {
            return None;
        }
        let stage = self.scheduler.as_ref().and_then(PriorityScheduler::pop)?;
        self.waiting -= 1;
        Some(stage)
    }

    /// How many stages wait.
    pub(crate) fn len(&self) -> usize {
        self.waiting
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.waiting == 0
    }
}
