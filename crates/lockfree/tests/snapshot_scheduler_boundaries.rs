//! Boundary values of the lock-free crate's configuration: `SchedulerConfig` (capacity and
//! anti-starvation bound at their edges, checked against a sequential model), and hand-built
//! `Staged` bases at the edges of the version range.

use std::collections::VecDeque;

use hivekit_lockfree::{
    CommitError, LatencyTier, Priority, PriorityScheduler, ResourceCost, SchedulerConfig,
    SchedulerError, SchedulingHint, SnapshotCell, Staged,
};
use proptest::prelude::*;

#[test]
fn a_commit_whose_base_is_ahead_of_the_cell_conflicts_with_a_lower_current_version() {
    let cell = SnapshotCell::new(0);
    for base in [1, 2, u64::MAX - 1, u64::MAX] {
        match cell.commit(Staged::new(base, 1)) {
            Err(CommitError::Conflict {
                base: named,
                current,
                value,
            }) => {
                assert_eq!((named, current, value), (base, 0, 1));
                assert!(
                    current < named,
                    "the documented exception: a base ahead of the cell"
                );
            }
            other => panic!("base {base}: expected a conflict, got {other:?}"),
        }
    }
    assert_eq!(cell.version(), 0);
}

fn hint(priority: usize) -> SchedulingHint {
    SchedulingHint::new(
        Priority::ALL[priority],
        LatencyTier::Warm,
        ResourceCost::Light,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// Every capacity and bypass bound at its edges is refused by name or gives a scheduler that
    /// holds at most its capacity, pops every item exactly once, and (with one consumer) never
    /// bypasses a waiting lower lane more than the bound.
    #[test]
    fn scheduler_configs_at_their_edges_are_refused_or_keep_their_bounds(
        capacity in prop::option::of(prop_oneof![Just(0_usize), Just(1), Just(2), Just(usize::MAX - 1), Just(usize::MAX)]),
        max_bypass in prop::option::of(prop_oneof![Just(0_u32), Just(1), Just(2), Just(u32::MAX - 1), Just(u32::MAX)]),
        operations in prop::collection::vec(prop::option::of(0_usize..4), 0..64),
    ) {
        let config = SchedulerConfig { capacity, max_bypass };
        let scheduler = match PriorityScheduler::with_config(config) {
            Ok(scheduler) => {
                prop_assert!(capacity != Some(0) && max_bypass != Some(0));
                scheduler
            }
            Err(SchedulerError::ZeroCapacity) => { prop_assert_eq!(capacity, Some(0)); return Ok(()); }
            Err(SchedulerError::ZeroMaxBypass) => {
                prop_assert!(capacity != Some(0));
                prop_assert_eq!(max_bypass, Some(0));
                return Ok(());
            }
            Err(other) => return Err(TestCaseError::fail(format!("unexpected {other:?}"))),
        };
        let limit = capacity.unwrap_or(usize::MAX);
        // The model: one FIFO per priority.
        let mut model: [VecDeque<u32>; 4] = Default::default();
        let (mut next, mut bypassed) = (0_u32, 0_u64);
        for operation in operations {
            match operation {
                Some(priority) => {
                    let held: usize = model.iter().map(VecDeque::len).sum();
                    match scheduler.push(hint(priority), next) {
                        Ok(()) => {
                            prop_assert!(held < limit);
                            model[priority].push_back(next);
                        }
                        Err(full) => {
                            prop_assert_eq!(held, limit);
                            prop_assert_eq!(full.into_inner(), next);
                        }
                    }
                    next += 1;
                }
                None => {
                    let popped = scheduler.pop();
                    let top = (0..4).rev().find(|&p| !model[p].is_empty());
                    let Some(top) = top else {
                        prop_assert_eq!(popped, None);
                        continue;
                    };
                    let item = popped.expect("an item is waiting");
                    let lane = (0..4).find(|&p| model[p].front() == Some(&item));
                    let Some(lane) = lane else {
                        return Err(TestCaseError::fail(format!("{item} was not at the front of any lane")));
                    };
                    model[lane].pop_front();
                    let lower_waiting = (0..top).any(|p| !model[p].is_empty());
                    if lane == top && lower_waiting {
                        bypassed += 1;
                        prop_assert!(bypassed <= u64::from(max_bypass.unwrap_or(u32::MAX)));
                    } else {
                        bypassed = 0;
                    }
                    if max_bypass.is_none() {
                        prop_assert_eq!(lane, top, "strict priority order");
                    }
                }
            }
            prop_assert_eq!(scheduler.len(), model.iter().map(VecDeque::len).sum::<usize>());
        }
    }
}
