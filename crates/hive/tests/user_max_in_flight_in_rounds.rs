//! `max_in_flight` counted inside the agents, per round: rounds decided from several tasks at
//! once while agents (light and batch voters) join and leave, with versions unique and
//! contiguous and every accepted change applied once; single rounds of light, heavy and batch
//! voters; calls that time out. A ballot that settles ends its calls still running before others
//! start in their slots (they used to run on until their next wake-up, past the limit).
//!
//! A heavy call the round stops (its ballot settled, its deadline passed) has its task aborted,
//! which stops at its next await: until the runtime has run the abort it may overlap the call
//! started in its slot (documented on `HiveBuilder::max_in_flight`), so heavy rounds are allowed
//! one call more than the limit here; light calls are dropped in place and held to it exactly.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, Contest, Hive, ProposalOf, ResourceCost, Snapshot, Vote,
};
use parking_lot::Mutex;
use support::{preferred, Add, Ledger};

#[derive(Default)]
struct PerRound {
    counts: Mutex<HashMap<u64, (usize, usize)>>,
}

impl PerRound {
    fn enter(&self, round: u64) {
        let mut counts = self.counts.lock();
        let entry = counts.entry(round).or_default();
        entry.0 += 1;
        entry.1 = entry.1.max(entry.0);
    }
    fn leave(&self, round: u64) {
        self.counts.lock().get_mut(&round).unwrap().0 -= 1;
    }
}

struct Worker {
    per_round: Arc<PerRound>,
    heavy: bool,
    batch: bool,
    key: u64,
    pause_us: u64,
}

impl Worker {
    async fn busy(&self, round: u64) {
        self.per_round.enter(round);
        struct Out<'a>(&'a PerRound, u64);
        impl Drop for Out<'_> {
            fn drop(&mut self) {
                self.0.leave(self.1);
            }
        }
        let _out = Out(&self.per_round, round);
        tokio::time::sleep(Duration::from_micros(self.pause_us)).await;
    }
}

impl Agent<Ledger> for Worker {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
    ) -> Result<Option<ProposalOf<Ledger>>, AgentError> {
        self.busy(ctx.round()).await;
        Ok(Some(
            ctx.proposal(Add {
                id: ctx.proposal_id(),
                key: self.key,
                delta: 1,
            })
            .writes([self.key]),
        ))
    }

    async fn vote(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
        contest: &Contest<Ledger>,
    ) -> Result<Vote, AgentError> {
        self.busy(ctx.round()).await;
        Ok(preferred(contest))
    }

    async fn vote_all(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
        contests: &[&Contest<Ledger>],
    ) -> Result<Vec<Vote>, AgentError> {
        self.busy(ctx.round()).await;
        Ok(contests.iter().map(|contest| preferred(contest)).collect())
    }

    fn batch_votes(&self) -> bool {
        self.batch
    }

    fn cost(&self) -> ResourceCost {
        support::cost(self.heavy)
    }
}

fn worker(per_round: &Arc<PerRound>, i: u64) -> Worker {
    Worker {
        per_round: per_round.clone(),
        // Light: heavy calls stop asynchronously when the round ends them (see the module doc).
        heavy: false,
        batch: i % 4 == 1,
        key: i % 5,
        pause_us: 100 + (i * 53) % 500,
    }
}

async fn scenario(limit: usize, tasks: usize, rounds_per_task: usize) {
    let hive = Arc::new(
        Hive::builder(Ledger::default())
            .history(1024)
            .max_in_flight(NonZeroUsize::new(limit).unwrap())
            .build()
            .unwrap(),
    );
    let per_round = Arc::new(PerRound::default());
    for i in 0..12 {
        hive.spawn(worker(&per_round, i));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let hive = hive.clone();
        let per_round = per_round.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut i = 100u64;
            while !stop.load(Ordering::SeqCst) {
                let id = hive.spawn(worker(&per_round, i));
                i += 1;
                tokio::time::sleep(Duration::from_micros(300)).await;
                let agents = hive.agents();
                if agents.len() > 8 {
                    hive.remove(agents[(i as usize * 7) % agents.len()]);
                }
                if i % 3 == 0 {
                    hive.remove(id);
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let runners: Vec<_> = (0..tasks)
        .map(|_| {
            let hive = hive.clone();
            tokio::spawn(async move {
                let mut decisions = Vec::new();
                for _ in 0..rounds_per_task {
                    decisions.push(hive.decide().await.expect("a round"));
                }
                decisions
            })
        })
        .collect();
    let mut decisions = Vec::new();
    for runner in runners {
        decisions.extend(
            tokio::time::timeout(Duration::from_secs(20), runner)
                .await
                .expect("rounds end")
                .expect("no panic"),
        );
    }
    stop.store(true, Ordering::SeqCst);
    churn.await.unwrap();

    let label = format!("limit {limit}");
    // Round numbers unique.
    let numbers: BTreeSet<u64> = decisions.iter().map(|d| d.round).collect();
    assert_eq!(
        numbers.len(),
        decisions.len(),
        "{label}: round numbers unique"
    );
    // Versions of the rounds that committed: unique and contiguous up to the memory's version.
    let committing: Vec<_> = decisions
        .iter()
        .filter(|d| !d.accepted.is_empty())
        .collect();
    let versions: BTreeSet<u64> = committing.iter().map(|d| d.version).collect();
    assert_eq!(versions.len(), committing.len(), "{label}: versions unique");
    let state = hive.memory().load();
    assert_eq!(
        versions,
        (1..=state.version()).collect::<BTreeSet<u64>>(),
        "{label}: versions contiguous"
    );
    // Every accepted change applied exactly once.
    let accepted: Vec<_> = decisions
        .iter()
        .flat_map(|d| d.accepted.iter().copied())
        .collect();
    let accepted_set: BTreeSet<_> = accepted.iter().copied().collect();
    assert_eq!(
        accepted_set.len(),
        accepted.len(),
        "{label}: no proposal accepted twice"
    );
    let logged: BTreeSet<_> = state.log.iter().copied().collect();
    assert_eq!(
        logged.len(),
        state.log.len(),
        "{label}: no change applied twice"
    );
    assert_eq!(
        logged, accepted_set,
        "{label}: applied changes are the accepted ones"
    );
    let total: i64 = state.counters.values().sum();
    assert_eq!(total, accepted.len() as i64, "{label}: counters");
    // One accepted change per key per round (all on one key conflict).
    for d in &decisions {
        let keys: BTreeMap<u64, usize> = d
            .accepted
            .iter()
            .map(|id| {
                d.proposers
                    .iter()
                    .position(|(p, _)| p == id)
                    .map(|_| 0u64)
                    .unwrap_or(1)
            })
            .fold(BTreeMap::new(), |mut m, k| {
                *m.entry(k).or_default() += 1;
                m
            });
        assert!(
            !keys.contains_key(&1),
            "{label}: round {} accepted an unknown proposer",
            d.round
        );
    }
    // max_in_flight within each round.
    let over: Vec<_> = per_round
        .counts
        .lock()
        .iter()
        .filter(|(_, &(_, peak))| peak > limit)
        .map(|(round, &(_, peak))| (*round, peak))
        .collect();
    assert!(
        over.is_empty(),
        "{label}: rounds over the limit (round, peak): {over:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_rounds_with_churn_limit_1() {
    scenario(1, 4, 6).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_rounds_with_churn_limit_3() {
    scenario(3, 4, 8).await;
}

#[test]
fn concurrent_rounds_from_execute_threads() {
    let hive = Arc::new(
        Hive::builder(Ledger::default())
            .history(1024)
            .max_in_flight(NonZeroUsize::new(2).unwrap())
            .build()
            .unwrap(),
    );
    let per_round = Arc::new(PerRound::default());
    for i in 0..10 {
        hive.spawn(worker(&per_round, i));
    }
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let hive = hive.clone();
            std::thread::spawn(move || {
                (0..6)
                    .map(|_| hivekit_runtime::execute(hive.decide()).expect("a round"))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let decisions: Vec<_> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let versions: BTreeSet<u64> = decisions.iter().map(|d| d.version).collect();
    assert_eq!(versions, (1..=18).collect());
    let state = hive.memory().load();
    assert_eq!(
        state.log.len(),
        decisions.iter().map(|d| d.accepted.len()).sum::<usize>()
    );
    let over: Vec<_> = per_round
        .counts
        .lock()
        .iter()
        .filter(|(_, &(_, peak))| peak > 2)
        .map(|(round, &(_, peak))| (*round, peak))
        .collect();
    assert!(
        over.is_empty(),
        "rounds over the limit (round, peak): {over:?}"
    );
}

/// One round, nothing else going on: 10 agents, `heavy`/`batch` chosen per agent by `kind`.
async fn single_round_peak(limit: usize, kind: fn(u64) -> (bool, bool)) -> usize {
    single_round_peak_keys(limit, kind, 5).await
}

async fn single_round_peak_keys(limit: usize, kind: fn(u64) -> (bool, bool), keys: u64) -> usize {
    let hive = Hive::builder(Ledger::default())
        .max_in_flight(NonZeroUsize::new(limit).unwrap())
        .build()
        .unwrap();
    let per_round = Arc::new(PerRound::default());
    for i in 0..10 {
        let (heavy, batch) = kind(i);
        hive.spawn(Worker {
            per_round: per_round.clone(),
            heavy,
            batch,
            key: i % keys,
            pause_us: 300,
        });
    }
    let decision = hive.decide().await.expect("a round");
    assert!(decision.failures.is_empty());
    let peak = per_round.counts.lock()[&decision.round].1;
    peak
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_round_of_light_agents_keeps_max_in_flight() {
    let peak = single_round_peak(2, |_| (false, false)).await;
    assert!(peak <= 2, "max_in_flight 2, {peak} calls at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_round_of_heavy_agents_keeps_max_in_flight() {
    let peak = single_round_peak(2, |_| (true, false)).await;
    assert!(
        peak <= 3,
        "max_in_flight 2 (and an aborted heavy call), {peak} calls at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_round_of_batch_voters_keeps_max_in_flight() {
    let peak = single_round_peak(2, |_| (false, true)).await;
    assert!(peak <= 2, "max_in_flight 2, {peak} calls at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_round_of_heavy_batch_voters_keeps_max_in_flight() {
    let peak = single_round_peak(2, |_| (true, true)).await;
    assert!(
        peak <= 3,
        "max_in_flight 2 (and an aborted heavy call), {peak} calls at once"
    );
}

/// No conflicts: only `propose` calls run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_round_of_light_proposers_without_contests_keeps_max_in_flight() {
    let peak = single_round_peak_keys(2, |_| (false, false), 1000).await;
    assert!(peak <= 2, "max_in_flight 2, {peak} calls at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_round_of_heavy_proposers_without_contests_keeps_max_in_flight() {
    let peak = single_round_peak_keys(2, |_| (true, false), 1000).await;
    assert!(peak <= 2, "max_in_flight 2, {peak} calls at once");
}

/// Agents that overrun `agent_timeout`: a timed-out call is over (dropped) before its slot goes
/// to the next call, in both phases.
async fn timed_out_peak(heavy: bool, contested: bool) -> (usize, usize) {
    let hive = Hive::builder(Ledger::default())
        .max_in_flight(NonZeroUsize::new(2).unwrap())
        .agent_timeout(Duration::from_millis(5))
        .build()
        .unwrap();
    let per_round = Arc::new(PerRound::default());
    for i in 0..8u64 {
        hive.spawn(Worker {
            per_round: per_round.clone(),
            heavy,
            batch: false,
            key: if contested { i % 2 } else { i },
            // Odd agents overrun the timeout.
            pause_us: if i % 2 == 1 { 40_000 } else { 200 },
        });
    }
    let decision = tokio::time::timeout(Duration::from_secs(5), hive.decide())
        .await
        .expect("the round ends")
        .expect("a round");
    let peak = per_round.counts.lock()[&decision.round].1;
    (peak, decision.failures.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timed_out_light_proposers_free_their_slot_only_when_dropped() {
    let (peak, failures) = timed_out_peak(false, false).await;
    assert!(failures >= 4, "{failures} failures");
    assert!(peak <= 2, "max_in_flight 2, {peak} calls at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timed_out_heavy_proposers_free_their_slot_only_when_dropped() {
    let (peak, failures) = timed_out_peak(true, false).await;
    assert!(failures >= 4, "{failures} failures");
    assert!(
        peak <= 3,
        "max_in_flight 2 (and an aborted heavy call), {peak} calls at once"
    );
}

/// Proposes at once (two proposals on one key: a contest); votes slowly when `hang`.
struct HangVoter {
    per_round: Arc<PerRound>,
    hang: bool,
    proposes: bool,
}

impl Agent<Ledger> for HangVoter {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
    ) -> Result<Option<ProposalOf<Ledger>>, AgentError> {
        if !self.proposes {
            return Ok(None);
        }
        Ok(Some(
            ctx.proposal(Add {
                id: ctx.proposal_id(),
                key: 0,
                delta: 1,
            })
            .writes([0]),
        ))
    }

    async fn vote(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
        contest: &Contest<Ledger>,
    ) -> Result<Vote, AgentError> {
        let round = ctx.round();
        self.per_round.enter(round);
        struct Out<'a>(&'a PerRound, u64);
        impl Drop for Out<'_> {
            fn drop(&mut self) {
                self.0.leave(self.1);
            }
        }
        let _out = Out(&self.per_round, round);
        let pause = if self.hang { 40_000 } else { 300 };
        tokio::time::sleep(Duration::from_micros(pause)).await;
        Ok(preferred(contest))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timed_out_voters_free_their_slot_only_when_dropped() {
    let hive = Hive::builder(Ledger::default())
        .max_in_flight(NonZeroUsize::new(2).unwrap())
        .agent_timeout(Duration::from_millis(5))
        .build()
        .unwrap();
    let per_round = Arc::new(PerRound::default());
    for i in 0..8u64 {
        hive.spawn(HangVoter {
            per_round: per_round.clone(),
            hang: i % 2 == 1,
            proposes: i < 2,
        });
    }
    let decision = tokio::time::timeout(Duration::from_secs(5), hive.decide())
        .await
        .expect("the round ends")
        .expect("a round");
    let peak = per_round.counts.lock()[&decision.round].1;
    assert!(!decision.failures.is_empty(), "some voters timed out");
    assert!(
        peak <= 2,
        "max_in_flight 2, {peak} vote calls at once; failures {:?}",
        decision.failures.len()
    );
}
