//! The scheduler against a sequential model of its documented order, over all 48 sort keys:
//! strict order (highest key first, FIFO within a key) and anti-starvation as
//! `SchedulerConfig::max_bypass` documents it (after `k` bypassing pops the next one is forced,
//! walking the waiting lanes downwards round-robin), with `len`, `is_empty` and
//! `depth_by_priority` checked after every step.

use std::collections::VecDeque;

use hivekit_lockfree::{PriorityScheduler, SchedulerConfig, SchedulingHint};

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) % n
    }
}

const LANES: usize = SchedulingHint::KEYS;

struct Model {
    lanes: Vec<VecDeque<u32>>,
    k: Option<u32>,
    bypassed: u32,
    cursor: usize,
}

impl Model {
    fn new(k: Option<u32>) -> Self {
        Self {
            lanes: (0..LANES).map(|_| VecDeque::new()).collect(),
            k,
            bypassed: 0,
            cursor: LANES,
        }
    }

    fn pop(&mut self) -> Option<u32> {
        let top = (0..LANES)
            .rev()
            .find(|&lane| !self.lanes[lane].is_empty())?;
        let lower: Vec<usize> = (0..top)
            .rev()
            .filter(|&l| !self.lanes[l].is_empty())
            .collect();
        let Some(k) = self.k else {
            return self.lanes[top].pop_front();
        };
        if lower.is_empty() {
            self.bypassed = 0;
            return self.lanes[top].pop_front();
        }
        if self.bypassed < k {
            self.bypassed += 1;
            return self.lanes[top].pop_front();
        }
        // Forced: the highest waiting lane below the previous forced pop's, else wrap around.
        let lane = lower
            .iter()
            .copied()
            .find(|&l| l < self.cursor)
            .unwrap_or(lower[0]);
        self.cursor = lane;
        self.bypassed = 0;
        self.lanes[lane].pop_front()
    }

    fn len(&self) -> usize {
        self.lanes.iter().map(VecDeque::len).sum()
    }

    fn depth(&self) -> [usize; 4] {
        let mut depth = [0; 4];
        for (lane, queue) in self.lanes.iter().enumerate() {
            depth[lane / 12] += queue.len();
        }
        depth
    }
}

fn run(k: Option<u32>, seed: u64, steps: usize, push_bias: u64, keys: &[usize]) {
    let hints: Vec<SchedulingHint> = SchedulingHint::all().collect();
    let scheduler = PriorityScheduler::with_config(SchedulerConfig {
        capacity: None,
        max_bypass: k,
    })
    .unwrap();
    let mut model = Model::new(k);
    let mut rng = Rng(seed);
    let mut next = 0_u32;
    for step in 0..steps {
        if rng.below(100) < push_bias {
            let hint = hints[keys[rng.below(keys.len() as u64) as usize]];
            scheduler.push(hint, next).unwrap();
            model.lanes[usize::from(hint.sort_key())].push_back(next);
            next += 1;
        } else {
            assert_eq!(
                scheduler.pop(),
                model.pop(),
                "k {k:?} seed {seed} step {step}"
            );
        }
        assert_eq!(scheduler.len(), model.len(), "step {step}");
        assert_eq!(scheduler.is_empty(), model.len() == 0, "step {step}");
        assert_eq!(scheduler.depth_by_priority(), model.depth(), "step {step}");
    }
    while let Some(expected) = model.pop() {
        assert_eq!(
            scheduler.pop(),
            Some(expected),
            "k {k:?} seed {seed}: drain"
        );
    }
    assert_eq!(scheduler.pop(), None);
}

#[test]
fn strict_order_over_all_48_keys_matches_the_model() {
    let all: Vec<usize> = (0..LANES).collect();
    for seed in 1..=4 {
        run(None, seed, 3_000, 55, &all);
    }
}

#[test]
fn anti_starvation_over_all_48_keys_matches_the_documented_model() {
    let all: Vec<usize> = (0..LANES).collect();
    for k in [1, 2, 3, 7] {
        for seed in 1..=3 {
            run(Some(k), seed * 31 + u64::from(k), 2_000, 55, &all);
        }
    }
}

#[test]
fn anti_starvation_with_few_lanes_matches_the_documented_model() {
    // A few lanes far apart: the round-robin cursor and its wrap-around matter most here.
    let few = [0, 5, 17, 30, 47];
    for k in [1, 2, 4] {
        for seed in 1..=4 {
            run(Some(k), seed * 97 + u64::from(k), 2_000, 60, &few);
        }
    }
}
