//! Linearizability of `PriorityScheduler`, checked on many small random histories: 3 threads of
//! 3 to 6 operations each (push, pop, and drains recorded pop by pop), on a scheduler that may
//! hold a few items before they start, each history searched for a sequential order against a
//! model of what the docs promise under concurrency:
//!
//! - a pop takes the oldest item of some key (FIFO among equal sort keys), and `None` only when
//!   the queue was empty at some moment during the call (`PriorityScheduler::pop`); which key is
//!   not checked here: under concurrent pushes `pop` may pass over an item whose push completes
//!   during it (its docs), and with anti-starvation the lane depends on per-thread counters. The
//!   priority order is checked with one consumer in `user_lincheck_scheduler_directed.rs`, and
//!   sequentially by the proptests;
//! - bounded: a push is never refused while more than `capacity` items are free, counting as held
//!   the items of pushes and pops still in flight (an item counts from its push until its pop
//!   returns: `SchedulerConfig::capacity`), and never accepted beyond the capacity;
//! - every item popped exactly once.
//!
//! After each round (no operation in flight) `len`, `is_empty` and `depth_by_priority` must be
//! exact, and draining must give back exactly the items no pop took, highest key first.

#[path = "support/lincheck.rs"]
mod lincheck;

use hivekit_lockfree::{PriorityScheduler, SchedulerConfig, SchedulingHint};
use lincheck::{check, jitter, record, round, Event, Model, Rng};

const THREADS: usize = 3;

#[derive(Debug, Clone, Copy)]
enum Op {
    Push {
        key: u8,
        item: u32,
    },
    /// A `pop`, or one `next` of a `drain`.
    Pop {
        in_drain: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ret {
    Pushed,
    Full,
    Popped(Option<u32>),
}

/// A priority queue, FIFO per sort key; `strict: false` lets a pop serve any lane's oldest item.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct QueueModel {
    /// `(key, item)` in push order.
    queued: Vec<(u8, u32)>,
    capacity: usize,
    strict: bool,
    /// Items that other threads' pushes and pops in flight may hold beyond `queued` when a push
    /// is refused (at most one operation per other thread).
    in_flight: usize,
}

impl Model for QueueModel {
    type Op = Op;
    type Ret = Ret;

    fn step(&self, op: &Op, ret: &Ret) -> Option<Self> {
        match (*op, *ret) {
            (Op::Push { .. }, Ret::Full) => {
                (self.queued.len() + self.in_flight >= self.capacity).then(|| self.clone())
            }
            (Op::Push { key, item }, Ret::Pushed) => {
                (self.queued.len() < self.capacity).then(|| {
                    let mut next = self.clone();
                    next.queued.push((key, item));
                    next
                })
            }
            (Op::Pop { .. }, Ret::Popped(None)) => self.queued.is_empty().then(|| self.clone()),
            (Op::Pop { .. }, Ret::Popped(Some(item))) => {
                let position = self.queued.iter().position(|&(_, queued)| queued == item)?;
                let key = self.queued[position].0;
                let oldest_of_its_key = self.queued[..position].iter().all(|&(k, _)| k != key);
                let allowed = oldest_of_its_key
                    && (!self.strict || self.queued.iter().all(|&(k, _)| k <= key));
                allowed.then(|| {
                    let mut next = self.clone();
                    next.queued.remove(position);
                    next
                })
            }
            _ => None,
        }
    }
}

/// The hint whose sort key is `key`.
fn hint(key: u8) -> SchedulingHint {
    SchedulingHint::all()
        .find(|hint| hint.sort_key() == key)
        .expect("a key below 48")
}

#[derive(Debug, Clone, Copy)]
struct Setup {
    capacity: Option<usize>,
    max_bypass: Option<u32>,
    rounds: u64,
}

/// Keys far apart (lanes at both ends of the bitmap and between), and few of them, so that equal
/// keys (FIFO) and different keys (priority) both come up often.
const KEYS: [u8; 5] = [0, 5, 23, 40, 47];

fn run(setup: Setup, seed: u64) {
    let capacity = setup.capacity.unwrap_or(usize::MAX);
    for round_number in 0..setup.rounds {
        let round_seed = seed ^ (round_number << 20);
        let mut rng = Rng::new(round_seed);
        let scheduler = PriorityScheduler::<u32>::with_config(SchedulerConfig {
            capacity: setup.capacity,
            max_bypass: setup.max_bypass,
        })
        .expect("valid config");
        // Items queued before the threads start, so that pops find something to choose from.
        let mut initial = QueueModel {
            queued: Vec::new(),
            capacity,
            strict: false,
            in_flight: THREADS - 1,
        };
        for item in 0..rng.below(5) as u32 {
            let key = rng.pick(&KEYS);
            if initial.queued.len() < capacity {
                scheduler.push(hint(key), 1_000 + item).expect("room");
                initial.queued.push((key, 1_000 + item));
            }
        }
        let plans: Vec<(Rng, Vec<Op>)> = (0..THREADS)
            .map(|thread| {
                let mut plan_rng = Rng::new(round_seed.wrapping_add(thread as u64 + 1));
                let count = 3 + plan_rng.below(4);
                let ops = (0..count as u32)
                    .map(|index| match plan_rng.below(9) {
                        0..=3 => Op::Push {
                            key: plan_rng.pick(&KEYS),
                            item: thread as u32 * 100 + index,
                        },
                        4..=7 => Op::Pop { in_drain: false },
                        _ => Op::Pop { in_drain: true },
                    })
                    .collect();
                (plan_rng, ops)
            })
            .collect();
        let history: Vec<Event<Op, Ret>> = round(THREADS, |thread, clock| {
            let (mut rng, ops) = plans[thread].clone();
            let mut events = Vec::new();
            for op in ops {
                jitter(&mut rng);
                match op {
                    Op::Push { key, item } => {
                        events.push(record(clock, thread, op, |_| {
                            match scheduler.push(hint(key), item) {
                                Ok(()) => Ret::Pushed,
                                Err(full) => {
                                    assert_eq!(full.into_inner(), item, "Full gives the item back");
                                    Ret::Full
                                }
                            }
                        }));
                    }
                    Op::Pop { in_drain: false } => {
                        events.push(record(clock, thread, op, |_| Ret::Popped(scheduler.pop())));
                    }
                    Op::Pop { in_drain: true } => {
                        // Each `next` of the drain is one pop; the drain ends at its first `None`
                        // (at most 4 items, to keep the history small).
                        let mut drain = scheduler.drain();
                        for _ in 0..4 {
                            let event = record(clock, thread, op, |_| Ret::Popped(drain.next()));
                            let ended = event.ret == Ret::Popped(None);
                            events.push(event);
                            if ended {
                                break;
                            }
                        }
                    }
                }
            }
            events
        });
        if let Err(message) = check(&initial, &history) {
            panic!("{setup:?}, round seed {round_seed:#x}: {message}");
        }
        quiescent_counts_are_exact(&scheduler, &initial, &history, setup, round_seed);
    }
}

/// With nothing in flight, `len`, `is_empty` and `depth_by_priority` count exactly the items no
/// pop took, and a drain gives exactly those back, highest key first.
fn quiescent_counts_are_exact(
    scheduler: &PriorityScheduler<u32>,
    initial: &QueueModel,
    history: &[Event<Op, Ret>],
    setup: Setup,
    round_seed: u64,
) {
    let mut left: Vec<(u8, u32)> = initial.queued.clone();
    for event in history {
        if let (Op::Push { key, item }, Ret::Pushed) = (event.op, event.ret) {
            left.push((key, item));
        }
    }
    for event in history {
        if let Ret::Popped(Some(item)) = event.ret {
            let position = left
                .iter()
                .position(|&(_, queued)| queued == item)
                .unwrap_or_else(|| panic!("{setup:?} {round_seed:#x}: item {item} popped twice"));
            left.remove(position);
        }
    }
    let context = format!("{setup:?}, round seed {round_seed:#x}");
    assert_eq!(scheduler.len(), left.len(), "{context}: len");
    assert_eq!(scheduler.is_empty(), left.is_empty(), "{context}: is_empty");
    let mut depth = [0; 4];
    for &(key, _) in &left {
        depth[usize::from(key) / 12] += 1;
    }
    assert_eq!(scheduler.depth_by_priority(), depth, "{context}: depth");
    let drained: Vec<u32> = scheduler.drain().collect();
    let mut expected: Vec<u32> = left.iter().map(|&(_, item)| item).collect();
    let mut got = drained.clone();
    expected.sort_unstable();
    got.sort_unstable();
    assert_eq!(
        got, expected,
        "{context}: the drain gives back what no pop took"
    );
    if setup.max_bypass.is_none() {
        let keys: Vec<u8> = drained
            .iter()
            .map(|item| {
                left.iter()
                    .find(|&&(_, queued)| queued == *item)
                    .expect("left")
                    .0
            })
            .collect();
        assert!(
            keys.windows(2).all(|pair| pair[0] >= pair[1]),
            "{context}: a drain with nothing in flight goes highest key first: {keys:?}"
        );
    }
    assert!(scheduler.is_empty(), "{context}");
}

#[test]
fn histories_of_an_unbounded_scheduler_are_linearizable_per_key() {
    run(
        Setup {
            capacity: None,
            max_bypass: None,
            rounds: 1_500,
        },
        0x5EED_0001,
    );
}

#[test]
fn histories_of_a_bounded_scheduler_refuse_only_when_full_and_keep_fifo_per_key() {
    for capacity in 1..=3 {
        run(
            Setup {
                capacity: Some(capacity),
                max_bypass: None,
                rounds: 600,
            },
            0x5EED_0100 + capacity as u64,
        );
    }
}

#[test]
fn histories_with_anti_starvation_pop_none_only_when_empty_and_each_item_once() {
    for max_bypass in [1, 2] {
        run(
            Setup {
                capacity: None,
                max_bypass: Some(max_bypass),
                rounds: 700,
            },
            0x5EED_0200 + u64::from(max_bypass),
        );
    }
}

#[test]
fn histories_with_anti_starvation_and_a_bound_refuse_only_when_full() {
    for (capacity, max_bypass) in [(1, 1), (2, 1), (3, 2)] {
        run(
            Setup {
                capacity: Some(capacity),
                max_bypass: Some(max_bypass),
                rounds: 450,
            },
            0x5EED_0300 + capacity as u64,
        );
    }
}

#[test]
fn strict_order_model_refuses_a_lower_key_first() {
    // The checker is only as good as its model: a pop of the lower key while a higher one is
    // queued must be refused in strict order and allowed with anti-starvation.
    let mut model = QueueModel {
        queued: vec![(0, 1), (47, 2)],
        capacity: usize::MAX,
        strict: true,
        in_flight: 0,
    };
    let pop = Op::Pop { in_drain: false };
    assert!(model.step(&pop, &Ret::Popped(Some(1))).is_none());
    assert!(model.step(&pop, &Ret::Popped(Some(2))).is_some());
    model.strict = false;
    assert!(model.step(&pop, &Ret::Popped(Some(1))).is_some());
    assert!(model.step(&pop, &Ret::Popped(None)).is_none());
    // A push refused with room for more than the operations in flight could hold is refused.
    let bounded = QueueModel {
        queued: vec![(0, 1)],
        capacity: 4,
        strict: false,
        in_flight: 2,
    };
    let push = Op::Push { key: 5, item: 3 };
    assert!(bounded.step(&push, &Ret::Full).is_none());
    let fuller = QueueModel {
        queued: vec![(0, 1), (5, 2)],
        ..bounded
    };
    assert!(fuller.step(&push, &Ret::Full).is_some());
}
