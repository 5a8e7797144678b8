//! The gate an attempt's own events go through (see [`AttemptGate`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The low half of the state: deliveries under way.
const DELIVERING: u64 = u32::MAX as u64;

/// Per stage of a run with an event sink: which attempt may still report ([`StageEvent::Progress`],
/// a fan-out's items, a loop's iterations), so that an attempt that has ended reports nothing
/// after the event that ended it (`Retried`, `Finished`, `Cancelled`): a blocking attempt
/// abandoned at its timeout runs on in its thread, and a task a stage spawned may keep its
/// context.
///
/// One word: the current attempt (0: none) in the high half, the deliveries under way in the low
/// half. A report enters only while its attempt is the current one, and counts itself as under
/// way until its delivery returns; [`close`](Self::close) turns every later report away at once,
/// then waits for those under way, so that the stage's own event comes after them. It never
/// waits for reports that start after it (a lock that readers keep entering could hold it off
/// for as long as the abandoned work reports).
///
/// [`StageEvent::Progress`]: crate::StageEvent::Progress
pub(crate) struct AttemptGate(AtomicU64);

impl AttemptGate {
    pub(crate) fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    /// `attempt` (1 or more) is the stage's current attempt from now on. (Out of line, as
    /// `close`: only runs with an event sink get here, from every stage's start and end.)
    #[inline(never)]
    pub(crate) fn open(&self, attempt: u32) {
        let attempt = u64::from(attempt) << 32;
        // Deliveries of an earlier attempt are none: its `close` waited for them.
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |state| {
                Some(attempt | (state & DELIVERING))
            });
    }

    /// Delivers `deliver`'s event if `attempt` is the stage's current attempt (else drops it;
    /// attempt 0 is none, never current).
    pub(crate) fn deliver(&self, attempt: u32, deliver: impl FnOnce()) {
        let attempt = u64::from(attempt) << 32;
        let mut state = self.0.load(Ordering::Acquire);
        loop {
            if attempt == 0 || state & !DELIVERING != attempt {
                return;
            }
            match self.0.compare_exchange_weak(
                state,
                state + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => state = now,
            }
        }
        // Counted out when the delivery returns or unwinds (a callback that panics).
        let _delivered = Delivered(&self.0);
        deliver();
    }

    /// Ends the current attempt: later reports are dropped, and this returns once the ones under
    /// way are delivered.
    #[inline(never)]
    pub(crate) fn close(&self) {
        let mut state = self.0.fetch_and(DELIVERING, Ordering::AcqRel) & DELIVERING;
        let mut spins = 0_u32;
        while state != 0 {
            // A delivery is a call of the sink: a channel's send, or the user's callback, whose
            // length is the user's. Spin briefly, then sleep.
            if spins < 64 {
                std::hint::spin_loop();
                spins += 1;
            } else if spins < 128 {
                std::thread::yield_now();
                spins += 1;
            } else {
                std::thread::sleep(Duration::from_micros(50));
            }
            state = self.0.load(Ordering::Acquire) & DELIVERING;
        }
    }
}

/// Counts a delivery out of its gate when dropped.
struct Delivered<'a>(&'a AtomicU64);

impl Drop for Delivered<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::AttemptGate;

    #[test]
    fn only_the_current_attempt_delivers() {
        let gate = AttemptGate::new();
        let delivered = AtomicUsize::new(0);
        let count = || {
            delivered.fetch_add(1, Ordering::Relaxed);
        };
        gate.deliver(1, count);
        gate.open(1);
        gate.deliver(1, count);
        gate.deliver(2, count);
        gate.close();
        gate.deliver(1, count);
        gate.open(2);
        gate.deliver(1, count);
        gate.deliver(2, count);
        assert_eq!(delivered.load(Ordering::Relaxed), 2);
    }

    /// Reporters on four threads deliver without pause while the gate opens and closes 100
    /// times: no delivery runs once `close` has returned (each checks the flag set after it), and
    /// the reporters of the current attempt get through.
    #[test]
    fn no_delivery_runs_after_close_returns_under_contention() {
        let gate = Arc::new(AttemptGate::new());
        let closed = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        let (late, delivered) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let attempt = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let reporters: Vec<_> = (0..4)
            .map(|_| {
                let (gate, closed, stop) = (gate.clone(), closed.clone(), stop.clone());
                let (late, delivered, attempt) = (late.clone(), delivered.clone(), attempt.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        gate.deliver(attempt.load(Ordering::Relaxed), || {
                            if closed.load(Ordering::SeqCst) {
                                late.fetch_add(1, Ordering::Relaxed);
                            }
                            delivered.fetch_add(1, Ordering::Relaxed);
                            std::hint::spin_loop();
                        });
                    }
                })
            })
            .collect();
        for round in 1..=100 {
            attempt.store(round, Ordering::Relaxed);
            closed.store(false, Ordering::SeqCst);
            let before = delivered.load(Ordering::Relaxed);
            gate.open(round);
            // Until a reporter got through (or a while), so that the close meets deliveries.
            let patience = std::time::Instant::now();
            while delivered.load(Ordering::Relaxed) == before
                && patience.elapsed() < std::time::Duration::from_millis(20)
            {
                std::thread::yield_now();
            }
            gate.close();
            closed.store(true, Ordering::SeqCst);
        }
        stop.store(true, Ordering::Relaxed);
        for reporter in reporters {
            reporter.join().unwrap();
        }
        assert_eq!(late.load(Ordering::Relaxed), 0);
        assert!(delivered.load(Ordering::Relaxed) > 0);
    }

    #[test]
    fn close_waits_for_a_delivery_under_way_and_a_panicking_one_counts_out() {
        let gate = Arc::new(AttemptGate::new());
        gate.open(1);
        let done = Arc::new(AtomicBool::new(false));
        let (entered_tx, entered_rx) = std::sync::mpsc::channel();
        let reporter = {
            let (gate, done) = (gate.clone(), done.clone());
            std::thread::spawn(move || {
                gate.deliver(1, || {
                    entered_tx.send(()).unwrap();
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    done.store(true, Ordering::SeqCst);
                });
            })
        };
        entered_rx.recv().unwrap();
        gate.close();
        assert!(
            done.load(Ordering::SeqCst),
            "close returned before the delivery"
        );
        reporter.join().unwrap();

        gate.open(2);
        let panicked = std::panic::catch_unwind(|| gate.deliver(2, || panic!("a sink panics")));
        assert!(panicked.is_err());
        gate.close();
    }
}
