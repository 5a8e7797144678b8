//! Instruction counts of hivekit-hive's single-thread hot paths, for `cargo xtask bench
//! --instructions` (gungraun on Valgrind's callgrind).
//!
//! - `ballot_tally/*/votes_1k`: casting 1000 votes on a majority ballot over four candidates and
//!   tallying (`hivekit`), against inserting them into a `HashMap` presized to the electorate and
//!   counting (`baseline`, the criterion suite's peer; written as a user would).
//! - `decide/hivekit/agents_10`: one `decide` round of 10 agents, two of them conflicting (settled by
//!   vote), on a current-thread tokio runtime so that every task of the round runs on the counted
//!   thread. The hive and the runtime are built in the `#[bench]` argument, outside the count.
//!   `independent_1k`: 1,000 agents, no conflict (the criterion row `consensus_latency/hivekit/1000`);
//!   `conflicts_1k`: 1,000 agents, 10% of them conflicting in pairs, so every agent votes on 50
//!   contests (`consensus_latency/hivekit-conflicts/1000`).
//! - `decide/hivekit-packs/packs_200`: one round of the 200-pack configuration analysis
//!   (`configuration_analysis/hivekit/200`), on a current-thread runtime as above.
//!
//! Reading the callgrind files of the `decide` rows: the counts (instructions and the rest) are
//! those of the measured round alone, but the `calls=` figures also hold the calls of the setup
//! round in the `#[bench]` argument, made while collection was off (callgrind still records the
//! call arcs then, at zero cost). So `independent_1k` shows 2,000 agent calls and `packs_200` 400
//! `start_propose` calls; the measured function itself calls `block_on` once. Halve call counts
//! below the round before dividing a cost by them.

// gungraun's macros generate a public module per benchmark and group, without docs.
#![allow(missing_docs)]

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;

use benches_common::agents::{agent_set, pack_set, vote_stream, AgentSpec};
use benches_common::workload::DEFAULT_SEED;
use gungraun::{library_benchmark, library_benchmark_group, main};
use hivekit_hive::{
    Agent, AgentContext, AgentError, AgentId, Ballot, ConsensusPolicy, Contest, Electorate, Hive,
    Priority, Proposal, ProposalId, ResolutionStrategy, Snapshot, State, Vote,
};
use tokio::runtime::Runtime;

// The example's pack workload, shared with the criterion suite (in a folder, so that cargo does not
// take it for a bench target of its own).
#[path = "rows/packs.rs"]
mod packs;

use packs::example::Lockfile;
use packs::pack_resolvers;

const CANDIDATES: usize = 4;

/// The votes of a ballot, cast by agents `0..votes`.
struct Votes {
    electorate: Arc<Electorate>,
    stream: Vec<(u64, Option<usize>)>,
}

fn votes(count: usize) -> Votes {
    Votes {
        electorate: Arc::new(
            Electorate::equal((0..count as u64).map(AgentId)).expect("an electorate"),
        ),
        stream: vote_stream(count, CANDIDATES, DEFAULT_SEED),
    }
}

fn candidates() -> impl Iterator<Item = ProposalId> {
    (0..CANDIDATES as u64).map(ProposalId)
}

#[library_benchmark]
#[bench::votes_1k(votes(1_000))]
fn hivekit(input: Votes) -> Option<ProposalId> {
    let mut ballot = Ballot::new(
        ConsensusPolicy::majority(),
        Arc::clone(&input.electorate),
        candidates(),
    )
    .expect("a ballot");
    for &(voter, choice) in &input.stream {
        let vote = choice.map_or(Vote::Abstain, |c| Vote::For(ProposalId(c as u64)));
        ballot.cast(AgentId(voter), vote).expect("a valid vote");
    }
    ballot.tally().winner()
}

#[library_benchmark]
#[bench::votes_1k(votes(1_000))]
fn baseline(input: Votes) -> Option<usize> {
    let mut ballot: HashMap<u64, Option<usize>> = HashMap::with_capacity(input.stream.len());
    for &(voter, choice) in &input.stream {
        ballot.insert(voter, choice);
    }
    let mut counts = [0usize; CANDIDATES];
    for choice in ballot.values().flatten() {
        counts[*choice] += 1;
    }
    let cast: usize = counts.iter().sum();
    counts.iter().position(|&count| count * 2 > black_box(cast))
}

library_benchmark_group!(name = ballot_tally, benchmarks = [hivekit, baseline]);

/// A small state: a round's cost is the coordination, not the copy.
#[derive(Debug, Clone, Default)]
struct Board {
    checksum: u64,
}

impl State for Board {
    type Key = u64;
    type Change = u64;

    fn apply(&mut self, key: &u64) {
        self.checksum = self.checksum.wrapping_mul(31).wrapping_add(*key);
    }
}

/// Proposes its spec's key; votes for the contest's preferred candidate.
struct SpecAgent(AgentSpec);

impl Agent<Board> for SpecAgent {
    async fn propose(
        &self,
        _: &AgentContext,
        _: &Snapshot<Board>,
    ) -> Result<Option<Proposal<u64, u64>>, AgentError> {
        let spec = &self.0;
        Ok(Some(
            Proposal::new(ProposalId(spec.proposal), spec.key)
                .writes([spec.key])
                .priority(Priority::ALL[usize::from(spec.priority.min(3))]),
        ))
    }

    async fn vote(
        &self,
        _: &AgentContext,
        _: &Snapshot<Board>,
        contest: &Contest<Board>,
    ) -> Result<Vote, AgentError> {
        Ok(contest.preferred().map_or(Vote::Abstain, Vote::For))
    }
}

/// A hive of `agents` agents (20% conflicting in pairs) and the current-thread runtime it runs on.
fn hive_of(agents: usize) -> (Runtime, Hive<Board>) {
    hive_with(agents, 20)
}

/// A hive of `agents` agents (`conflicting` percent of them conflicting in pairs) and the
/// current-thread runtime it runs on.
fn hive_with(agents: usize, conflicting: u32) -> (Runtime, Hive<Board>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime");
    let hive = Hive::builder(Board::default())
        .resolution(ResolutionStrategy::Vote)
        .build()
        .expect("a valid configuration");
    for spec in agent_set(agents, conflicting, DEFAULT_SEED) {
        hive.spawn(SpecAgent(spec));
    }
    // One round first: the counted round sees warm caches and grown buffers, as every round but a
    // hive's first does.
    runtime.block_on(hive.decide()).expect("a round");
    (runtime, hive)
}

#[library_benchmark]
#[bench::agents_10(hive_of(10))]
#[bench::independent_1k(hive_with(1_000, 0))]
#[bench::conflicts_1k(hive_with(1_000, 10))]
fn hivekit_decide(input: (Runtime, Hive<Board>)) -> (Runtime, Hive<Board>) {
    let (runtime, hive) = input;
    black_box(runtime.block_on(hive.decide()).expect("a round"));
    // Returned so that dropping the runtime and the hive is not counted.
    (runtime, hive)
}

/// The 200-pack configuration analysis of the criterion suite (`configuration_analysis/hivekit/200`:
/// one resolver per requirement, voting only on the contests they declare interest in) and the
/// current-thread runtime it runs on.
fn packs_hive(packs: usize) -> (Runtime, Hive<Lockfile>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime");
    let hive = Hive::new(Lockfile::default());
    for resolver in pack_resolvers(&pack_set(packs, DEFAULT_SEED)) {
        hive.spawn(resolver);
    }
    // As `hive_with`: the counted round is not the hive's first.
    runtime.block_on(hive.decide()).expect("a round");
    (runtime, hive)
}

#[library_benchmark]
#[bench::packs_200(packs_hive(200))]
fn hivekit_packs(input: (Runtime, Hive<Lockfile>)) -> (Runtime, Hive<Lockfile>) {
    let (runtime, hive) = input;
    black_box(runtime.block_on(hive.decide()).expect("a round"));
    (runtime, hive)
}

library_benchmark_group!(name = decide, benchmarks = [hivekit_decide, hivekit_packs]);

main!(library_benchmark_groups = ballot_tally, decide);
