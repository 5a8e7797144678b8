//! Keys whose `Hash` collides on purpose (constant, few buckets, pairs, runs of 16): every path of `detect_conflicts` must still match a plain model.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use hivekit_lockfree::{
    aggregate, detect_conflicts, Access, Aggregator, ConflictKind, Proposal, ProposalId,
    Resolution, Sum,
};

#[derive(Debug, Clone, Copy, Eq)]
struct Key {
    value: u32,
    /// How the hash collides: 0 constant, 1 `value % 7`, 2 `value / 2`, 3 `value >> 4`.
    mode: u8,
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self.mode {
            0 => {}
            1 => state.write_u32(self.value % 7),
            2 => state.write_u32(self.value / 2),
            _ => state.write_u32(self.value >> 4),
        }
    }
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

type Group = (u32, ConflictKind, Vec<(ProposalId, Access)>);

/// Per key: where it first appeared (proposal, position in its key list) and its touchers.
type Touchers = ((usize, usize), Vec<(usize, Access)>);

fn model(proposals: &[Proposal<Key, Sum<u64>>]) -> (Vec<Group>, Vec<ProposalId>) {
    let mut keys: HashMap<u32, Touchers> = HashMap::new();
    for (index, proposal) in proposals.iter().enumerate() {
        let touched = proposal
            .writes
            .iter()
            .map(|key| (key.value, Access::Write))
            .chain(proposal.reads.iter().map(|key| (key.value, Access::Read)));
        for (position, (key, access)) in touched.enumerate() {
            let entry = keys
                .entry(key)
                .or_insert_with(|| ((index, position), Vec::new()));
            match entry.1.last_mut() {
                Some((last, _)) if *last == index => {}
                _ => entry.1.push((index, access)),
            }
        }
    }
    let mut groups: Vec<((usize, usize), Group)> = keys
        .into_iter()
        .filter_map(|(key, (first, members))| {
            let writers = members.iter().filter(|(_, a)| *a == Access::Write).count();
            if members.len() < 2 || writers == 0 {
                return None;
            }
            let kind = if writers >= 2 {
                ConflictKind::WriteWrite
            } else {
                ConflictKind::ReadWrite
            };
            let members = members
                .into_iter()
                .map(|(index, access)| (proposals[index].id, access))
                .collect();
            Some((first, (key, kind, members)))
        })
        .collect();
    groups.sort_by_key(|(first, _)| *first);
    let grouped: std::collections::HashSet<ProposalId> = groups
        .iter()
        .flat_map(|(_, (_, _, members))| members.iter().map(|(id, _)| *id))
        .collect();
    let independent = proposals
        .iter()
        .map(|p| p.id)
        .filter(|id| !grouped.contains(id))
        .collect();
    (groups.into_iter().map(|(_, g)| g).collect(), independent)
}

fn input(
    seed: u64,
    count: usize,
    key_space: u64,
    max_keys: u64,
    mode: u8,
) -> Vec<Proposal<Key, Sum<u64>>> {
    let mut rng = Rng(seed);
    (0..count)
        .map(|index| {
            let mut reads = Vec::new();
            let mut writes = Vec::new();
            for _ in 0..1 + rng.below(max_keys) {
                let key = Key {
                    value: rng.below(key_space) as u32,
                    mode,
                };
                match rng.below(10) {
                    0..=5 => reads.push(key),
                    6..=8 => writes.push(key),
                    _ => {
                        reads.push(key);
                        writes.push(key);
                    }
                }
            }
            // Ids not in input order, so the duplicate check takes its hashed path.
            let id = (index as u64 * 7919) % (count as u64 * 8 + 1)
                + (index as u64) * (count as u64 * 8 + 1);
            Proposal::new(id, Sum(1 + index as u64))
                .reads(reads)
                .writes(writes)
        })
        .collect()
}

fn check(label: &str, proposals: &[Proposal<Key, Sum<u64>>]) {
    let (groups, independent) = model(proposals);
    let report = detect_conflicts(proposals).expect("distinct ids");
    let got: Vec<Group> = report
        .groups
        .iter()
        .map(|g| (g.key.value, g.kind, g.members_with_access().collect()))
        .collect();
    assert_eq!(got.len(), groups.len(), "{label}: group count");
    for (index, (got, want)) in got.iter().zip(&groups).enumerate() {
        assert_eq!(got, want, "{label}: group {index}");
    }
    assert_eq!(report.independent, independent, "{label}: independent");

    // The same input through aggregate and a concurrent-capable aggregator (parallel path forced).
    let one_call = aggregate(proposals.to_vec(), Resolution::HighestPriority).expect("valid");
    assert_eq!(one_call.conflicts, report, "{label}: aggregate's report");
    let aggregator = Aggregator::with_parallel_threshold(0);
    for proposal in proposals {
        aggregator.submit(proposal.clone()).expect("distinct ids");
    }
    let finished = aggregator.finish(Resolution::HighestPriority);
    assert_eq!(finished.conflicts, report, "{label}: aggregator's report");
    assert_eq!(finished.accepted, one_call.accepted, "{label}: accepted");
    assert_eq!(finished.rejected, one_call.rejected, "{label}: rejected");
    let expected: u64 = proposals
        .iter()
        .filter(|p| one_call.accepted.contains(&p.id))
        .map(|p| p.payload.0)
        .sum();
    let merged = finished.merged.map(|s| s.0);
    assert_eq!(
        one_call.merged.map(|s| s.0),
        merged,
        "{label}: merged twice"
    );
    assert_eq!(merged.unwrap_or(0), expected, "{label}: merged");
}

#[test]
fn small_inputs_with_colliding_hashes_match_the_model() {
    for mode in 0..4 {
        for seed in 1..40 {
            let proposals = input(seed, 8, 12, 4, mode);
            check(&format!("small mode {mode} seed {seed}"), &proposals);
        }
    }
}

#[test]
fn medium_inputs_with_colliding_hashes_match_the_model() {
    for mode in 0..4 {
        let proposals = input(mode as u64 + 11, 600, 300, 4, mode);
        check(&format!("medium mode {mode}"), &proposals);
    }
}

#[test]
fn partitioned_inputs_with_colliding_hashes_match_the_model() {
    // Past 65,536 key occurrences: routed into partitions and scanned on the pool.
    for (mode, key_space) in [(0_u8, 300_u64), (1, 4_000), (2, 120_000), (3, 120_000)] {
        let proposals = input(mode as u64 + 101, 20_000, key_space, 7, mode);
        check(&format!("partitioned mode {mode}"), &proposals);
    }
}
