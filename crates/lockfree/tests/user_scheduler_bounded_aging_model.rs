//! Single-threaded proptest: capacity and max_bypass together (edge values included) against a model written from the docs.

use std::collections::VecDeque;

use hivekit_lockfree::{
    LatencyTier, Priority, PriorityScheduler, ResourceCost, SchedulerConfig, SchedulerError,
    SchedulingHint,
};
use proptest::prelude::*;

const LANES: usize = SchedulingHint::KEYS;

#[derive(Debug, Clone)]
enum Op {
    Push(usize, usize, usize),
    Pop,
    /// Pop until empty (lanes empty, then refill).
    Drain,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0_usize..4, 0_usize..3, 0_usize..4).prop_map(|(p, l, c)| Op::Push(p, l, c)),
        4 => Just(Op::Pop),
        1 => Just(Op::Drain),
    ]
}

fn hint(p: usize, l: usize, c: usize) -> SchedulingHint {
    SchedulingHint::new(Priority::ALL[p], LatencyTier::ALL[l], ResourceCost::ALL[c])
}

/// The documented order: highest key first, FIFO within a key; with `Some(k)` (k < u32::MAX) at
/// most `k` bypassing pops in a row, then a forced pop walking waiting lanes downwards round-robin.
struct Model {
    lanes: Vec<VecDeque<u64>>,
    k: Option<u32>,
    capacity: Option<usize>,
    bypassed: u32,
    cursor: usize,
}

impl Model {
    fn len(&self) -> usize {
        self.lanes.iter().map(VecDeque::len).sum()
    }

    fn full(&self) -> bool {
        self.capacity.is_some_and(|c| self.len() >= c)
    }

    fn pop(&mut self) -> Option<u64> {
        let top = (0..LANES).rev().find(|&l| !self.lanes[l].is_empty())?;
        let lower: Vec<usize> = (0..top)
            .rev()
            .filter(|&l| !self.lanes[l].is_empty())
            .collect();
        let k = match self.k {
            None | Some(u32::MAX) => return self.lanes[top].pop_front(),
            Some(k) => k,
        };
        if lower.is_empty() {
            self.bypassed = 0;
            return self.lanes[top].pop_front();
        }
        if self.bypassed < k {
            self.bypassed += 1;
            return self.lanes[top].pop_front();
        }
        let lane = lower
            .iter()
            .copied()
            .find(|&l| l < self.cursor)
            .unwrap_or(lower[0]);
        self.cursor = lane;
        self.bypassed = 0;
        self.lanes[lane].pop_front()
    }

    fn depth(&self) -> [usize; 4] {
        let mut depth = [0; 4];
        for (lane, q) in self.lanes.iter().enumerate() {
            depth[lane / 12] += q.len();
        }
        depth
    }
}

fn capacity() -> impl Strategy<Value = Option<usize>> {
    prop_oneof![
        Just(None),
        (1_usize..6).prop_map(Some),
        Just(Some(usize::MAX)),
        Just(Some(usize::MAX - 1)),
    ]
}

fn max_bypass() -> impl Strategy<Value = Option<u32>> {
    prop_oneof![
        Just(None),
        (1_u32..4).prop_map(Some),
        Just(Some(u32::MAX)),
        Just(Some(u32::MAX - 1)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn bounded_scheduler_with_aging_matches_the_documented_model(
        capacity in capacity(),
        k in max_bypass(),
        ops in proptest::collection::vec(op(), 1..150),
    ) {
        let scheduler = PriorityScheduler::with_config(SchedulerConfig { capacity, max_bypass: k })
            .expect("valid config");
        prop_assert_eq!(scheduler.config(), SchedulerConfig { capacity, max_bypass: k });
        let mut model = Model {
            lanes: (0..LANES).map(|_| VecDeque::new()).collect(),
            k,
            capacity,
            bypassed: 0,
            cursor: LANES,
        };
        let mut next = 0_u64;
        for (step, op) in ops.into_iter().enumerate() {
            match op {
                Op::Push(p, l, c) => {
                    let hint = hint(p, l, c);
                    next += 1;
                    let result = scheduler.push(hint, next);
                    if model.full() {
                        prop_assert_eq!(result.map_err(|f| f.into_inner()), Err(next), "step {}", step);
                    } else {
                        prop_assert!(result.is_ok(), "step {}: refused below capacity", step);
                        model.lanes[usize::from(hint.sort_key())].push_back(next);
                    }
                }
                Op::Pop => prop_assert_eq!(scheduler.pop(), model.pop(), "step {}", step),
                Op::Drain => {
                    loop {
                        let expected = model.pop();
                        prop_assert_eq!(scheduler.pop(), expected, "step {} (drain)", step);
                        if expected.is_none() {
                            break;
                        }
                    }
                    prop_assert_eq!(scheduler.pop(), None);
                }
            }
            prop_assert_eq!(scheduler.len(), model.len(), "step {}", step);
            prop_assert_eq!(scheduler.is_empty(), model.len() == 0, "step {}", step);
            prop_assert_eq!(scheduler.depth_by_priority(), model.depth(), "step {}", step);
            prop_assert_eq!(scheduler.depth_by_priority().iter().sum::<usize>(), scheduler.len());
            if let Some(c) = capacity {
                prop_assert!(scheduler.len() <= c);
            }
        }
    }
}

#[test]
fn zero_capacity_and_zero_bypass_are_typed_errors_together() {
    // Both wrong: an error naming one of them, never a panic.
    let both = PriorityScheduler::<u8>::with_config(SchedulerConfig {
        capacity: Some(0),
        max_bypass: Some(0),
    });
    assert!(matches!(
        both.unwrap_err(),
        SchedulerError::ZeroCapacity | SchedulerError::ZeroMaxBypass
    ));
    let err = PriorityScheduler::<u8>::with_config(SchedulerConfig {
        capacity: Some(5),
        max_bypass: Some(0),
    })
    .unwrap_err();
    assert_eq!(err, SchedulerError::ZeroMaxBypass);
    assert!(err.to_string().contains("max_bypass"), "{err}");
    let err = PriorityScheduler::<u8>::with_config(SchedulerConfig {
        capacity: Some(0),
        max_bypass: Some(3),
    })
    .unwrap_err();
    assert_eq!(err, SchedulerError::ZeroCapacity);
    assert!(err.to_string().contains("capacity"), "{err}");
}

#[test]
fn capacity_one_holds_exactly_one_item_of_any_key() {
    let scheduler = PriorityScheduler::with_config(SchedulerConfig {
        capacity: Some(1),
        max_bypass: Some(1),
    })
    .unwrap();
    for h in SchedulingHint::all() {
        scheduler.push(h, u32::from(h.sort_key())).unwrap();
        for other in SchedulingHint::all() {
            let refused = scheduler.push(other, 999).unwrap_err();
            assert_eq!(refused.into_inner(), 999);
        }
        assert_eq!(scheduler.len(), 1);
        assert_eq!(scheduler.depth_by_priority()[h.priority.index()], 1);
        assert_eq!(scheduler.pop(), Some(u32::from(h.sort_key())));
        assert!(scheduler.is_empty());
    }
}
