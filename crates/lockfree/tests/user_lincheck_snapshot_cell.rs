//! Linearizability of `SnapshotCell`, checked on many small random histories (3 threads of 3 to
//! 6 operations each) against a versioned register: every write installs the previous version
//! plus one (`store_at`: the version asked for, if newer), a commit succeeds exactly when the cell
//! is at its base version and a conflict reports the version current then, `swap` hands back the
//! version it replaced, `update` applies to the value current when it lands, and every read
//! (`load`, `read`, `version`) sees the latest write before it. So a load that starts after a
//! commit returned sees that version or a later one, versions have no gaps, and no two writes
//! get the same version. The cell's watcher must see each written version exactly once.

#[path = "support/lincheck.rs"]
mod lincheck;

use std::sync::{Arc, Mutex};

use hivekit_lockfree::{CommitError, SnapshotCell};
use lincheck::{check, jitter, record, round, Event, Model, Rng};

const THREADS: usize = 3;
const ROUNDS: u64 = 1_500;

#[derive(Debug, Clone, Copy)]
enum Op {
    Load,
    Read,
    Version,
    Store(u64),
    Swap(u64),
    /// `update(|value| value + n)`.
    Add(u64),
    /// `try_update`: adds `n` when the value is even, refuses when it is odd.
    AddIfEven(u64),
    /// `commit` of `value` staged on `base` (the version this thread saw last).
    Commit {
        base: u64,
        value: u64,
    },
    /// `store_at(version, value)`.
    StoreAt {
        version: u64,
        value: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ret {
    /// A value and its version (`load`, `read`; `swap`: the replaced ones).
    Seen { value: u64, version: u64 },
    /// A version: `version`, or the one a write installed.
    Version(u64),
    /// A refused `try_update` or `store_at`.
    Refused,
    /// A refused commit, with the version current then.
    Conflict { current: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Register {
    value: u64,
    version: u64,
}

impl Register {
    fn wrote(&self, value: u64, version: u64, ret: Ret) -> Option<Self> {
        (ret == Ret::Version(version)).then_some(Register { value, version })
    }
}

impl Model for Register {
    type Op = Op;
    type Ret = Ret;

    fn step(&self, op: &Op, ret: &Ret) -> Option<Self> {
        let next = self.version + 1;
        let seen = Ret::Seen {
            value: self.value,
            version: self.version,
        };
        match *op {
            Op::Load | Op::Read => (*ret == seen).then(|| self.clone()),
            Op::Version => (*ret == Ret::Version(self.version)).then(|| self.clone()),
            Op::Store(value) => self.wrote(value, next, *ret),
            Op::Swap(value) => (*ret == seen).then_some(Register {
                value,
                version: next,
            }),
            Op::Add(n) => self.wrote(self.value + n, next, *ret),
            Op::AddIfEven(n) if self.value % 2 == 0 => self.wrote(self.value + n, next, *ret),
            Op::AddIfEven(_) => (*ret == Ret::Refused).then(|| self.clone()),
            Op::Commit { base, value } if base == self.version => self.wrote(value, next, *ret),
            Op::Commit { .. } => (*ret
                == Ret::Conflict {
                    current: self.version,
                })
            .then(|| self.clone()),
            Op::StoreAt { version, value } if version > self.version => {
                (*ret == Ret::Version(version)).then_some(Register { value, version })
            }
            Op::StoreAt { .. } => (*ret == Ret::Refused).then(|| self.clone()),
        }
    }
}

/// Runs `op` on `cell`, checking what the docs say of each call's own result on the way.
fn apply(cell: &SnapshotCell<u64>, op: &Op) -> Ret {
    match *op {
        Op::Load => {
            let snapshot = cell.load();
            Ret::Seen {
                value: *snapshot,
                version: snapshot.version(),
            }
        }
        Op::Read => cell.read(|value, version| Ret::Seen {
            value: *value,
            version,
        }),
        Op::Version => Ret::Version(cell.version()),
        Op::Store(value) => Ret::Version(cell.store(value)),
        Op::Swap(value) => {
            let old = cell.swap(value);
            Ret::Seen {
                value: *old,
                version: old.version(),
            }
        }
        Op::Add(n) => Ret::Version(cell.update(|value| value + n)),
        Op::AddIfEven(n) => match cell.try_update(|value| {
            if value % 2 == 0 {
                Ok(value + n)
            } else {
                Err(())
            }
        }) {
            Ok(version) => Ret::Version(version),
            Err(()) => Ret::Refused,
        },
        Op::Commit { base, value } => {
            match cell.commit(hivekit_lockfree::Staged::new(base, value)) {
                Ok(version) => {
                    assert_eq!(version, base + 1, "a commit installs its base plus one");
                    Ret::Version(version)
                }
                Err(CommitError::Conflict {
                    base: reported,
                    current,
                    value: back,
                }) => {
                    assert_eq!(
                        (reported, back),
                        (base, value),
                        "the conflict gives all back"
                    );
                    assert_ne!(
                        current, base,
                        "a conflict names a version other than the base"
                    );
                    Ret::Conflict { current }
                }
            }
        }
        Op::StoreAt { version, value } => match cell.store_at(version, value) {
            Ok(()) => Ret::Version(version),
            Err(back) => {
                assert_eq!(back, value, "store_at gives the value back");
                Ret::Refused
            }
        },
    }
}

#[test]
fn histories_of_a_snapshot_cell_are_linearizable_against_a_versioned_register() {
    for round_number in 0..ROUNDS {
        let seed = 0xCE11_0000 ^ (round_number << 16);
        let mut rng = Rng::new(seed);
        let start = rng.below(3) * 10;
        let initial = Register {
            value: 0,
            version: start,
        };
        let watched = Arc::new(Mutex::new(Vec::new()));
        let watcher = Arc::clone(&watched);
        let cell = SnapshotCell::with_watcher(0_u64, start, move |version| {
            watcher.lock().expect("watcher").push(version);
        });
        let plans: Vec<(Rng, Vec<u8>)> = (0..THREADS)
            .map(|thread| {
                let mut plan_rng = Rng::new(seed.wrapping_add(thread as u64 + 1));
                let kinds = (0..3 + plan_rng.below(4))
                    .map(|_| plan_rng.below(9) as u8)
                    .collect();
                (plan_rng, kinds)
            })
            .collect();
        let history: Vec<Event<Op, Ret>> = round(THREADS, |thread, clock| {
            let (mut rng, kinds) = plans[thread].clone();
            let mut last_seen = start;
            let mut events = Vec::new();
            for (index, kind) in kinds.into_iter().enumerate() {
                // Written values are unique, so a read names the write it saw.
                let value = (thread as u64 + 1) * 1_000 + index as u64 * 2;
                let op = match kind {
                    0 => Op::Load,
                    1 => Op::Read,
                    2 => Op::Version,
                    3 => Op::Store(value),
                    4 => Op::Swap(value),
                    5 => Op::Add(value),
                    6 => Op::AddIfEven(value + rng.below(2)),
                    7 => Op::Commit {
                        base: last_seen,
                        value,
                    },
                    _ => Op::StoreAt {
                        version: last_seen + 1 + rng.below(3),
                        value,
                    },
                };
                jitter(&mut rng);
                let event = record(clock, thread, op, |op| apply(&cell, op));
                match event.ret {
                    Ret::Seen { version, .. } | Ret::Version(version) => last_seen = version,
                    Ret::Conflict { current } => last_seen = current,
                    Ret::Refused => {}
                }
                events.push(event);
            }
            events
        });
        if let Err(message) = check(&initial, &history) {
            panic!("round seed {seed:#x}: {message}");
        }
        // Each write's version went to the watcher once, and nothing else did.
        let mut written: Vec<u64> = history
            .iter()
            .filter_map(|event| match (event.op, event.ret) {
                (Op::Swap(_), Ret::Seen { version, .. }) => Some(version + 1),
                (
                    Op::Store(_)
                    | Op::Add(_)
                    | Op::AddIfEven(_)
                    | Op::Commit { .. }
                    | Op::StoreAt { .. },
                    Ret::Version(version),
                ) => Some(version),
                _ => None,
            })
            .collect();
        written.sort_unstable();
        let mut seen = watched.lock().expect("watcher").clone();
        seen.sort_unstable();
        assert_eq!(
            seen, written,
            "round seed {seed:#x}: the watcher saw each write once"
        );
        let top = written.last().copied().unwrap_or(start);
        assert_eq!(
            cell.version(),
            top,
            "round seed {seed:#x}: the last write is current"
        );
    }
}

#[test]
fn the_register_model_refuses_a_stale_read_and_a_reused_version() {
    let model = Register {
        value: 7,
        version: 3,
    };
    let stale = Ret::Seen {
        value: 6,
        version: 2,
    };
    assert!(model.step(&Op::Load, &stale).is_none());
    assert!(model.step(&Op::Store(1), &Ret::Version(3)).is_none());
    assert!(model.step(&Op::Store(1), &Ret::Version(4)).is_some());
    let wrong_current = Ret::Conflict { current: 2 };
    let stale_commit = Op::Commit { base: 1, value: 9 };
    assert!(model.step(&stale_commit, &wrong_current).is_none());
    assert!(model
        .step(&stale_commit, &Ret::Conflict { current: 3 })
        .is_some());
}
