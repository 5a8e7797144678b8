//! `detect_conflicts` on inputs large enough for its partitioned, parallel paths (from 65,536 key
//! occurrences and 16,384 proposals; parallel member lists from 32,768 members), against a plain
//! sequential model written from the documentation: one group per key touched by two or more
//! proposals of which one writes it, members once each in input order with their access (a member
//! that reads and writes the key writes it), `WriteWrite` when two or more write it, groups in
//! first-appearance order (first proposal touching the key; inside it written keys before read
//! keys, each in list order), and the independent proposals in input order. Also the same input
//! through `aggregate` and a concurrent `Aggregator` (same report).

use std::collections::HashMap;

use hivekit_lockfree::{
    aggregate, detect_conflicts, Access, Aggregator, ConflictKind, Proposal, ProposalId, Resolution,
};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

type Group = (u32, ConflictKind, Vec<(ProposalId, Access)>);

/// A key's first appearance (proposal, position in its key list) and its members with access.
type KeyEntry = ((usize, usize), Vec<(usize, Access)>);

fn model(proposals: &[Proposal<u32, ()>]) -> (Vec<Group>, Vec<ProposalId>) {
    let mut keys: HashMap<u32, KeyEntry> = HashMap::new();
    for (index, proposal) in proposals.iter().enumerate() {
        let touched = proposal
            .writes
            .iter()
            .map(|key| (*key, Access::Write))
            .chain(proposal.reads.iter().map(|key| (*key, Access::Read)));
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
            let writers = members
                .iter()
                .filter(|(_, access)| *access == Access::Write)
                .count();
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
    let mut in_group = vec![false; proposals.len()];
    let position: HashMap<ProposalId, usize> = proposals
        .iter()
        .enumerate()
        .map(|(index, proposal)| (proposal.id, index))
        .collect();
    for (_, (_, _, members)) in &groups {
        for (id, _) in members {
            in_group[position[id]] = true;
        }
    }
    let independent = proposals
        .iter()
        .zip(&in_group)
        .filter(|(_, grouped)| !**grouped)
        .map(|(proposal, _)| proposal.id)
        .collect();
    (
        groups.into_iter().map(|(_, group)| group).collect(),
        independent,
    )
}

/// `count` proposals of 1..=`max_keys` keys each, drawn from `0..key_space`, some read, some
/// written, some both, some repeated; ids scattered (not in input order).
fn input(seed: u64, count: usize, key_space: u64, max_keys: u64) -> Vec<Proposal<u32, ()>> {
    let mut rng = Rng(seed);
    (0..count)
        .map(|index| {
            let id = (index as u64).wrapping_mul(0x9E37_79B9) % (1 << 40) * 8 + 3;
            let mut reads = Vec::new();
            let mut writes = Vec::new();
            for _ in 0..1 + rng.below(max_keys) {
                let key = rng.below(key_space) as u32;
                match rng.below(10) {
                    0..=5 => reads.push(key),
                    6..=8 => writes.push(key),
                    _ => {
                        reads.push(key);
                        writes.push(key);
                    }
                }
            }
            if rng.below(20) == 0 {
                if let Some(&key) = reads.first() {
                    reads.push(key); // listed twice
                }
            }
            Proposal::new(ProposalId(id), ())
                .reads(reads)
                .writes(writes)
        })
        .collect()
}

fn check(label: &str, proposals: &[Proposal<u32, ()>]) {
    let occurrences: usize = proposals
        .iter()
        .map(|proposal| proposal.reads.len() + proposal.writes.len())
        .sum();
    let (groups, independent) = model(proposals);
    let report = detect_conflicts(proposals).expect("distinct ids");
    let members: usize = groups.iter().map(|(_, _, members)| members.len()).sum();
    let got: Vec<Group> = report
        .groups
        .iter()
        .map(|group| (group.key, group.kind, group.members_with_access().collect()))
        .collect();
    assert_eq!(
        got.len(),
        groups.len(),
        "{label}: {occurrences} occurrences, {members} members: group count"
    );
    for (index, (got, want)) in got.iter().zip(&groups).enumerate() {
        assert_eq!(
            got, want,
            "{label}: {occurrences} occurrences, {members} members: group {index}"
        );
    }
    assert_eq!(report.independent, independent, "{label}: independent");
}

#[test]
fn a_large_sparse_input_matches_the_model() {
    // ~80k occurrences over 60k keys: the partitioned scan, few members.
    check("sparse", &input(1, 20_000, 60_000, 7));
}

#[test]
fn a_large_skewed_input_matches_the_model() {
    // ~80k occurrences over 1,500 keys: many members per group, parallel member lists.
    check("skewed", &input(2, 20_000, 1_500, 7));
}

#[test]
fn a_large_input_with_a_few_hot_keys_matches_the_model() {
    // Every proposal also touches one of 4 hot keys: huge groups beside small ones.
    let mut proposals = input(3, 18_000, 50_000, 5);
    let mut rng = Rng(99);
    for proposal in &mut proposals {
        let hot = 1_000_000 + rng.below(4) as u32;
        if rng.below(3) == 0 {
            proposal.writes.push(hot);
        } else {
            proposal.reads.push(hot);
        }
    }
    check("hot", &proposals);
}

#[test]
fn just_below_and_above_the_partition_threshold_match_the_model() {
    for count in [16_383_usize, 16_384, 16_385, 21_845, 21_846] {
        // Exactly 3 occurrences each around 65,536 occurrences in all.
        let mut rng = Rng(count as u64);
        let proposals: Vec<Proposal<u32, ()>> = (0..count)
            .map(|index| {
                let keys: Vec<u32> = (0..3).map(|_| rng.below(30_000) as u32).collect();
                let proposal = Proposal::new(ProposalId(index as u64 * 5 + 1), ());
                if index % 3 == 0 {
                    proposal.writes(keys)
                } else {
                    proposal.reads(keys[..2].to_vec()).writes([keys[2]])
                }
            })
            .collect();
        check(&format!("threshold {count}"), &proposals);
    }
}

#[test]
fn aggregate_and_a_concurrent_aggregator_report_the_same_conflicts_on_a_large_input() {
    let proposals = input(4, 20_000, 5_000, 6);
    let (groups, _) = model(&proposals);
    let outcome = aggregate(proposals.clone(), Resolution::FirstSubmitted).unwrap();
    let got: Vec<Group> = outcome
        .conflicts
        .groups
        .iter()
        .map(|group| (group.key, group.kind, group.members_with_access().collect()))
        .collect();
    assert_eq!(got, groups, "aggregate");
    assert_eq!(
        outcome.accepted.len() + outcome.rejected.len(),
        proposals.len()
    );
    // From one thread in input order: the submission order is the input order.
    let aggregator = Aggregator::with_parallel_threshold(1);
    for proposal in proposals.iter().cloned() {
        aggregator.submit(proposal).unwrap();
    }
    let concurrent = aggregator.finish(Resolution::FirstSubmitted);
    assert_eq!(concurrent.conflicts, outcome.conflicts);
    assert_eq!(concurrent.accepted, outcome.accepted);
    assert_eq!(concurrent.rejected, outcome.rejected);
}
