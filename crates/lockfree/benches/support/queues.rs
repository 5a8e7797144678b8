//! The queues the scheduler benches compare, shared by the criterion suite (`scheduler.rs`) and the
//! instruction counts (`instructions.rs`): the hivekit scheduler and its peers behind one `Queue`
//! trait, the hint stream, and the steady-state prefill.

// Each bench binary uses a part of this module.
#![allow(dead_code)]

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{fence, AtomicU64, AtomicUsize, Ordering};

use benches_common::hints::hint_stream;
use benches_common::workload::DEFAULT_SEED;
use crossbeam_queue::SegQueue;
use crossbeam_skiplist::SkipMap;
use hivekit_lockfree::{PriorityScheduler, SchedulerConfig, SchedulingHint};
use parking_lot::Mutex;

/// Hints cycled through by every operation (a power of two, indexed with a mask).
pub(crate) const STREAM: usize = 4_096;

pub(crate) use super::to_hint;

pub(crate) fn hints() -> Vec<SchedulingHint> {
    hint_stream(STREAM, DEFAULT_SEED)
        .into_iter()
        .map(to_hint)
        .collect()
}

/// A priority queue of `u64` items under test.
pub(crate) trait Queue {
    fn push(&self, hint: SchedulingHint, item: u64);
    fn pop(&self) -> Option<u64>;
}

pub(crate) struct Hivekit(pub(crate) PriorityScheduler<u64>);

impl Hivekit {
    pub(crate) fn new(max_bypass: Option<u32>) -> Self {
        let config = SchedulerConfig {
            capacity: None,
            max_bypass,
        };
        match PriorityScheduler::with_config(config) {
            Ok(scheduler) => Self(scheduler),
            Err(error) => panic!("bench config refused: {error}"),
        }
    }
}

impl Queue for Hivekit {
    fn push(&self, hint: SchedulingHint, item: u64) {
        // Unbounded: never full.
        let _ = self.0.push(hint, item);
    }
    fn pop(&self) -> Option<u64> {
        self.0.pop()
    }
}

/// Heap entry: highest key first, then lowest sequence (FIFO).
pub(crate) type Entry = (u8, Reverse<u64>, u64);

/// One thread: the heap and its sequence counter behind one `RefCell` (the `Queue` trait takes
/// `&self`), one borrow per operation.
#[derive(Default)]
pub(crate) struct StdBinaryHeap(RefCell<(BinaryHeap<Entry>, u64)>);

impl Queue for StdBinaryHeap {
    fn push(&self, hint: SchedulingHint, item: u64) {
        let mut guard = self.0.borrow_mut();
        let (heap, sequence) = &mut *guard;
        *sequence += 1;
        heap.push((hint.sort_key(), Reverse(*sequence), item));
    }
    fn pop(&self) -> Option<u64> {
        self.0.borrow_mut().0.pop().map(|(_, _, item)| item)
    }
}

#[derive(Default)]
pub(crate) struct MutexBinaryHeap(Mutex<(BinaryHeap<Entry>, u64)>);

impl Queue for MutexBinaryHeap {
    fn push(&self, hint: SchedulingHint, item: u64) {
        let mut guard = self.0.lock();
        let (heap, sequence) = &mut *guard;
        *sequence += 1;
        heap.push((hint.sort_key(), Reverse(*sequence), item));
    }
    fn pop(&self) -> Option<u64> {
        self.0.lock().0.pop().map(|(_, _, item)| item)
    }
}

#[derive(Default)]
pub(crate) struct SegQueueFourLanes([SegQueue<u64>; 4]);

impl Queue for SegQueueFourLanes {
    fn push(&self, hint: SchedulingHint, item: u64) {
        self.0[hint.priority.index()].push(item);
    }
    fn pop(&self) -> Option<u64> {
        self.0.iter().rev().find_map(SegQueue::pop)
    }
}

/// The bare floor of a lane design that orders by the full sort key, as `hivekit` does: one
/// `SegQueue` per key (48), pop scanning from the highest (no summary word, no counts, no
/// anti-starvation). `segqueue-4-lanes` orders by priority alone, so on the bench's stream of 48
/// keys it does less than `hivekit`; this row does the same ordering work.
pub(crate) struct SegQueueKeyLanes(Box<[SegQueue<u64>]>);

impl Default for SegQueueKeyLanes {
    fn default() -> Self {
        Self((0..SchedulingHint::KEYS).map(|_| SegQueue::new()).collect())
    }
}

impl Queue for SegQueueKeyLanes {
    fn push(&self, hint: SchedulingHint, item: u64) {
        self.0[usize::from(hint.sort_key())].push(item);
    }
    fn pop(&self) -> Option<u64> {
        self.0.iter().rev().find_map(SegQueue::pop)
    }
}

#[derive(Default)]
pub(crate) struct SkipList {
    map: SkipMap<(Reverse<u8>, u64), u64>,
    sequence: AtomicU64,
}

impl Queue for SkipList {
    fn push(&self, hint: SchedulingHint, item: u64) {
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        self.map.insert((Reverse(hint.sort_key()), sequence), item);
    }
    fn pop(&self) -> Option<u64> {
        self.map.pop_front().map(|entry| *entry.value())
    }
}

/// The design the lane scheduler was measured against: four locked heaps with a shared sequence;
/// push goes to a shard chosen round-robin, pop peeks every shard's top and takes the best.
#[derive(Default)]
pub(crate) struct ShardedHeap {
    shards: [Mutex<BinaryHeap<Entry>>; 4],
    sequence: AtomicU64,
    next_shard: AtomicUsize,
}

impl Queue for ShardedHeap {
    fn push(&self, hint: SchedulingHint, item: u64) {
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        let shard = self.next_shard.fetch_add(1, Ordering::Relaxed) % self.shards.len();
        self.shards[shard]
            .lock()
            .push((hint.sort_key(), Reverse(sequence), item));
    }
    fn pop(&self) -> Option<u64> {
        loop {
            let best = self
                .shards
                .iter()
                .enumerate()
                .filter_map(|(index, shard)| shard.lock().peek().map(|top| (top.0, top.1, index)))
                .max()?;
            // Take the best top if it is still there; otherwise another pop won it: look again.
            let mut shard = self.shards[best.2].lock();
            if shard.peek().map(|top| (top.0, top.1)) == Some((best.0, best.1)) {
                return shard.pop().map(|(_, _, item)| item);
            }
        }
    }
}

/// A design tried against the scheduler's bitmap protocol and kept as a row: the scheduler's 48
/// lanes and bitmap in strict order (compare with `hivekit-strict`), but a push sets its lane's bit
/// only when it reads clear, after a `SeqCst` fence, and a pop that empties a lane clears the bit,
/// fences, then re-checks. Pushes to a lane whose bit is set then write no shared cache line, at the
/// price of a fence (a locked instruction on the thread's own stack) on every push.
pub(crate) struct FencedSetLanes {
    lanes: Box<[SegQueue<u64>]>,
    nonempty: crossbeam_utils::CachePadded<AtomicU64>,
}

impl Default for FencedSetLanes {
    fn default() -> Self {
        Self {
            lanes: (0..SchedulingHint::KEYS).map(|_| SegQueue::new()).collect(),
            nonempty: crossbeam_utils::CachePadded::new(AtomicU64::new(0)),
        }
    }
}

impl FencedSetLanes {
    fn clear(&self, key: usize) {
        let bit = 1_u64 << key;
        self.nonempty.fetch_and(!bit, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if !self.lanes[key].is_empty() {
            self.nonempty.fetch_or(bit, Ordering::Relaxed);
        }
    }
}

impl Queue for FencedSetLanes {
    fn push(&self, hint: SchedulingHint, item: u64) {
        let key = usize::from(hint.sort_key());
        self.lanes[key].push(item);
        // Either this fence precedes a clearing pop's fence (whose re-check then sees the item) or
        // follows it (and this load sees the clear, so the bit is set here).
        fence(Ordering::SeqCst);
        let bit = 1_u64 << key;
        if self.nonempty.load(Ordering::Relaxed) & bit == 0 {
            self.nonempty.fetch_or(bit, Ordering::Relaxed);
        }
    }
    fn pop(&self) -> Option<u64> {
        loop {
            let bits = self.nonempty.load(Ordering::Relaxed);
            if bits == 0 {
                return self.lanes.iter().rev().find_map(SegQueue::pop);
            }
            let key = 63 - bits.leading_zeros() as usize;
            if let Some(item) = self.lanes[key].pop() {
                if self.lanes[key].is_empty() {
                    self.clear(key);
                }
                return Some(item);
            }
            self.clear(key);
        }
    }
}

/// A design tried against the scheduler's single bitmap and kept as a row: `hivekit-strict`'s 48
/// lanes and always-set protocol, but the bitmap split into one word per priority, each on its own
/// cache line, so that threads pushing at different priorities write different lines. A pop reads
/// the four words (all of them: a scan from the top that stops at the first non-empty word
/// mispredicts its exit on most pops). Under load from parallel builds it measured slower than
/// `hivekit-strict` on one thread and no better at `mpmc-2t` or `mpmc-4t`: the pop now reads the
/// lines the other threads' pushes write, which gives back the sharing the split removed.
pub(crate) struct PriorityWordLanes {
    lanes: Box<[SegQueue<u64>]>,
    /// Word `p` holds priority `p`'s bits at their global positions (bit `k` for lane `k`).
    nonempty: [crossbeam_utils::CachePadded<AtomicU64>; 4],
}

impl Default for PriorityWordLanes {
    fn default() -> Self {
        Self {
            lanes: (0..SchedulingHint::KEYS).map(|_| SegQueue::new()).collect(),
            nonempty: std::array::from_fn(|_| crossbeam_utils::CachePadded::new(AtomicU64::new(0))),
        }
    }
}

impl PriorityWordLanes {
    fn word(&self, key: usize) -> &AtomicU64 {
        &self.nonempty[key / (SchedulingHint::KEYS / 4)]
    }

    fn bits(&self) -> u64 {
        self.nonempty
            .iter()
            .fold(0, |bits, word| bits | word.load(Ordering::Acquire))
    }

    fn clear(&self, key: usize) {
        let bit = 1_u64 << key;
        let word = self.word(key);
        word.fetch_and(!bit, Ordering::Acquire);
        if !self.lanes[key].is_empty() {
            word.fetch_or(bit, Ordering::Release);
        }
    }
}

impl Queue for PriorityWordLanes {
    fn push(&self, hint: SchedulingHint, item: u64) {
        let key = usize::from(hint.sort_key());
        self.lanes[key].push(item);
        self.word(key).fetch_or(1_u64 << key, Ordering::Release);
    }
    fn pop(&self) -> Option<u64> {
        loop {
            let bits = self.bits();
            if bits == 0 {
                return self
                    .lanes
                    .iter()
                    .rev()
                    .filter(|lane| !lane.is_empty())
                    .find_map(SegQueue::pop);
            }
            let key = 63 - bits.leading_zeros() as usize;
            if let Some(item) = self.lanes[key].pop() {
                if self.lanes[key].is_empty() {
                    self.clear(key);
                }
                return Some(item);
            }
            self.clear(key);
        }
    }
}

/// Not a queue: what the scheduler's bitmap costs on its own, the floor of any design that keeps
/// one shared summary word. A push sets its key's bit in one shared, cache-padded word with a
/// `Release` `fetch_or` (as the scheduler's push always does) and a pop reads the word and clears
/// its highest bit with an `Acquire` `fetch_and` (as the scheduler's pop does when it takes a
/// lane's last item, the usual case at this bench's steady state, where an item pushed above the
/// deepest lane is popped at once). At `mpmc-2t` both read-modify-writes usually find the line in
/// the other core's cache. Compare it with `segqueue-4-lanes` and `hivekit-strict` in one run.
#[derive(Default)]
pub(crate) struct SharedWordFloor(crossbeam_utils::CachePadded<AtomicU64>);

impl Queue for SharedWordFloor {
    fn push(&self, hint: SchedulingHint, item: u64) {
        self.0.fetch_or(1_u64 << hint.sort_key(), Ordering::Release);
        std::hint::black_box(item);
    }
    fn pop(&self) -> Option<u64> {
        let bits = self.0.load(Ordering::Acquire);
        let top = 1_u64 << (63 - (bits | 1).leading_zeros());
        Some(self.0.fetch_and(!top, Ordering::Acquire))
    }
}

/// One lane of [`StampedLanes`]: Vyukov's bounded ring, each slot stamped with the position it
/// holds. A pop claims the head slot only once its stamp says the value is written, so it never
/// waits for a pusher that reserved the slot and was descheduled before writing it: it reports
/// [`LanePop::NotReady`] instead and the scheduler tries another lane.
pub(crate) struct StampedLane<E = PaddedEnds> {
    /// The head and tail positions: on two padded lines ([`PaddedEnds`]) or sharing one
    /// ([`SharedLineEnds`]).
    ends: E,
    /// Slot `i` of the ring: its stamp and its value (a `u64`, so an atomic: no unsafe here).
    slots: Box<[(AtomicUsize, AtomicU64)]>,
}

/// Where a ring lane keeps its head and tail positions.
pub(crate) trait Ends: Sync {
    fn new() -> Self;
    fn head(&self) -> &AtomicUsize;
    fn tail(&self) -> &AtomicUsize;
}

/// Head and tail each on its own padded cache line: right for one hot queue.
pub(crate) struct PaddedEnds([crossbeam_utils::CachePadded<AtomicUsize>; 2]);

/// Head and tail on one padded line: a sparse lane's push then pop touch one line, not two (the
/// `hivekit-stamped-shared-ends` probe).
pub(crate) struct SharedLineEnds(crossbeam_utils::CachePadded<[AtomicUsize; 2]>);

impl Ends for PaddedEnds {
    fn new() -> Self {
        Self(std::array::from_fn(|_| {
            crossbeam_utils::CachePadded::new(AtomicUsize::new(0))
        }))
    }
    fn head(&self) -> &AtomicUsize {
        &self.0[0]
    }
    fn tail(&self) -> &AtomicUsize {
        &self.0[1]
    }
}

impl Ends for SharedLineEnds {
    fn new() -> Self {
        Self(crossbeam_utils::CachePadded::new(std::array::from_fn(
            |_| AtomicUsize::new(0),
        )))
    }
    fn head(&self) -> &AtomicUsize {
        &self.0[0]
    }
    fn tail(&self) -> &AtomicUsize {
        &self.0[1]
    }
}

/// What the lane scheduler of the stamped rows ([`StampedLanes`]) needs of a lane.
pub(crate) trait RingLane: Sync {
    fn new() -> Self;
    fn push(&self, item: u64);
    fn pop(&self) -> LanePop;
    fn is_empty(&self) -> bool;
}

/// What a [`StampedLane`] pop found.
pub(crate) enum LanePop {
    Item(u64),
    Empty,
    /// The head slot is reserved by a push that has not written it yet.
    NotReady,
}

/// Slots per stamped lane: far above the depth of 1k spread over 48 lanes that the multi-thread
/// rows keep, too few for the 100k row (which skips these queues, see [`fits_depth`]).
const STAMPED_LANE_CAPACITY: usize = 8_192;

/// Whether the queue named `function` can hold a steady depth of `depth` items: the bounded
/// stamped-lane rows cannot hold 100k (all in a few lanes).
pub(crate) fn fits_depth(function: &str, depth: usize) -> bool {
    !function.starts_with("hivekit-stamped") || depth <= STAMPED_LANE_CAPACITY
}

impl<E: Ends> RingLane for StampedLane<E> {
    fn new() -> Self {
        Self {
            ends: E::new(),
            slots: (0..STAMPED_LANE_CAPACITY)
                .map(|index| (AtomicUsize::new(index), AtomicU64::new(0)))
                .collect(),
        }
    }

    fn push(&self, item: u64) {
        let mut tail = self.ends.tail().load(Ordering::Relaxed);
        loop {
            let (stamp, value) = &self.slots[tail & (STAMPED_LANE_CAPACITY - 1)];
            let seen = stamp.load(Ordering::Acquire);
            if seen == tail {
                match self.ends.tail().compare_exchange_weak(
                    tail,
                    tail + 1,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        value.store(item, Ordering::Relaxed);
                        stamp.store(tail + 1, Ordering::Release);
                        return;
                    }
                    Err(actual) => tail = actual,
                }
            } else if seen < tail {
                // The slot still holds the item of the lap before: either the lane is full (the
                // bench keeps far fewer items per lane, see the capacity) or the pop that claimed it
                // was descheduled before releasing it, a full lap of this lane ago. Wait for it.
                std::thread::yield_now();
                tail = self.ends.tail().load(Ordering::Relaxed);
            } else {
                tail = self.ends.tail().load(Ordering::Relaxed);
            }
        }
    }

    fn pop(&self) -> LanePop {
        let mut head = self.ends.head().load(Ordering::Relaxed);
        loop {
            let (stamp, value) = &self.slots[head & (STAMPED_LANE_CAPACITY - 1)];
            let seen = stamp.load(Ordering::Acquire);
            if seen == head + 1 {
                match self.ends.head().compare_exchange_weak(
                    head,
                    head + 1,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        let item = value.load(Ordering::Relaxed);
                        stamp.store(head + STAMPED_LANE_CAPACITY, Ordering::Release);
                        return LanePop::Item(item);
                    }
                    Err(actual) => head = actual,
                }
            } else if seen > head + 1 {
                // Another pop took it: look at the new head.
                head = self.ends.head().load(Ordering::Relaxed);
            } else {
                // Not written for this lap: empty, or a push reserved it and has not written it
                // yet (or waits for the pop of the lap before to release it).
                return if self.ends.tail().load(Ordering::Acquire) == head {
                    LanePop::Empty
                } else {
                    LanePop::NotReady
                };
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.ends.head().load(Ordering::Acquire) == self.ends.tail().load(Ordering::Acquire)
    }
}

/// A bare `SegQueue` as a lane of [`StampedLanes`]: with it, that scheduler is the design the
/// compact lanes replaced (`hivekit-segqueue-lanes`, `-strict`: `SegQueue` lanes under the always-set
/// bitmap and per-thread anti-starvation). Its pop waits inside `SegQueue` for a slot claimed and
/// not yet written, so it never reports [`LanePop::NotReady`].
pub(crate) struct SegQueueLane(SegQueue<u64>);

impl RingLane for SegQueueLane {
    fn new() -> Self {
        Self(SegQueue::new())
    }
    fn push(&self, item: u64) {
        self.0.push(item);
    }
    fn pop(&self) -> LanePop {
        self.0.pop().map_or(LanePop::Empty, LanePop::Item)
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Slots in a [`CompactLane`]'s inline ring: with its three counters, 120 bytes, one 128-byte line.
const COMPACT_SLOTS: usize = 6;

/// The compact-lane probe (`hivekit-compact-lanes`): a lane whose head, tail, spill count and first
/// [`COMPACT_SLOTS`] slots share one 128-byte line, for the sparse lanes of the `mpmc` rows (an item
/// pushed above the backlog is popped by the next pop, so a push then pop touch this one line, where
/// a `SegQueue` lane touches its padded head, its padded tail and its block). The ring is Vyukov's,
/// as [`StampedLane`]'s. A push that finds the ring full, or items spilled before it, goes to an
/// overflow `SegQueue`; a pop takes the ring first, then the overflow. While anything is spilled no
/// push enters the ring, so FIFO holds sequentially; between racing pushes it is not exact (a push
/// that read "nothing spilled" may enter the ring after a racing push spilled), which is why it is
/// a probe and not a lane of the scheduler.
#[repr(C, align(128))]
pub(crate) struct CompactLane {
    head: AtomicUsize,
    tail: AtomicUsize,
    /// Items counted into the overflow and not yet popped from it (counted before the push).
    spilled: AtomicUsize,
    slots: [(AtomicUsize, AtomicU64); COMPACT_SLOTS],
    overflow: SegQueue<u64>,
}

impl CompactLane {
    fn try_push_ring(&self, item: u64) -> bool {
        let mut tail = self.tail.load(Ordering::Relaxed);
        loop {
            let (stamp, value) = &self.slots[tail % COMPACT_SLOTS];
            let seen = stamp.load(Ordering::Acquire);
            if seen == tail {
                match self.tail.compare_exchange_weak(
                    tail,
                    tail + 1,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        value.store(item, Ordering::Relaxed);
                        stamp.store(tail + 1, Ordering::Release);
                        return true;
                    }
                    Err(actual) => tail = actual,
                }
            } else if seen < tail {
                // Full (or a pop of the lap before still holds the slot): spill.
                return false;
            } else {
                tail = self.tail.load(Ordering::Relaxed);
            }
        }
    }

    fn pop_ring(&self) -> LanePop {
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            let (stamp, value) = &self.slots[head % COMPACT_SLOTS];
            let seen = stamp.load(Ordering::Acquire);
            if seen == head + 1 {
                match self.head.compare_exchange_weak(
                    head,
                    head + 1,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        let item = value.load(Ordering::Relaxed);
                        stamp.store(head + COMPACT_SLOTS, Ordering::Release);
                        return LanePop::Item(item);
                    }
                    Err(actual) => head = actual,
                }
            } else if seen > head + 1 {
                head = self.head.load(Ordering::Relaxed);
            } else {
                return if self.tail.load(Ordering::Acquire) == head {
                    LanePop::Empty
                } else {
                    LanePop::NotReady
                };
            }
        }
    }
}

impl RingLane for CompactLane {
    fn new() -> Self {
        Self {
            head: AtomicUsize::new(0),
            tail: AtomicUsize::new(0),
            spilled: AtomicUsize::new(0),
            slots: std::array::from_fn(|index| (AtomicUsize::new(index), AtomicU64::new(0))),
            overflow: SegQueue::new(),
        }
    }

    fn push(&self, item: u64) {
        if self.spilled.load(Ordering::Acquire) == 0 && self.try_push_ring(item) {
            return;
        }
        self.spilled.fetch_add(1, Ordering::AcqRel);
        self.overflow.push(item);
    }

    fn pop(&self) -> LanePop {
        match self.pop_ring() {
            LanePop::Empty => {}
            other => return other,
        }
        if self.spilled.load(Ordering::Acquire) == 0 {
            return LanePop::Empty;
        }
        match self.overflow.pop() {
            Some(item) => {
                self.spilled.fetch_sub(1, Ordering::Release);
                LanePop::Item(item)
            }
            // Counted, not yet pushed.
            None => LanePop::NotReady,
        }
    }

    fn is_empty(&self) -> bool {
        self.head.load(Ordering::Acquire) == self.tail.load(Ordering::Acquire)
            && self.spilled.load(Ordering::Acquire) == 0
    }
}

/// A lane design tried for the stalls of the `mpmc` rows: `hivekit`'s 48 lanes, always-set bitmap
/// and anti-starvation (`max_bypass`: the same bypass count and round-robin cursor, kept per thread
/// in a thread-local), but each lane a stamped ring ([`StampedLane`]) whose pop never claims a slot
/// before its value is written. A pop that finds its lane's head not ready tries the lanes below (a
/// push still in flight need not be served yet) and starts over only when none below has an item.
/// Not a scheduler: bounded (8,192 items per lane; a push into a full lane waits), and a pop may
/// pass over a completed push's item queued behind a slot still being written in the same lane, so
/// strict order holds only between completed operations that do not overlap such a write.
pub(crate) struct StampedLanes<L = StampedLane> {
    lanes: Box<[L]>,
    nonempty: crossbeam_utils::CachePadded<AtomicU64>,
    max_bypass: u32,
}

impl<L: RingLane> StampedLanes<L> {
    pub(crate) fn new(max_bypass: Option<u32>) -> Self {
        Self {
            lanes: (0..SchedulingHint::KEYS).map(|_| L::new()).collect(),
            nonempty: crossbeam_utils::CachePadded::new(AtomicU64::new(0)),
            max_bypass: max_bypass.unwrap_or(u32::MAX),
        }
    }

    fn clear(&self, key: usize) {
        let bit = 1_u64 << key;
        self.nonempty.fetch_and(!bit, Ordering::Acquire);
        if !self.lanes[key].is_empty() {
            self.nonempty.fetch_or(bit, Ordering::Release);
        }
    }

    /// The scheduler's lane choice, with its per-thread bypass count and cursor.
    fn choose(&self, bits: u64) -> usize {
        thread_local! {
            static AGING: std::cell::Cell<(u32, u32)> = const { std::cell::Cell::new((0, 64)) };
        }
        let top = 63 - bits.leading_zeros();
        if self.max_bypass == u32::MAX {
            return top as usize;
        }
        let below_top = bits & ((1_u64 << top) - 1);
        AGING.with(|aging| {
            let (bypassed, cursor) = aging.get();
            if below_top == 0 {
                aging.set((0, cursor));
                return top as usize;
            }
            if bypassed < self.max_bypass {
                aging.set((bypassed + 1, cursor));
                return top as usize;
            }
            let below_cursor = if cursor >= 64 {
                below_top
            } else {
                below_top & ((1_u64 << cursor) - 1)
            };
            let candidates = if below_cursor == 0 {
                below_top
            } else {
                below_cursor
            };
            let lane = 63 - candidates.leading_zeros();
            aging.set((0, lane));
            lane as usize
        })
    }
}

impl<L: RingLane> Queue for StampedLanes<L> {
    fn push(&self, hint: SchedulingHint, item: u64) {
        let key = usize::from(hint.sort_key());
        self.lanes[key].push(item);
        self.nonempty.fetch_or(1_u64 << key, Ordering::Release);
    }
    fn pop(&self) -> Option<u64> {
        loop {
            let mut bits = self.nonempty.load(Ordering::Acquire);
            if bits == 0 {
                return self.lanes.iter().rev().find_map(|lane| match lane.pop() {
                    LanePop::Item(item) => Some(item),
                    LanePop::Empty | LanePop::NotReady => None,
                });
            }
            let mut key = self.choose(bits);
            loop {
                match self.lanes[key].pop() {
                    LanePop::Item(item) => {
                        if self.lanes[key].is_empty() {
                            self.clear(key);
                        }
                        return Some(item);
                    }
                    LanePop::Empty => {
                        self.clear(key);
                        break;
                    }
                    LanePop::NotReady => {
                        // Its pusher sets the bit again when done: look below, then start over.
                        bits &= (1_u64 << key) - 1;
                        if bits == 0 {
                            std::hint::spin_loop();
                            break;
                        }
                        key = 63 - bits.leading_zeros() as usize;
                    }
                }
            }
        }
    }
}

/// A queue the multi-thread rows can share.
pub(crate) trait SyncQueue: Queue + Sync {}
impl<T: Queue + Sync> SyncQueue for T {}

/// Fresh, empty instances of every queue that can be shared between threads.
pub(crate) fn shared_queues() -> Vec<(&'static str, Box<dyn SyncQueue>)> {
    vec![
        ("hivekit", Box::new(Hivekit::new(Some(8)))),
        ("hivekit-strict", Box::new(Hivekit::new(None))),
        (
            "hivekit-unforced",
            Box::new(Hivekit::new(Some(u32::MAX - 1))),
        ),
        ("mutex-binaryheap", Box::<MutexBinaryHeap>::default()),
        ("segqueue-4-lanes", Box::<SegQueueFourLanes>::default()),
        ("segqueue-48-lanes", Box::<SegQueueKeyLanes>::default()),
        ("crossbeam-skiplist", Box::<SkipList>::default()),
        ("hivekit-sharded-heap", Box::<ShardedHeap>::default()),
        ("hivekit-fenced-set", Box::<FencedSetLanes>::default()),
        (
            "hivekit-priority-words",
            Box::<PriorityWordLanes>::default(),
        ),
        ("shared-word-floor", Box::<SharedWordFloor>::default()),
        (
            "hivekit-stamped-lanes",
            Box::new(StampedLanes::<StampedLane>::new(Some(8))),
        ),
        (
            "hivekit-stamped-lanes-strict",
            Box::new(StampedLanes::<StampedLane>::new(None)),
        ),
        (
            "hivekit-stamped-shared-ends",
            Box::new(StampedLanes::<StampedLane<SharedLineEnds>>::new(Some(8))),
        ),
        (
            "hivekit-segqueue-lanes",
            Box::new(StampedLanes::<SegQueueLane>::new(Some(8))),
        ),
        (
            "hivekit-segqueue-lanes-strict",
            Box::new(StampedLanes::<SegQueueLane>::new(None)),
        ),
        (
            "hivekit-compact-lanes",
            Box::new(StampedLanes::<CompactLane>::new(Some(8))),
        ),
        (
            "hivekit-compact-lanes-strict",
            Box::new(StampedLanes::<CompactLane>::new(None)),
        ),
    ]
}

/// The shared queues plus the single-thread `BinaryHeap`.
pub(crate) fn single_thread_queues() -> Vec<(&'static str, Box<dyn Queue>)> {
    let mut all: Vec<(&'static str, Box<dyn Queue>)> = shared_queues()
        .into_iter()
        .map(|(function, queue)| (function, queue as Box<dyn Queue>))
        .collect();
    all.insert(1, ("binaryheap", Box::<StdBinaryHeap>::default()));
    all
}

/// Fills `queue` to `depth` items, then runs one push and pop per hint of the stream, so every lane
/// and node pool has been touched: the measured pairs see the steady state, not first allocations.
pub(crate) fn prefill(queue: &dyn Queue, hints: &[SchedulingHint], depth: usize) {
    for item in 0..depth {
        queue.push(hints[item % STREAM], item as u64);
    }
    for round in 0..STREAM as u64 {
        std::hint::black_box(pair(queue, hints, round));
    }
}

/// One push then one pop, cycling through the hint stream.
#[inline]
pub(crate) fn pair(queue: &dyn Queue, hints: &[SchedulingHint], round: u64) -> Option<u64> {
    queue.push(hints[round as usize & (STREAM - 1)], round);
    queue.pop()
}
