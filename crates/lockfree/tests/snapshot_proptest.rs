//! SnapshotCell against a sequential model: random sequences of store, update, stage, commit and
//! reads; the cell must agree with a plain (value, version) pair after every step.

use hivekit_lockfree::{CommitError, SnapshotCell, Staged};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Store(u32),
    Update(u32),
    TryUpdate {
        add: u32,
        refuse: bool,
    },
    /// Stage a value on the current version and keep it for a later commit.
    Stage(u32),
    /// Commit the staged value at this index (modulo the number staged), if any.
    Commit(usize),
    /// Commit a value staged on an arbitrary base version.
    CommitOn {
        base: u64,
        value: u32,
    },
    /// Take a snapshot and keep it; later steps check it never changes.
    Load,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        any::<u32>().prop_map(Op::Store),
        any::<u32>().prop_map(Op::Update),
        (any::<u32>(), any::<bool>()).prop_map(|(add, refuse)| Op::TryUpdate { add, refuse }),
        any::<u32>().prop_map(Op::Stage),
        any::<usize>().prop_map(Op::Commit),
        (0_u64..40, any::<u32>()).prop_map(|(base, value)| Op::CommitOn { base, value }),
        Just(Op::Load),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn cell_matches_sequential_model(ops in proptest::collection::vec(op(), 1..60)) {
        let cell = SnapshotCell::new(0_u32);
        let (mut value, mut version) = (0_u32, 0_u64);
        let mut staged: Vec<Staged<u32>> = Vec::new();
        let mut snapshots = Vec::new();
        for op in ops {
            match op {
                Op::Store(next) => {
                    version += 1;
                    value = next;
                    prop_assert_eq!(cell.store(next), version);
                }
                Op::Update(add) => {
                    version += 1;
                    value = value.wrapping_add(add);
                    prop_assert_eq!(cell.update(|current| current.wrapping_add(add)), version);
                }
                Op::TryUpdate { add, refuse } => {
                    let result = cell.try_update(|current| {
                        if refuse { Err("refused") } else { Ok(current.wrapping_add(add)) }
                    });
                    if refuse {
                        prop_assert_eq!(result, Err("refused"));
                    } else {
                        version += 1;
                        value = value.wrapping_add(add);
                        prop_assert_eq!(result, Ok(version));
                    }
                }
                Op::Stage(next) => {
                    let stage = cell.stage(next);
                    prop_assert_eq!(stage.base(), version);
                    staged.push(stage);
                }
                Op::Commit(index) => {
                    if staged.is_empty() {
                        continue;
                    }
                    let stage = staged.remove(index % staged.len());
                    let (base, next) = (stage.base(), *stage.value());
                    check_commit(&cell, stage, base, next, &mut value, &mut version)?;
                }
                Op::CommitOn { base, value: next } => {
                    check_commit(&cell, Staged::new(base, next), base, next, &mut value, &mut version)?;
                }
                Op::Load => snapshots.push((cell.load(), value, version)),
            }
            prop_assert_eq!(cell.read(|current, current_version| (*current, current_version)), (value, version));
            prop_assert_eq!(cell.version(), version);
            for (snapshot, seen_value, seen_version) in &snapshots {
                prop_assert_eq!((**snapshot, snapshot.version()), (*seen_value, *seen_version));
            }
        }
    }
}

fn check_commit(
    cell: &SnapshotCell<u32>,
    stage: Staged<u32>,
    base: u64,
    next: u32,
    value: &mut u32,
    version: &mut u64,
) -> Result<(), TestCaseError> {
    let result = cell.commit(stage);
    if base == *version {
        *version += 1;
        *value = next;
        prop_assert_eq!(result, Ok(*version));
    } else {
        prop_assert_eq!(
            result,
            Err(CommitError::Conflict {
                base,
                current: *version,
                value: next
            })
        );
    }
    Ok(())
}
