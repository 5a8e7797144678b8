//! Recorded histories of several handles (each with its own client, as separate processes would
//! be) working on one memory at once, checked against a sequential model: a single chain of
//! versions, each applying one decision's changes to the version before it.
//!
//! Every operation is recorded with a logical invocation and response tick (a global counter, so
//! "A returned before B was invoked" is real-time order): commits on the version the handle saw
//! (compare-and-swap in spirit), commits on a deliberately stale base (the API has no conflict
//! error: it rebases, `Committed::rebased`), re-sends of decisions already acknowledged, local
//! snapshots, history reads, and followers waiting in `changed`. Afterwards:
//!
//! 1. the history (and the raw etcd revisions of the `head` and `history/` keys) is one gapless
//!    chain 1..=N; every acknowledged commit is in it exactly once at the version it was told,
//!    with its base and rebase flag; every entry belongs to a commit that was acknowledged or whose
//!    outcome was unknown (never to one that failed definitely);
//! 2. a commit on a stale base lands after every version its handle saw, rebased; a re-sent
//!    decision reports the version it created and never lands twice;
//! 3. each entry is based on the version before it (`rebased == (base != version - 1)`, the head's
//!    `previous` names the previous decision) and commits respect real-time order;
//! 4. each follower sees strictly increasing versions whose states match the model, and ends at N
//!    (`changed` only promises the newest version, so skipped versions are allowed);
//! 5. snapshots never go back on one handle (including after its own acknowledged commit: read
//!    your writes, except after a commit settled by reading its decision back, which the docs let
//!    lag), match the model's state at their version, and never show a version whose commit had
//!    not been invoked; history reads are etcd reads and must include every version acknowledged
//!    before they started. Snapshots are local, so a snapshot older than a commit acknowledged on
//!    another handle is allowed (counted, not asserted).
//!
//! Outcome-unknown commits are settled with `resolve` after the run and must agree with the
//! history; a decision resolved `None` (or failed definitely) and sent again must fail `Fenced`.
//!
//! The fault cases run on a 3-member cluster and kill and restart a follower member (then freeze
//! one, which makes commits through it end in `OutcomeUnknown`), or the Raft leader.

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{EventType, WatchOptions};
use hivekit_etcd::testing::EtcdCluster;
use hivekit_etcd::{EtcdConfig, EtcdError, EtcdMemory, Whole};
use hivekit_hive::{
    AcceptedChange, AgentId, CommitRequest, Memory, MemoryError, Proposal, ProposalId, ProposalOf,
    State,
};
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------------------
// The state: the sequence of every change applied, so that a version's state is the model's.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Log {
    ops: Vec<u64>,
}

impl State for Log {
    type Key = u64;
    type Change = u64;
    fn apply(&mut self, change: &u64) {
        self.ops.push(*change);
    }
}

type LogMemory = EtcdMemory<Log, Whole>;

fn fnv(hash: u64, value: u64) -> u64 {
    let mut hash = hash;
    for byte in value.to_le_bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

fn hash_ops(ops: &[u64]) -> u64 {
    ops.iter().fold(FNV_START, |hash, op| fnv(hash, *op))
}

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn seed() -> u64 {
    std::env::var("HIVEKIT_MODEL_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

// ---------------------------------------------------------------------------------------------
// The recorded history.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Ok {
        version: u64,
        rebased: bool,
    },
    Unknown,
    Fenced,
    /// A definite failure: nothing was committed.
    Failed(String),
    /// A failure that cannot happen in these scenarios (`WentBack`, `HistoryGap`, `Corrupt`).
    Impossible(String),
}

#[derive(Debug, Clone)]
struct CommitOp {
    handle: usize,
    decision: u128,
    base: u64,
    /// The handle's snapshot version when the commit was invoked.
    seen: u64,
    stale: bool,
    /// A re-send of a decision acknowledged earlier (at this version).
    resend_of: Option<u64>,
    changes: Vec<u64>,
    invoked: u64,
    returned: u64,
    outcome: Outcome,
    /// The commit was settled by reading its decision back (the `ambiguous` counter moved).
    ambiguous: bool,
    /// How long it took, in milliseconds (for the report only).
    took_ms: u64,
}

#[derive(Debug, Clone)]
struct ReadOp {
    handle: usize,
    invoked: u64,
    returned: u64,
    version: u64,
    hash: u64,
    len: usize,
}

#[derive(Debug, Clone, PartialEq)]
struct Entry {
    version: u64,
    decision: String,
    base: u64,
    rebased: bool,
    changes: Vec<u64>,
}

#[derive(Debug, Clone)]
struct HistoryOp {
    handle: usize,
    invoked: u64,
    returned: u64,
    from: u64,
    to: u64,
    result: Result<Vec<Entry>, String>,
}

#[derive(Debug, Clone)]
struct FollowObs {
    handle: usize,
    returned: u64,
    version: u64,
    hash: u64,
    len: usize,
}

#[derive(Default)]
struct Recorder {
    clock: AtomicU64,
    commits: Mutex<Vec<CommitOp>>,
    reads: Mutex<Vec<ReadOp>>,
    histories: Mutex<Vec<HistoryOp>>,
    follows: Mutex<Vec<FollowObs>>,
    follow_errors: Mutex<Vec<String>>,
    /// Acknowledged decisions (id, changes, version), for re-sends.
    acked: Mutex<Vec<(u128, Vec<u64>, u64)>>,
}

impl Recorder {
    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::SeqCst)
    }
}

fn to_entries(entries: Vec<hivekit_etcd::HistoryEntry<u64>>) -> Vec<Entry> {
    entries
        .into_iter()
        .map(|entry| Entry {
            version: entry.version,
            decision: entry.decision_id,
            base: entry.base,
            rebased: entry.rebased,
            changes: entry.changes.iter().map(|change| change.change).collect(),
        })
        .collect()
}

fn hex(decision: u128) -> String {
    format!("{decision:032x}")
}

fn classify(error: &MemoryError) -> Outcome {
    match error {
        MemoryError::OutcomeUnknown { .. } => Outcome::Unknown,
        MemoryError::Backend { source } => match source.downcast_ref::<EtcdError>() {
            Some(EtcdError::Fenced { .. }) => Outcome::Fenced,
            Some(
                e @ (EtcdError::WentBack { .. }
                | EtcdError::HistoryGap { .. }
                | EtcdError::Corrupt { .. }),
            ) => Outcome::Impossible(e.to_string()),
            _ => Outcome::Failed(error.to_string()),
        },
        MemoryError::Corrupt { .. } => Outcome::Impossible(error.to_string()),
        _ => Outcome::Failed(error.to_string()),
    }
}

async fn send_commit(
    memory: &LogMemory,
    decision: u128,
    base: u64,
    changes: &[u64],
    proposer: u64,
) -> Result<hivekit_hive::Committed, MemoryError> {
    let proposals: Vec<ProposalOf<Log>> = changes
        .iter()
        .map(|op| Proposal::new(ProposalId(*op), *op).writes([0]))
        .collect();
    let accepted: Vec<AcceptedChange<'_, Log>> = proposals
        .iter()
        .map(|proposal| AcceptedChange {
            proposal,
            proposer: Some(AgentId(proposer)),
        })
        .collect();
    memory
        .commit(CommitRequest {
            decision_id: decision,
            round: base + 1,
            base,
            accepted: &accepted,
        })
        .await
}

// ---------------------------------------------------------------------------------------------
// Workers and followers.
// ---------------------------------------------------------------------------------------------

struct Plan {
    commit_timeout: Duration,
    /// The history depth every handle is opened with.
    depth: usize,
    /// Percent of operations that are fresh commits, stale commits, re-sends, snapshots (the rest
    /// are history reads).
    mix: [u64; 4],
}

async fn worker(
    handle: usize,
    memory: Arc<LogMemory>,
    recorder: Arc<Recorder>,
    stop: Arc<AtomicBool>,
    seed: u64,
    plan: Arc<Plan>,
) {
    let mut rng = Rng::new(seed);
    let mut sequence = 0_u64;
    let watchdog = plan.commit_timeout + Duration::from_secs(15);
    while !stop.load(Ordering::SeqCst) {
        let dice = rng.below(100);
        let [fresh, stale, resend, snapshot] = plan.mix;
        if dice < fresh + stale + resend {
            let seen = memory.snapshot().version();
            let mut resend_of = None;
            let (decision, changes, base, is_stale) = if dice < fresh + stale {
                sequence += 1;
                let decision = (u128::from(handle as u64 + 1) << 96)
                    | (u128::from(seed & 0xffff) << 48)
                    | u128::from(sequence);
                let count = 1 + rng.below(3);
                let changes: Vec<u64> = (0..count)
                    .map(|j| (handle as u64 + 1) * 10_000_000 + sequence * 4 + j)
                    .collect();
                if dice >= fresh && seen > 0 {
                    let back = 1 + rng.below(3);
                    (decision, changes, seen.saturating_sub(back), true)
                } else {
                    (decision, changes, seen, false)
                }
            } else {
                let picked = {
                    let acked = recorder.acked.lock().unwrap();
                    if acked.is_empty() {
                        None
                    } else {
                        Some(acked[rng.below(acked.len() as u64) as usize].clone())
                    }
                };
                let Some((decision, changes, version)) = picked else {
                    continue;
                };
                resend_of = Some(version);
                (decision, changes, seen, false)
            };
            let ambiguous_before = memory.stats().ambiguous;
            let invoked = recorder.tick();
            let started = std::time::Instant::now();
            let result = tokio::time::timeout(
                watchdog,
                send_commit(&memory, decision, base, &changes, handle as u64),
            )
            .await
            .unwrap_or_else(|_| panic!("handle {handle}: a commit hung past {watchdog:?}"));
            let returned = recorder.tick();
            let ambiguous = memory.stats().ambiguous != ambiguous_before;
            let outcome = match &result {
                Ok(committed) => Outcome::Ok {
                    version: committed.version,
                    rebased: committed.rebased,
                },
                Err(error) => classify(error),
            };
            if let (Outcome::Ok { version, .. }, None) = (&outcome, resend_of) {
                recorder
                    .acked
                    .lock()
                    .unwrap()
                    .push((decision, changes.clone(), *version));
            }
            recorder.commits.lock().unwrap().push(CommitOp {
                handle,
                decision,
                base,
                seen,
                stale: is_stale,
                resend_of,
                changes,
                invoked,
                returned,
                outcome,
                ambiguous,
                took_ms: started.elapsed().as_millis() as u64,
            });
        } else if dice < fresh + stale + resend + snapshot {
            let invoked = recorder.tick();
            let snapshot = memory.snapshot();
            let returned = recorder.tick();
            recorder.reads.lock().unwrap().push(ReadOp {
                handle,
                invoked,
                returned,
                version: snapshot.version(),
                hash: hash_ops(&snapshot.ops),
                len: snapshot.ops.len(),
            });
        } else {
            let seen = memory.snapshot().version();
            let (from, to) = match rng.below(3) {
                0 => (seen.saturating_sub(rng.below(8)).max(1), u64::MAX - 1),
                1 => (1, u64::MAX - 1),
                _ => {
                    let to = seen + rng.below(4);
                    (to.saturating_sub(rng.below(6)).max(1), to)
                }
            };
            let invoked = recorder.tick();
            let result = tokio::time::timeout(watchdog, memory.history(from, to))
                .await
                .unwrap_or_else(|_| panic!("handle {handle}: a history read hung"));
            let returned = recorder.tick();
            recorder.histories.lock().unwrap().push(HistoryOp {
                handle,
                invoked,
                returned,
                from,
                to,
                result: result.map(to_entries).map_err(|error| error.to_string()),
            });
        }
        if rng.below(4) == 0 {
            tokio::task::yield_now().await;
        }
    }
}

/// Follows `memory` with `changed` until it reaches `target` (unknown while it is `u64::MAX`).
async fn follower(
    handle: usize,
    memory: Arc<LogMemory>,
    recorder: Arc<Recorder>,
    target: Arc<AtomicU64>,
) -> u64 {
    let mut last = memory.snapshot().version();
    loop {
        if last >= target.load(Ordering::SeqCst) {
            return last;
        }
        match tokio::time::timeout(Duration::from_millis(200), memory.changed(last)).await {
            Ok(Ok(snapshot)) => {
                let returned = recorder.tick();
                recorder.follows.lock().unwrap().push(FollowObs {
                    handle,
                    returned,
                    version: snapshot.version(),
                    hash: hash_ops(&snapshot.ops),
                    len: snapshot.ops.len(),
                });
                last = last.max(snapshot.version());
            }
            Ok(Err(error)) => {
                recorder
                    .follow_errors
                    .lock()
                    .unwrap()
                    .push(format!("handle {handle}: changed({last}) failed: {error}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(_) => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A run: open handles, run workers and followers, apply faults, stop, settle, check.
// ---------------------------------------------------------------------------------------------

struct Run {
    recorder: Arc<Recorder>,
    stop: Arc<AtomicBool>,
    target: Arc<AtomicU64>,
    handles: Vec<Arc<LogMemory>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
    followers: Vec<tokio::task::JoinHandle<u64>>,
    config: EtcdConfig,
    depth: usize,
    seed: u64,
}

fn config_for(
    endpoints: Vec<String>,
    prefix: &str,
    commit_timeout: Duration,
    depth: usize,
) -> EtcdConfig {
    EtcdConfig::new(endpoints, prefix)
        .connect_timeout(Duration::from_secs(3))
        .request_timeout(Duration::from_secs(1))
        .commit_timeout(commit_timeout)
        .history(depth)
}

/// Opens one handle per endpoint list (the last one a pure watcher that never commits) and starts
/// a worker on each but the watcher, and a follower on each.
async fn start(name: &str, endpoint_sets: Vec<Vec<String>>, plan: Plan) -> Run {
    let seed = seed();
    eprintln!("{name}: seed {seed} (HIVEKIT_MODEL_SEED={seed} to replay the operation mix)");
    let prefix = support::unique_prefix(name);
    let recorder = Arc::new(Recorder::default());
    let stop = Arc::new(AtomicBool::new(false));
    let target = Arc::new(AtomicU64::new(u64::MAX));
    let plan = Arc::new(plan);
    let mut handles = Vec::new();
    for endpoints in &endpoint_sets {
        let config = config_for(endpoints.clone(), &prefix, plan.commit_timeout, plan.depth);
        let memory = tokio::time::timeout(
            Duration::from_secs(15),
            LogMemory::open(config, Log::default()),
        )
        .await
        .expect("open answered")
        .expect("opened");
        handles.push(Arc::new(memory));
    }
    let watcher = handles.len() - 1;
    let mut workers = Vec::new();
    let mut followers = Vec::new();
    for (index, memory) in handles.iter().enumerate() {
        if index != watcher {
            workers.push(tokio::spawn(worker(
                index,
                Arc::clone(memory),
                Arc::clone(&recorder),
                Arc::clone(&stop),
                seed.wrapping_add((index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
                Arc::clone(&plan),
            )));
        }
        followers.push(tokio::spawn(follower(
            index,
            Arc::clone(memory),
            Arc::clone(&recorder),
            Arc::clone(&target),
        )));
    }
    let all: Vec<String> = endpoint_sets.concat();
    let mut all_unique = Vec::new();
    for endpoint in all {
        if !all_unique.contains(&endpoint) {
            all_unique.push(endpoint);
        }
    }
    Run {
        recorder,
        stop,
        target,
        handles,
        workers,
        followers,
        config: config_for(all_unique, &prefix, plan.commit_timeout, plan.depth),
        depth: plan.depth,
        seed,
    }
}

/// What a finished run saw, for the report line.
#[allow(dead_code)] // Read through `Debug`.
#[derive(Debug, Default)]
struct Summary {
    versions: u64,
    commits: usize,
    acked: usize,
    stale: usize,
    resends: usize,
    unknown: usize,
    unknown_landed: usize,
    failed: usize,
    reads: usize,
    reads_behind_other_handles: usize,
    history_reads: usize,
    follows: usize,
}

async fn finish(run: Run) -> Summary {
    run.stop.store(true, Ordering::SeqCst);
    for worker in run.workers {
        tokio::time::timeout(Duration::from_secs(40), worker)
            .await
            .expect("the workers stopped")
            .expect("a worker panicked");
    }
    let recorder = run.recorder;
    let checker = tokio::time::timeout(
        Duration::from_secs(15),
        LogMemory::open(run.config.clone(), Log::default()),
    )
    .await
    .expect("the checker opened in time")
    .expect("the checker opened");

    // Settle every commit that did not succeed: an unknown outcome for good, a definite failure
    // fenced (it must say `None`).
    let commits = recorder.commits.lock().unwrap().clone();
    let mut resolved: HashMap<u128, Option<u64>> = HashMap::new();
    for op in &commits {
        if matches!(op.outcome, Outcome::Ok { .. }) || op.resend_of.is_some() {
            continue;
        }
        let answer = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                match checker.resolve(op.decision).await {
                    Ok(answer) => break answer,
                    Err(error) => {
                        eprintln!("resolve {:#x}: {error}; again", op.decision);
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        })
        .await
        .expect("resolve answered once etcd is healthy");
        resolved.insert(op.decision, answer);
    }

    let mut violations: Vec<String> = Vec::new();
    let mut violate = |message: String| {
        if violations.len() < 40 {
            violations.push(message);
        }
    };

    // The final history, from etcd's own record of every put (entries older than the depth are
    // trimmed from the keys, not from etcd's revisions: nothing is compacted in these tests).
    let final_history = check_raw_chain(&checker, run.depth, &mut violate).await;
    let held = to_entries(
        tokio::time::timeout(Duration::from_secs(20), checker.history(1, u64::MAX - 1))
            .await
            .expect("history answered")
            .expect("final history"),
    );
    let kept = final_history.len().min(run.depth);
    if held[..] != final_history[final_history.len() - kept..] {
        violate(format!(
            "(1) the history held ({} entries, from {:?}) is not the newest {kept} versions of the chain",
            held.len(),
            held.first().map(|entry| entry.version)
        ));
    }
    let n = final_history.len() as u64;
    let mut prefix_hash = vec![FNV_START];
    let mut prefix_len = vec![0_usize];
    for (index, entry) in final_history.iter().enumerate() {
        if entry.version != index as u64 + 1 {
            violate(format!(
                "(1) history entry #{index} is version {} (expected {})",
                entry.version,
                index + 1
            ));
        }
        let mut hash = *prefix_hash.last().unwrap();
        for op in &entry.changes {
            hash = fnv(hash, *op);
        }
        prefix_hash.push(hash);
        prefix_len.push(prefix_len.last().unwrap() + entry.changes.len());
        // (3) each entry is based on the version before it.
        if entry.base >= entry.version || entry.rebased != (entry.base + 1 != entry.version) {
            violate(format!(
                "(3) entry {} has base {} and rebased {}",
                entry.version, entry.base, entry.rebased
            ));
        }
    }
    // A version this handle may be ahead of the history read (a commit landed since): re-read up
    // to the checker's own version.
    let loaded = checker.snapshot();
    if loaded.version() != n {
        violate(format!(
            "(1) a fresh handle opens at version {} but the history ends at {n}",
            loaded.version()
        ));
    } else if hash_ops(&loaded.ops) != prefix_hash[n as usize] {
        violate("(1) the stored state is not the fold of the history".into());
    }

    let mut by_decision: HashMap<String, u64> = HashMap::new();
    for entry in &final_history {
        if let Some(other) = by_decision.insert(entry.decision.clone(), entry.version) {
            violate(format!(
                "(1) decision {} landed twice: versions {other} and {}",
                entry.decision, entry.version
            ));
        }
    }

    // First invocation of each decision (for "no read of the future").
    let mut first_invoked: HashMap<String, u64> = HashMap::new();
    for op in &commits {
        let key = hex(op.decision);
        let tick = first_invoked.entry(key).or_insert(op.invoked);
        *tick = (*tick).min(op.invoked);
    }

    let mut summary = Summary {
        versions: n,
        commits: commits.len(),
        ..Summary::default()
    };
    // (1)/(2): every commit against the history.
    let mut ordered: Vec<(u64, u64, u64, String)> = Vec::new(); // (invoked, returned, version, what)
    for op in &commits {
        let landed = by_decision.get(&hex(op.decision)).copied();
        if op.stale {
            summary.stale += 1;
        }
        if op.resend_of.is_some() {
            summary.resends += 1;
        }
        match (&op.outcome, op.resend_of) {
            (Outcome::Ok { version, rebased }, None) => {
                summary.acked += 1;
                if landed != Some(*version) {
                    violate(format!(
                        "(1) {op:?} acknowledged version {version}, history has it at {landed:?}"
                    ));
                    continue;
                }
                let entry = &final_history[(*version - 1) as usize];
                if entry.changes != op.changes || entry.base != op.base || entry.rebased != *rebased
                {
                    violate(format!("(1) {op:?} does not match its entry {entry:?}"));
                }
                if *rebased != (*version != op.base + 1) {
                    violate(format!(
                        "(2) {op:?}: rebased flag disagrees with its version"
                    ));
                }
                if *version <= op.seen {
                    violate(format!(
                        "(2) {op:?} landed at or before version {} its handle had already seen",
                        op.seen
                    ));
                }
                if op.stale && !*rebased {
                    violate(format!(
                        "(2) a commit on a stale base was not rebased: {op:?}"
                    ));
                }
                ordered.push((op.invoked, op.returned, *version, format!("{op:?}")));
            }
            (Outcome::Ok { version, .. }, Some(original)) => {
                if *version != original {
                    violate(format!(
                        "(2) re-sent decision {:#x} reported version {version}, it created {original}",
                        op.decision
                    ));
                }
            }
            (_, Some(original)) => {
                // A re-send that failed: the decision stays where it landed.
                if landed != Some(original) {
                    violate(format!("(2) re-sent {op:?}: history has it at {landed:?}"));
                }
                if let Outcome::Impossible(error) = &op.outcome {
                    violate(format!("impossible error for a re-send {op:?}: {error}"));
                }
            }
            (Outcome::Unknown, None) => {
                summary.unknown += 1;
                let answer = resolved.get(&op.decision).copied().flatten();
                if answer != landed {
                    violate(format!(
                        "(resolve) {op:?}: resolve says {answer:?}, history has it at {landed:?}"
                    ));
                }
                if let Some(version) = landed {
                    summary.unknown_landed += 1;
                    if version <= op.seen {
                        violate(format!(
                            "(2) {op:?} landed at {version}, not after what it saw"
                        ));
                    }
                    // Landed some time after it was invoked: no upper bound in time.
                    ordered.push((op.invoked, u64::MAX, version, format!("{op:?}")));
                }
            }
            (outcome, None) => {
                summary.failed += 1;
                if let Outcome::Impossible(error) = outcome {
                    violate(format!("impossible error {op:?}: {error}"));
                }
                if let Outcome::Fenced = outcome {
                    violate(format!("a fresh decision failed Fenced: {op:?}"));
                }
                if landed.is_some() || resolved.get(&op.decision).copied().flatten().is_some() {
                    violate(format!(
                        "(1) {op:?} failed definitely but landed at {landed:?} (resolve {:?})",
                        resolved.get(&op.decision)
                    ));
                }
            }
        }
    }
    // Every entry belongs to a commit of this run that was acknowledged or unknown.
    let known: HashSet<String> = commits
        .iter()
        .filter(|op| op.resend_of.is_none())
        .filter(|op| matches!(op.outcome, Outcome::Ok { .. } | Outcome::Unknown))
        .map(|op| hex(op.decision))
        .collect();
    for entry in &final_history {
        if !known.contains(&entry.decision) {
            violate(format!(
                "(1) entry {entry:?} belongs to no acknowledged or unknown commit"
            ));
        }
    }
    // (3) real-time order: a commit that returned before another was invoked has the lower version.
    ordered.sort_by_key(|item| item.1);
    let mut max_done = (0_u64, String::new());
    let mut by_invoked = ordered.clone();
    by_invoked.sort_by_key(|item| item.0);
    let mut done_index = 0;
    for (invoked, _, version, what) in &by_invoked {
        while done_index < ordered.len() && ordered[done_index].1 < *invoked {
            if ordered[done_index].2 > max_done.0 {
                max_done = (ordered[done_index].2, ordered[done_index].3.clone());
            }
            done_index += 1;
        }
        if *version <= max_done.0 && max_done.0 > 0 {
            violate(format!(
                "(3) {what} got version {version} although {} had returned version {} before it was invoked",
                max_done.1, max_done.0
            ));
        }
    }

    // Observations per handle, for monotonic reads: (returned, version).
    let reads = recorder.reads.lock().unwrap().clone();
    let follows = recorder.follows.lock().unwrap().clone();
    let histories = recorder.histories.lock().unwrap().clone();
    summary.reads = reads.len();
    summary.follows = follows.len();
    summary.history_reads = histories.len();
    let mut observations: BTreeMap<usize, Vec<(u64, u64)>> = BTreeMap::new();
    for read in &reads {
        observations
            .entry(read.handle)
            .or_default()
            .push((read.returned, read.version));
    }
    for follow in &follows {
        observations
            .entry(follow.handle)
            .or_default()
            .push((follow.returned, follow.version));
    }
    for op in &commits {
        if let (Outcome::Ok { version, .. }, None, false) =
            (&op.outcome, op.resend_of, op.ambiguous)
        {
            observations
                .entry(op.handle)
                .or_default()
                .push((op.returned, *version));
        }
    }
    let prefix_max = |list: &mut Vec<(u64, u64)>| {
        list.sort_unstable();
        let mut max = 0;
        for item in list.iter_mut() {
            max = max.max(item.1);
            item.1 = max;
        }
    };
    for list in observations.values_mut() {
        prefix_max(list);
    }
    let max_before = |list: &[(u64, u64)], tick: u64| -> u64 {
        let at = list.partition_point(|item| item.0 < tick);
        if at == 0 {
            0
        } else {
            list[at - 1].1
        }
    };
    // Versions known to exist anywhere (acknowledged, or seen by any handle), for etcd reads.
    let mut global: Vec<(u64, u64)> = Vec::new();
    for list in observations.values() {
        global.extend(list.iter().copied());
    }
    for op in &commits {
        if let Outcome::Ok { version, .. } = op.outcome {
            global.push((op.returned, version));
        }
    }
    prefix_max(&mut global);
    let mut acked_only: Vec<(u64, u64)> = commits
        .iter()
        .filter_map(|op| match op.outcome {
            Outcome::Ok { version, .. } => Some((op.returned, version)),
            _ => None,
        })
        .collect();
    prefix_max(&mut acked_only);

    let state_ok = |version: u64, hash: u64, len: usize| -> bool {
        version <= n && prefix_hash[version as usize] == hash && prefix_len[version as usize] == len
    };
    let future = |version: u64, returned: u64| -> Option<String> {
        if version == 0 || version > n {
            return None;
        }
        let decision = &final_history[(version - 1) as usize].decision;
        match first_invoked.get(decision) {
            Some(invoked) if *invoked < returned => None,
            other => Some(format!("decision {decision} first invoked at {other:?}")),
        }
    };
    // (5) snapshots.
    for read in &reads {
        if !state_ok(read.version, read.hash, read.len) {
            violate(format!(
                "(5) {read:?} does not hold the model's state at its version"
            ));
        }
        let own = max_before(&observations[&read.handle], read.invoked);
        if read.version < own {
            violate(format!(
                "(5) {read:?} went back: its handle had seen version {own} before"
            ));
        }
        if let Some(why) = future(read.version, read.returned) {
            violate(format!(
                "(5) {read:?} shows a version not yet invoked: {why}"
            ));
        }
        if read.version < max_before(&acked_only, read.invoked) {
            summary.reads_behind_other_handles += 1;
        }
    }
    // (4) followers.
    let mut per_follower: BTreeMap<usize, Vec<&FollowObs>> = BTreeMap::new();
    for follow in &follows {
        per_follower.entry(follow.handle).or_default().push(follow);
        if !state_ok(follow.version, follow.hash, follow.len) {
            violate(format!("(4) {follow:?} does not hold the model's state"));
        }
        if let Some(why) = future(follow.version, follow.returned) {
            violate(format!(
                "(4) {follow:?} shows a version not yet invoked: {why}"
            ));
        }
    }
    for (handle, list) in &per_follower {
        for pair in list.windows(2) {
            if pair[1].version <= pair[0].version {
                violate(format!(
                    "(4) follower {handle} saw version {} after {}",
                    pair[1].version, pair[0].version
                ));
            }
        }
    }
    // (5) history reads.
    for op in &histories {
        let Ok(entries) = &op.result else { continue };
        let limited = run.depth != usize::MAX;
        let start = match entries.first() {
            // Older entries may have been trimmed.
            Some(first) if limited && first.version > op.from => first.version,
            _ => op.from,
        };
        for (expected, entry) in (start..).zip(entries) {
            if entry.version != expected {
                violate(format!(
                    "(5) history({}, {}) returned version {} where {expected} was expected",
                    op.from, op.to, entry.version
                ));
                break;
            }
            match final_history.get((entry.version - 1) as usize) {
                Some(kept) if kept == entry => {}
                other => violate(format!(
                    "(5) history read {entry:?} differs from the final history {other:?}"
                )),
            }
            if let Some(why) = future(entry.version, op.returned) {
                violate(format!(
                    "(5) history read shows version {} too early: {why}",
                    entry.version
                ));
            }
        }
        let newest = entries
            .last()
            .map_or(op.from.saturating_sub(1), |entry| entry.version);
        let known = max_before(&global, op.invoked).min(op.to);
        if known >= op.from && newest < known && !(limited && entries.is_empty()) {
            violate(format!(
                "(5) history({}, {}) by handle {} ended at {newest} although version {known} existed before it was invoked",
                op.from, op.to, op.handle
            ));
        }
    }

    // Settled decisions stay settled: one resolved None (or failed definitely) can never commit,
    // one resolved Some(v) reports v when sent again.
    for (decision, answer) in resolved.iter().take(20) {
        let result = tokio::time::timeout(
            Duration::from_secs(20),
            send_commit(&checker, *decision, checker.snapshot().version(), &[1], 99),
        )
        .await
        .expect("a re-send answered");
        match (answer, &result) {
            (None, Err(error)) if classify(error) == Outcome::Fenced => {}
            (Some(version), Ok(committed)) if committed.version == *version => {}
            _ => violate(format!(
                "(resolve) decision {decision:#x} resolved {answer:?}, sent again: {result:?}"
            )),
        }
    }
    if checker.snapshot().version() != n {
        violate(format!(
            "(resolve) sending settled decisions again changed the memory: {n} -> {} versions",
            checker.snapshot().version()
        ));
    }

    // (4) every follower ends at the final version.
    run.target.store(n, Ordering::SeqCst);
    for (index, follower) in run.followers.into_iter().enumerate() {
        let last = tokio::time::timeout(Duration::from_secs(20), follower)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "(4) follower {index} stuck at {} waiting for {n}",
                    run.handles[index].snapshot().version()
                )
            })
            .expect("a follower panicked");
        if last != n {
            violate(format!("(4) follower {index} ended at {last}, not {n}"));
        }
        let snapshot = run.handles[index].snapshot();
        if !state_ok(
            snapshot.version(),
            hash_ops(&snapshot.ops),
            snapshot.ops.len(),
        ) {
            violate(format!(
                "(4) handle {index} ended on a state that is not the model's"
            ));
        }
    }
    let follow_errors = recorder.follow_errors.lock().unwrap().clone();
    for error in follow_errors.iter().take(5) {
        violate(format!("(4) {error}"));
    }
    for (index, memory) in run.handles.iter().enumerate() {
        let mine: Vec<&CommitOp> = commits.iter().filter(|op| op.handle == index).collect();
        let count = |kind: fn(&Outcome) -> bool| mine.iter().filter(|op| kind(&op.outcome)).count();
        let history_errors = histories
            .iter()
            .filter(|op| op.handle == index && op.result.is_err())
            .count();
        eprintln!(
            "handle {index}: {:?}; ok {} unknown {} failed {} slowest {} ms; history errors {history_errors}",
            memory.stats(),
            count(|outcome| matches!(outcome, Outcome::Ok { .. })),
            count(|outcome| matches!(outcome, Outcome::Unknown)),
            count(|outcome| matches!(outcome, Outcome::Failed(_) | Outcome::Fenced | Outcome::Impossible(_))),
            mine.iter().map(|op| op.took_ms).max().unwrap_or(0),
        );
    }
    eprintln!("seed {}: {summary:?}", run.seed);
    assert!(
        violations.is_empty(),
        "seed {}: {} violation(s):\n{}",
        run.seed,
        violations.len(),
        violations.join("\n")
    );
    summary
}

/// Reads every revision of `head` and `history/` from etcd (a watch from revision 1; nothing is
/// compacted in these tests), checks they form one chain (each head put names the version after
/// the previous one and the previous decision; each version's entry is put once, with its head,
/// and deleted only by the commit that pushes it out of the `depth` window) and returns the whole
/// history: every version's entry, trimmed or not (from the head when the depth is 0).
async fn check_raw_chain(
    checker: &LogMemory,
    depth: usize,
    violate: &mut impl FnMut(String),
) -> Vec<Entry> {
    let prefix = checker.config().prefix().to_string();
    let head_key = format!("{prefix}head");
    let history_prefix = format!("{prefix}history/");
    let mut end = history_prefix.clone().into_bytes();
    *end.last_mut().unwrap() += 1;
    let mut client = checker.client().clone();
    let current = client
        .get(head_key.clone(), None)
        .await
        .expect("read head")
        .kvs()
        .first()
        .expect("a head")
        .mod_revision();
    let mut watch = client
        .watch_client()
        .max_decoding_message_size(usize::MAX)
        .watch(
            head_key.clone(),
            Some(WatchOptions::new().with_range(end).with_start_revision(1)),
        )
        .await
        .expect("watch");
    #[derive(Deserialize)]
    struct RawHead {
        version: u64,
        decision: String,
        #[serde(default)]
        previous: Option<String>,
        #[serde(default)]
        entry: Option<hivekit_etcd::HistoryEntry<u64>>,
    }
    let mut heads: Vec<(i64, RawHead)> = Vec::new();
    // Per version: the revisions its entry was put at, and the entry first put.
    let mut puts: BTreeMap<u64, (Vec<i64>, hivekit_etcd::HistoryEntry<u64>)> = BTreeMap::new();
    let mut deletes: Vec<(i64, String)> = Vec::new();
    let collected = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let Some(response) = watch.message().await.expect("watch message") else {
                panic!("the watch ended");
            };
            let mut done = false;
            for event in response.events() {
                let Some(pair) = event.kv() else { continue };
                let key = String::from_utf8_lossy(pair.key()).into_owned();
                if event.event_type() != EventType::Put {
                    deletes.push((pair.mod_revision(), key));
                    continue;
                }
                if key == head_key {
                    let head: RawHead = serde_json::from_slice(pair.value()).expect("a head");
                    heads.push((pair.mod_revision(), head));
                    if pair.mod_revision() >= current {
                        done = true;
                    }
                } else {
                    let entry: hivekit_etcd::HistoryEntry<u64> =
                        serde_json::from_slice(pair.value()).expect("an entry");
                    let slot = puts
                        .entry(entry.version)
                        .or_insert_with(|| (Vec::new(), entry.clone()));
                    slot.0.push(pair.mod_revision());
                }
            }
            if done {
                break;
            }
        }
    })
    .await;
    assert!(
        collected.is_ok(),
        "reading etcd's revisions of the chain took too long"
    );
    let mut history = Vec::new();
    let mut head_revision: HashMap<u64, i64> = HashMap::new();
    for (index, (revision, head)) in heads.iter().enumerate() {
        if head.version != index as u64 {
            violate(format!(
                "(1) head put #{index} (revision {revision}) says version {}",
                head.version
            ));
            break;
        }
        head_revision.insert(head.version, *revision);
        if index == 0 {
            continue;
        }
        let previous = &heads[index - 1].1.decision;
        if head.previous.as_deref() != Some(previous.as_str()) {
            violate(format!(
                "(3) head of version {} names previous {:?}, the version before was {previous}",
                head.version, head.previous
            ));
        }
        let entry = if depth == 0 {
            head.entry.clone()
        } else {
            match puts.get(&head.version) {
                Some((revisions, entry)) if revisions[..] == [*revision] => Some(entry.clone()),
                other => {
                    violate(format!(
                        "(1) the entry of version {} was put at revisions {:?}, its head at {revision}",
                        head.version,
                        other.map(|(revisions, _)| revisions)
                    ));
                    other.map(|(_, entry)| entry.clone())
                }
            }
        };
        let Some(entry) = entry else {
            violate(format!("(1) no entry for version {}", head.version));
            break;
        };
        if entry.decision_id != head.decision || entry.version != head.version {
            violate(format!(
                "(1) head of version {} names {} but its entry is {entry:?}",
                head.version, head.decision
            ));
        }
        history.extend(to_entries(vec![entry]));
    }
    if depth == 0 && !puts.is_empty() {
        violate(format!(
            "(1) a depth-0 memory stored {} history entries",
            puts.len()
        ));
    }
    for (revision, key) in &deletes {
        // Only a history entry, deleted by the commit of the version `depth` later.
        let version = key
            .strip_prefix(&history_prefix)
            .and_then(|digits| digits.parse::<u64>().ok());
        let by = version.and_then(|version| version.checked_add(depth as u64));
        if by.and_then(|by| head_revision.get(&by)) != Some(revision) {
            violate(format!(
                "(1) {key} deleted at revision {revision}, not by the commit {depth} versions later"
            ));
        }
    }
    history
}

/// The index of the Raft leader, asked again for a while when no member says it leads (an election
/// under load).
async fn find_leader(cluster: &EtcdCluster) -> usize {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        for (index, endpoint) in cluster.endpoints().iter().enumerate() {
            let Ok(mut client) = EtcdConfig::new([endpoint.clone()], "/probe")
                .connect_timeout(Duration::from_secs(1))
                .connect()
                .await
            else {
                continue;
            };
            let Ok(Ok(status)) =
                tokio::time::timeout(Duration::from_secs(1), client.status()).await
            else {
                continue;
            };
            if status
                .header()
                .is_some_and(|header| header.member_id() == status.leader())
            {
                return index;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the cluster has no leader"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn cluster() -> EtcdCluster {
    EtcdCluster::start(3).unwrap_or_else(|error| panic!("{error}"))
}

fn pause(duration: Duration) -> impl std::future::Future<Output = ()> {
    tokio::time::sleep(duration)
}

// ---------------------------------------------------------------------------------------------
// The cases.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_handles_on_one_etcd_agree_with_the_sequential_model() {
    let server = support::etcd();
    let endpoint = vec![server.endpoint()];
    let run = start(
        "model-single",
        vec![endpoint; 6],
        Plan {
            commit_timeout: Duration::from_secs(10),
            depth: usize::MAX,
            mix: [35, 15, 5, 30],
        },
    )
    .await;
    pause(Duration::from_secs(5)).await;
    let summary = finish(run).await;
    assert!(summary.acked > 20, "the run committed: {summary:?}");
    drop(server);
}

/// A depth of 0: no history keys, the head carries each version's entry to the followers, and a
/// commit that loses catches up through the head or by reloading the state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_handles_with_no_history_kept_agree_with_the_sequential_model() {
    let server = support::etcd();
    let endpoint = vec![server.endpoint()];
    let run = start(
        "model-depth-zero",
        vec![endpoint; 4],
        Plan {
            commit_timeout: Duration::from_secs(10),
            depth: 0,
            mix: [40, 15, 5, 25],
        },
    )
    .await;
    pause(Duration::from_secs(3)).await;
    let summary = finish(run).await;
    assert!(summary.acked > 10, "the run committed: {summary:?}");
    drop(server);
}

/// Which member to hurt.
#[derive(Clone, Copy, Debug)]
enum Victim {
    Follower,
    Leader,
}

async fn cluster_case(name: &str, victim: Victim, depth: usize) {
    let mut cluster = cluster();
    let endpoints = cluster.endpoints();
    let leader = find_leader(&cluster).await;
    let target = match victim {
        Victim::Leader => leader,
        Victim::Follower => (leader + 1) % 3,
    };
    let other = (0..3)
        .find(|index| *index != target && *index != leader)
        .unwrap();
    // Two handles on every member, one pinned to the victim, one to each other member, and a
    // watcher on every member.
    let sets = vec![
        endpoints.clone(),
        vec![endpoints[target].clone()],
        vec![endpoints[leader].clone()],
        vec![endpoints[other].clone()],
        endpoints.clone(),
    ];
    let run = start(
        name,
        sets,
        Plan {
            commit_timeout: Duration::from_millis(2500),
            depth,
            mix: [35, 15, 5, 30],
        },
    )
    .await;
    pause(Duration::from_millis(2000)).await;
    eprintln!("{name}: killing member {target} ({victim:?})");
    tokio::task::block_in_place(|| cluster.member_mut(target).unwrap().kill());
    pause(Duration::from_millis(2500)).await;
    tokio::task::block_in_place(|| {
        cluster
            .member_mut(target)
            .unwrap()
            .restart()
            .unwrap_or_else(|error| panic!("{error}"))
    });
    eprintln!("{name}: member {target} restarted");
    pause(Duration::from_millis(1500)).await;
    if let Victim::Follower = victim {
        // Freeze a member that is not the leader now: commits of the handle pinned to it are sent
        // and never answered (outcome unknown), and may land when it thaws.
        let leader_now = find_leader(&cluster).await;
        let frozen = if target != leader_now {
            target
        } else {
            (0..3).find(|index| *index != leader_now).unwrap()
        };
        eprintln!("{name}: freezing member {frozen}");
        tokio::task::block_in_place(|| cluster.members()[frozen].freeze());
        pause(Duration::from_millis(3500)).await;
        cluster.members()[frozen].thaw();
        pause(Duration::from_millis(1000)).await;
    }
    let summary = finish(run).await;
    assert!(summary.acked > 10, "the run committed: {summary:?}");
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_member_killed_restarted_then_frozen_loses_no_acknowledged_commit() {
    cluster_case("model-follower-killed", Victim::Follower, usize::MAX).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_killed_and_restarted_mid_run_loses_no_acknowledged_commit() {
    // A short history: handles that fall behind (the one pinned to the killed member) reload.
    cluster_case("model-leader-killed", Victim::Leader, 8).await;
}
