//! Anti-starvation after a push raced a pop on an empty scheduler: once quiescent, one consumer must follow the documented max_bypass rule exactly.

use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use hivekit_lockfree::{
    LatencyTier, Priority, PriorityScheduler, ResourceCost, SchedulerConfig, SchedulingHint,
};

/// Key 47.
const TOP: SchedulingHint =
    SchedulingHint::new(Priority::Critical, LatencyTier::Hot, ResourceCost::Minimal);
/// Key 18.
const MID: SchedulingHint = SchedulingHint::with_priority(Priority::Normal);
/// Key 0: the lane the race uses.
const LOW: SchedulingHint =
    SchedulingHint::new(Priority::Low, LatencyTier::Cold, ResourceCost::Heavy);

const ROUNDS: usize = 20_000;

/// Round by round on a fresh scheduler with `max_bypass: Some(1)`: a producer pushes one item on
/// the LOW lane while a consumer spins on `pop` until it gets it. Then (quiescent, the scheduler
/// empty) the main thread alone pushes 3 TOP and 2 MID items and pops them. Per the docs, with one
/// consumer, `Some(1)` alternates with a waiting lower lane: t1, m1, t2, m2, t3.
#[test]
fn one_consumer_alternates_after_a_push_raced_a_pop_on_the_empty_scheduler() {
    race_then_probe(LOW, TOP, MID);
}

/// As above, with the race on the highest lane (key 47) and the probe on two lanes below it:
/// the first pop must still serve the top waiting lane (a pop is forced only after `k` bypasses).
#[test]
fn a_raced_lane_above_the_probe_does_not_force_a_pop_early() {
    race_then_probe(TOP, SchedulingHint::with_priority(Priority::High), MID);
}

fn race_then_probe(raced: SchedulingHint, top: SchedulingHint, mid: SchedulingHint) {
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let start = Arc::new(Barrier::new(2));
        let (work_tx, work_rx) = mpsc::channel::<Option<Arc<PriorityScheduler<u32>>>>();
        let (ack_tx, ack_rx) = mpsc::channel::<()>();
        let consumer = {
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                while let Ok(Some(scheduler)) = work_rx.recv() {
                    start.wait();
                    let mut spins = 0_u64;
                    loop {
                        if let Some(item) = scheduler.pop() {
                            assert_eq!(item, 0);
                            break;
                        }
                        spins += 1;
                        assert!(spins < 100_000_000, "the raced item never arrived");
                    }
                    ack_tx.send(()).unwrap();
                }
            })
        };
        let mut failure = None;
        for round in 0..ROUNDS {
            let scheduler = Arc::new(
                PriorityScheduler::with_config(SchedulerConfig {
                    capacity: None,
                    max_bypass: Some(1),
                })
                .unwrap(),
            );
            work_tx.send(Some(Arc::clone(&scheduler))).unwrap();
            start.wait();
            scheduler.push(raced, 0).unwrap();
            ack_rx.recv().unwrap();
            // Quiescent: the race is over and the scheduler holds nothing.
            assert!(scheduler.is_empty(), "round {round}: {scheduler:?}");
            assert_eq!(scheduler.len(), 0);
            for item in [1, 2, 3] {
                scheduler.push(top, item).unwrap();
            }
            for item in [10, 20] {
                scheduler.push(mid, item).unwrap();
            }
            let order: Vec<u32> = std::iter::from_fn(|| scheduler.pop()).collect();
            if order != [1, 10, 2, 20, 3] {
                failure = Some(format!(
                    "round {round}: one consumer with max_bypass Some(1) popped {order:?}, \
                     expected [1, 10, 2, 20, 3]: raced lane {}, probe lanes {} and {}",
                    raced.sort_key(),
                    top.sort_key(),
                    mid.sort_key()
                ));
                break;
            }
        }
        work_tx.send(None).unwrap();
        consumer.join().unwrap();
        done_tx.send(failure).unwrap();
    });
    let failure = done_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the rounds did not finish within 60 s (hang?)");
    if let Some(message) = failure {
        panic!("{message}");
    }
}
