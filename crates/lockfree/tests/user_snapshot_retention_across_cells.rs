//! How long replaced versions stay alive when a reader reads several cells in turn. The promise
//! (`SnapshotCell`, crates/lockfree/src/snapshot/mod.rs): "a writer that goes idle keeps at most
//! 63 replaced versions alive only while no thread uses the cell, and none once another thread
//! has made a few hundred reads". That must hold for every cell a thread reads, not only for the
//! first of a round of cells read one after another (a reader polling its memory and its config
//! each turn). Its own test binary, so that no other test keeps the epoch pinned.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use hivekit_lockfree::SnapshotCell;

/// Counts its drops.
struct Tracked(Arc<AtomicUsize>);

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

const WRITES: usize = 10;
/// Far more than "a few hundred reads" of each cell.
const ROUNDS: usize = 20_000;

/// `cells` cells, each written `WRITES` times by a writer thread that then stays idle (alive, so
/// its thread-locals are not torn down) while a fresh reader thread reads every cell in turn, one
/// read of each per round. Returns, per cell, how many of its replaced versions were dropped.
fn dropped_per_cell_after_round_robin_reads(cells: usize) -> Vec<usize> {
    let drops: Vec<Arc<AtomicUsize>> = (0..cells).map(|_| Arc::default()).collect();
    let cells: Arc<Vec<SnapshotCell<Tracked>>> = Arc::new(
        drops
            .iter()
            .map(|drops| SnapshotCell::new(Tracked(Arc::clone(drops))))
            .collect(),
    );
    let (written_tx, written) = mpsc::channel();
    let (finish, finish_rx) = mpsc::channel::<()>();
    let writer = {
        let (cells, drops) = (Arc::clone(&cells), drops.clone());
        std::thread::spawn(move || {
            for (cell, drops) in cells.iter().zip(&drops) {
                for _ in 0..WRITES {
                    cell.store(Tracked(Arc::clone(drops)));
                }
            }
            written_tx.send(()).unwrap();
            let _ = finish_rx.recv();
        })
    };
    written.recv().unwrap();
    let reader = {
        let (cells, drops) = (Arc::clone(&cells), drops.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            for _ in 0..ROUNDS {
                if drops
                    .iter()
                    .all(|drops| drops.load(Ordering::SeqCst) == WRITES)
                    || Instant::now() > deadline
                {
                    break;
                }
                for cell in cells.iter() {
                    cell.read(|_, version| assert_eq!(version, WRITES as u64));
                }
            }
        })
    };
    reader.join().unwrap();
    let dropped = drops
        .iter()
        .map(|drops| drops.load(Ordering::SeqCst))
        .collect();
    finish.send(()).unwrap();
    writer.join().unwrap();
    dropped
}

#[test]
fn a_reader_alternating_between_two_cells_reclaims_the_replaced_versions_of_both() {
    let dropped = dropped_per_cell_after_round_robin_reads(2);
    assert_eq!(
        dropped, [WRITES; 2],
        "replaced versions dropped per cell after up to {ROUNDS} reads of each"
    );
}

#[test]
fn a_reader_going_round_four_cells_reclaims_the_replaced_versions_of_all_four() {
    let dropped = dropped_per_cell_after_round_robin_reads(4);
    assert_eq!(
        dropped, [WRITES; 4],
        "replaced versions dropped per cell after up to {ROUNDS} reads of each"
    );
}

/// An agent's loop, one turn after another: `pattern` says what a turn does, in order: `r` reads
/// the agent's own memory cell, `w` updates it, `c` reads the shared config cell. The config's
/// writer went idle after `WRITES` writes. Returns how many of the config's replaced versions were
/// dropped, and after how many turns (each reading the config once) the agent stopped.
fn config_drops_after_turns(pattern: &'static str) -> (usize, usize) {
    let config_drops = Arc::new(AtomicUsize::new(0));
    let config = Arc::new(SnapshotCell::new(Tracked(Arc::clone(&config_drops))));
    let (written_tx, written) = mpsc::channel();
    let (finish, finish_rx) = mpsc::channel::<()>();
    let writer = {
        let (config, drops) = (Arc::clone(&config), Arc::clone(&config_drops));
        std::thread::spawn(move || {
            for _ in 0..WRITES {
                config.store(Tracked(Arc::clone(&drops)));
            }
            written_tx.send(()).unwrap();
            let _ = finish_rx.recv();
        })
    };
    written.recv().unwrap();
    let turns = {
        let (config, drops) = (Arc::clone(&config), Arc::clone(&config_drops));
        std::thread::spawn(move || {
            let memory = SnapshotCell::new(0_u64);
            memory.store(1);
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut turns = 0;
            while turns < ROUNDS
                && drops.load(Ordering::SeqCst) < WRITES
                && Instant::now() < deadline
            {
                for op in pattern.chars() {
                    match op {
                        'r' => memory.read(|value, _| assert!(*value > 0)),
                        'w' => {
                            memory.update(|value| value + 1);
                        }
                        _ => config.read(|_, version| assert_eq!(version, WRITES as u64)),
                    }
                }
                turns += 1;
            }
            turns
        })
        .join()
        .unwrap()
    };
    let dropped = config_drops.load(Ordering::SeqCst);
    finish.send(()).unwrap();
    writer.join().unwrap();
    (dropped, turns)
}

#[test]
fn an_agent_reading_its_memory_once_and_updating_it_once_a_turn_reclaims_the_idle_config() {
    let (dropped, turns) = config_drops_after_turns("rwc");
    assert_eq!(
        dropped, WRITES,
        "{dropped} of the config's {WRITES} replaced versions dropped after {turns} turns"
    );
}

#[test]
fn an_agent_updating_its_memory_twice_a_turn_reclaims_the_idle_config() {
    let (dropped, turns) = config_drops_after_turns("rwwc");
    assert_eq!(
        dropped, WRITES,
        "{dropped} of the config's {WRITES} replaced versions dropped after {turns} turns"
    );
}

#[test]
fn an_agent_reading_its_memory_three_times_a_turn_reclaims_the_idle_config() {
    let (dropped, turns) = config_drops_after_turns("rrrwc");
    assert_eq!(
        dropped, WRITES,
        "{dropped} of the config's {WRITES} replaced versions dropped after {turns} turns"
    );
}
