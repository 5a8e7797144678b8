//! The queue of ready stages waiting for a concurrency slot, ordered by their scheduling hints.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use hivekit_lockfree::SchedulingHint;

/// Highest `sort_key` first, first in first out among equal keys.
#[derive(Default)]
pub(crate) struct ReadyQueue {
    heap: BinaryHeap<(u8, Reverse<u64>, u32)>,
    sequence: u64,
}

impl ReadyQueue {
    pub(crate) fn push(&mut self, hint: SchedulingHint, stage: u32) {
        self.sequence += 1;
        self.heap
            .push((hint.sort_key(), Reverse(self.sequence), stage));
    }

    pub(crate) fn pop(&mut self) -> Option<u32> {
        self.heap.pop().map(|(_, _, stage)| stage)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}
