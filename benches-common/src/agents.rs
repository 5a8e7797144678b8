//! Seeded agent sets for the hive suite: plain specifications, turned into agents by each bench.
//!
//! benches-common cannot depend on hivekit crates, so these are plain data: the bench file turns an
//! [`AgentSpec`] into an agent, a [`PackSpec`] into a pack requirement, and a vote stream into
//! ballot casts.

use rand::seq::SliceRandom;
use rand::Rng;

use crate::workload::rng;

/// One agent of a hive bench, as plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSpec {
    /// Position in the set.
    pub index: usize,
    /// The id of the one proposal this agent makes (unique within the set).
    pub proposal: u64,
    /// The key the proposal writes; agents that share a key conflict.
    pub key: u64,
    /// Priority level, 0 (low) to 3 (critical).
    pub priority: u8,
    /// True: votes for the contest's preferred candidate; false: picks one by `seed`.
    pub loyal: bool,
    /// Per-agent seed for its choices.
    pub seed: u64,
}

/// `count` agents, each proposing on its own key, except `conflict_percent`% of them (rounded up to a
/// whole pair), whose proposals conflict in pairs (two agents writing one key). 80% of the agents
/// vote loyally.
///
/// # Examples
///
/// ```
/// let agents = benches_common::agents::agent_set(100, 10, 7);
/// assert_eq!(agents.len(), 100);
/// let mut keys: Vec<u64> = agents.iter().map(|agent| agent.key).collect();
/// keys.sort_unstable();
/// keys.dedup();
/// assert_eq!(keys.len(), 95); // 10 conflicting agents share 5 keys
/// assert_eq!(agents, benches_common::agents::agent_set(100, 10, 7));
/// ```
pub fn agent_set(count: usize, conflict_percent: u32, seed: u64) -> Vec<AgentSpec> {
    let mut rng = rng(seed);
    // Rounded up to a whole pair, so that even 10 agents at 10% have one conflict.
    let wanted = (count * conflict_percent.min(100) as usize).div_ceil(100);
    let conflicting = (wanted + wanted % 2).min(count & !1);
    let mut order: Vec<usize> = (0..count).collect();
    order.shuffle(&mut rng);
    let mut keys = vec![0u64; count];
    for (rank, &index) in order.iter().enumerate() {
        keys[index] = if rank < conflicting {
            // Pairs share a key.
            (rank / 2) as u64
        } else {
            (conflicting / 2 + rank) as u64
        };
    }
    keys.into_iter()
        .enumerate()
        .map(|(index, key)| AgentSpec {
            index,
            proposal: index as u64,
            key,
            priority: rng.gen_range(0..4),
            loyal: rng.gen_bool(0.8),
            seed: rng.gen(),
        })
        .collect()
}

/// `proposals` agents whose proposals all conflict, in groups of `group_size` writing one key each.
///
/// # Examples
///
/// ```
/// let agents = benches_common::agents::contested_set(50, 5, 1);
/// assert!(agents.iter().all(|agent| agent.key < 10));
/// ```
pub fn contested_set(proposals: usize, group_size: usize, seed: u64) -> Vec<AgentSpec> {
    let group_size = group_size.max(2);
    let mut agents = agent_set(proposals, 0, seed);
    for agent in &mut agents {
        agent.key = (agent.index / group_size) as u64;
    }
    agents
}

/// A project's requirement on a template/ontology pack, as plain strings (semver syntax).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackSpec {
    /// The pack's name; several requirements may name the same pack.
    pub name: String,
    /// A semver requirement (`^1.2`, `>=1.1, <2`).
    pub requirement: String,
    /// The namespace the pack is mounted under; two packs may collide.
    pub namespace: String,
    /// The versions the registry publishes for this pack.
    pub published: Vec<String>,
}

/// `count` pack requirements: about two per pack name (so versions must be agreed on), about one in
/// five namespaces claimed by two different packs, and one requirement in ten that no published
/// version satisfies.
///
/// # Examples
///
/// ```
/// let packs = benches_common::agents::pack_set(20, 3);
/// assert_eq!(packs.len(), 20);
/// assert!(packs.iter().all(|pack| !pack.published.is_empty()));
/// ```
pub fn pack_set(count: usize, seed: u64) -> Vec<PackSpec> {
    let mut rng = rng(seed);
    let names = count.div_ceil(2).max(1);
    let published: Vec<String> = (0..6)
        .map(|minor| format!("1.{minor}.0"))
        .chain(["2.0.0".to_string(), "2.1.3".to_string()])
        .collect();
    (0..count)
        .map(|_| {
            let pack = rng.gen_range(0..names);
            let minor = rng.gen_range(0..6);
            let requirement = match rng.gen_range(0..10) {
                0 => "<0.5".to_string(),
                1 | 2 => "^2".to_string(),
                3 | 4 => format!(">=1.{minor}, <2"),
                5 => format!("~1.{minor}.0"),
                _ => format!("^1.{minor}"),
            };
            // Namespaces follow the pack, except one in five borrowed from another pack.
            let namespace = if rng.gen_bool(0.2) {
                format!("ns-{}", rng.gen_range(0..names))
            } else {
                format!("ns-{pack}")
            };
            PackSpec {
                name: format!("pack-{pack}"),
                requirement,
                namespace,
                published: published.clone(),
            }
        })
        .collect()
}

/// `votes` votes from distinct voters `0..votes` over `candidates` candidates, in a shuffled order:
/// 60% for candidate 0, the rest spread over the others, one in twenty abstaining (`None`).
///
/// # Examples
///
/// ```
/// let votes = benches_common::agents::vote_stream(1_000, 4, 9);
/// let first = votes.iter().filter(|(_, choice)| *choice == Some(0)).count();
/// assert!(first > 500);
/// ```
pub fn vote_stream(votes: usize, candidates: usize, seed: u64) -> Vec<(u64, Option<usize>)> {
    let mut rng = rng(seed);
    let candidates = candidates.max(1);
    let mut stream: Vec<(u64, Option<usize>)> = (0..votes as u64)
        .map(|voter| {
            let roll: f64 = rng.gen();
            let choice = if roll < 0.05 {
                None
            } else if roll < 0.65 || candidates == 1 {
                Some(0)
            } else {
                Some(rng.gen_range(1..candidates))
            };
            (voter, choice)
        })
        .collect();
    stream.shuffle(&mut rng);
    stream
}
