//! crossbeam-queue's `stack_overflow` test through `PriorityScheduler`: "If `Block` is created on
//! the stack, the array of slots will multiply this `BigStruct` and probably overflow the thread
//! stack. It's now directly created on the heap to avoid this." Its own binary, because a stack
//! overflow aborts the whole process.

use hivekit_lockfree::{PriorityScheduler, SchedulingHint};

/// A 32 KiB item (crossbeam's `stack_overflow` test: "If `Block` is created on the stack, the array
/// of slots will multiply this `BigStruct` and probably overflow the thread stack").
struct BigItem {
    data: [u8; BIG],
}

const BIG: usize = 32_768;

/// crossbeam's `stack_overflow`: building a scheduler of large items, pushing, popping and dropping
/// them on a thread with the default 2 MiB stack must not overflow that stack. Run on a thread
/// with an explicit 2 MiB stack (the standard library's default for spawned threads).
#[test]
fn a_scheduler_of_32_kib_items_works_on_a_thread_with_a_2_mib_stack() {
    let worker = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            let q: PriorityScheduler<BigItem> = PriorityScheduler::new();
            let hints: Vec<SchedulingHint> = SchedulingHint::all().collect();
            for (n, hint) in hints.iter().enumerate().step_by(7) {
                let mut item = BigItem { data: [0; BIG] };
                item.data[0] = n as u8;
                item.data[BIG - 1] = n as u8;
                q.push(*hint, item).expect("unbounded");
            }
            let mut seen = Vec::new();
            while let Some(item) = q.pop() {
                assert_eq!(item.data[0], item.data[BIG - 1]);
                seen.push(item.data[0]);
            }
            let mut expected: Vec<u8> = (0..hints.len()).step_by(7).map(|n| n as u8).collect();
            expected.sort_by_key(|&n| std::cmp::Reverse(hints[usize::from(n)].sort_key()));
            assert_eq!(seen, expected, "highest sort key first");
            // Left inside when the scheduler is dropped.
            q.push(hints[3], BigItem { data: [1; BIG] })
                .expect("unbounded");
            drop(q);
        })
        .expect("spawn");
    assert!(worker.join().is_ok());
}
