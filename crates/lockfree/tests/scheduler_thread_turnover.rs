//! Anti-starvation with two consumers after a thread pool's turnover (qa5's case): threads are
//! spread over 16 counters by a process-wide number never reused, so after 15 other popping
//! threads came and went the two consumers share one counter, and one of them may take every
//! bypass (as `SchedulerConfig::max_bypass` now documents). The overall bound holds either way:
//! with 2 consumers and `max_bypass` 1, the top lane is never served more than twice in a row
//! while the low lane waits. Its own binary: the thread numbering is process-wide.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use hivekit_lockfree::{Priority, PriorityScheduler, SchedulerConfig, SchedulingHint};

const BOUND: Duration = Duration::from_secs(5);

fn aging() -> PriorityScheduler<u32> {
    PriorityScheduler::with_config(SchedulerConfig {
        capacity: None,
        max_bypass: Some(1),
    })
    .unwrap()
}

/// An aging pop on a non-empty scheduler: the first one numbers the calling thread.
fn number(warm_up: &PriorityScheduler<u32>) {
    warm_up.push(SchedulingHint::default(), 0).unwrap();
    let _ = warm_up.pop();
}

/// A consumer thread that pops from the scheduler it is sent, once per request.
fn consumer(
    warm_up: &'static PriorityScheduler<u32>,
) -> (
    mpsc::Sender<&'static PriorityScheduler<u32>>,
    mpsc::Receiver<Option<u32>>,
) {
    let (ask, asks) = mpsc::channel::<&'static PriorityScheduler<u32>>();
    let (answer, answers) = mpsc::channel();
    thread::spawn(move || {
        // Its first aging pop numbers the thread.
        number(warm_up);
        let _ = answer.send(None);
        for scheduler in asks {
            let _ = answer.send(scheduler.pop());
        }
    });
    answers.recv_timeout(BOUND).expect("the consumer started");
    (ask, answers)
}

#[test]
fn two_consumers_keep_the_overall_bypass_bound_after_thread_turnover() {
    let warm_up: &'static PriorityScheduler<u32> = Box::leak(Box::new(aging()));
    number(warm_up); // this thread
    let (ask_a, from_a) = consumer(warm_up);
    // Fifteen short-lived threads pop once each and exit (a pool's turnover).
    for _ in 0..15 {
        thread::spawn(move || number(warm_up)).join().unwrap();
    }
    let (ask_b, from_b) = consumer(warm_up);

    let scheduler: &'static PriorityScheduler<u32> = Box::leak(Box::new(aging()));
    for item in 0..10 {
        scheduler
            .push(
                SchedulingHint::with_priority(Priority::Critical),
                100 + item,
            )
            .unwrap();
        scheduler
            .push(SchedulingHint::with_priority(Priority::Low), item)
            .unwrap();
    }
    // A and B pop in turns until the scheduler is empty.
    let mut popped = Vec::new();
    for turn in 0..20 {
        let (ask, from) = if turn % 2 == 0 {
            (&ask_a, &from_a)
        } else {
            (&ask_b, &from_b)
        };
        ask.send(scheduler).unwrap();
        popped.push(from.recv_timeout(BOUND).unwrap().expect("an item per pop"));
    }
    let mut sorted = popped.clone();
    sorted.sort_unstable();
    let every: Vec<u32> = (0..10).chain(100..110).collect();
    assert_eq!(sorted, every, "every item exactly once");
    // While a low item waits, the critical lane is served at most c * k = 2 times in a row.
    let last_low = popped.iter().rposition(|&item| item < 100).unwrap();
    for window in popped[..=last_low].windows(3) {
        assert!(
            !window.iter().all(|&item| item >= 100),
            "the critical lane was served three times in a row: {popped:?}"
        );
    }
}
