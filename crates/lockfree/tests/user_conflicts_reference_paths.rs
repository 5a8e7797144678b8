//! `detect_conflicts` against a per-key reference model written from the docs, with input sizes just below, at and above every internal threshold, for u8, u64 and String keys.

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;

use hivekit_lockfree::{
    detect_conflicts, Access, ConflictKind, ConflictReport, Priority, Proposal, ProposalId,
};
use proptest::prelude::*;

/// A group as the reference computes it: key, kind, members with access.
type RefGroup<K> = (K, ConflictKind, Vec<(ProposalId, Access)>);

/// Per key: its first appearance (proposal index, position in its key list) and its members
/// (proposal index, access).
type Touchers = ((usize, usize), Vec<(usize, Access)>);

/// The documented rule: per key, every proposal touching it once (input order; a proposal that
/// writes it is a writer even if it also reads it, a key listed twice counts once), contested when
/// two or more touch it and at least one writes; groups in first-appearance order (first proposal
/// touching the key, inside it writes before reads, each in list order); independent in input order.
fn reference<K: Hash + Eq + Clone, P>(
    proposals: &[Proposal<K, P>],
) -> (Vec<RefGroup<K>>, Vec<ProposalId>) {
    let mut keys: HashMap<K, Touchers> = HashMap::new();
    for (index, proposal) in proposals.iter().enumerate() {
        let touched = proposal
            .writes
            .iter()
            .map(|key| (key, true))
            .chain(proposal.reads.iter().map(|key| (key, false)));
        for (position, (key, _)) in touched.enumerate() {
            let writes = proposal.writes.contains(key);
            let entry = keys
                .entry(key.clone())
                .or_insert_with(|| ((index, position), Vec::new()));
            if entry.1.last().map(|(member, _)| *member) != Some(index) {
                let access = if writes { Access::Write } else { Access::Read };
                entry.1.push((index, access));
            }
        }
    }
    let mut groups: Vec<((usize, usize), RefGroup<K>)> = keys
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
    let mut grouped = vec![false; proposals.len()];
    let by_id: HashMap<ProposalId, usize> = proposals
        .iter()
        .enumerate()
        .map(|(index, proposal)| (proposal.id, index))
        .collect();
    for (_, (_, _, members)) in &groups {
        for (id, _) in members {
            grouped[by_id[id]] = true;
        }
    }
    let independent = proposals
        .iter()
        .enumerate()
        .filter(|(index, _)| !grouped[*index])
        .map(|(_, proposal)| proposal.id)
        .collect();
    (
        groups.into_iter().map(|(_, group)| group).collect(),
        independent,
    )
}

fn check<K: Hash + Eq + Clone + Sync + Debug, P>(label: &str, proposals: &[Proposal<K, P>]) {
    let report: ConflictReport<K> = detect_conflicts(proposals).expect("distinct ids");
    let (groups, independent) = reference(proposals);
    let occurrences: usize = proposals
        .iter()
        .map(|p| p.reads.len() + p.writes.len())
        .sum();
    let label = format!(
        "{label} ({} proposals, {occurrences} occurrences)",
        proposals.len()
    );
    assert_eq!(report.groups.len(), groups.len(), "{label}: group count");
    for (index, (got, want)) in report.groups.iter().zip(&groups).enumerate() {
        let got_members: Vec<(ProposalId, Access)> = got.members_with_access().collect();
        assert_eq!(
            got.access.len(),
            got.members.len(),
            "{label}: group {index} access length"
        );
        assert_eq!(
            (&got.key, got.kind, &got_members),
            (&want.0, want.1, &want.2),
            "{label}: group {index}"
        );
    }
    assert_eq!(report.independent, independent, "{label}: independent");
}

/// A tiny deterministic generator, so that large inputs come from a seed (proptest shrinks the
/// seed and the shape, not a vector of 20k proposals).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Shape {
    count: usize,
    key_space: u64,
    /// Occurrences per proposal: exactly this many (reads + writes, duplicates included).
    per: usize,
    seed: u64,
}

/// Proposals of exactly `per` occurrences each (so the total is known), keys drawn from a small or
/// large space, with repeated keys, read+write of one key, and ids scattered in any order.
fn generate<K>(shape: Shape, key: impl Fn(u64) -> K) -> Vec<Proposal<K, ()>> {
    let mut rng = Rng(shape.seed);
    let mut ids: Vec<u64> = (0..shape.count as u64)
        .map(|i| i.wrapping_mul(0x2545_F491) % (1 << 40) * 4 + 1)
        .collect();
    // Fisher-Yates.
    for i in (1..ids.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        ids.swap(i, j);
    }
    ids.into_iter()
        .map(|id| {
            let mut reads = Vec::new();
            let mut writes = Vec::new();
            let mut left = shape.per;
            while left > 0 {
                let k = rng.below(shape.key_space);
                match rng.below(12) {
                    0..=5 => reads.push(key(k)),
                    6..=8 => writes.push(key(k)),
                    9 if left >= 2 => {
                        reads.push(key(k));
                        writes.push(key(k));
                        left -= 1;
                    }
                    10 if left >= 2 => {
                        writes.push(key(k));
                        writes.push(key(k));
                        left -= 1;
                    }
                    _ if left >= 2 => {
                        reads.push(key(k));
                        reads.push(key(k));
                        left -= 1;
                    }
                    _ => reads.push(key(k)),
                }
                left -= 1;
            }
            Proposal::new(id, ())
                .reads(reads)
                .writes(writes)
                .priority(Priority::ALL[rng.below(4) as usize])
        })
        .collect()
}

fn string_key(k: u64) -> String {
    format!("key/{k}")
}

/// Small inputs with full proptest shrinking: up to 70 proposals (around SMALL_PROPOSALS = 64),
/// each with up to 4 reads and 4 writes over 6 keys (often around SMALL_OCCURRENCES = 32), some
/// without keys at all.
fn small_proposals() -> impl Strategy<Value = Vec<Proposal<u8, ()>>> {
    let spec = (
        proptest::collection::vec(0_u8..6, 0..4),
        proptest::collection::vec(0_u8..6, 0..4),
        any::<bool>(),
    );
    (proptest::collection::vec(spec, 0..70), any::<u64>()).prop_map(|(specs, seed)| {
        let mut rng = Rng(seed);
        let mut ids: Vec<u64> = (0..specs.len() as u64).map(|i| i * 7 + 2).collect();
        for i in (1..ids.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            ids.swap(i, j);
        }
        specs
            .into_iter()
            .zip(ids)
            .map(|((reads, writes, empty), id)| {
                if empty {
                    Proposal::new(id, ())
                } else {
                    Proposal::new(id, ()).reads(reads).writes(writes)
                }
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn small_inputs_match_the_reference(proposals in small_proposals()) {
        check("small u8", &proposals);
        let strings: Vec<Proposal<String, ()>> = proposals
            .iter()
            .map(|p| Proposal {
                id: p.id,
                priority: p.priority,
                reads: p.reads.iter().map(|k| string_key(u64::from(*k))).collect(),
                writes: p.writes.iter().map(|k| string_key(u64::from(*k))).collect(),
                payload: (),
            })
            .collect();
        check("small String", &strings);
    }
}

/// Every (count, per) pair straddles a threshold: the small path (64 proposals, 32 occurrences),
/// the partitioned serial scan (16,384 occurrences), the parallel key read (16,384 proposals),
/// the parallel scan (65,536 occurrences), partitions of 8,192 keys.
const SHAPES: &[(usize, usize)] = &[
    (64, 0),
    (65, 0),
    (16, 2),
    (32, 1),
    (33, 1),
    (64, 1),
    (65, 1),
    (11, 3),
    (8, 4),
    (9, 4),
    (100, 3),
    (4_095, 4),
    (4_096, 4),
    (4_097, 4),
    (8_191, 2),
    (8_192, 2),
    (8_193, 2),
    (16_383, 1),
    (16_384, 1),
    (16_385, 1),
    (16_384, 0),
    (16_383, 4),
    (16_384, 4),
    (16_385, 4),
    (32_768, 2),
    (9_362, 7),
    (9_363, 7),
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn inputs_at_every_threshold_match_the_reference_u64(
        shape in 0..SHAPES.len(),
        space in prop_oneof![Just(3_u64), Just(50), Just(2_000), Just(1 << 20)],
        seed in any::<u64>(),
    ) {
        let (count, per) = SHAPES[shape];
        let shape = Shape { count, key_space: space, per, seed };
        check(&format!("u64 {shape:?}"), &generate(shape, |k| k.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
    }

    #[test]
    fn inputs_at_every_threshold_match_the_reference_string(
        shape in 0..SHAPES.len(),
        space in prop_oneof![Just(3_u64), Just(200), Just(100_000)],
        seed in any::<u64>(),
    ) {
        let (count, per) = SHAPES[shape];
        let shape = Shape { count, key_space: space, per, seed };
        check(&format!("String {shape:?}"), &generate(shape, string_key));
    }
}

/// Every threshold shape, each once, with a mid-sized key space: deterministic coverage of all of
/// them whatever proptest draws above.
#[test]
fn every_threshold_shape_once() {
    for (number, &(count, per)) in SHAPES.iter().enumerate() {
        for space in [4_u64, 3_000] {
            let shape = Shape {
                count,
                key_space: space,
                per,
                seed: number as u64 * 31 + space,
            };
            check(&format!("u64 {shape:?}"), &generate(shape, |k| k));
        }
    }
}

/// A proposal whose keys are all the same key, listed many times in both lists, among others:
/// one member with write access, whatever the path.
#[test]
fn one_key_listed_many_times_is_one_member_on_every_path() {
    for filler in [0_usize, 40, 20_000, 70_000] {
        let mut proposals: Vec<Proposal<u64, ()>> = Vec::new();
        proposals.push(
            Proposal::new(1_000_000, ())
                .reads(vec![7; 50])
                .writes(vec![7; 50]),
        );
        for i in 0..filler as u64 {
            proposals.push(Proposal::new(i, ()).writes([100 + i]));
        }
        proposals.push(Proposal::new(999_999, ()).reads([7, 7, 7]));
        check(&format!("filler {filler}"), &proposals);
    }
}

/// Past MAX_PARTITIONS x KEYS_PER_PARTITION (256 x 8,192 = 2,097,152 occurrences): partitions
/// hold more keys than aimed for; still the reference report.
#[test]
fn beyond_the_most_partitions_matches_the_reference() {
    let shape = Shape {
        count: 270_000,
        key_space: 3_000_000,
        per: 8,
        seed: 42,
    };
    check("max partitions", &generate(shape, |k| k));
}

/// Zero-sized keys (all equal, all at one address): at most one group, on every path.
#[test]
fn zero_sized_keys_match_the_reference_on_every_path() {
    for (count, per) in [
        (10_usize, 2_usize),
        (64, 0),
        (65, 1),
        (40, 3),
        (9_000, 2),
        (20_000, 4),
    ] {
        for seed in 0..3_u64 {
            let shape = Shape {
                count,
                key_space: 1,
                per,
                seed,
            };
            let proposals: Vec<Proposal<(), ()>> = generate(shape, |_| ())
                .into_iter()
                .enumerate()
                .map(|(i, p)| {
                    // Some proposals only read, so the group may be read-write or absent.
                    if (i as u64 + seed) % 3 == 0 {
                        p
                    } else {
                        Proposal {
                            writes: Vec::new(),
                            ..p
                        }
                    }
                })
                .collect();
            check(
                &format!("zst count {count} per {per} seed {seed}"),
                &proposals,
            );
        }
    }
}
