//! arc-swap's `tests/stress.rs` (`storm_link_list`, `storm_unroll`, `load_parallel`), its
//! `multi_writers`, `recursive` rcu and `bug-198` tests, ported to `SnapshotCell` with `update` and
//! `try_update` as `rcu`. arc-swap releases a replaced value at once; `SnapshotCell` documents
//! deferred reclamation ("none once another thread has made a few hundred reads"), so the reference
//! counts and drop counts arc-swap checks right after each phase are checked here once a checker
//! thread has made those reads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use hivekit_lockfree::{Snapshot, SnapshotCell};

/// The storms depend on the epoch advancing: run them one at a time, as arc-swap does.
fn lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

const THREADS: usize = 4;
/// A reusable barrier that fails the test instead of hanging when a peer panicked (arc-swap uses
/// `adaptive_barrier` with `PanicMode::Poison` for the same reason).
struct DeadlineBarrier {
    parties: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
}

impl DeadlineBarrier {
    fn new(parties: usize) -> Self {
        Self {
            parties,
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
        }
    }

    /// Waits for every party; true for exactly one of them (the last to arrive).
    fn wait(&self) -> bool {
        let generation = self.generation.load(Ordering::SeqCst);
        if self.arrived.fetch_add(1, Ordering::SeqCst) + 1 == self.parties {
            self.arrived.store(0, Ordering::SeqCst);
            self.generation.fetch_add(1, Ordering::SeqCst);
            return true;
        }
        let start = Instant::now();
        while self.generation.load(Ordering::SeqCst) == generation {
            assert!(
                start.elapsed() < DEADLINE,
                "a peer never reached the barrier (did it panic?)"
            );
            std::thread::yield_now();
        }
        false
    }
}

/// "A few hundred reads", generously (as `user_review_random_tick_reclaim_bound.rs` takes it).
const FEW_HUNDRED_READS: usize = 1_000;
const DEADLINE: Duration = Duration::from_secs(20);

/// A node of an immutable list, counting how many nodes are alive.
struct Node {
    next: Option<Arc<Node>>,
    num: usize,
    owner: usize,
    live: Arc<AtomicUsize>,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
        // Unlink iteratively, so a long list does not recurse once per node.
        let mut next = self.next.take();
        while let Some(node) = next {
            match Arc::try_unwrap(node) {
                Ok(mut node) => next = node.next.take(),
                Err(_) => break,
            }
        }
    }
}

type Head = SnapshotCell<Option<Arc<Node>>>;

/// Reads `head` (as an unrelated thread would) until `done` holds, at most `reads` times; the reads
/// it took, or `None` if it never held.
fn reads_until(head: &Head, reads: usize, done: impl Fn() -> bool) -> Option<usize> {
    for n in 0..=reads {
        if done() {
            return Some(n);
        }
        head.read(|_, _| ());
    }
    None
}

/// arc-swap's `storm_unroll`: every thread pushes its nodes with `rcu`, then all threads pop with
/// `rcu` until the list is empty. Nothing is lost or popped twice, each thread's nodes come off in
/// reverse push order, a retried `update` has released the value of its refused attempt (the
/// node's `Arc` is unique again, as arc-swap's `Arc::get_mut(..).unwrap()` requires), and every
/// node is dropped once the cell's replaced versions are reclaimed: within a few hundred reads.
#[test]
fn storm_unroll_pops_every_node_once_and_frees_them_all() {
    let _lock = lock();
    const NODES: usize = 300;
    const ITERS: usize = 5;
    let head: Head = SnapshotCell::new(None);
    let live = Arc::new(AtomicUsize::new(0));
    let popped_total = AtomicUsize::new(0);
    let barrier = DeadlineBarrier::new(THREADS);
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let (head, live, popped_total, barrier) = (&head, &live, &popped_total, &barrier);
            scope.spawn(move || {
                for iter in 0..ITERS {
                    barrier.wait();
                    for num in 0..NODES {
                        live.fetch_add(1, Ordering::SeqCst);
                        let mut node = Arc::new(Node {
                            next: None,
                            num,
                            owner: thread,
                            live: Arc::clone(live),
                        });
                        head.update(|current| {
                            Arc::get_mut(&mut node)
                                .expect("a refused attempt released its clone of the node")
                                .next = current.clone();
                            Some(Arc::clone(&node))
                        });
                    }
                    if barrier.wait() {
                        let list = head.load();
                        let mut count = 0;
                        let mut node = list.value().as_ref();
                        while let Some(n) = node {
                            count += 1;
                            node = n.next.as_ref();
                        }
                        assert_eq!(count, NODES * THREADS, "iteration {iter}: nodes lost");
                    }
                    barrier.wait();
                    let mut last_seen = [NODES; THREADS];
                    let mut popped = 0;
                    loop {
                        let mut taken = None;
                        let outcome = head.try_update(|current| match current {
                            Some(node) => {
                                taken = Some(Arc::clone(node));
                                Ok(node.next.clone())
                            }
                            None => Err(()),
                        });
                        if outcome.is_err() {
                            break;
                        }
                        let node = taken.expect("the applied attempt took a node");
                        assert!(
                            last_seen[node.owner] > node.num,
                            "thread {}'s node {} came after {}",
                            node.owner,
                            node.num,
                            last_seen[node.owner]
                        );
                        last_seen[node.owner] = node.num;
                        popped += 1;
                    }
                    popped_total.fetch_add(popped, Ordering::SeqCst);
                    if barrier.wait() {
                        assert_eq!(
                            popped_total.swap(0, Ordering::SeqCst),
                            NODES * THREADS,
                            "iteration {iter}: every node popped exactly once"
                        );
                        // Every node of this iteration is unreachable: once the replaced versions
                        // are reclaimed, none is alive.
                        let reads = reads_until(head, FEW_HUNDRED_READS, || {
                            live.load(Ordering::SeqCst) == 0
                        });
                        assert!(
                            reads.is_some(),
                            "iteration {iter}: {} popped nodes still alive after {FEW_HUNDRED_READS} reads of the idle cell",
                            live.load(Ordering::SeqCst)
                        );
                    }
                    barrier.wait();
                }
            });
        }
    });
    assert_eq!(head.version(), (2 * NODES * THREADS * ITERS) as u64);
    drop(head);
    assert_eq!(live.load(Ordering::SeqCst), 0);
}

/// A node whose link is itself a cell (arc-swap's `LLNode` with an `ArcSwapAny` `next`).
struct LinkNode {
    next: SnapshotCell<Option<Arc<LinkNode>>>,
    num: usize,
    owner: usize,
}

/// arc-swap's `storm_link_list`: every thread links its own pre-built nodes in front of a shared
/// head with `rcu`, storing the old head into the node's own `next` cell inside the callback. Each
/// thread then finds all its nodes, in order; and once every cell's replaced versions are
/// reclaimed, each node is referenced exactly twice (its owner's vector and the list), then once
/// after the list is dismantled.
#[test]
fn storm_link_list_keeps_every_node_in_order_and_reference_counts_settle() {
    let _lock = lock();
    const NODES: usize = 60;
    const ITERS: usize = 3;
    let head: SnapshotCell<Option<Arc<LinkNode>>> = SnapshotCell::new(None);
    let barrier = DeadlineBarrier::new(THREADS);
    // Every thread's nodes, so that the leader can settle and count them all.
    let all: Vec<Vec<Arc<LinkNode>>> = (0..THREADS)
        .map(|owner| {
            (0..NODES)
                .map(|num| {
                    Arc::new(LinkNode {
                        next: SnapshotCell::new(None),
                        num,
                        owner,
                    })
                })
                .collect()
        })
        .collect();
    // Reads every cell (the head and every node's link) until `want` references to each node
    // remain, up to a deadline; each read is what the docs count towards reclamation.
    let settle = |want: usize, what: &str| {
        let start = Instant::now();
        let mut rounds = 0_u64;
        loop {
            let wrong = all
                .iter()
                .flatten()
                .find(|node| Arc::strong_count(node) != want);
            let Some(node) = wrong else {
                return rounds;
            };
            assert!(
                start.elapsed() < DEADLINE,
                "{what}: node {} of thread {} still has {} references (want {want}) after {rounds} rounds of reads",
                node.num,
                node.owner,
                Arc::strong_count(node)
            );
            head.read(|_, _| ());
            for node in all.iter().flatten() {
                node.next.read(|_, _| ());
            }
            rounds += 1;
        }
    };
    std::thread::scope(|scope| {
        for (thread, nodes) in all.iter().enumerate() {
            let (head, barrier, settle, all) = (&head, &barrier, &settle, &all);
            scope.spawn(move || {
                for iter in 0..ITERS {
                    barrier.wait();
                    for node in nodes.iter().rev() {
                        head.update(|current| {
                            node.next.store(current.clone());
                            Some(Arc::clone(node))
                        });
                    }
                    barrier.wait();
                    let mut expecting = 0;
                    let mut current = head.load();
                    while let Some(node) = current.as_ref() {
                        if node.owner == thread {
                            assert_eq!(node.num, expecting, "iteration {iter}");
                            expecting += 1;
                        }
                        let next = node.next.load();
                        current = next;
                    }
                    assert_eq!(expecting, NODES, "iteration {iter}: a node went missing");
                    if barrier.wait() {
                        settle(2, &format!("iteration {iter}, linked"));
                    }
                    barrier.wait();
                    if barrier.wait() {
                        head.store(None);
                        for node in all.iter().flatten() {
                            node.next.store(None);
                        }
                    }
                    barrier.wait();
                }
            });
        }
    });
    settle(1, "dismantled");
}

/// A value that knows its own version and counts its drops.
struct Stamped {
    text: String,
    drops: Arc<AtomicUsize>,
}

impl Drop for Stamped {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

/// arc-swap's `load_parallel`: readers hold 256 loads at once while a writer stores; within one
/// reader's batch the values never go back, each value is intact (its text names its version),
/// and once everyone is done every replaced value is dropped exactly once within a few hundred
/// reads, the current one with the cell.
#[test]
fn load_parallel_holding_256_snapshots_each_sees_ordered_intact_values() {
    let _lock = lock();
    const WRITES: usize = 2_000;
    const ROUNDS: usize = 40;
    let drops = Arc::new(AtomicUsize::new(0));
    let stamped = |version: usize| Stamped {
        text: format!("version {version}"),
        drops: Arc::clone(&drops),
    };
    let cell = SnapshotCell::new(stamped(0));
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for v in 1..=WRITES {
                assert_eq!(cell.store(stamped(v)), v as u64);
            }
        });
        for _ in 0..THREADS {
            scope.spawn(|| {
                for _ in 0..ROUNDS {
                    let held: Vec<Snapshot<Stamped>> = (0..256).map(|_| cell.load()).collect();
                    for pair in held.windows(2) {
                        assert!(pair[0].version() <= pair[1].version());
                    }
                    for snapshot in &held {
                        assert_eq!(snapshot.text, format!("version {}", snapshot.version()));
                    }
                }
            });
        }
    });
    let reads = reads_until_dropped(&cell, &drops, WRITES);
    assert!(
        reads.is_some(),
        "{} of {WRITES} replaced values dropped after {FEW_HUNDRED_READS} reads",
        drops.load(Ordering::SeqCst)
    );
    assert_eq!(drops.load(Ordering::SeqCst), WRITES, "dropped twice?");
    drop(cell);
    assert_eq!(drops.load(Ordering::SeqCst), WRITES + 1);
}

fn reads_until_dropped(
    cell: &SnapshotCell<Stamped>,
    drops: &AtomicUsize,
    want: usize,
) -> Option<usize> {
    for n in 0..=FEW_HUNDRED_READS {
        if drops.load(Ordering::SeqCst) >= want {
            return Some(n);
        }
        cell.read(|value, version| assert_eq!(value.text, format!("version {version}")));
    }
    None
}

/// arc-swap's `multi_writers`: two writers each publish their own increasing series, three
/// readers check that each writer's series only grows as they see it (skipping repeats by
/// `ptr_eq`, as arc-swap skips by `Arc::ptr_eq`), and that versions only grow.
#[test]
fn multi_writers_each_series_grows_as_every_reader_sees_it() {
    let _lock = lock();
    const WRITERS: usize = 2;
    const READERS: usize = 3;
    const ITERATIONS: usize = 100;
    const SEQ: usize = 50;
    let shared = SnapshotCell::new((0_usize, 0_usize));
    let barrier = DeadlineBarrier::new(WRITERS + READERS);
    std::thread::scope(|scope| {
        for w in 0..WRITERS {
            let (shared, barrier) = (&shared, &barrier);
            scope.spawn(move || {
                for _ in 0..ITERATIONS {
                    barrier.wait();
                    shared.store((0, 0));
                    barrier.wait();
                    for i in 0..SEQ {
                        shared.store((w, i + 1));
                    }
                }
            });
        }
        for _ in 0..READERS {
            scope.spawn(|| {
                for iteration in 0..ITERATIONS {
                    barrier.wait();
                    barrier.wait();
                    let start = Instant::now();
                    let mut previous = [0; WRITERS];
                    let mut last: Option<Snapshot<(usize, usize)>> = None;
                    let mut finished = [false; WRITERS];
                    while !finished.iter().any(|&f| f) {
                        assert!(
                            start.elapsed() < DEADLINE,
                            "iteration {iteration}: no writer's last value ever seen"
                        );
                        let current = shared.load();
                        if let Some(last) = &last {
                            if Snapshot::ptr_eq(last, &current) {
                                std::hint::spin_loop();
                                continue;
                            }
                            assert!(current.version() > last.version());
                        }
                        let (w, s) = *current;
                        if s != 0 {
                            assert!(previous[w] < s, "writer {w}: {} then {s}", previous[w]);
                            previous[w] = s;
                            finished[w] = s == SEQ;
                        }
                        last = Some(current);
                    }
                }
            });
        }
    });
    assert_eq!(
        shared.version(),
        (ITERATIONS * WRITERS * (SEQ + 1)) as u64,
        "every store took one version"
    );
}

/// arc-swap's `recursive`: an `rcu` whose callback itself calls `rcu` on the same cell while the
/// value is below 10. Each nested write makes the outer attempt stale, so it is retried on the
/// newer value, until it sees 10 and writes it unchanged: value 10, ten nested versions plus the
/// outer one, and every value dropped exactly once.
#[test]
fn recursive_update_from_its_own_callback_converges() {
    let _lock = lock();
    let drops = Arc::new(AtomicUsize::new(0));
    struct Counted(u32, Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.1.fetch_add(1, Ordering::SeqCst);
        }
    }
    let made = AtomicUsize::new(1);
    let new = |n: u32| {
        made.fetch_add(1, Ordering::SeqCst);
        Counted(n, Arc::clone(&drops))
    };
    let cell = SnapshotCell::new(Counted(0, Arc::clone(&drops)));
    let mut outer_calls = 0;
    let version = cell.update(|value| {
        outer_calls += 1;
        if value.0 < 10 {
            cell.update(|value| new(value.0 + 1));
        }
        new(value.0)
    });
    assert_eq!(outer_calls, 11);
    assert_eq!(version, 11);
    assert_eq!(cell.read(|value, version| (value.0, version)), (10, 11));
    drop(cell);
    let start = Instant::now();
    while drops.load(Ordering::SeqCst) < made.load(Ordering::SeqCst) {
        assert!(start.elapsed() < DEADLINE, "values leaked");
        crossbeam_epoch::pin().flush();
    }
    assert_eq!(drops.load(Ordering::SeqCst), made.load(Ordering::SeqCst));
}

/// arc-swap's `bug-198`: a reader that holds loads from before, then two stores race; if the
/// reader's first load saw one of them and its second load a different value, that second value is
/// the last one (a later load agrees). In version terms: a thread's loads never go back, and two
/// loads that differ after both stores started can only be the first and then the second write.
#[test]
fn two_racing_stores_are_seen_in_one_order_by_a_reader_holding_old_loads() {
    let _lock = lock();
    for _ in 0..2_000 {
        let cell = SnapshotCell::new(0_u32);
        let _held: Vec<Snapshot<u32>> = (0..8).map(|_| cell.load()).collect();
        let barrier = Barrier::new(3);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                barrier.wait();
                cell.store(1);
            });
            scope.spawn(|| {
                barrier.wait();
                cell.store(2);
            });
            barrier.wait();
            let a1 = cell.load();
            let a2 = cell.load();
            assert!(a1.version() <= a2.version());
            if *a1 != *a2 && *a1 != 0 {
                assert_eq!((a1.version(), a2.version()), (1, 2));
                assert_eq!(*a2, *cell.load());
            }
        });
        assert_eq!(cell.version(), 2);
    }
}
