//! The hive suite: what a round of consensus costs, from spawning agents to committing a decision,
//! beside a straightforward implementation of the same work and two actor frameworks.
//!
//! - `consensus_latency`: one `decide` round over N agents. `hivekit`: every proposal independent;
//!   `hivekit-conflicts`: 10% of the proposals conflict in pairs, so every agent votes on each pair;
//!   `baseline`: the same conflicting input, done the straightforward way; `kameo`, `ractor`: the
//!   propose phase only (every agent actor asked for its proposal, the replies gathered).
//!   `hivekit-one-thread` (1k agents and up): the `hivekit` round on a current-thread runtime, which
//!   never splits a round over workers: not a peer, the measure of what the split gains or costs.
//! - `agent_spawning`: adding N agents to a hive vs spawning a tokio task (with its channel) per
//!   agent, or an actor per agent.
//! - `conflict_resolution`: a round where every proposal is contested (groups of five), settled by
//!   vote (`hivekit`), by priority (`hivekit-priority`) or by the baseline.
//! - `configuration_analysis`: the pack-resolution workload of the `resolve_packs` example (one
//!   resolver agent per requirement, conflicts on pack versions and namespaces settled by vote),
//!   hivekit vs the baseline over the same resolvers. The resolvers declare their interest (their
//!   pack and namespace keys); `hivekit-all-voters` wraps them so that every resolver is asked
//!   about every contest, as the baseline does (the design before interested voters). The agents are the example's own, from
//!   `examples/src/packs.rs`, included below by path (no dependency on the examples package).
//! - `parallel_agents`: CPU-bound agents declared heavy (a task each, spread over the workers) vs the
//!   same agents declared light (polled one after another by the round): shows the round uses every
//!   core.
//! - `memory_overhead`: bytes per idle agent (recorded as `bytes_per_agent`), hive vs
//!   task-per-agent vs actor-per-agent.
//! - `orchestration_throughput`: rounds per second on a 10-agent hive, one or four rounds at once.
//!   `harness-floor`: the same streams spawned and joined with no round in them (the time every
//!   row of the group pays for spawning its streams and waking the caller, not a peer).
//! - `waiting_agents`: rounds whose agents wait on real timers (see `rows/waiting.rs`): time above the
//!   floor of the slowest proposal plus the slowest vote, one call per vote or one batch per agent.
//! - `ballot_tally`: counting N votes: all of them (`hivekit`), stopping once settled
//!   (`hivekit-early`), or the baseline.
//!
//! Peers, each what a competent user would write first for the same work:
//!
//! - `baseline` (rounds: `consensus_latency`, `conflict_resolution`, `configuration_analysis`,
//!   `orchestration_throughput`): a spawned task per agent to propose, proposals grouped by key in a
//!   `HashMap`, a spawned task per agent returning its votes on every contest, one counting pass,
//!   the accepted payloads appended to a `Mutex<Vec>` state; written as a user would.
//! - `baseline` (`agent_spawning`, `memory_overhead`): a tokio task per agent waiting on its own
//!   bounded mpsc channel, the usual task-per-agent shape; written as a user would.
//! - `baseline` (`ballot_tally`): a `HashMap` from voter to choice (a later vote replaces an
//!   earlier one) presized to the electorate, then one counting pass; written as a user would.
//! - `kameo`, `ractor`: one actor per agent and a board actor owning the state, each written as the
//!   framework's documentation teaches (see `actors/mod.rs`).
//! - `sequential` (`parallel_agents`) is hivekit itself with the agents declared light, not a
//!   hand-written peer; `tokio-spawn` (`parallel_agents`) is the same work as bare tokio tasks
//!   spawned and joined from the caller's thread: the floor of handing work to the workers.
//!
//! Async work runs on the global hivekit runtime through `hivekit_runtime::execute`, the same for
//! hivekit, the baseline and the actor frameworks.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Arc, Mutex};

use benches_common::agents::{agent_set, contested_set, pack_set, vote_stream, AgentSpec};
use benches_common::workload::{spin, DEFAULT_SEED};
use benches_common::{iter_with_allocations, record_extra, sizes, AllocationStats, BenchKey};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use hivekit_hive::{
    Agent, AgentContext, AgentError, Contest, Electorate, Hive, Priority, Proposal, ProposalId,
    ResolutionStrategy, ResourceCost, Snapshot, State, Vote,
};
use hivekit_runtime::execute;

// The example's pack workload and its resolvers, shared with the instruction suite (in a folder,
// so that cargo does not take it for a bench target of its own).
#[path = "rows/packs.rs"]
mod packs;

use packs::example::{Lockfile, PackKey, Pin, Resolver};
use packs::pack_resolvers;

// The kameo and ractor peers, in a file of their own (a folder, so cargo does not take it for a
// bench target).
mod actors;
// Rounds whose agents wait on real timers: in a file of their own (in a folder, so that cargo does
// not take it for a bench target of its own).
#[path = "rows/waiting.rs"]
mod waiting;

benches_common::install_counting_allocator!();

// ---- the state and agents the benches use ----

/// A small state: a round's cost is the coordination, not the copy.
#[derive(Debug, Clone, Default)]
struct Board {
    commits: u64,
    checksum: u64,
}

impl State for Board {
    type Key = u64;
    type Change = u64;

    fn apply(&mut self, key: &u64) {
        self.commits += 1;
        self.checksum = self.checksum.wrapping_mul(31).wrapping_add(*key);
    }
}

fn priority(level: u8) -> Priority {
    Priority::ALL[usize::from(level.min(3))]
}

/// Proposes its spec's key; votes for the preferred candidate (loyal) or one picked by its seed.
struct SpecAgent {
    spec: AgentSpec,
    work: u64,
    heavy: bool,
}

impl SpecAgent {
    fn light(spec: &AgentSpec) -> Self {
        Self {
            spec: spec.clone(),
            work: 0,
            heavy: false,
        }
    }
}

/// The candidate `spec` votes for among (id, priority, payload) candidates.
fn seeded_choice<P>(spec: &AgentSpec, candidates: &[(u64, u8, P)]) -> u64 {
    if spec.loyal {
        // Highest priority, then lowest id: what `Contest::preferred` picks.
        candidates
            .iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
            .map_or(0, |candidate| candidate.0)
    } else {
        candidates[(spec.seed ^ candidates[0].0) as usize % candidates.len()].0
    }
}

impl Agent<Board> for SpecAgent {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _: &Snapshot<Board>,
    ) -> Result<Option<Proposal<u64, u64>>, AgentError> {
        if self.work > 0 {
            black_box(spin(self.work));
        }
        let spec = &self.spec;
        Ok(Some(
            Proposal::new(ProposalId(spec.proposal), spec.key)
                .writes([spec.key])
                .priority(priority(spec.priority)),
        ))
    }

    async fn vote(
        &self,
        _ctx: &AgentContext,
        _: &Snapshot<Board>,
        contest: &Contest<Board>,
    ) -> Result<Vote, AgentError> {
        if self.spec.loyal {
            return Ok(contest.preferred().map_or(Vote::Abstain, Vote::For));
        }
        let candidates = &contest.candidates;
        let pick = (self.spec.seed ^ candidates[0].id.0) as usize % candidates.len();
        Ok(Vote::For(candidates[pick].id))
    }

    fn cost(&self) -> ResourceCost {
        if self.heavy {
            ResourceCost::Heavy
        } else {
            ResourceCost::Light
        }
    }
}

fn hive_of(specs: &[AgentSpec], resolution: ResolutionStrategy) -> Hive<Board> {
    let hive = Hive::builder(Board::default())
        .resolution(resolution)
        .build()
        .expect("a valid configuration");
    for spec in specs {
        hive.spawn(SpecAgent::light(spec));
    }
    hive
}

// ---- the straightforward baseline ----

/// A baseline proposal: id, keys, priority, payload.
type PlainProposal<K, P> = (u64, Vec<K>, u8, P);

/// An agent as the baseline sees it: a proposal (id, keys, priority, payload) and a vote among
/// candidates (id, priority, payload).
trait PlainAgent: Send + Sync + 'static {
    type Key: Eq + std::hash::Hash + Send + Sync + 'static;
    type Payload: Clone + Send + Sync + 'static;

    fn propose(&self) -> Option<PlainProposal<Self::Key, Self::Payload>>;
    fn vote(&self, candidates: &[(u64, u8, Self::Payload)]) -> Option<u64>;
}

impl PlainAgent for AgentSpec {
    type Key = u64;
    type Payload = u64;

    fn propose(&self) -> Option<(u64, Vec<u64>, u8, u64)> {
        Some((self.proposal, vec![self.key], self.priority, self.key))
    }

    fn vote(&self, candidates: &[(u64, u8, u64)]) -> Option<u64> {
        Some(seeded_choice(self, candidates))
    }
}

/// One round done the straightforward way: a spawned task per agent to propose, the proposals
/// grouped by key in a `HashMap` (a proposal joins the group of the first earlier proposal it
/// shares a key with), a spawned task per agent that votes on every contest and returns its votes,
/// one counting pass, and the accepted payloads appended to the state under a lock.
async fn baseline_round<A: PlainAgent>(
    agents: &Arc<Vec<Arc<A>>>,
    state: &Mutex<Vec<A::Payload>>,
) -> usize {
    type Proposed<A> = (
        u64,
        Vec<<A as PlainAgent>::Key>,
        u8,
        <A as PlainAgent>::Payload,
    );
    let proposals: Vec<Proposed<A>> = {
        let handles: Vec<_> = agents
            .iter()
            .map(|agent| {
                let agent = Arc::clone(agent);
                tokio::spawn(async move { agent.propose() })
            })
            .collect();
        let mut proposals = Vec::with_capacity(handles.len());
        for handle in handles {
            proposals.extend(handle.await.expect("baseline proposer"));
        }
        proposals
    };
    // Group by key: the first proposal to write a key owns it; a later proposal sharing keys
    // joins the group of the earliest owner among them.
    let mut owner_of: HashMap<&A::Key, usize> = HashMap::with_capacity(proposals.len());
    let mut group_of = vec![usize::MAX; proposals.len()];
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (index, (_, keys, _, _)) in proposals.iter().enumerate() {
        let mut earliest: Option<usize> = None;
        for key in keys {
            let owner = *owner_of.entry(key).or_insert(index);
            if owner != index {
                earliest = Some(earliest.map_or(owner, |earliest| earliest.min(owner)));
            }
        }
        if let Some(owner) = earliest {
            if group_of[owner] == usize::MAX {
                group_of[owner] = groups.len();
                groups.push(vec![owner]);
            }
            group_of[index] = group_of[owner];
            groups[group_of[owner]].push(index);
        }
    }
    type Candidates<P> = Vec<Vec<(u64, u8, P)>>;
    let contests: Arc<Candidates<A::Payload>> = Arc::new(
        groups
            .iter()
            .map(|members| {
                members
                    .iter()
                    .map(|&member| {
                        let (id, _, priority, payload) = &proposals[member];
                        (*id, *priority, payload.clone())
                    })
                    .collect()
            })
            .collect(),
    );
    // votes[group]: the choices cast in that contest.
    let mut votes: Vec<Vec<u64>> = vec![Vec::with_capacity(agents.len()); groups.len()];
    if !contests.is_empty() {
        let handles: Vec<_> = agents
            .iter()
            .map(|agent| {
                let (agent, contests) = (Arc::clone(agent), Arc::clone(&contests));
                tokio::spawn(async move {
                    contests
                        .iter()
                        .map(|candidates| agent.vote(candidates))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for handle in handles {
            let ballot = handle.await.expect("baseline voter");
            for (group, choice) in ballot.into_iter().enumerate() {
                votes[group].extend(choice);
            }
        }
    }
    let mut rejected = vec![false; proposals.len()];
    for (members, choices) in groups.iter().zip(&votes) {
        let mut counts: HashMap<u64, usize> = HashMap::with_capacity(members.len());
        for choice in choices {
            *counts.entry(*choice).or_default() += 1;
        }
        let winner = counts
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map(|(winner, _)| *winner);
        for &member in members {
            if Some(proposals[member].0) != winner {
                rejected[member] = true;
            }
        }
    }
    let mut state = state.lock().expect("baseline state");
    let mut accepted = 0;
    for (proposal, rejected) in proposals.into_iter().zip(rejected) {
        if !rejected {
            state.push(proposal.3);
            accepted += 1;
        }
    }
    // The state is a log; keep it from growing across iterations.
    state.clear();
    accepted
}

fn plain_agents<A: Clone>(agents: &[A]) -> Arc<Vec<Arc<A>>> {
    Arc::new(agents.iter().cloned().map(Arc::new).collect())
}

// ---- groups ----

fn consensus_latency(c: &mut Criterion) {
    let mut group = c.benchmark_group("consensus_latency");
    for &agents in sizes(&[10, 100, 1_000, 10_000], &[10, 100, 1_000, 10_000]) {
        group.throughput(Throughput::Elements(agents as u64));
        let hive = hive_of(
            &agent_set(agents, 0, DEFAULT_SEED),
            ResolutionStrategy::Vote,
        );
        group.bench_with_input(BenchmarkId::new("hivekit", agents), &agents, |b, _| {
            iter_with_allocations(b, ("consensus_latency", "hivekit", agents), || {
                execute(hive.decide()).expect("a round")
            })
        });
        if agents >= 1_000 {
            // The same round on one thread: a current-thread runtime never splits a round, so
            // beside `hivekit` (whose propose phase may be split over both workers from 512 light
            // agents on, when the first 256 say the rest will take long enough: SPLIT_WORTH in
            // src/round/propose.rs) this row shows what the split, or deciding it, costs here.
            let one_thread = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a current-thread runtime");
            group.bench_with_input(
                BenchmarkId::new("hivekit-one-thread", agents),
                &agents,
                |b, _| b.iter(|| one_thread.block_on(hive.decide()).expect("a round")),
            );
        }
        drop(hive);
        let specs = agent_set(agents, 0, DEFAULT_SEED);
        actors::propose::<actors::Kameo>(&mut group, &specs);
        actors::propose::<actors::Ractor>(&mut group, &specs);
        if agents == 10_000 && benches_common::is_quick() {
            // Conflicts at 10k agents mean 500 ballots of 10k voters: full runs only.
            continue;
        }
        let conflicting = agent_set(agents, 10, DEFAULT_SEED);
        let hive = hive_of(&conflicting, ResolutionStrategy::Vote);
        group.bench_with_input(
            BenchmarkId::new("hivekit-conflicts", agents),
            &agents,
            |b, _| {
                iter_with_allocations(
                    b,
                    ("consensus_latency", "hivekit-conflicts", agents),
                    || execute(hive.decide()).expect("a round"),
                )
            },
        );
        drop(hive);
        let plain = plain_agents(&conflicting);
        let state = Mutex::new(Vec::new());
        group.bench_with_input(BenchmarkId::new("baseline", agents), &agents, |b, _| {
            b.iter(|| execute(baseline_round(&plain, &state)))
        });
    }
    group.finish();
}

/// A task per agent, each waiting on its own channel for work: the actor-per-agent baseline.
fn spawn_actor_agents(
    specs: &[AgentSpec],
) -> Vec<(tokio::sync::mpsc::Sender<u64>, tokio::task::JoinHandle<()>)> {
    let handle = hivekit_runtime::handle();
    specs
        .iter()
        .map(|spec| {
            let (sender, mut receiver) = tokio::sync::mpsc::channel::<u64>(1);
            let spec = spec.clone();
            let task = handle.spawn(async move {
                while let Some(work) = receiver.recv().await {
                    black_box((spec.key, work));
                }
            });
            (sender, task)
        })
        .collect()
}

fn spawn_hive(specs: &[AgentSpec]) -> Hive<Board> {
    let hive = Hive::new(Board::default());
    hive.spawn_many(specs.len(), |index| SpecAgent::light(&specs[index]));
    hive
}

fn agent_spawning(c: &mut Criterion) {
    let mut group = c.benchmark_group("agent_spawning");
    for &agents in &[8usize, 100, 1_000, 10_000] {
        group.throughput(Throughput::Elements(agents as u64));
        let specs = agent_set(agents, 0, DEFAULT_SEED);
        group.bench_with_input(BenchmarkId::new("hivekit", agents), &agents, |b, _| {
            b.iter_batched(|| (), |()| spawn_hive(&specs), BatchSize::PerIteration)
        });
        group.bench_with_input(BenchmarkId::new("baseline", agents), &agents, |b, _| {
            b.iter_batched(
                || (),
                |()| spawn_actor_agents(&specs),
                BatchSize::PerIteration,
            )
        });
        actors::spawning::<actors::Kameo>(&mut group, &specs);
        actors::spawning::<actors::Ractor>(&mut group, &specs);
    }
    group.finish();
}

fn conflict_resolution(c: &mut Criterion) {
    let mut group = c.benchmark_group("conflict_resolution");
    for &proposals in &[5usize, 50, 500] {
        group.throughput(Throughput::Elements(proposals as u64));
        let specs = contested_set(proposals, 5, DEFAULT_SEED);
        let hive = hive_of(&specs, ResolutionStrategy::Vote);
        group.bench_with_input(
            BenchmarkId::new("hivekit", proposals),
            &proposals,
            |b, _| b.iter(|| execute(hive.decide()).expect("a round")),
        );
        let hive = hive_of(&specs, ResolutionStrategy::HighestPriority);
        group.bench_with_input(
            BenchmarkId::new("hivekit-priority", proposals),
            &proposals,
            |b, _| b.iter(|| execute(hive.decide()).expect("a round")),
        );
        let plain = plain_agents(&specs);
        let state = Mutex::new(Vec::new());
        group.bench_with_input(
            BenchmarkId::new("baseline", proposals),
            &proposals,
            |b, _| b.iter(|| execute(baseline_round(&plain, &state))),
        );
    }
    group.finish();
}

// ---- configuration analysis: the example's pack workload ----

impl PlainAgent for Resolver {
    type Key = PackKey;
    type Payload = Pin;

    fn propose(&self) -> Option<(u64, Vec<PackKey>, u8, Pin)> {
        let pin = self.pin()?;
        Some((self.id.0, self.requirement.keys().to_vec(), 1, pin))
    }

    fn vote(&self, candidates: &[(u64, u8, Pin)]) -> Option<u64> {
        let candidates = candidates.iter().map(|(id, _, pin)| (ProposalId(*id), pin));
        self.prefers(candidates).map(|id| id.0)
    }
}

/// A resolver asked about every contest (the default `Interest::All`), as all agents were before
/// interested voters.
struct EveryContest(Resolver);

impl Agent<Lockfile> for EveryContest {
    async fn propose(
        &self,
        ctx: &AgentContext,
        view: &Snapshot<Lockfile>,
    ) -> Result<Option<Proposal<PackKey, Pin>>, AgentError> {
        Agent::propose(&self.0, ctx, view).await
    }

    async fn vote(
        &self,
        ctx: &AgentContext,
        view: &Snapshot<Lockfile>,
        contest: &Contest<Lockfile>,
    ) -> Result<Vote, AgentError> {
        Agent::vote(&self.0, ctx, view, contest).await
    }
}

fn configuration_analysis(c: &mut Criterion) {
    let mut group = c.benchmark_group("configuration_analysis");
    for &packs in &[1usize, 10, 50, 200] {
        group.throughput(Throughput::Elements(packs as u64));
        let resolvers = pack_resolvers(&pack_set(packs, DEFAULT_SEED));
        let hive = Hive::new(Lockfile::default());
        for resolver in &resolvers {
            hive.spawn(resolver.clone());
        }
        group.bench_with_input(BenchmarkId::new("hivekit", packs), &packs, |b, _| {
            b.iter(|| execute(hive.decide()).expect("a round"))
        });
        // The design before interested voters: every resolver asked about every contest.
        let hive = Hive::new(Lockfile::default());
        for resolver in &resolvers {
            hive.spawn(EveryContest(resolver.clone()));
        }
        group.bench_with_input(
            BenchmarkId::new("hivekit-all-voters", packs),
            &packs,
            |b, _| b.iter(|| execute(hive.decide()).expect("a round")),
        );
        let plain = plain_agents(&resolvers);
        let state = Mutex::new(Vec::new());
        group.bench_with_input(BenchmarkId::new("baseline", packs), &packs, |b, _| {
            b.iter(|| execute(baseline_round(&plain, &state)))
        });
    }
    group.finish();
}

fn parallel_agents(c: &mut Criterion) {
    let mut group = c.benchmark_group("parallel_agents");
    // About 75 us of CPU per agent call on the 2-core VM (sequential/2: 148 us in the quiet run of
    // 2e16992).
    const WORK: u64 = 40_000;
    for &agents in &[2usize, 8, 32] {
        group.throughput(Throughput::Elements(agents as u64));
        let specs = agent_set(agents, 0, DEFAULT_SEED);
        for (function, heavy) in [("hivekit", true), ("sequential", false)] {
            let hive = Hive::new(Board::default());
            for spec in &specs {
                hive.spawn(SpecAgent {
                    spec: spec.clone(),
                    work: WORK,
                    heavy,
                });
            }
            group.bench_with_input(BenchmarkId::new(function, agents), &agents, |b, _| {
                b.iter(|| execute(hive.decide()).expect("a round"))
            });
        }
        // The floor of spreading the work over the workers: the same spins as bare tokio tasks
        // (spawned from the caller's thread and joined), no round around them.
        group.bench_with_input(
            BenchmarkId::new("tokio-spawn", agents),
            &agents,
            |b, &agents| {
                b.iter(|| {
                    execute(async move {
                        let tasks: Vec<_> = (0..agents)
                            .map(|_| tokio::spawn(async { black_box(spin(WORK)) }))
                            .collect();
                        for task in tasks {
                            black_box(task.await.expect("a spinning task"));
                        }
                    })
                })
            },
        );
    }
    group.finish();
}

fn memory_overhead(c: &mut Criterion) {
    let mut group = c.benchmark_group("memory_overhead");
    for &agents in sizes(&[100usize, 1_000], &[100, 1_000, 10_000]) {
        let specs = agent_set(agents, 0, DEFAULT_SEED);
        let per_agent = |function: &str, stats: AllocationStats| {
            let key = BenchKey::from(("memory_overhead", function, agents));
            stats.record(key.clone());
            record_extra(&key, "bytes_per_agent", stats.bytes_per_op / agents as f64);
        };
        let mut recorded = false;
        group.bench_with_input(BenchmarkId::new("hivekit", agents), &agents, |b, _| {
            if !std::mem::replace(&mut recorded, true) {
                per_agent(
                    "hivekit",
                    AllocationStats::measure(10, || spawn_hive(&specs)),
                );
            }
            b.iter_batched(|| (), |()| spawn_hive(&specs), BatchSize::PerIteration)
        });
        let mut recorded = false;
        group.bench_with_input(BenchmarkId::new("baseline", agents), &agents, |b, _| {
            if !std::mem::replace(&mut recorded, true) {
                per_agent(
                    "baseline",
                    AllocationStats::measure(10, || spawn_actor_agents(&specs)),
                );
            }
            b.iter_batched(
                || (),
                |()| spawn_actor_agents(&specs),
                BatchSize::PerIteration,
            )
        });
        actors::memory::<actors::Kameo>(&mut group, &specs);
        actors::memory::<actors::Ractor>(&mut group, &specs);
    }
    group.finish();
}

fn orchestration_throughput(c: &mut Criterion) {
    const ROUNDS: usize = 32;
    let mut group = c.benchmark_group("orchestration_throughput");
    group.throughput(Throughput::Elements(ROUNDS as u64));
    let specs = agent_set(10, 10, DEFAULT_SEED);
    for &concurrent in &[1usize, 4] {
        let hive = hive_of(&specs, ResolutionStrategy::Vote);
        group.bench_with_input(
            BenchmarkId::new("hivekit", concurrent),
            &concurrent,
            |b, _| {
                b.iter(|| {
                    execute(async {
                        let streams: Vec<_> = (0..concurrent)
                            .map(|_| {
                                let hive = hive.clone();
                                tokio::spawn(async move {
                                    for _ in 0..ROUNDS / concurrent {
                                        hive.decide().await.expect("a round");
                                    }
                                })
                            })
                            .collect();
                        for stream in streams {
                            stream.await.expect("a stream of rounds");
                        }
                    })
                })
            },
        );
        let shared = plain_agents(&specs);
        let state = Arc::new(Mutex::new(Vec::new()));
        group.bench_with_input(
            BenchmarkId::new("baseline", concurrent),
            &concurrent,
            |b, _| {
                b.iter(|| {
                    execute(async {
                        let streams: Vec<_> = (0..concurrent)
                            .map(|_| {
                                let (specs, state) = (Arc::clone(&shared), Arc::clone(&state));
                                tokio::spawn(async move {
                                    for _ in 0..ROUNDS / concurrent {
                                        baseline_round(&specs, &state).await;
                                    }
                                })
                            })
                            .collect();
                        for stream in streams {
                            stream.await.expect("a stream of rounds");
                        }
                    })
                })
            },
        );
        // The harness alone: the same streams spawned and joined, each doing no round. What is
        // left of a row above this floor is the rounds' own time.
        group.bench_with_input(
            BenchmarkId::new("harness-floor", concurrent),
            &concurrent,
            |b, _| {
                b.iter(|| {
                    execute(async {
                        let streams: Vec<_> = (0..concurrent)
                            .map(|_| tokio::spawn(async move { black_box(ROUNDS / concurrent) }))
                            .collect();
                        for stream in streams {
                            stream.await.expect("a stream");
                        }
                    })
                })
            },
        );
        actors::rounds::<actors::Kameo>(&mut group, &specs, concurrent, ROUNDS);
        actors::rounds::<actors::Ractor>(&mut group, &specs, concurrent, ROUNDS);
    }
    group.finish();
}

fn ballot_tally(c: &mut Criterion) {
    const CANDIDATES: usize = 4;
    let mut group = c.benchmark_group("ballot_tally");
    let policy = hivekit_hive::ConsensusPolicy::majority();
    let candidates: Vec<ProposalId> = (0..CANDIDATES as u64).map(ProposalId).collect();
    for &votes in &[10usize, 1_000, 100_000] {
        group.throughput(Throughput::Elements(votes as u64));
        let stream = vote_stream(votes, CANDIDATES, DEFAULT_SEED);
        let electorate = Arc::new(
            Electorate::equal((0..votes as u64).map(hivekit_hive::AgentId)).expect("an electorate"),
        );
        let to_vote =
            |choice: Option<usize>| choice.map_or(Vote::Abstain, |c| Vote::For(candidates[c]));
        group.bench_with_input(BenchmarkId::new("hivekit", votes), &votes, |b, _| {
            b.iter(|| {
                let mut ballot = hivekit_hive::Ballot::new(
                    policy,
                    Arc::clone(&electorate),
                    candidates.iter().copied(),
                )
                .expect("a ballot");
                for &(voter, choice) in &stream {
                    ballot
                        .cast(hivekit_hive::AgentId(voter), to_vote(choice))
                        .expect("a valid vote");
                }
                ballot.tally()
            })
        });
        group.bench_with_input(BenchmarkId::new("hivekit-early", votes), &votes, |b, _| {
            b.iter(|| {
                let mut ballot = hivekit_hive::Ballot::new(
                    policy,
                    Arc::clone(&electorate),
                    candidates.iter().copied(),
                )
                .expect("a ballot");
                for &(voter, choice) in &stream {
                    ballot
                        .cast(hivekit_hive::AgentId(voter), to_vote(choice))
                        .expect("a valid vote");
                    if ballot.is_settled() {
                        break;
                    }
                }
                ballot.tally()
            })
        });
        group.bench_with_input(BenchmarkId::new("baseline", votes), &votes, |b, _| {
            b.iter(|| {
                // One vote per voter (a later vote replaces an earlier one), like a ballot.
                let mut ballot: HashMap<u64, Option<usize>> = HashMap::with_capacity(votes);
                for &(voter, choice) in &stream {
                    ballot.insert(voter, choice);
                }
                let mut counts = [0usize; CANDIDATES];
                for choice in ballot.values().flatten() {
                    counts[*choice] += 1;
                }
                let cast: usize = counts.iter().sum();
                counts.iter().position(|&count| count * 2 > cast)
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = benches_common::criterion();
    targets = consensus_latency, agent_spawning, conflict_resolution, configuration_analysis,
        parallel_agents, memory_overhead, orchestration_throughput, ballot_tally,
        waiting::waiting_agents
}
criterion_main!(benches);
