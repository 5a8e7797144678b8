//! [`PriorityScheduler`]: a concurrent priority queue with one lock-free FIFO lane per sort key.
//!
//! # Design
//!
//! A [`SchedulingHint`] has 48 distinct sort keys, so the scheduler keeps 48 lanes (FIFO queues whose
//! state and first slots share one cache line, with an overflow `SegQueue`: see [`lane`]), lane `k`
//! holding the items whose hint has sort key `k`, and a 64-bit bitmap whose bit
//! `k` says "lane `k` may hold items". `pop` reads the bitmap, takes the highest set bit (one
//! `leading_zeros`) and pops that lane: ordering by the full key costs no comparison at all, and FIFO
//! among equal keys is the lane's own order. This design was chosen by measurement against a sharded
//! locked binary heap (kept in `benches/scheduler.rs` as the `hivekit-sharded-heap` peer).
//!
//! ## The bitmap protocol (no item is ever stranded)
//!
//! A bit may be set while its lane is empty (a hint, corrected by the next `pop` that finds the lane
//! empty), but a lane holding an item whose `push` has returned always has its bit set, or is being
//! re-checked by the `pop` that just cleared it:
//!
//! - `push`: enqueue into the lane, then set the bit with a `Release` `fetch_or`, whether or not it
//!   is already set.
//! - `pop`, finding the lane empty (after taking its last item, or on an attempt that found nothing):
//!   clear the bit with an `Acquire` `fetch_and`, then look at the lane again and set the bit back if
//!   it is not empty.
//!
//! Every write to the bitmap is a read-modify-write, so all of them are totally ordered and each
//! continues the release sequence of the ones before it. Take a push's `fetch_or` and a pop's
//! `fetch_and` of the same bit: if the clear comes later, it reads a value in the release sequence
//! of the push's set, so the enqueue happens before the pop's re-check, which sees the item and
//! restores the bit; if the clear comes first, the push's set comes after it and the bit ends set.
//! Either way the item is not stranded. Neither ordering may be weakened: the loom model
//! `scheduler_push_vs_pop_never_strands_an_item` in `tests/loom.rs` fails with a `Relaxed` set in
//! `push` or a `Relaxed` clear in `pop`. A `pop` that finds the bitmap empty scans the lanes directly
//! before reporting empty, so it never returns `None` while a completed push's item waits behind a
//! bit that a racing pop is about to restore; and it reports empty only when a second scan reads
//! every lane's state word as the first did (a double collect), so `None` means the scheduler was
//! empty at one moment during the call (a thread that pushed and then popped never gets `None`
//! while it holds the only item in flight: see `pop_slow`).
//!
//! This replaced "enqueue, `SeqCst` fence, set the bit only if it reads clear" and "clear, `SeqCst`
//! fence, re-check": a `SeqCst` fence is itself a locked instruction on x86-64 (`lock or` on the
//! stack), so that protocol paid about 2.5 locked instructions per push + pop pair at a steady depth
//! (a fence on every push, a set on half of them, a clear and a fence on the pops that empty their
//! lane), where this one pays about 1.5. The price is that every push writes the bitmap's cache
//! line, even when its bit is already set.
//!
//! Clearing the bit as soon as a pop takes a lane's last item (rather than on the next pop's failed
//! attempt) keeps the bitmap accurate when the highest lanes hold few items, the common case with
//! 48 keys, and saves that failed attempt.
//!
//! ## Anti-starvation
//!
//! See [`SchedulerConfig::max_bypass`].

use std::fmt;

mod lane;

use crossbeam_utils::CachePadded;

use self::lane::{CompactLane, State, Wait};
use crate::hint::{Priority, SchedulingHint};
use crate::loom::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use crate::loom::thread;

/// The number of lanes: one per sort key.
const LANES: usize = SchedulingHint::KEYS;
/// Sort keys per priority: lanes `p * 12 .. p * 12 + 12` hold priority `p`.
const KEYS_PER_PRIORITY: usize = LANES / Priority::ALL.len();

/// What [`PriorityScheduler::pop_slow`]'s pass over the lanes found.
enum Scan<T> {
    Took(T),
    /// Every lane empty at one moment during the pass.
    Empty,
    /// A lane changed during the pass: start over.
    Changed,
}

/// How a [`PriorityScheduler`] is bounded and how it fights starvation.
///
/// # Examples
///
/// ```
/// use hivekit_lockfree::{PriorityScheduler, SchedulerConfig};
///
/// let scheduler = PriorityScheduler::<u32>::with_config(SchedulerConfig {
///     capacity: Some(1_024),
///     max_bypass: Some(8),
/// })?;
/// assert_eq!(scheduler.config().capacity, Some(1_024));
/// # Ok::<(), hivekit_lockfree::SchedulerError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SchedulerConfig {
    /// The most items the scheduler holds at once; a `push` beyond it returns [`Full`] with the item.
    /// An item counts from the start of its push until its pop returns, so pushes and pops still
    /// in flight count too: a push is refused only when the items held, counted so, fill the
    /// capacity, and a `pop` answers `None` only when none are.
    /// `None` (the default) is unbounded. Must not be `Some(0)` ([`SchedulerError::ZeroCapacity`]);
    /// `Some(1)` holds one item; `Some(usize::MAX)` is a bound no process can reach, so unbounded.
    pub capacity: Option<usize>,
    /// Anti-starvation: `Some(k)` lets the highest non-empty lane be served at most `k` times in a row
    /// while a lower lane waits; `None` (the default) is strict priority order. Must not be `Some(0)`
    /// ([`SchedulerError::ZeroMaxBypass`]); `Some(1)` alternates with waiting lower lanes;
    /// `Some(u32::MAX)` is strict order, as `None` (the bound is never reached).
    ///
    /// Precisely: a *lane* is a sort key ([`SchedulingHint::sort_key`]). A pop that takes from the
    /// highest non-empty lane while some lower lane is non-empty *bypasses* the lower lanes. After `k`
    /// such pops in a row, the next pop is a *forced* pop: it serves a lower lane and resets the count
    /// (a pop with no lower lane waiting also resets it). Forced pops walk the waiting lanes downwards
    /// round-robin: each serves the highest non-empty lane below the lane of the previous forced pop,
    /// wrapping around to the highest non-empty lane below the top one when none is left. So a lane
    /// that keeps waiting while `m` lanes wait below the top is served by one of the next `m` forced
    /// pops, that is within `(k + 1) * m` pops.
    ///
    /// The count and the cursor are kept per consumer thread, so that pops on different threads share
    /// no written cache line: each thread that pops never bypasses a waiting lower lane more than `k`
    /// times in a row among its own pops. With one consumer that is the whole order; with `c`
    /// consumers popping at once, the top lane may be served up to `c * k` times in a row overall.
    /// (Threads are spread over 16 counters by the order in which they first popped in the process,
    /// a number never reused: past 16 consumers, or after threads that popped have exited and new
    /// ones taken their place, two consumers may share a counter, and then share its bound: between
    /// them the top lane is served at most `k` times in a row, though one of them may take all `k`.
    /// The overall bound above holds either way.)
    pub max_bypass: Option<u32>,
}

/// Why a [`SchedulerConfig`] was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SchedulerError {
    /// `capacity: Some(0)`: such a scheduler could never hold an item.
    #[error("scheduler capacity must be at least 1, got 0")]
    ZeroCapacity,
    /// `max_bypass: Some(0)`: that would forbid ever serving a higher lane first.
    #[error("scheduler max_bypass must be at least 1, got 0 (use None for strict priority)")]
    ZeroMaxBypass,
}

/// A push refused because a bounded [`PriorityScheduler`] is at capacity; the item is given back.
///
/// # Examples
///
/// ```
/// use hivekit_lockfree::{PriorityScheduler, SchedulerConfig, SchedulingHint};
///
/// let scheduler = PriorityScheduler::with_config(SchedulerConfig {
///     capacity: Some(1),
///     ..SchedulerConfig::default()
/// })?;
/// scheduler.push(SchedulingHint::default(), "first").ok();
/// let full = scheduler.push(SchedulingHint::default(), "second").unwrap_err();
/// assert_eq!(full.into_inner(), "second");
/// # Ok::<(), hivekit_lockfree::SchedulerError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("scheduler is full")]
pub struct Full<T>(pub T);

impl<T> Full<T> {
    /// The refused item.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for Full<T> {
    // Not derived: an error must be printable whatever the item type.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("Full(..)")
    }
}

/// Anti-starvation counters per scheduler: one set per consumer-thread stripe.
const AGING_STRIPES: usize = 16;

/// The anti-starvation state of one stripe of consumer threads, on its own cache line.
#[derive(Debug)]
struct Aging {
    /// Pops in a row that bypassed a waiting lower lane.
    bypassed: AtomicU32,
    /// The lane of the last forced pop (round-robin cursor); `LANES` when none yet.
    cursor: AtomicU32,
}

/// A concurrent multi-producer multi-consumer priority queue ordered by [`SchedulingHint`].
///
/// [`pop`](Self::pop) returns the item with the highest [`SchedulingHint::sort_key`], FIFO among items
/// with equal keys; optionally bounded ([`SchedulerConfig::capacity`]) and with anti-starvation
/// ([`SchedulerConfig::max_bypass`]). All methods take `&self`; share it with an `Arc` or a scope.
/// Every pushed item is popped exactly once, whatever the interleaving.
///
/// # Progress
///
/// [`push`](Self::push) and [`pop`](Self::pop) are lock-free in the sense crossbeam's `SegQueue` is
/// (a pop may wait for a push that has reserved its slot and not yet written it, and a push for a
/// pop of the ring's lap before; see the lane module); a bounded `push` adds a compare-and-swap loop
/// on the item count, and a bounded `pop` that finds the lanes empty while the count is not waits
/// for the push that reserved the item to queue it (or the pop that took it to count it off).
/// [`len`](Self::len),
/// [`is_empty`](Self::is_empty) and [`depth_by_priority`](Self::depth_by_priority) are O(1) whatever
/// the number of items and exact when no push or pop is in flight: a bounded scheduler keeps an item
/// count (it needs one to enforce the capacity); an unbounded one sums the lengths of its non-empty
/// lanes (at most 48) instead, so that its push and pop share no counter.
///
/// # Memory
///
/// Each of the 48 lanes keeps 8 item slots inline (beside its counters, on one cache line for items
/// of up to 8 bytes) and its overflow queue, so an empty scheduler holds 18 KiB for items of up to 8
/// bytes and about 384 bytes more per further byte of item size (48 lanes of 8 slots); box large
/// items.
///
/// # Examples
///
/// ```
/// use hivekit_lockfree::{LatencyTier, Priority, PriorityScheduler, ResourceCost, SchedulingHint};
///
/// let scheduler = PriorityScheduler::new();
/// let background = SchedulingHint::with_priority(Priority::Low);
/// let urgent = SchedulingHint::new(Priority::Critical, LatencyTier::Hot, ResourceCost::Minimal);
/// scheduler.push(background, "reindex").ok();
/// scheduler.push(urgent, "answer the user").ok();
/// scheduler.push(background, "compact").ok();
///
/// assert_eq!(scheduler.len(), 3);
/// assert_eq!(scheduler.depth_by_priority(), [2, 0, 0, 1]);
/// assert_eq!(scheduler.pop(), Some("answer the user"));
/// assert_eq!(scheduler.pop(), Some("reindex")); // FIFO among equal keys
/// assert_eq!(scheduler.pop(), Some("compact"));
/// assert_eq!(scheduler.pop(), None);
/// ```
pub struct PriorityScheduler<T> {
    /// Lane `k` holds the items with sort key `k`, in push order.
    lanes: Box<[CompactLane<T>]>,
    /// Bit `k` is set whenever lane `k` holds an item whose push has returned (see the module docs).
    nonempty: CachePadded<AtomicU64>,
    /// Bounded schedulers only: items reserved by pushes and not yet taken by pops.
    len: CachePadded<AtomicUsize>,
    /// The anti-starvation stripes; `None` in strict order (`max_bypass` `None` or `Some(u32::MAX)`),
    /// so that a pop's one test of this field both skips the bookkeeping in strict order and, being a
    /// fixed-size array, indexes a stripe without a bounds check.
    aging: Option<Box<[CachePadded<Aging>; AGING_STRIPES]>>,
    /// `usize::MAX` when unbounded.
    capacity: usize,
    /// `u32::MAX` when anti-starvation is off (a count that is never reached).
    max_bypass: u32,
    config: SchedulerConfig,
}

impl<T> PriorityScheduler<T> {
    /// An unbounded scheduler with strict priority order (no anti-starvation).
    ///
    /// # Examples
    ///
    /// ```
    /// let scheduler = hivekit_lockfree::PriorityScheduler::<String>::new();
    /// assert!(scheduler.is_empty());
    /// ```
    pub fn new() -> Self {
        Self::build(SchedulerConfig::default())
    }

    /// A scheduler with the given capacity and anti-starvation bound.
    ///
    /// # Errors
    ///
    /// [`SchedulerError::ZeroCapacity`] for `capacity: Some(0)` and [`SchedulerError::ZeroMaxBypass`]
    /// for `max_bypass: Some(0)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use hivekit_lockfree::{PriorityScheduler, SchedulerConfig, SchedulerError};
    ///
    /// let refused = PriorityScheduler::<()>::with_config(SchedulerConfig {
    ///     capacity: Some(0),
    ///     max_bypass: None,
    /// });
    /// assert_eq!(refused.unwrap_err(), SchedulerError::ZeroCapacity);
    /// ```
    pub fn with_config(config: SchedulerConfig) -> Result<Self, SchedulerError> {
        if config.capacity == Some(0) {
            return Err(SchedulerError::ZeroCapacity);
        }
        if config.max_bypass == Some(0) {
            return Err(SchedulerError::ZeroMaxBypass);
        }
        Ok(Self::build(config))
    }

    fn build(config: SchedulerConfig) -> Self {
        Self {
            lanes: CompactLane::new_boxed_slice(LANES),
            nonempty: CachePadded::new(AtomicU64::new(0)),
            len: CachePadded::new(AtomicUsize::new(0)),
            aging: match config.max_bypass {
                Some(max_bypass) if max_bypass != u32::MAX => {
                    Some(Box::new(std::array::from_fn(|_| {
                        CachePadded::new(Aging {
                            bypassed: AtomicU32::new(0),
                            cursor: AtomicU32::new(LANES as u32),
                        })
                    })))
                }
                _ => None,
            },
            capacity: config.capacity.unwrap_or(usize::MAX),
            max_bypass: config.max_bypass.unwrap_or(u32::MAX),
            config,
        }
    }

    /// The configuration this scheduler was built with.
    pub fn config(&self) -> SchedulerConfig {
        self.config
    }

    /// Queues `item` behind the items with the same sort key.
    ///
    /// # Errors
    ///
    /// [`Full`] with the item when the scheduler was built with a capacity and holds that many items.
    /// An unbounded scheduler never fails.
    ///
    /// # Progress
    ///
    /// Lock-free.
    ///
    /// # Examples
    ///
    /// ```
    /// use hivekit_lockfree::{Priority, PriorityScheduler, SchedulingHint};
    ///
    /// let scheduler = PriorityScheduler::new();
    /// scheduler.push(SchedulingHint::with_priority(Priority::High), 7)?;
    /// assert_eq!(scheduler.pop(), Some(7));
    /// # Ok::<(), hivekit_lockfree::Full<i32>>(())
    /// ```
    pub fn push(&self, hint: SchedulingHint, item: T) -> Result<(), Full<T>> {
        if self.is_bounded() {
            // Reserve a slot first, so the lanes never hold more than `capacity` items.
            let mut len = self.len.load(Ordering::Relaxed);
            loop {
                if len >= self.capacity {
                    return Err(Full(item));
                }
                match self.len.compare_exchange_weak(
                    len,
                    len + 1,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => break,
                    Err(actual) => len = actual,
                }
            }
        }
        let key = usize::from(hint.sort_key());
        self.lanes[key].push(item);
        // Always set, never "read, then set if clear": a clear that comes after this set in the
        // bitmap's modification order acquires it, so its re-check sees the enqueue (see the module
        // docs). Skipping the write when the bit reads set would need a `SeqCst` fence instead.
        self.nonempty.fetch_or(1_u64 << key, Ordering::Release);
        Ok(())
    }

    /// Takes the item with the highest sort key (the oldest among equal keys), or a lower lane's item
    /// when anti-starvation forces it (see [`SchedulerConfig::max_bypass`]). `None` when empty: the
    /// scheduler held no item at some moment during the call (as crossbeam's queues answer).
    ///
    /// The order under concurrent pushes: with one consumer, a pop never takes a lower key (or a
    /// later item of the same key) while an item whose push returned before the pop began is
    /// queued. An item whose push completes while the pop runs may be passed over, even for a
    /// lower key pushed after it (the pop chose its lane from the bitmap before that item's bit
    /// was set), and with several consumers a pop that meets another pop's clear-and-restore of a
    /// lane's bit may pass over that lane's item for that moment. Checking the bitmap again after
    /// each take would close both at the price of a read of the line every push writes.
    ///
    /// # Progress
    ///
    /// Lock-free.
    ///
    /// # Examples
    ///
    /// ```
    /// use hivekit_lockfree::{Priority, PriorityScheduler, SchedulingHint};
    ///
    /// let scheduler = PriorityScheduler::new();
    /// scheduler.push(SchedulingHint::with_priority(Priority::Low), "later").ok();
    /// scheduler.push(SchedulingHint::with_priority(Priority::High), "first").ok();
    /// assert_eq!(scheduler.pop(), Some("first"));
    /// assert_eq!(scheduler.pop(), Some("later"));
    /// assert_eq!(scheduler.pop(), None);
    /// ```
    pub fn pop(&self) -> Option<T> {
        // Made only when the pop has to wait (see `pop_slow`): not on the fast path.
        let mut wait: Option<Wait> = None;
        loop {
            let bits = self.nonempty.load(Ordering::Acquire);
            if bits == 0 {
                match self.pop_slow() {
                    Scan::Took(item) => return Some(item),
                    Scan::Empty if self.is_bounded() && self.len.load(Ordering::Relaxed) != 0 => {
                        // See `pop_slow`: an item counted and not in a lane is being pushed or
                        // was just taken.
                        wait.get_or_insert_with(Wait::new).snooze();
                    }
                    Scan::Empty => return None,
                    Scan::Changed => {}
                }
                continue;
            }
            let key = self.choose_lane(bits);
            if let Some((item, emptied)) = self.lanes[key].take() {
                if self.is_bounded() {
                    self.len.fetch_sub(1, Ordering::Relaxed);
                }
                // Empty as this pop's own update of the lane left it: a push after that update
                // is seen by the re-check in `clear_lane_bit`.
                if emptied {
                    self.clear_lane_bit(key);
                }
                return Some(item);
            }
            // The lane was empty (its bit outlived a pop that raced a push): this pop served
            // nothing, so its choice must not count as a bypass or a forced pop. Undone, the next
            // choice decides against the corrected bitmap as if this one never happened.
            self.undo_choice(bits, key);
            self.clear_lane_bit(key);
        }
    }

    /// Takes back what [`choose_lane`](Self::choose_lane) counted for choosing lane `key` from
    /// `bits`, derived from the choice itself (so that the pop's fast path carries nothing for
    /// it): the top lane with lanes waiting below was one more bypass; a lower lane was a forced
    /// pop, taken when the count had reached `max_bypass`. (The top lane alone reset a count
    /// that nothing waiting needed, and a forced pop's cursor may stay where it moved: the next
    /// forced pop still serves the highest lane waiting below it, wrapping around.)
    #[cold]
    fn undo_choice(&self, bits: u64, key: usize) {
        let Some(aging) = &self.aging else {
            return;
        };
        let aging = &*aging[thread::index() % AGING_STRIPES];
        let top = 63 - bits.leading_zeros() as usize;
        if key != top {
            aging.bypassed.store(self.max_bypass, Ordering::Relaxed);
        } else if bits & (bits - 1) != 0 {
            let bypassed = aging.bypassed.load(Ordering::Relaxed);
            aging
                .bypassed
                .store(bypassed.saturating_sub(1), Ordering::Relaxed);
        }
    }

    /// The lane a pop serves, given the bitmap `bits` (not zero).
    #[inline]
    fn choose_lane(&self, bits: u64) -> usize {
        let top = 63 - bits.leading_zeros();
        let Some(aging) = &self.aging else {
            return top as usize;
        };
        let aging = &*aging[thread::index() % AGING_STRIPES];
        let bypassed = aging.bypassed.load(Ordering::Relaxed);
        // `bits` less its lowest set bit is zero exactly when the top bit is the only one set
        // (cheaper than masking the bits below the top, which only a forced pop needs).
        if bits & (bits - 1) == 0 {
            // Nothing waits below: nothing is bypassed.
            if bypassed != 0 {
                aging.bypassed.store(0, Ordering::Relaxed);
            }
            return top as usize;
        }
        if bypassed < self.max_bypass {
            aging.bypassed.store(bypassed + 1, Ordering::Relaxed);
            return top as usize;
        }
        // A forced pop: the highest waiting lane below the previous forced one, wrapping around.
        aging.bypassed.store(0, Ordering::Relaxed);
        let below_top = bits ^ (1_u64 << top);
        let cursor = aging.cursor.load(Ordering::Relaxed);
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
        aging.cursor.store(lane, Ordering::Relaxed);
        lane as usize
    }

    /// Lane `key` was found empty: clear its bit, then restore it if a push landed meanwhile.
    fn clear_lane_bit(&self, key: usize) {
        let bit = 1_u64 << key;
        // `Acquire`: a push whose set precedes this clear is visible to the re-check below; a push
        // whose set follows it sets the bit itself (see the module docs).
        self.nonempty.fetch_and(!bit, Ordering::Acquire);
        if !self.lanes[key].is_empty() {
            self.nonempty.fetch_or(bit, Ordering::Release);
        }
    }

    /// The bitmap says empty, but a bit may be being restored by a racing pop: look at the lanes
    /// themselves, highest first, rather than report empty while a completed push's item waits.
    ///
    /// One pass is not enough to report empty: lane 40 may read empty, then take a push (which
    /// returns) while lane 5's last item is popped, then lane 5 read empty, though the lanes were
    /// never empty at once (a thread that pushed and then popped got `None`: crossbeam's
    /// `linearizable` test, ported in `user_crossbeam_queue_linearizable_len.rs`, caught it 3 times
    /// in 100). So empty is reported only when a second pass reads every lane's state word as the
    /// first did (a double collect): each lane was then left alone from its first read to its
    /// second, and every first read precedes every second, so at the moment between the passes
    /// all lanes were empty (a lane brought back to the same word during the pass could fool it:
    /// 256 ring pushes and pops, or a single spilled push and its pop while an overflow pop is in
    /// flight or a slot's reader is stalled; see `CompactLane::state`). Otherwise `Changed`: the pop
    /// starts over from the bitmap (some other push or pop made progress meanwhile, so this stays
    /// lock-free).
    ///
    /// A bounded scheduler counts an item from its push's reservation until after its pop has
    /// taken it, and `push` answers `Full` from that count. `pop` answers `None` only when the
    /// count is zero too: lanes found empty while it is not hold an item being pushed (reserved,
    /// not yet queued) or just taken (not yet counted off), and the pop waits for either, as
    /// crossbeam's `ArrayQueue` pop waits for a reserved slot's write. (Answering `None` there
    /// gave a thread `None` after its push was refused as `Full` with nothing popped in between:
    /// `user_lincheck_scheduler_directed`.)
    #[cold]
    fn pop_slow(&self) -> Scan<T> {
        if self.is_bounded() && self.len.load(Ordering::Relaxed) == 0 {
            return Scan::Empty;
        }
        let first: [State; LANES] = std::array::from_fn(|key| self.lanes[key].state());
        let waiting = (0..LANES).rev().filter(|&key| !first[key].is_empty());
        if let Some(item) = waiting.clone().find_map(|key| self.lanes[key].pop()) {
            if self.is_bounded() {
                self.len.fetch_sub(1, Ordering::Relaxed);
            }
            return Scan::Took(item);
        }
        // A lane read non-empty and then found empty has changed: no need to read it again.
        let unchanged = waiting.count() == 0
            && self
                .lanes
                .iter()
                .zip(first)
                .all(|(lane, first)| lane.state() == first);
        if unchanged {
            Scan::Empty
        } else {
            Scan::Changed
        }
    }

    #[inline]
    fn is_bounded(&self) -> bool {
        self.capacity != usize::MAX
    }

    /// The number of items queued: O(1) whatever the number of items (see `# Progress` on the
    /// type); exact when no push or pop is in flight.
    ///
    /// # Progress
    ///
    /// Wait-free when bounded (one counter), lock-free when unbounded (at most 48 lane lengths).
    pub fn len(&self) -> usize {
        if self.is_bounded() {
            self.len.load(Ordering::Relaxed)
        } else {
            self.marked_lanes().map(|(_, lane)| lane.len()).sum()
        }
    }

    /// The most items it holds at once (`None`: unbounded), as built with
    /// [`SchedulerConfig::capacity`]: the configured value as is (`Some(usize::MAX)` is reported
    /// as such, though it bounds nothing).
    pub fn capacity(&self) -> Option<usize> {
        self.config().capacity
    }

    /// Pops items in the order [`pop`](Self::pop) gives them until it finds the scheduler empty:
    /// a way to empty it (`scheduler.drain().count()`) or to take everything queued at shutdown.
    /// Items other threads push meanwhile are popped too when it reaches them; each item is still
    /// popped exactly once, by the drain or by another popper.
    ///
    /// # Examples
    ///
    /// ```
    /// use hivekit_lockfree::{Priority, PriorityScheduler};
    ///
    /// let scheduler = PriorityScheduler::new();
    /// scheduler.push(Priority::Low.into(), "sweep")?;
    /// scheduler.push(Priority::Critical.into(), "page")?;
    /// let left: Vec<&str> = scheduler.drain().collect();
    /// assert_eq!(left, ["page", "sweep"]);
    /// assert!(scheduler.is_empty());
    /// # Ok::<(), hivekit_lockfree::Full<&str>>(())
    /// ```
    pub fn drain(&self) -> impl Iterator<Item = T> + '_ {
        std::iter::from_fn(|| self.pop())
    }

    /// True when no item is queued (see [`len`](Self::len)).
    ///
    /// # Progress
    ///
    /// Wait-free.
    pub fn is_empty(&self) -> bool {
        if self.is_bounded() {
            self.len.load(Ordering::Relaxed) == 0
        } else {
            self.marked_lanes().all(|(_, lane)| lane.is_empty())
        }
    }

    /// The lanes whose bit is set, with their keys. When no push or pop is in flight, every lane
    /// holding an item is among them (see the module docs), so counting these lanes is exact then.
    fn marked_lanes(&self) -> impl Iterator<Item = (usize, &CompactLane<T>)> {
        let mut bits = self.nonempty.load(Ordering::Acquire);
        std::iter::from_fn(move || {
            if bits == 0 {
                return None;
            }
            let key = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            Some((key, &self.lanes[key]))
        })
    }

    /// The number of queued items per priority, indexed by [`Priority::index`] (`Low` first): the
    /// lengths of the (at most 48) non-empty lanes summed, exact when no push or pop is in flight.
    ///
    /// # Progress
    ///
    /// Lock-free (each lane length is read consistently).
    ///
    /// # Examples
    ///
    /// ```
    /// use hivekit_lockfree::{Priority, PriorityScheduler, SchedulingHint};
    ///
    /// let scheduler = PriorityScheduler::new();
    /// scheduler.push(SchedulingHint::with_priority(Priority::High), ()).ok();
    /// assert_eq!(scheduler.depth_by_priority()[Priority::High.index()], 1);
    /// ```
    pub fn depth_by_priority(&self) -> [usize; 4] {
        let mut depth = [0; 4];
        for (key, lane) in self.marked_lanes() {
            depth[key / KEYS_PER_PRIORITY] += lane.len();
        }
        depth
    }
}

impl<T> Default for PriorityScheduler<T> {
    /// An unbounded scheduler with strict priority order.
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for PriorityScheduler<T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("PriorityScheduler")
            .field("len", &self.len())
            .field("depth_by_priority", &self.depth_by_priority())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_lane_of_small_items_is_three_lines_and_the_documented_size() {
        // State word, stamps and 8 slots of 8 bytes on one 128-byte line; the overflow on two more.
        assert_eq!(std::mem::size_of::<CompactLane<u64>>(), 384);
        assert_eq!(std::mem::size_of::<CompactLane<()>>(), 384);
    }
    use crate::hint::{LatencyTier, ResourceCost};

    #[test]
    fn lanes_per_priority_match_sort_keys() {
        for priority in Priority::ALL {
            for latency in LatencyTier::ALL {
                for cost in [ResourceCost::Minimal, ResourceCost::Heavy] {
                    let key = usize::from(SchedulingHint::new(priority, latency, cost).sort_key());
                    assert_eq!(key / KEYS_PER_PRIORITY, priority.index());
                }
            }
        }
    }

    #[test]
    fn errors_name_the_bad_setting() {
        assert_eq!(
            SchedulerError::ZeroCapacity.to_string(),
            "scheduler capacity must be at least 1, got 0"
        );
        assert!(SchedulerError::ZeroMaxBypass
            .to_string()
            .starts_with("scheduler max_bypass must be at least 1"));
        assert_eq!(Full(3).to_string(), "scheduler is full");
        assert_eq!(format!("{:?}", Full(3)), "Full(..)");
    }

    /// The lane choice as it was written before its bookkeeping was trimmed (the bits below the
    /// top masked first, the strict test on `max_bypass`): `(lane, bypassed, cursor)` after a pop
    /// that saw `bits`, from the stripe's `bypassed` and `cursor`.
    fn reference_choice(bits: u64, bypassed: u32, cursor: u32, max_bypass: u32) -> (u32, u32, u32) {
        let top = 63 - bits.leading_zeros();
        let below_top = bits & ((1_u64 << top) - 1);
        if max_bypass == u32::MAX {
            return (top, bypassed, cursor);
        }
        if below_top == 0 {
            return (top, 0, cursor);
        }
        if bypassed < max_bypass {
            return (top, bypassed + 1, cursor);
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
        (lane, 0, lane)
    }

    #[test]
    fn lane_choice_matches_the_untrimmed_reference() {
        for max_bypass in [
            None,
            Some(1),
            Some(2),
            Some(8),
            Some(u32::MAX - 1),
            Some(u32::MAX),
        ] {
            let scheduler = PriorityScheduler::<()>::with_config(SchedulerConfig {
                capacity: None,
                max_bypass,
            })
            .expect("valid config");
            let limit = max_bypass.unwrap_or(u32::MAX);
            let (mut bypassed, mut cursor) = (0, LANES as u32);
            // A fixed pseudo-random walk over bitmaps of the 48 lanes, sparse and dense, with
            // single-lane bitmaps (nothing below the top) mixed in.
            let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
            for step in 0..20_000 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let mask = (1_u64 << LANES) - 1;
                let bits = match step % 4 {
                    0 => 1_u64 << (seed % LANES as u64),
                    1 => seed & (seed >> 17) & mask,
                    _ => seed & mask,
                };
                if bits == 0 {
                    continue;
                }
                let (lane, next_bypassed, next_cursor) =
                    reference_choice(bits, bypassed, cursor, limit);
                assert_eq!(scheduler.choose_lane(bits), lane as usize, "bits {bits:#x}");
                (bypassed, cursor) = (next_bypassed, next_cursor);
                if let Some(aging) = &scheduler.aging {
                    let stripe = &aging[thread::index() % AGING_STRIPES];
                    assert_eq!(stripe.bypassed.load(Ordering::Relaxed), bypassed);
                    assert_eq!(stripe.cursor.load(Ordering::Relaxed), cursor);
                }
            }
            // Strict order keeps no stripes at all, `Some(u32::MAX)` included.
            assert_eq!(
                scheduler.aging.is_none(),
                limit == u32::MAX,
                "{max_bypass:?}"
            );
        }
    }

    #[test]
    fn forced_pops_walk_down_round_robin() {
        let scheduler = PriorityScheduler::with_config(SchedulerConfig {
            capacity: None,
            max_bypass: Some(1),
        })
        .expect("valid config");
        for priority in Priority::ALL {
            for _ in 0..4 {
                scheduler
                    .push(SchedulingHint::with_priority(priority), priority.index())
                    .ok();
            }
        }
        let order: Vec<usize> = std::iter::from_fn(|| scheduler.pop()).take(6).collect();
        // top, forced High, top, forced Normal, top (Critical now empty after this), forced Low...
        assert_eq!(order, [3, 2, 3, 1, 3, 0]);
    }
}
