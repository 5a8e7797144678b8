//! The `hivekit-lockfree` contract of DESIGN.md, statement by statement, written the way a user
//! who has only read that document would write it.

use std::collections::HashSet;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll, Waker};
use std::thread;

use hivekit_lockfree::{
    detect_conflicts, Aggregate, Aggregator, CommitError, ConflictGroup, ConflictKind,
    ConflictReport, LatencyTier, Merge, Priority, PriorityScheduler, Proposal, ProposalId,
    RejectReason, Resolution, ResourceCost, SchedulerConfig, SchedulingHint, Snapshot,
    SnapshotCell, Staged,
};

/// A payload whose merge is a sum (associative and commutative).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Total(u64);

impl Merge for Total {
    fn merge(&mut self, other: Self) {
        self.0 += other.0;
    }
}

/// A future that is pending once, so that a value held by the caller lives across an await.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

fn assert_send_sync_static<T: Send + Sync + 'static>(_: &T) {}

#[test]
fn snapshot_cell_new_is_version_0_and_read_sees_the_value_with_its_version() {
    let cell = SnapshotCell::new(String::from("seed"));
    assert_eq!(cell.version(), 0);
    let (value, version) = cell.read(|value: &String, version: u64| (value.clone(), version));
    assert_eq!((value.as_str(), version), ("seed", 0));
}

#[test]
fn a_loaded_snapshot_derefs_to_the_value_keeps_its_version_and_is_holdable_across_awaits() {
    let cell = Arc::new(SnapshotCell::new(vec![1_u32, 2, 3]));
    let snapshot: Snapshot<Vec<u32>> = cell.load();
    assert_send_sync_static(&snapshot);
    let writer = Arc::clone(&cell);
    let future = async move {
        let held = snapshot;
        YieldOnce(false).await;
        // Another writer replaces the value while the snapshot is held across the await.
        writer.store(vec![9]);
        YieldOnce(false).await;
        (held.len(), held[2], held.version())
    };
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    let output = loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            break output;
        }
    };
    assert_eq!(output, (3, 3, 0));
    assert_eq!((cell.load().as_slice(), cell.version()), (&[9][..], 1));
}

#[test]
fn a_commit_succeeds_only_at_its_base_version_and_a_conflict_gives_the_value_back() {
    let cell = SnapshotCell::new(10_i64);
    let fresh: Staged<i64> = cell.stage(11);
    let stale: Staged<i64> = cell.stage(-1);
    assert_eq!(cell.commit(fresh).unwrap(), 1);
    match cell.commit(stale) {
        Err(CommitError::Conflict {
            base,
            current,
            value,
        }) => assert_eq!((base, current, value), (0, 1, -1)),
        other => panic!("a stale commit must be a Conflict giving the value back, got {other:?}"),
    }
    // Nothing was lost: the cell holds the successful commit.
    assert_eq!(cell.read(|value, version| (*value, version)), (11, 1));
}

#[test]
fn store_is_unconditional_and_fails_a_commit_staged_before_it() {
    let cell = SnapshotCell::new(0_u8);
    let staged = cell.stage(1);
    assert_eq!(cell.store(2), 1);
    assert_eq!(cell.store(3), 2);
    assert!(matches!(
        cell.commit(staged),
        Err(CommitError::Conflict {
            base: 0,
            current: 2,
            value: 1
        })
    ));
    assert_eq!(cell.read(|value, version| (*value, version)), (3, 2));
}

#[test]
fn update_never_loses_an_update_under_contention_and_returns_distinct_versions() {
    const THREADS: usize = 8;
    const UPDATES: usize = 2_000;
    let cell = Arc::new(SnapshotCell::new(0_u64));
    let barrier = Arc::new(Barrier::new(THREADS));
    let versions: Vec<Vec<u64>> = (0..THREADS)
        .map(|_| {
            let cell = Arc::clone(&cell);
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                barrier.wait();
                (0..UPDATES)
                    .map(|_| cell.update(|count| count + 1))
                    .collect::<Vec<_>>()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|handle| handle.join().unwrap())
        .collect();
    let total = (THREADS * UPDATES) as u64;
    assert_eq!(
        cell.read(|count, version| (*count, version)),
        (total, total)
    );
    let distinct: HashSet<u64> = versions.into_iter().flatten().collect();
    assert_eq!(distinct, (1..=total).collect::<HashSet<_>>());
}

#[test]
fn sort_key_orders_higher_priority_first_then_hotter_then_cheaper() {
    let mut hints: Vec<SchedulingHint> = Vec::new();
    for priority in [
        Priority::Low,
        Priority::Normal,
        Priority::High,
        Priority::Critical,
    ] {
        for latency in [LatencyTier::Hot, LatencyTier::Warm, LatencyTier::Cold] {
            for cost in [
                ResourceCost::Minimal,
                ResourceCost::Light,
                ResourceCost::Moderate,
                ResourceCost::Heavy,
            ] {
                let hint = SchedulingHint::new(priority, latency, cost);
                assert_eq!(
                    (hint.priority, hint.latency, hint.cost),
                    (priority, latency, cost)
                );
                hints.push(hint);
            }
        }
    }
    // The order DESIGN.md states, written out: priority descending, latency Hot < Warm < Cold,
    // cost Minimal < Light < Moderate < Heavy.
    let rank = |hint: &SchedulingHint| {
        let priority = 3 - hint.priority as u8;
        let latency = hint.latency as u8;
        let cost = hint.cost as u8;
        (priority, latency, cost)
    };
    let mut by_design = hints.clone();
    by_design.sort_by_key(rank);
    let mut by_key = hints;
    by_key.sort_by_key(|hint| std::cmp::Reverse(hint.sort_key()));
    assert_eq!(by_key, by_design);
    let keys: HashSet<u8> = by_key.iter().map(SchedulingHint::sort_key).collect();
    assert_eq!(keys.len(), 48, "every hint has its own key");
}

#[test]
fn the_scheduler_pops_the_highest_key_first_and_fifo_among_equal_keys() {
    let scheduler = PriorityScheduler::new();
    let cold_high = SchedulingHint::new(Priority::High, LatencyTier::Cold, ResourceCost::Heavy);
    let hot_high = SchedulingHint::new(Priority::High, LatencyTier::Hot, ResourceCost::Minimal);
    let low = SchedulingHint::with_priority(Priority::Low);
    for index in 0..5 {
        scheduler.push(low, ("low", index)).unwrap();
        scheduler.push(cold_high, ("cold high", index)).unwrap();
        scheduler.push(hot_high, ("hot high", index)).unwrap();
    }
    assert_eq!(scheduler.len(), 15);
    assert_eq!(scheduler.depth_by_priority(), [5, 0, 10, 0]);
    let popped: Vec<(&str, i32)> = std::iter::from_fn(|| scheduler.pop()).collect();
    let expected: Vec<(&str, i32)> = ["hot high", "cold high", "low"]
        .into_iter()
        .flat_map(|lane| (0..5).map(move |index| (lane, index)))
        .collect();
    assert_eq!(popped, expected);
    assert!(scheduler.is_empty());
    assert_eq!(scheduler.len(), 0);
    assert_eq!(scheduler.depth_by_priority(), [0; 4]);
}

#[test]
fn full_comes_only_with_a_capacity_and_gives_the_item_back() {
    let unbounded = PriorityScheduler::new();
    for index in 0..10_000 {
        unbounded
            .push(SchedulingHint::default(), index)
            .unwrap_or_else(|_| panic!("an unbounded scheduler refused item {index}"));
    }
    let bounded = PriorityScheduler::with_config(SchedulerConfig {
        capacity: Some(2),
        ..SchedulerConfig::default()
    })
    .unwrap();
    bounded.push(SchedulingHint::default(), "a").unwrap();
    bounded.push(SchedulingHint::default(), "b").unwrap();
    let full = bounded
        .push(SchedulingHint::with_priority(Priority::Critical), "c")
        .unwrap_err();
    assert_eq!(full.into_inner(), "c");
    assert_eq!(bounded.len(), 2);
    assert_eq!(bounded.pop(), Some("a"));
    bounded.push(SchedulingHint::default(), "c").unwrap();
}

#[test]
fn with_max_bypass_a_waiting_lower_lane_is_bypassed_at_most_k_times_in_a_row() {
    for k in [1_u32, 2, 5] {
        let scheduler = PriorityScheduler::with_config(SchedulerConfig {
            max_bypass: Some(k),
            ..SchedulerConfig::default()
        })
        .unwrap();
        for index in 0..100 {
            scheduler
                .push(
                    SchedulingHint::with_priority(Priority::Critical),
                    ("top", index),
                )
                .unwrap();
        }
        scheduler
            .push(SchedulingHint::with_priority(Priority::Low), ("low", 0))
            .unwrap();
        let order: Vec<&str> = std::iter::from_fn(|| scheduler.pop())
            .map(|(lane, _)| lane)
            .collect();
        let low_at = order.iter().position(|lane| *lane == "low").unwrap();
        assert!(
            low_at <= k as usize,
            "with max_bypass {k} the low item waited {low_at} pops"
        );
        assert_eq!(order.len(), 101);
    }
}

#[test]
fn every_pushed_item_is_popped_exactly_once_under_concurrent_producers_and_consumers() {
    const PRODUCERS: usize = 4;
    const CONSUMERS: usize = 4;
    const ITEMS: usize = 5_000;
    let scheduler = Arc::new(
        PriorityScheduler::with_config(SchedulerConfig {
            capacity: None,
            max_bypass: Some(3),
        })
        .unwrap(),
    );
    let done = Arc::new(AtomicBool::new(false));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|producer| {
            let scheduler = Arc::clone(&scheduler);
            thread::spawn(move || {
                for index in 0..ITEMS {
                    let hint = SchedulingHint::all().nth(index % 48).unwrap();
                    scheduler.push(hint, producer * ITEMS + index).unwrap();
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|_| {
            let scheduler = Arc::clone(&scheduler);
            let done = Arc::clone(&done);
            thread::spawn(move || {
                let mut seen = Vec::new();
                loop {
                    match scheduler.pop() {
                        Some(item) => seen.push(item),
                        None if done.load(Ordering::Acquire) => match scheduler.pop() {
                            Some(item) => seen.push(item),
                            None => return seen,
                        },
                        None => thread::yield_now(),
                    }
                }
            })
        })
        .collect();
    for producer in producers {
        producer.join().unwrap();
    }
    done.store(true, Ordering::Release);
    let mut all: Vec<usize> = consumers
        .into_iter()
        .flat_map(|consumer| consumer.join().unwrap())
        .collect();
    all.sort_unstable();
    assert_eq!(all, (0..PRODUCERS * ITEMS).collect::<Vec<_>>());
    assert!(scheduler.is_empty());
}

#[test]
fn a_proposal_is_the_struct_design_names_with_public_fields() {
    let proposal: Proposal<&str, u32> = Proposal {
        id: ProposalId(7),
        priority: Priority::High,
        reads: vec!["a"],
        writes: vec!["b"],
        payload: 3,
    };
    let built = Proposal::new(ProposalId(7), 3_u32)
        .priority(Priority::High)
        .reads(["a"])
        .writes(["b"]);
    assert_eq!(proposal, built);
}

#[test]
fn conflicts_are_write_write_or_read_write_and_reads_alone_never_conflict() {
    let proposals = vec![
        Proposal::new(1, ()).reads(["shared"]),
        Proposal::new(2, ()).reads(["shared"]),
        Proposal::new(3, ()).writes(["ww"]),
        Proposal::new(4, ()).writes(["ww"]),
        Proposal::new(5, ()).reads(["rw"]),
        Proposal::new(6, ()).writes(["rw"]),
    ];
    let report: ConflictReport<&str> = detect_conflicts(&proposals).unwrap();
    let ConflictReport {
        groups,
        independent,
    } = report;
    assert_eq!(independent, [ProposalId(1), ProposalId(2)]);
    let mut groups: Vec<(&str, ConflictKind, Vec<ProposalId>)> = groups
        .into_iter()
        .map(|group: ConflictGroup<&str>| (group.key, group.kind, group.members))
        .collect();
    groups.sort_by_key(|(key, _, _)| *key);
    assert_eq!(
        groups,
        [
            (
                "rw",
                ConflictKind::ReadWrite,
                vec![ProposalId(5), ProposalId(6)]
            ),
            (
                "ww",
                ConflictKind::WriteWrite,
                vec![ProposalId(3), ProposalId(4)]
            ),
        ]
    );
}

#[test]
fn conflicts_are_found_whatever_the_order_and_mix_of_proposals() {
    // A reads k, B writes k, C writes k, D reads k: every member is in k's group whatever the
    // order, and the group is write-write (two writers); E writes an unrelated key.
    let base = [
        Proposal::new(1, ()).reads(["k"]),
        Proposal::new(2, ()).writes(["k"]),
        Proposal::new(3, ()).writes(["k"]).reads(["k"]),
        Proposal::new(4, ()).reads(["k"]),
        Proposal::new(5, ()).writes(["e"]),
    ];
    let mut order: Vec<usize> = (0..base.len()).collect();
    // Every permutation of five proposals (Heap's algorithm).
    let mut counters = vec![0; order.len()];
    let check = |order: &[usize]| {
        let proposals: Vec<_> = order.iter().map(|&index| base[index].clone()).collect();
        let report = detect_conflicts(&proposals).unwrap();
        assert_eq!(report.groups.len(), 1, "order {order:?}");
        let group = &report.groups[0];
        assert_eq!(group.kind, ConflictKind::WriteWrite, "order {order:?}");
        let members: HashSet<ProposalId> = group.members.iter().copied().collect();
        assert_eq!(
            members,
            (1..=4).map(ProposalId).collect::<HashSet<_>>(),
            "order {order:?}"
        );
        assert_eq!(report.independent, [ProposalId(5)], "order {order:?}");
    };
    check(&order);
    let mut i = 0;
    while i < order.len() {
        if counters[i] < i {
            if i % 2 == 0 {
                order.swap(0, i);
            } else {
                order.swap(counters[i], i);
            }
            check(&order);
            counters[i] += 1;
            i = 0;
        } else {
            counters[i] = 0;
            i += 1;
        }
    }
}

fn submit_all(proposals: &[Proposal<&'static str, Total>]) -> Aggregator<&'static str, Total> {
    let aggregator = Aggregator::new();
    for proposal in proposals {
        aggregator.submit(proposal.clone()).unwrap();
    }
    aggregator
}

#[test]
fn highest_priority_resolution_breaks_ties_by_the_lower_proposal_id() {
    // Two equal-priority writers of the same key, submitted higher id first.
    let proposals = [
        Proposal::new(9, Total(100)).writes(["budget"]),
        Proposal::new(4, Total(10)).writes(["budget"]),
        Proposal::new(6, Total(1)).writes(["other"]),
    ];
    let aggregate: Aggregate<&str, Total> =
        submit_all(&proposals).finish(Resolution::HighestPriority);
    assert_eq!(aggregate.accepted, [ProposalId(4), ProposalId(6)]);
    assert_eq!(
        aggregate.rejected,
        [(
            ProposalId(9),
            RejectReason::LostTo {
                winner: ProposalId(4),
                key: "budget"
            }
        )]
    );
    assert_eq!(aggregate.merged, Some(Total(11)));
    assert_eq!(aggregate.conflicts.groups.len(), 1);

    // A higher priority beats a lower id.
    let proposals = [
        Proposal::new(1, Total(1)).writes(["k"]),
        Proposal::new(2, Total(2))
            .writes(["k"])
            .priority(Priority::Critical),
    ];
    let aggregate = submit_all(&proposals).finish(Resolution::HighestPriority);
    assert_eq!(aggregate.accepted, [ProposalId(2)]);
    assert_eq!(aggregate.merged, Some(Total(2)));
}

#[test]
fn first_submitted_and_reject_all_resolve_groups_and_keep_independent_proposals() {
    let proposals = [
        Proposal::new(5, Total(5)).writes(["k"]),
        Proposal::new(2, Total(2))
            .writes(["k"])
            .priority(Priority::Critical),
        Proposal::new(8, Total(8)).writes(["free"]),
    ];
    let first = submit_all(&proposals).finish(Resolution::FirstSubmitted);
    assert_eq!(first.accepted, [ProposalId(5), ProposalId(8)]);
    assert_eq!(first.merged, Some(Total(13)));
    assert_eq!(first.rejected.len(), 1);
    assert_eq!(first.rejected[0].0, ProposalId(2));

    let none = submit_all(&proposals).finish(Resolution::RejectAll);
    assert_eq!(none.accepted, [ProposalId(8)]);
    assert_eq!(none.merged, Some(Total(8)));
    assert_eq!(
        none.rejected,
        [
            (ProposalId(5), RejectReason::RejectAll { key: "k" }),
            (ProposalId(2), RejectReason::RejectAll { key: "k" }),
        ]
    );

    let nothing = submit_all(&proposals[..2]).finish(Resolution::RejectAll);
    assert_eq!(nothing.merged, None);
    assert!(nothing.accepted.is_empty());
}

#[test]
fn many_threads_submit_concurrently_and_every_payload_is_merged_once() {
    const THREADS: u64 = 8;
    const EACH: u64 = 2_000;
    let aggregator = Arc::new(Aggregator::<u64, Total>::new());
    let barrier = Arc::new(Barrier::new(THREADS as usize));
    let handles: Vec<_> = (0..THREADS)
        .map(|thread| {
            let aggregator = Arc::clone(&aggregator);
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                barrier.wait();
                for index in 0..EACH {
                    let id = thread * EACH + index;
                    // Every proposal writes its own key: none conflict.
                    aggregator
                        .submit(Proposal::new(id, Total(id)).writes([id]))
                        .unwrap();
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    let aggregator = Arc::into_inner(aggregator).unwrap();
    assert_eq!(aggregator.len(), (THREADS * EACH) as usize);
    let aggregate = aggregator.finish(Resolution::HighestPriority);
    let total: u64 = (0..THREADS * EACH).sum();
    // Above the parallel threshold the merge runs on rayon; nothing is lost or merged twice.
    assert_eq!(aggregate.merged, Some(Total(total)));
    assert_eq!(aggregate.accepted.len(), (THREADS * EACH) as usize);
    assert!(aggregate.rejected.is_empty());
    assert!(aggregate.conflicts.groups.is_empty());
}
