//! [`CompactLane`]: one sort key's FIFO lane of the [`PriorityScheduler`](super::PriorityScheduler),
//! laid out for the sparse lanes of a 48-key scheduler.
//!
//! # Why not a bare `SegQueue`
//!
//! At a steady depth the backlog sits in the lowest lanes and almost every push lands in a lane above
//! it whose item the very next pop takes (97% of pops take the item their own push-then-pop pair
//! pushed, on 1, 2 and 4 threads, in the bench's `mpmc` rows; see `benches/scheduler.rs`). A
//! `SegQueue` keeps its head and its tail on separate padded lines and its slots in a block
//! elsewhere, so such a push then pop touch three or four lines, each last written by whichever core
//! used the lane last. Here the lane's state word and its first [`RING`] slots share one 128-byte
//! line (for items of up to 8 bytes), so the common pair touches that one line (and the bitmap).
//!
//! # Protocol
//!
//! One `AtomicU64` state word holds the ring's head and tail positions (8 bits each, wrapping), the
//! number of pops in the middle of an overflow pop, and the *spill count*: items reserved in the
//! overflow queue (an unbounded `SegQueue`) and not yet taken out of it. Each ring slot has a stamp (Vyukov's bounded queue): `p` when the slot is free
//! for the push at position `p`, `p + 1` when that push has written it, `p + RING` once the pop at
//! `p` has read it (free for the next lap).
//!
//! - `push`: while nothing is spilled, no overflow pop is in flight and the ring has room, reserve
//!   the tail position by a compare-and-swap on the state word, wait for the slot's stamp to say free (a pop of the lap
//!   before may still be reading it), write, and stamp it written. Otherwise reserve an overflow item
//!   (spill count + 1, same compare-and-swap) and push into the overflow.
//! - `pop`: when the ring is not empty, claim the head position by a compare-and-swap, wait for the
//!   slot's stamp to say written, read, stamp it free. When the ring is empty and something is
//!   spilled, register as an overflow pop (a compare-and-swap that also checks the ring is still
//!   empty), pop the overflow, and leave (one `fetch_sub` that also takes the item out of the spill
//!   count); if the overflow had nothing yet (its push reserved and has not pushed, or a racing pop
//!   took it), start over. Otherwise the lane is empty.
//!
//! FIFO: a push enters the ring only while no overflow item is left and no overflow pop is in
//! flight, and a pop registers for the overflow only while the ring is empty (each checked by its
//! compare-and-swap on the state word). So the ring stays empty while any pop is in the overflow,
//! whose front is then the lane's oldest item; and every item in the ring is older than every item
//! in the overflow. (An earlier version let a pop claim an overflow item by decrementing the count
//! before popping: the ring could then reopen and refill while the claimer was slow, and another
//! pop could take an overflow item older than a ring item it had already passed; the stress test
//! `every_item_popped_exactly_once_unbounded` caught it.) Emptiness (`is_empty`, `len`) is one load of the state word, which counts an item from
//! its reservation on, before its push returns: the scheduler's bitmap protocol (set after the push,
//! clear then re-check) only needs a push's item to be counted by the time it sets its bit.
//!
//! # Progress
//!
//! As with `SegQueue` (whose pop claims a slot and then waits for its value): a pop that claims a
//! position whose push has reserved but not written it waits for that push, and a push that reserves
//! a slot whose pop of the lap before has claimed but not read it waits for that pop. No operation
//! waits otherwise.

use std::fmt;
use std::mem::MaybeUninit;

use crate::loom::lane::Lane;
use crate::loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Slots in the inline ring: 8 (32 bytes of stamps and 64 of 8-byte items beside the state word fit
/// one 128-byte line). Under loom 2, so the models reach the spill path with few items.
#[cfg(not(loom))]
pub(crate) const RING: u32 = 8;
#[cfg(loom)]
pub(crate) const RING: u32 = 2;

/// Positions wrap at 2^8 (a multiple of `RING`, so a position's slot survives the wrap; a slot's
/// stamp never falls a lap behind its position, so 32 laps are plenty).
const POSITION_MASK: u32 = 0xFF;
const TAIL_SHIFT: u32 = 8;
const POPPERS_SHIFT: u32 = 16;
const POPPER_ONE: u64 = 1 << POPPERS_SHIFT;
const POPPERS_MASK: u64 = 0xFFFF;
const SPILL_SHIFT: u32 = 32;
const SPILL_ONE: u64 = 1 << SPILL_SHIFT;
/// The most items the overflow counts (a push beyond waits for a pop; 2^32 items do not fit a
/// process's memory in practice).
const SPILL_MAX: u64 = u32::MAX as u64;
/// The most pops at once in one lane's overflow (a pop beyond waits for one of them to leave).
const POPPERS_MAX: u64 = POPPERS_MASK;

/// The fields of the state word: head (bits 0..8), tail (8..16), overflow pops in flight
/// (16..32), spill count (32..64).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct State(u64);

impl State {
    fn head(self) -> u32 {
        self.0 as u32 & POSITION_MASK
    }
    fn tail(self) -> u32 {
        (self.0 >> TAIL_SHIFT) as u32 & POSITION_MASK
    }
    fn poppers(self) -> u64 {
        (self.0 >> POPPERS_SHIFT) & POPPERS_MASK
    }
    fn spilled(self) -> u64 {
        self.0 >> SPILL_SHIFT
    }
    fn ring_len(self) -> u32 {
        self.tail().wrapping_sub(self.head()) & POSITION_MASK
    }
    fn with_head(self, head: u32) -> Self {
        Self((self.0 & !u64::from(POSITION_MASK)) | u64::from(head & POSITION_MASK))
    }
    fn with_tail(self, tail: u32) -> Self {
        Self(
            (self.0 & !(u64::from(POSITION_MASK) << TAIL_SHIFT))
                | (u64::from(tail & POSITION_MASK) << TAIL_SHIFT),
        )
    }
    /// A push may enter the ring: it has room, and no overflow item is left or being popped.
    fn ring_open(self) -> bool {
        self.spilled() == 0 && self.poppers() == 0 && self.ring_len() < RING
    }
    pub(crate) fn is_empty(self) -> bool {
        self.ring_len() == 0 && self.spilled() == 0
    }
}

#[cfg(loom)]
use loom::cell::UnsafeCell;

/// `std`'s `UnsafeCell` with loom's `with`/`with_mut` interface, so one code path runs on both.
#[cfg(not(loom))]
struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    #[inline]
    fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }
    #[inline]
    fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

/// Waits for another thread's step (a stamp to change): spins, then yields (under loom, yields).
pub(crate) struct Wait {
    #[cfg(not(loom))]
    backoff: crossbeam_utils::Backoff,
}

impl Wait {
    pub(crate) fn new() -> Self {
        Self {
            #[cfg(not(loom))]
            backoff: crossbeam_utils::Backoff::new(),
        }
    }
    pub(crate) fn snooze(&self) {
        #[cfg(not(loom))]
        self.backoff.snooze();
        #[cfg(loom)]
        loom::thread::yield_now();
    }
}

/// An unbounded multi-producer multi-consumer FIFO queue whose state and first [`RING`] slots share
/// one cache line (see the module docs).
#[repr(C, align(128))]
pub(crate) struct CompactLane<T> {
    state: AtomicU64,
    stamps: [AtomicU32; RING as usize],
    slots: [UnsafeCell<MaybeUninit<T>>; RING as usize],
    /// The items pushed while the ring was full or anything was spilled, in push order.
    overflow: Lane<T>,
}

// SAFETY: items move between threads through the slots, each slot accessed by one thread at a time
// (the stamp protocol in the module docs hands it from the push that writes it to the pop that reads
// it), so sharing the lane needs only `T: Send`, as `SegQueue` does.
unsafe impl<T: Send> Send for CompactLane<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for CompactLane<T> {}

impl<T> CompactLane<T> {
    /// `count` empty lanes, each built in place on the heap. A lane built by value and moved there
    /// passes through the stack, several times in an unoptimised build: with 32 KiB items a lane
    /// is 256 KiB, and a scheduler overflowed a 2 MiB thread stack.
    #[cfg(not(loom))]
    pub(crate) fn new_boxed_slice(count: usize) -> Box<[Self]> {
        let mut lanes = Box::<[Self]>::new_uninit_slice(count);
        for lane in &mut lanes {
            let lane = lane.as_mut_ptr();
            // SAFETY: `lane` is allocated and aligned for one `Self`. Every field but `slots` is
            // written here, and `slots` holds only `MaybeUninit` items (inside `UnsafeCell`s),
            // for which uninitialised memory is a valid value.
            unsafe {
                std::ptr::addr_of_mut!((*lane).state).write(AtomicU64::new(0));
                let stamps = std::ptr::addr_of_mut!((*lane).stamps).cast::<AtomicU32>();
                for slot in 0..RING as usize {
                    stamps.add(slot).write(AtomicU32::new(slot as u32));
                }
                std::ptr::addr_of_mut!((*lane).overflow).write(Lane::new());
            }
        }
        // SAFETY: every lane was initialised above.
        unsafe { lanes.assume_init() }
    }

    /// `count` empty lanes (loom's cells cannot be left uninitialised: built by value).
    #[cfg(loom)]
    pub(crate) fn new_boxed_slice(count: usize) -> Box<[Self]> {
        (0..count)
            .map(|_| Self {
                state: AtomicU64::new(0),
                stamps: std::array::from_fn(|slot| AtomicU32::new(slot as u32)),
                slots: std::array::from_fn(|_| UnsafeCell::new(MaybeUninit::uninit())),
                overflow: Lane::new(),
            })
            .collect()
    }

    /// Queues `item` behind every item pushed before it.
    pub(crate) fn push(&self, item: T) {
        let mut state = State(self.state.load(Ordering::Relaxed));
        loop {
            let into_ring = state.ring_open() && self.slot_free(state.tail());
            let next = if into_ring {
                state.with_tail(state.tail().wrapping_add(1))
            } else if state.spilled() < SPILL_MAX {
                State(state.0 + SPILL_ONE)
            } else {
                Wait::new().snooze();
                state = State(self.state.load(Ordering::Relaxed));
                continue;
            };
            match self.state.compare_exchange_weak(
                state.0,
                next.0,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) if into_ring => return self.write(state.tail(), item),
                Ok(_) => return self.overflow.push(item),
                Err(actual) => state = State(actual),
            }
        }
    }

    /// Whether the slot of ring position `position` is free for its push: not while the pop of the
    /// lap before has claimed it and not yet read it. A push that finds it taken spills instead of
    /// waiting for that pop (which may have been descheduled; every push and pop of the lane would
    /// then queue up behind it).
    #[inline]
    fn slot_free(&self, position: u32) -> bool {
        self.stamps[(position % RING) as usize].load(Ordering::Acquire) == position
    }

    /// Writes the item of the reserved ring position `position`.
    fn write(&self, position: u32, item: T) {
        let slot = (position % RING) as usize;
        let stamp = &self.stamps[slot];
        let wait = Wait::new();
        // `Acquire`: the pop of the lap before has read the slot before it stamped it free. The push
        // checked the stamp before reserving, so this waits only if the state word came back to the
        // same value meanwhile (256 positions later).
        while stamp.load(Ordering::Acquire) != position {
            wait.snooze();
        }
        // SAFETY: the stamp says this slot is free for `position`, which this push reserved: no other
        // thread touches the slot until the stamp below says written.
        self.slots[slot].with_mut(|cell| unsafe { (*cell).write(item) });
        stamp.store(position.wrapping_add(1) & POSITION_MASK, Ordering::Release);
    }

    /// Takes the oldest item, or `None` when the lane holds none (reserved pushes count as held).
    pub(crate) fn pop(&self) -> Option<T> {
        self.take().map(|(item, _)| item)
    }

    /// As [`pop`](Self::pop), and whether this pop left the lane empty (as its own update of the
    /// state word saw it): the scheduler then clears the lane's bit without reading the word again.
    #[inline]
    pub(crate) fn take(&self) -> Option<(T, bool)> {
        let mut state = State(self.state.load(Ordering::Acquire));
        loop {
            if state.ring_len() != 0 {
                let position = state.head();
                let next = state.with_head(position.wrapping_add(1));
                match self.state.compare_exchange_weak(
                    state.0,
                    next.0,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => return Some((self.read(position), next.is_empty())),
                    Err(actual) => state = State(actual),
                }
            } else if state.spilled() != 0 {
                if let Some(taken) = self.pop_overflow(state) {
                    return Some(taken);
                }
                state = State(self.state.load(Ordering::Acquire));
            } else {
                return None;
            }
        }
    }

    /// Reads the item of the claimed ring position `position`.
    fn read(&self, position: u32) -> T {
        let slot = (position % RING) as usize;
        let stamp = &self.stamps[slot];
        let written = position.wrapping_add(1) & POSITION_MASK;
        let wait = Wait::new();
        // `Acquire`: the push's write of the slot happens before this read.
        while stamp.load(Ordering::Acquire) != written {
            wait.snooze();
        }
        // SAFETY: the stamp says the push at `position` wrote the slot, and this pop claimed
        // `position`: no other thread touches the slot until the stamp below frees it.
        let item = self.slots[slot].with(|cell| unsafe { (*cell).assume_init_read() });
        stamp.store(
            position.wrapping_add(RING) & POSITION_MASK,
            Ordering::Release,
        );
        item
    }

    /// The ring read empty and the overflow not (`state`): register as an overflow pop (which keeps
    /// pushes out of the ring, so the overflow's front stays the lane's oldest item), pop the
    /// overflow, leave. `None` when the registration failed or the overflow had nothing yet (its
    /// push has reserved and not yet pushed, or another pop took the last item): the caller
    /// re-reads the state.
    #[cold]
    fn pop_overflow(&self, state: State) -> Option<(T, bool)> {
        if state.poppers() == POPPERS_MAX {
            Wait::new().snooze();
            return None;
        }
        // Only while the ring is still empty and something is still spilled.
        self.state
            .compare_exchange(
                state.0,
                state.0 + POPPER_ONE,
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .ok()?;
        let item = self.overflow.pop();
        let leave = POPPER_ONE + if item.is_some() { SPILL_ONE } else { 0 };
        // `Release`: a push that then finds the ring open comes after this pop.
        let left = State(self.state.fetch_sub(leave, Ordering::AcqRel) - leave);
        if item.is_none() {
            Wait::new().snooze();
        }
        item.map(|item| (item, left.is_empty()))
    }

    /// True when no item is held (an item counts from its push's reservation until its pop's claim).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.state().is_empty()
    }

    /// The state word as one load reads it. Every push and pop changes it, so a lane whose word reads
    /// the same twice was left alone in between, unless 256 ring pushes and pops, or one push and
    /// its pop through the overflow (spilled because a reader of the tail's slot is stalled, or
    /// because an overflow pop is in flight), brought it back to the same value: the scheduler's
    /// double collect of the lanes relies on this (all 64 bits are taken, so there is no room
    /// for a version).
    #[inline]
    pub(crate) fn state(&self) -> State {
        State(self.state.load(Ordering::Acquire))
    }

    /// The number of items held, counted as `is_empty` counts them.
    pub(crate) fn len(&self) -> usize {
        let state = State(self.state.load(Ordering::Acquire));
        state.ring_len() as usize + state.spilled() as usize
    }
}

impl<T> Drop for CompactLane<T> {
    fn drop(&mut self) {
        // No push or pop is in flight (`&mut self`): every ring position from head to tail is written.
        let state = State(self.state.load(Ordering::Relaxed));
        if !std::mem::needs_drop::<T>() || (state.ring_len() == 0 && state.spilled() == 0) {
            // Nothing to drop (the overflow frees its own blocks).
            return;
        }
        // The items are moved into one `Vec` and dropped with it: its drop goes on after an item
        // that panics in its own drop, where dropping them in place one by one (or leaving the
        // overflow to `SegQueue`'s drop, which stops at a panic) would leak the rest.
        let mut held = Vec::with_capacity(state.ring_len() as usize + state.spilled() as usize);
        for offset in 0..state.ring_len() {
            let slot = (state.head().wrapping_add(offset) % RING) as usize;
            // SAFETY: written by its push and not read by any pop (it lies between head and tail);
            // read out once, here, and the ring is never read again.
            held.push(self.slots[slot].with_mut(|cell| unsafe { (*cell).assume_init_read() }));
        }
        while let Some(item) = self.overflow.pop() {
            held.push(item);
        }
        drop(held);
    }
}

impl<T> fmt::Debug for CompactLane<T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("CompactLane")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}
