//! PriorityScheduler against a sequential model: random pushes and pops on a bounded or unbounded
//! scheduler must match a `BTreeMap<(Reverse(key), sequence), item>` with the same capacity, and the
//! counts (`len`, `depth_by_priority`) must match after every step.

use std::cmp::Reverse;
use std::collections::{BTreeMap, VecDeque};

use hivekit_lockfree::{
    LatencyTier, Priority, PriorityScheduler, ResourceCost, SchedulerConfig, SchedulingHint,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Push {
        priority: usize,
        latency: usize,
        cost: usize,
    },
    Pop,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0_usize..4, 0_usize..3, 0_usize..4)
            .prop_map(|(priority, latency, cost)| Op::Push { priority, latency, cost }),
        2 => Just(Op::Pop),
    ]
}

fn hint(priority: usize, latency: usize, cost: usize) -> SchedulingHint {
    SchedulingHint::new(
        Priority::ALL[priority],
        LatencyTier::ALL[latency],
        ResourceCost::ALL[cost],
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn scheduler_matches_sequential_model(
        capacity in prop_oneof![Just(None), (1_usize..12).prop_map(Some)],
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let scheduler = PriorityScheduler::with_config(SchedulerConfig { capacity, max_bypass: None })
            .expect("capacity is at least 1");
        let mut model: BTreeMap<(Reverse<u8>, u64), (u64, usize)> = BTreeMap::new();
        let mut sequence = 0_u64;
        for op in ops {
            match op {
                Op::Push { priority, latency, cost } => {
                    let hint = hint(priority, latency, cost);
                    sequence += 1;
                    let item = sequence;
                    let result = scheduler.push(hint, item);
                    if capacity.is_some_and(|capacity| model.len() >= capacity) {
                        prop_assert_eq!(result.map_err(|full| full.into_inner()), Err(item));
                    } else {
                        prop_assert!(result.is_ok());
                        model.insert((Reverse(hint.sort_key()), sequence), (item, priority));
                    }
                }
                Op::Pop => {
                    let expected = model.pop_first().map(|(_, (item, _))| item);
                    prop_assert_eq!(scheduler.pop(), expected);
                }
            }
            prop_assert_eq!(scheduler.len(), model.len());
            prop_assert_eq!(scheduler.is_empty(), model.is_empty());
            let mut depth = [0_usize; 4];
            for (_, priority) in model.values() {
                depth[*priority] += 1;
            }
            prop_assert_eq!(scheduler.depth_by_priority(), depth);
        }
    }

    /// With anti-starvation on, one thread's pops follow the documented rule exactly: the top lane
    /// at most `k` times in a row while a lower lane waits, then a forced pop walking the waiting
    /// lanes downwards round-robin (`SchedulerConfig::max_bypass`). The model keeps one FIFO per
    /// sort key.
    #[test]
    fn anti_starvation_matches_sequential_model(
        max_bypass in 1_u32..5,
        ops in proptest::collection::vec(op(), 1..160),
    ) {
        let scheduler = PriorityScheduler::with_config(SchedulerConfig { capacity: None, max_bypass: Some(max_bypass) })
            .expect("max_bypass is at least 1");
        let mut model = AgingModel::new(max_bypass);
        for (item, op) in ops.into_iter().enumerate() {
            match op {
                Op::Push { priority, latency, cost } => {
                    let hint = hint(priority, latency, cost);
                    scheduler.push(hint, item).expect("unbounded");
                    model.lanes[usize::from(hint.sort_key())].push_back(item);
                }
                Op::Pop => prop_assert_eq!(scheduler.pop(), model.pop()),
            }
            prop_assert_eq!(scheduler.len(), model.lanes.iter().map(VecDeque::len).sum::<usize>());
        }
        loop {
            let expected = model.pop();
            prop_assert_eq!(scheduler.pop(), expected);
            if expected.is_none() {
                break;
            }
        }
    }

    /// With anti-starvation the order changes but nothing is lost, duplicated or invented.
    #[test]
    fn anti_starvation_pops_exactly_what_was_pushed(
        max_bypass in 1_u32..5,
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let scheduler = PriorityScheduler::with_config(SchedulerConfig { capacity: None, max_bypass: Some(max_bypass) })
            .expect("max_bypass is at least 1");
        let mut pushed = Vec::new();
        let mut popped = Vec::new();
        for (item, op) in ops.into_iter().enumerate() {
            match op {
                Op::Push { priority, latency, cost } => {
                    scheduler.push(hint(priority, latency, cost), item).expect("unbounded");
                    pushed.push(item);
                }
                Op::Pop => popped.extend(scheduler.pop()),
            }
        }
        popped.extend(std::iter::from_fn(|| scheduler.pop()));
        popped.sort_unstable();
        prop_assert_eq!(popped, pushed);
    }
}

/// The anti-starvation rule of `SchedulerConfig::max_bypass` for one consumer, written plainly.
struct AgingModel {
    lanes: Vec<VecDeque<usize>>,
    max_bypass: u32,
    bypassed: u32,
    /// The lane of the last forced pop; `None` before the first.
    cursor: Option<usize>,
}

impl AgingModel {
    fn new(max_bypass: u32) -> Self {
        Self {
            lanes: vec![VecDeque::new(); SchedulingHint::KEYS],
            max_bypass,
            bypassed: 0,
            cursor: None,
        }
    }

    fn pop(&mut self) -> Option<usize> {
        let waiting: Vec<usize> = (0..self.lanes.len())
            .filter(|&key| !self.lanes[key].is_empty())
            .collect();
        let top = *waiting.last()?;
        let below: Vec<usize> = waiting.iter().copied().filter(|&key| key < top).collect();
        let lane = if below.is_empty() {
            self.bypassed = 0;
            top
        } else if self.bypassed < self.max_bypass {
            self.bypassed += 1;
            top
        } else {
            self.bypassed = 0;
            let under_cursor = below
                .iter()
                .copied()
                .filter(|&key| self.cursor.is_none_or(|cursor| key < cursor))
                .max();
            let lane = under_cursor.or(below.last().copied())?;
            self.cursor = Some(lane);
            lane
        };
        self.lanes[lane].pop_front()
    }
}
