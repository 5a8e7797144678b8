//! Agents sharing a versioned memory and a priority work queue.
//!
//! Four worker threads take tasks from a `PriorityScheduler` (urgent and cheap work first, with
//! anti-starvation so background work still moves) and record what they did in a `SnapshotCell`:
//! each worker stages its change on the snapshot it read and commits it, retrying on conflict, while
//! an observer reads the memory without ever blocking them.
//!
//! Run with `cargo run -p hivekit-examples --example shared_memory`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use hivekit_lockfree::{
    CommitError, LatencyTier, Priority, PriorityScheduler, ResourceCost, SchedulerConfig,
    SchedulingHint, SnapshotCell,
};

/// The collective memory: how many tasks each worker finished.
type Memory = BTreeMap<usize, u32>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scheduler = PriorityScheduler::with_config(SchedulerConfig {
        capacity: Some(1_024),
        max_bypass: Some(4),
    })?;
    for task in 0..400_u32 {
        let hint = match task % 10 {
            0 => SchedulingHint::new(Priority::Critical, LatencyTier::Hot, ResourceCost::Minimal),
            1..=3 => SchedulingHint::with_priority(Priority::High),
            4..=8 => SchedulingHint::with_priority(Priority::Normal),
            _ => SchedulingHint::new(Priority::Low, LatencyTier::Cold, ResourceCost::Heavy),
        };
        scheduler
            .push(hint, task)
            .map_err(|_| "the queue is sized for every task")?;
    }
    println!(
        "queued per priority (low..critical): {:?}",
        scheduler.depth_by_priority()
    );

    let memory = SnapshotCell::new(Memory::new());
    let finished = AtomicBool::new(false);
    let conflicts = std::thread::scope(|scope| {
        let observer = scope.spawn(|| {
            let mut reads = 0_u64;
            while !finished.load(Ordering::Acquire) {
                // The fast path: no lock, no reference count.
                memory.read(|memory, _version| std::hint::black_box(memory.len()));
                reads += 1;
            }
            reads
        });
        let workers: Vec<_> = (0..4)
            .map(|worker| {
                let (scheduler, memory) = (&scheduler, &memory);
                scope.spawn(move || {
                    let mut conflicts = 0_u32;
                    while let Some(task) = scheduler.pop() {
                        // Stand-in for the work itself.
                        std::hint::black_box(
                            (0..20_000_u64).fold(u64::from(task), u64::wrapping_mul),
                        );
                        let mut seen = memory.load();
                        loop {
                            let mut next = (*seen).clone();
                            *next.entry(worker).or_default() += 1;
                            match memory.commit(seen.stage(next)) {
                                Ok(_version) => break,
                                Err(CommitError::Conflict { .. }) => {
                                    conflicts += 1;
                                    seen = memory.load();
                                }
                            }
                        }
                    }
                    conflicts
                })
            })
            .collect();
        let conflicts: u32 = workers
            .into_iter()
            .map(|worker| worker.join().unwrap_or_default())
            .sum();
        finished.store(true, Ordering::Release);
        let reads = observer.join().unwrap_or_default();
        println!("the observer read the memory {reads} times without blocking anyone");
        conflicts
    });

    let result = memory.load();
    let total: u32 = result.values().sum();
    println!(
        "version {}: {total} tasks done {:?}, {conflicts} commits retried after a conflict",
        result.version(),
        *result
    );
    assert_eq!(total, 400);
    assert_eq!(result.version(), 400);
    Ok(())
}
