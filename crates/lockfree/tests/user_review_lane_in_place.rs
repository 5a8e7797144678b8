//! Review of 3d77633 (crates/lockfree/src/scheduler/lane.rs `CompactLane::new_boxed_slice`): the
//! scheduler's lanes are written field by field into an uninitialised heap slice. Schedulers of
//! items of every size and alignment (zero-sized, with and without `Drop`, 32 KiB, 4 KiB-aligned)
//! are filled in every lane past the inline ring, partly popped, and dropped: every item comes out
//! intact, in FIFO order within a lane, and every item left inside is dropped exactly once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hivekit_lockfree::{PriorityScheduler, SchedulingHint};

/// Items per lane: past the inline ring (8 slots), into the overflow.
const PER_LANE: usize = 20;
/// Items popped before the drop (from the highest lanes down).
const POPPED: usize = 300;

/// An item that knows its number and counts its drops.
trait Counted: Sized {
    fn make(number: usize, drops: &Arc<AtomicUsize>) -> Self;
    fn number(&self) -> Option<usize>;
}

/// Fills a scheduler with `PER_LANE` items in every lane, pops [`POPPED`], checks them, drops the
/// scheduler and checks every item was dropped once. `drops` counts the drops of `T`.
fn fill_pop_drop<T: Counted>(drops: &Arc<AtomicUsize>, counts_drops: bool) {
    let hints: Vec<SchedulingHint> = SchedulingHint::all().collect();
    let before = drops.load(Ordering::SeqCst);
    let scheduler = PriorityScheduler::<T>::new();
    let mut number = 0;
    for _ in 0..PER_LANE {
        for hint in &hints {
            scheduler
                .push(*hint, T::make(number, drops))
                .unwrap_or_else(|_| panic!("unbounded"));
            number += 1;
        }
    }
    let pushed = number;
    assert_eq!(scheduler.len(), pushed);
    let mut popped = Vec::new();
    for _ in 0..POPPED {
        let item = scheduler.pop().expect("items left");
        popped.push(item.number());
        drop(item);
    }
    // Within one lane, items come out in push order (numbers of one hint grow by hints.len()).
    if popped.iter().all(Option::is_some) {
        let numbers: Vec<usize> = popped.iter().map(|number| number.unwrap()).collect();
        for lane in 0..hints.len() {
            let of_lane: Vec<usize> = numbers
                .iter()
                .copied()
                .filter(|number| number % hints.len() == lane)
                .collect();
            assert!(
                of_lane.windows(2).all(|pair| pair[0] < pair[1]),
                "lane {lane} out of order: {of_lane:?}"
            );
        }
    }
    assert_eq!(scheduler.len(), pushed - POPPED);
    drop(scheduler);
    if counts_drops {
        assert_eq!(
            drops.load(Ordering::SeqCst) - before,
            pushed,
            "every item dropped once: {POPPED} popped, {} left inside",
            pushed - POPPED
        );
    }
}

/// A zero-sized item with `Drop` (counted in a static: it has no room for a counter).
struct ZeroSized;
static ZERO_SIZED_DROPS: AtomicUsize = AtomicUsize::new(0);
impl Drop for ZeroSized {
    fn drop(&mut self) {
        ZERO_SIZED_DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn zero_sized_items_with_drop_are_each_dropped_once() {
    assert_eq!(std::mem::size_of::<ZeroSized>(), 0);
    let hints = SchedulingHint::all().count();
    let scheduler = PriorityScheduler::<ZeroSized>::new();
    for _ in 0..PER_LANE {
        for hint in SchedulingHint::all() {
            scheduler
                .push(hint, ZeroSized)
                .unwrap_or_else(|_| panic!("unbounded"));
        }
    }
    for _ in 0..POPPED {
        drop(scheduler.pop().expect("items left"));
    }
    assert_eq!(ZERO_SIZED_DROPS.load(Ordering::SeqCst), POPPED);
    drop(scheduler);
    assert_eq!(ZERO_SIZED_DROPS.load(Ordering::SeqCst), PER_LANE * hints);
}

#[test]
fn unit_items_fill_and_drain_every_lane() {
    let scheduler = PriorityScheduler::<()>::new();
    let hints = SchedulingHint::all().count();
    for _ in 0..PER_LANE {
        for hint in SchedulingHint::all() {
            scheduler
                .push(hint, ())
                .unwrap_or_else(|_| panic!("unbounded"));
        }
    }
    assert_eq!(scheduler.len(), PER_LANE * hints);
    assert_eq!(
        std::iter::from_fn(|| scheduler.pop()).count(),
        PER_LANE * hints
    );
    assert!(scheduler.is_empty());
    assert_eq!(scheduler.pop(), None);
}

/// A small item with a counter (`Arc`: 8 bytes, needs drop).
struct Small(usize, Arc<AtomicUsize>);
impl Counted for Small {
    fn make(number: usize, drops: &Arc<AtomicUsize>) -> Self {
        Small(number, drops.clone())
    }
    fn number(&self) -> Option<usize> {
        Some(self.0)
    }
}
impl Drop for Small {
    fn drop(&mut self) {
        self.1.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn small_items_with_drop_left_in_every_lane_are_each_dropped_once() {
    fill_pop_drop::<Small>(&Arc::new(AtomicUsize::new(0)), true);
}

/// A 32 KiB item whose every byte says its number (a lane of them is 256 KiB).
struct Big {
    number: usize,
    data: [u8; 32 * 1024],
    drops: Arc<AtomicUsize>,
}
impl Counted for Big {
    fn make(number: usize, drops: &Arc<AtomicUsize>) -> Self {
        Big {
            number,
            data: [number as u8; 32 * 1024],
            drops: drops.clone(),
        }
    }
    fn number(&self) -> Option<usize> {
        assert!(
            self.data.iter().all(|&byte| byte == self.number as u8),
            "item {} came out torn",
            self.number
        );
        Some(self.number)
    }
}
impl Drop for Big {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

/// On a 2 MiB thread, as the commit's own test, but with items that need drop, left in every lane
/// (ring and overflow) when the scheduler is dropped.
#[test]
fn big_items_with_drop_left_in_every_lane_are_dropped_on_a_2_mib_thread() {
    let drops = Arc::new(AtomicUsize::new(0));
    let worker = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn({
            let drops = drops.clone();
            move || fill_pop_drop::<Big>(&drops, true)
        })
        .expect("spawn");
    assert!(worker.join().is_ok());
    assert!(drops.load(Ordering::SeqCst) > 0);
}

/// An item aligned to 4 KiB (a lane's alignment is then 4 KiB, not its own 128).
#[repr(align(4096))]
struct PageAligned(usize, Arc<AtomicUsize>);
impl Counted for PageAligned {
    fn make(number: usize, drops: &Arc<AtomicUsize>) -> Self {
        PageAligned(number, drops.clone())
    }
    fn number(&self) -> Option<usize> {
        assert_eq!(
            std::ptr::from_ref(self) as usize % 4096,
            0,
            "item {} misaligned",
            self.0
        );
        Some(self.0)
    }
}
impl Drop for PageAligned {
    fn drop(&mut self) {
        assert_eq!(std::ptr::from_mut(self) as usize % 4096, 0);
        self.1.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn page_aligned_items_left_in_every_lane_are_each_dropped_once() {
    fill_pop_drop::<PageAligned>(&Arc::new(AtomicUsize::new(0)), true);
}

/// `String`s: heap items that must neither leak nor be freed twice (a double free aborts).
#[test]
fn heap_items_left_in_every_lane_are_freed_once() {
    struct Text(String);
    impl Counted for Text {
        fn make(number: usize, _: &Arc<AtomicUsize>) -> Self {
            Text(number.to_string())
        }
        fn number(&self) -> Option<usize> {
            Some(self.0.parse().unwrap())
        }
    }
    fill_pop_drop::<Text>(&Arc::new(AtomicUsize::new(0)), false);
}

/// Many schedulers built and dropped, empty and holding one item each, from several threads at
/// once: each is a fresh in-place slice (no lane shared between schedulers, none left half
/// built).
#[test]
fn schedulers_built_and_dropped_from_many_threads_are_independent() {
    let drops = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|thread| {
            let drops = drops.clone();
            std::thread::spawn(move || {
                for round in 0..200 {
                    let scheduler = PriorityScheduler::<Small>::new();
                    if round % 2 == 1 {
                        let lanes = SchedulingHint::all().count();
                        let hint = SchedulingHint::all().nth(round % lanes).unwrap();
                        scheduler
                            .push(hint, Small(thread * 1000 + round, drops.clone()))
                            .unwrap_or_else(|_| panic!("unbounded"));
                        assert_eq!(scheduler.len(), 1);
                    } else {
                        assert!(scheduler.is_empty());
                        assert_eq!(scheduler.len(), 0);
                    }
                    drop(scheduler);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(drops.load(Ordering::SeqCst), 4 * 100);
}
