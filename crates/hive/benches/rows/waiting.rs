//! `waiting_agents`: rounds whose agents really wait, as LLM or service calls do, on real timers.
//!
//! Each agent proposes after 10-100 ms and votes after 5-20 ms (fixed per agent); the first
//! `2 x pairs` agents propose in contested pairs, the others on keys of their own, and every agent
//! votes on every pair (`agents x pairs` vote calls; `hivekit-batch`: one `vote_all` call per agent,
//! waiting once). The floor is the slowest proposal plus the slowest vote: what the round would
//! take with no coordination cost at all. Besides criterion's time per round, each row records
//! `above_floor_ms` (median of a few rounds, minus the floor) and `us_per_call` (that excess per
//! vote call) in the extras, and the signals that stay stable when the machine is loaded (the time
//! above the floor does not): `cpu_ms_per_round` (CPU time of every thread of the process, per
//! round), `allocs_per_round`, and `votes_per_round` (answers counted; the calls that a ballot's
//! early settlement saved are not). No peer: the floor is the reference.

use std::hint::black_box;
use std::time::{Duration, Instant};

use benches_common::{record_extra, AllocationStats, BenchKey};
use criterion::{BenchmarkId, Criterion, Throughput};
use hivekit_hive::{
    Agent, AgentContext, AgentError, Contest, Hive, ProposalOf, Snapshot, State, Vote,
};
use hivekit_runtime::execute;

/// A counter per round; the cost is in the waiting.
#[derive(Debug, Clone, Default)]
struct Tally(u64);

impl State for Tally {
    type Key = u64;
    type Change = u64;

    fn apply(&mut self, change: &u64) {
        self.0 = self.0.wrapping_add(*change);
    }
}

/// An agent that waits on a real timer before each answer.
struct Waiter {
    key: u64,
    propose_after: Duration,
    vote_after: Duration,
    batch: bool,
}

impl Agent<Tally> for Waiter {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Tally>,
    ) -> Result<Option<ProposalOf<Tally>>, AgentError> {
        tokio::time::sleep(self.propose_after).await;
        Ok(Some(ctx.proposal(1).writes([self.key])))
    }

    async fn vote(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Tally>,
        contest: &Contest<Tally>,
    ) -> Result<Vote, AgentError> {
        tokio::time::sleep(self.vote_after).await;
        Ok(contest.preferred().map_or(Vote::Abstain, Vote::For))
    }

    fn batch_votes(&self) -> bool {
        self.batch
    }

    async fn vote_all(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Tally>,
        contests: &[&Contest<Tally>],
    ) -> Result<Vec<Vote>, AgentError> {
        tokio::time::sleep(self.vote_after).await;
        Ok(contests
            .iter()
            .map(|contest| contest.preferred().map_or(Vote::Abstain, Vote::For))
            .collect())
    }
}

/// A fixed pseudo-random number for `index` (splitmix64).
fn mix(index: u64) -> u64 {
    let mut z = index.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The hive of one row and its floor.
fn waiting_hive(agents: usize, pairs: usize, batch: bool) -> (Hive<Tally>, Duration) {
    let hive = Hive::new(Tally::default());
    let (mut slowest_proposal, mut slowest_vote) = (Duration::ZERO, Duration::ZERO);
    for index in 0..agents {
        let seed = mix(index as u64);
        let propose_after = Duration::from_millis(10 + seed % 91);
        let vote_after = Duration::from_millis(5 + (seed >> 32) % 16);
        slowest_proposal = slowest_proposal.max(propose_after);
        slowest_vote = slowest_vote.max(vote_after);
        let key = if index < 2 * pairs {
            (index / 2) as u64
        } else {
            1_000_000 + index as u64
        };
        hive.spawn(Waiter {
            key,
            propose_after,
            vote_after,
            batch,
        });
    }
    (hive, slowest_proposal + slowest_vote)
}

/// CPU time spent so far by the threads of this process that are still running (the runtime's
/// workers among them), from `/proc/self/task/*/schedstat` (nanoseconds); zero where that is not
/// readable.
fn process_cpu() -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    let nanos: u64 = tasks
        .filter_map(|task| {
            let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
            stat.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum();
    Duration::from_nanos(nanos)
}

pub(crate) fn waiting_agents(c: &mut Criterion) {
    let mut group = c.benchmark_group("waiting_agents");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    group.warm_up_time(Duration::from_millis(500));
    let rows: [(&str, usize, usize); 4] = [
        ("hivekit", 1_000, 10),
        ("hivekit", 300, 100),
        ("hivekit", 1_000, 100),
        ("hivekit-batch", 1_000, 100),
    ];
    for (function, agents, pairs) in rows {
        let batch = function == "hivekit-batch";
        let parameter = format!("{agents}x{pairs}");
        let calls = if batch { agents } else { agents * pairs };
        group.throughput(Throughput::Elements(calls as u64));
        let (hive, floor) = waiting_hive(agents, pairs, batch);
        // Time above the floor, measured apart from criterion's samples: the median of five rounds.
        let (cpu_before, mut votes) = (process_cpu(), 0);
        let mut rounds: Vec<Duration> = (0..5)
            .map(|_| {
                let start = Instant::now();
                let decision = execute(hive.decide()).expect("a round");
                let elapsed = start.elapsed();
                assert_eq!(decision.ballots.len(), pairs, "every pair is contested");
                votes += decision
                    .ballots
                    .iter()
                    .map(|ballot| ballot.votes)
                    .sum::<usize>();
                elapsed
            })
            .collect();
        let cpu_per_round = process_cpu().saturating_sub(cpu_before) / 5;
        let allocations = AllocationStats::measure(1, || execute(hive.decide()).expect("a round"));
        rounds.sort();
        let above = rounds[2].as_secs_f64() - floor.as_secs_f64();
        let key = BenchKey::from(("waiting_agents", function, &parameter));
        record_extra(&key, "floor_ms", floor.as_secs_f64() * 1e3);
        record_extra(&key, "above_floor_ms", above * 1e3);
        record_extra(&key, "us_per_call", above * 1e6 / calls as f64);
        record_extra(&key, "cpu_ms_per_round", cpu_per_round.as_secs_f64() * 1e3);
        record_extra(&key, "allocs_per_round", allocations.allocations_per_op);
        record_extra(&key, "votes_per_round", votes as f64 / 5.0);
        eprintln!(
            "waiting_agents/{function}/{parameter}: floor {floor:.1?}, median round {:.1?}, {:.1} ms above the floor ({:.2} us per call); per round: {:.1?} CPU, {:.0} allocations, {} votes",
            rounds[2],
            above * 1e3,
            above * 1e6 / calls as f64,
            cpu_per_round,
            allocations.allocations_per_op,
            votes / 5,
        );
        group.bench_with_input(BenchmarkId::new(function, &parameter), &calls, |b, _| {
            b.iter(|| black_box(execute(hive.decide()).expect("a round")))
        });
    }
    group.finish();
}
