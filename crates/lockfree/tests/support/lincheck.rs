//! A small linearizability checker for the `user_lincheck_*` tests: record each operation's
//! invocation and response on one global clock, then search for a sequential order of the
//! operations that respects real time (an operation that returned before another started comes
//! first) and that a sequential model accepts, result by result (Wing & Gong's search, with Lowe's
//! memo of the (operations done, model state) pairs already explored, so that histories of a
//! couple of dozen operations stay cheap).
//!
//! Included with `#[path = "support/lincheck.rs"]`, as `support/mpmc.rs` is.

#![allow(dead_code, unreachable_pub)] // each test file uses a different subset

use std::collections::HashSet;
use std::fmt::{self, Debug};
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// One global clock for a history: every tick is a `SeqCst` read-modify-write of one counter, so
/// when an operation's response tick is below another's invocation tick, the first really
/// returned before the second started (the ticks synchronise with each other).
#[derive(Debug, Default)]
pub struct Clock(AtomicU64);

impl Clock {
    pub fn tick(&self) -> u64 {
        self.0.fetch_add(1, Ordering::SeqCst)
    }
}

/// One completed operation of a history.
#[derive(Clone)]
pub struct Event<Op, Ret> {
    pub thread: usize,
    pub invoke: u64,
    pub response: u64,
    pub op: Op,
    pub ret: Ret,
}

impl<Op: Debug, Ret: Debug> Debug for Event<Op, Ret> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "thread {} [{:>3}..{:>3}] {:?} -> {:?}",
            self.thread, self.invoke, self.response, self.op, self.ret
        )
    }
}

/// Runs `call` between two ticks of `clock` and records it.
pub fn record<Op, Ret>(
    clock: &Clock,
    thread: usize,
    op: Op,
    call: impl FnOnce(&Op) -> Ret,
) -> Event<Op, Ret> {
    let invoke = clock.tick();
    let ret = call(&op);
    let response = clock.tick();
    Event {
        thread,
        invoke,
        response,
        op,
        ret,
    }
}

/// A sequential specification. `step` says whether `op` may return `ret` in this state and, if
/// so, the state after it (a nondeterministic specification accepts several results).
pub trait Model: Clone + Eq + Hash + Debug {
    type Op: Debug;
    type Ret: Debug;
    fn step(&self, op: &Self::Op, ret: &Self::Ret) -> Option<Self>;
}

/// Whether some sequential order of `history` that respects real time is accepted by the model
/// from `initial`. `Err` lays out the history, sorted by invocation, for the failure message.
pub fn check<M: Model>(initial: &M, history: &[Event<M::Op, M::Ret>]) -> Result<(), String> {
    assert!(history.len() <= 64, "histories are kept small");
    let mut seen = HashSet::new();
    if search(initial, history, 0, &mut seen) {
        return Ok(());
    }
    let mut sorted: Vec<&Event<M::Op, M::Ret>> = history.iter().collect();
    sorted.sort_by_key(|event| event.invoke);
    let mut message = String::from("no sequential order explains this history:\n");
    for event in sorted {
        message.push_str(&format!("    {event:?}\n"));
    }
    message.push_str(&format!("  from {initial:?}"));
    Err(message)
}

fn search<M: Model>(
    state: &M,
    history: &[Event<M::Op, M::Ret>],
    done: u64,
    seen: &mut HashSet<(u64, M)>,
) -> bool {
    if done.count_ones() as usize == history.len() {
        return true;
    }
    if !seen.insert((done, state.clone())) {
        return false;
    }
    // An operation may go next only if no pending operation returned before it started.
    let first_response = history
        .iter()
        .enumerate()
        .filter(|(index, _)| done & (1 << index) == 0)
        .map(|(_, event)| event.response)
        .min()
        .expect("an operation is pending");
    for (index, event) in history.iter().enumerate() {
        if done & (1 << index) != 0 || event.invoke > first_response {
            continue;
        }
        if let Some(next) = state.step(&event.op, &event.ret) {
            if search(&next, history, done | (1 << index), seen) {
                return true;
            }
        }
    }
    false
}

/// A xorshift generator: tests print the seed of a failing round so that it can be replayed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    pub fn pick<T: Copy>(&mut self, choices: &[T]) -> T {
        choices[self.below(choices.len() as u64) as usize]
    }
}

/// Spins for up to 64 iterations, so that the threads of a round start their
/// operations at shifted moments (the interleavings then differ from round to round).
pub fn jitter(rng: &mut Rng) {
    for _ in 0..rng.below(64) {
        std::hint::spin_loop();
    }
}

/// Makes `threads` threads start together: each arrives and spins (yielding now and then, for a
/// machine with fewer cores than threads) until all have arrived. A `std::sync::Barrier` wakes
/// its sleepers one by one, and the last thread to arrive would often finish its operations
/// before the first woke.
#[derive(Debug)]
pub struct StartLine {
    arrived: AtomicUsize,
    threads: usize,
}

impl StartLine {
    pub fn new(threads: usize) -> Self {
        Self {
            arrived: AtomicUsize::new(0),
            threads,
        }
    }

    pub fn wait(&self) {
        self.arrived.fetch_add(1, Ordering::SeqCst);
        let mut spins = 0_u32;
        while self.arrived.load(Ordering::SeqCst) < self.threads {
            spins += 1;
            if spins % 64 == 0 {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }
}

/// Runs one round: `threads` threads start together, each runs `body(thread, &clock)` and hands
/// back its events; the events of all threads come back as one history.
pub fn round<Op: Send, Ret: Send>(
    threads: usize,
    body: impl Fn(usize, &Clock) -> Vec<Event<Op, Ret>> + Sync,
) -> Vec<Event<Op, Ret>> {
    let clock = Clock::default();
    let start = StartLine::new(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                let (body, clock, start) = (&body, &clock, &start);
                scope.spawn(move || {
                    start.wait();
                    body(thread, clock)
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().expect("a round's thread panicked"))
            .collect()
    })
}

#[cfg(test)]
mod self_test {
    use super::*;

    /// A register: the checker must accept a read of a write that overlaps it and refuse a read
    /// of a value written only after the read returned.
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    struct Register(u32);

    #[derive(Debug)]
    enum RegisterOp {
        Write(u32),
        Read,
    }

    impl Model for Register {
        type Op = RegisterOp;
        type Ret = u32;
        fn step(&self, op: &RegisterOp, ret: &u32) -> Option<Self> {
            match op {
                RegisterOp::Write(value) => Some(Register(*value)),
                RegisterOp::Read => (*ret == self.0).then(|| self.clone()),
            }
        }
    }

    fn event(invoke: u64, response: u64, op: RegisterOp, ret: u32) -> Event<RegisterOp, u32> {
        Event {
            thread: 0,
            invoke,
            response,
            op,
            ret,
        }
    }

    #[test]
    fn the_checker_accepts_overlap_and_refuses_a_read_from_the_future() {
        let overlapping = [
            event(0, 3, RegisterOp::Write(1), 0),
            event(1, 2, RegisterOp::Read, 1),
        ];
        assert!(check(&Register(0), &overlapping).is_ok());
        let from_the_future = [
            event(0, 1, RegisterOp::Read, 1),
            event(2, 3, RegisterOp::Write(1), 0),
        ];
        assert!(check(&Register(0), &from_the_future).is_err());
        let stale = [
            event(0, 1, RegisterOp::Write(1), 0),
            event(2, 3, RegisterOp::Read, 0),
        ];
        assert!(check(&Register(0), &stale).is_err());
    }
}
