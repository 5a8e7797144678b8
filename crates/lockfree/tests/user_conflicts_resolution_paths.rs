//! `aggregate` and `Aggregator::finish` (parallel threshold 0, default, `usize::MAX`) against a reference of the documented resolution rule, at sizes straddling the tiny, small and parallel thresholds.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Debug;
use std::hash::Hash;

use hivekit_lockfree::{
    aggregate, Aggregate, Aggregator, Priority, Proposal, ProposalId, RejectReason, Resolution, Sum,
};
use proptest::prelude::*;

/// Payload: a wrapping sum and the set of ids merged, so the merged value says exactly which
/// payloads were folded (each once).
type Payload = (Sum<u64>, BTreeSet<u64>);

/// A contested key, in report order: key, members (index, writes).
type RefGroup<K> = (K, Vec<(usize, bool)>);

/// Per key: its first appearance (proposal index, position) and its members (index, writes).
type Touchers = ((usize, usize), Vec<(usize, bool)>);

fn reference_groups<K: Hash + Eq + Clone, P>(proposals: &[Proposal<K, P>]) -> Vec<RefGroup<K>> {
    let mut keys: HashMap<K, Touchers> = HashMap::new();
    for (index, proposal) in proposals.iter().enumerate() {
        let touched = proposal.writes.iter().chain(proposal.reads.iter());
        for (position, key) in touched.enumerate() {
            let writes = proposal.writes.contains(key);
            let entry = keys
                .entry(key.clone())
                .or_insert_with(|| ((index, position), Vec::new()));
            if entry.1.last().map(|(member, _)| *member) != Some(index) {
                entry.1.push((index, writes));
            }
        }
    }
    let mut groups: Vec<((usize, usize), RefGroup<K>)> = keys
        .into_iter()
        .filter(|(_, (_, members))| members.len() >= 2 && members.iter().any(|(_, w)| *w))
        .map(|(key, (first, members))| (first, (key, members)))
        .collect();
    groups.sort_by_key(|(first, _)| *first);
    groups.into_iter().map(|(_, group)| group).collect()
}

/// The documented rule: each group decided on its own; the winner is the best member (highest
/// priority then lower id, or first submitted); a writing winner beats every other member, a
/// reading winner only the writers; under RejectAll everybody loses. A proposal is accepted iff it
/// loses no group; rejected with the first group (report order) it lost.
fn reference<K: Hash + Eq + Clone, P>(
    proposals: &[Proposal<K, P>],
    resolution: Resolution,
) -> (Vec<ProposalId>, Vec<(ProposalId, RejectReason<K>)>) {
    let groups = reference_groups(proposals);
    let mut lost: Vec<Option<RejectReason<K>>> = vec![None; proposals.len()];
    for (key, members) in &groups {
        let winner = match resolution {
            Resolution::RejectAll => None,
            Resolution::FirstSubmitted => Some(members[0]),
            Resolution::HighestPriority => members.iter().copied().max_by(|a, b| {
                let (pa, pb) = (proposals[a.0].priority, proposals[b.0].priority);
                pa.cmp(&pb).then(proposals[b.0].id.cmp(&proposals[a.0].id))
            }),
        };
        for &(member, writes) in members {
            let reason = match winner {
                None => Some(RejectReason::RejectAll { key: key.clone() }),
                Some((w, w_writes)) if w != member && (w_writes || writes) => {
                    Some(RejectReason::LostTo {
                        winner: proposals[w].id,
                        key: key.clone(),
                    })
                }
                Some(_) => None,
            };
            if lost[member].is_none() {
                lost[member] = reason;
            }
        }
    }
    let mut accepted = Vec::new();
    let mut rejected = Vec::new();
    for (proposal, lost) in proposals.iter().zip(lost) {
        match lost {
            None => accepted.push(proposal.id),
            Some(reason) => rejected.push((proposal.id, reason)),
        }
    }
    (accepted, rejected)
}

fn run_aggregator<K, P>(
    proposals: &[Proposal<K, P>],
    threshold: Option<usize>,
    resolution: Resolution,
) -> Aggregate<K, P>
where
    K: Hash + Eq + Clone + Send + Sync,
    P: hivekit_lockfree::Merge + Send + Clone,
{
    let aggregator = match threshold {
        Some(threshold) => Aggregator::with_parallel_threshold(threshold),
        None => Aggregator::new(),
    };
    for proposal in proposals {
        aggregator.submit(proposal.clone()).expect("distinct ids");
    }
    assert_eq!(aggregator.len(), proposals.len());
    aggregator.finish(resolution)
}

fn check<K: Hash + Eq + Clone + Send + Sync + Debug>(
    label: &str,
    proposals: &[Proposal<K, Payload>],
    resolution: Resolution,
) {
    let (accepted, rejected) = reference(proposals, resolution);
    let merged = proposals
        .iter()
        .filter(|p| accepted.contains(&p.id))
        .map(|p| p.payload.clone())
        .reduce(|mut a, b| {
            a.0 .0 = a.0 .0.wrapping_add(b.0 .0);
            a.1.extend(b.1);
            a
        });
    let label = format!("{label} {resolution:?} ({} proposals)", proposals.len());
    let one_call = aggregate(proposals.to_vec(), resolution).expect("distinct ids");
    assert_eq!(one_call.accepted, accepted, "{label}: aggregate accepted");
    assert_eq!(one_call.rejected, rejected, "{label}: aggregate rejected");
    assert_eq!(one_call.merged, merged, "{label}: aggregate merged");
    assert_eq!(
        one_call.conflicts.groups.len(),
        reference_groups(proposals).len(),
        "{label}: group count"
    );
    for threshold in [Some(0), Some(1), None, Some(usize::MAX)] {
        let outcome = run_aggregator(proposals, threshold, resolution);
        assert_eq!(
            outcome, one_call,
            "{label}: aggregator threshold {threshold:?}"
        );
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// `count` proposals of exactly `per` key occurrences each, over `space` keys, with repeats and
/// read+write of a key, random priorities, ids scattered and in random order, payloads near
/// u64::MAX so the sum wraps.
fn generate(count: usize, per: usize, space: u64, seed: u64) -> Vec<Proposal<u64, Payload>> {
    let mut rng = Rng(seed);
    let mut ids: Vec<u64> = (0..count as u64).map(|i| i * 13 + 5).collect();
    for i in (1..ids.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        ids.swap(i, j);
    }
    ids.into_iter()
        .map(|id| {
            let (mut reads, mut writes) = (Vec::new(), Vec::new());
            let mut left = per;
            while left > 0 {
                let k = rng.below(space);
                match rng.below(8) {
                    0..=3 => reads.push(k),
                    4..=5 => writes.push(k),
                    6 if left >= 2 => {
                        reads.push(k);
                        writes.push(k);
                        left -= 1;
                    }
                    7 if left >= 2 => {
                        writes.push(k);
                        writes.push(k);
                        left -= 1;
                    }
                    _ => reads.push(k),
                }
                left -= 1;
            }
            let value = u64::MAX - rng.below(1000);
            Proposal::new(id, (Sum(value), BTreeSet::from([id])))
                .reads(reads)
                .writes(writes)
                .priority(Priority::ALL[rng.below(4) as usize])
        })
        .collect()
}

fn resolution() -> impl Strategy<Value = Resolution> {
    prop_oneof![
        Just(Resolution::HighestPriority),
        Just(Resolution::FirstSubmitted),
        Just(Resolution::RejectAll),
    ]
}

/// (count, per): around the aggregator's tiny check (64 occurrences), the small detection path
/// (64 proposals / 32 occurrences), the serial partitioned scan (16,384 occurrences).
const SHAPES: &[(usize, usize)] = &[
    (0, 0),
    (1, 3),
    (2, 1),
    (16, 4),
    (17, 4),
    (21, 3),
    (22, 3),
    (32, 2),
    (33, 2),
    (64, 1),
    (65, 1),
    (64, 0),
    (100, 4),
    (4_096, 4),
    (4_097, 4),
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn every_path_matches_the_reference(
        shape in 0..SHAPES.len(),
        space in prop_oneof![Just(2_u64), Just(8), Just(60), Just(100_000)],
        seed in any::<u64>(),
        resolution in resolution(),
    ) {
        let (count, per) = SHAPES[shape];
        let proposals = generate(count, per, space, seed);
        check(&format!("count {count} per {per} space {space} seed {seed}"), &proposals, resolution);
    }

    #[test]
    fn string_keys_match_the_reference(
        shape in 0..9_usize,
        seed in any::<u64>(),
        resolution in resolution(),
    ) {
        let (count, per) = SHAPES[shape];
        let proposals: Vec<Proposal<String, Payload>> = generate(count, per, 6, seed)
            .into_iter()
            .map(|p| Proposal {
                id: p.id,
                priority: p.priority,
                reads: p.reads.iter().map(|k| format!("k{k}")).collect(),
                writes: p.writes.iter().map(|k| format!("k{k}")).collect(),
                payload: p.payload,
            })
            .collect();
        check("strings", &proposals, resolution);
    }
}

/// At the aggregate's parallel threshold (16,384 proposals): one-call and every aggregator path.
#[test]
fn the_default_parallel_threshold_matches_the_reference() {
    for (count, space) in [(16_383, 30_000_u64), (16_384, 30_000), (16_385, 500)] {
        for resolution in [Resolution::HighestPriority, Resolution::FirstSubmitted] {
            let proposals = generate(count, 2, space, count as u64);
            check(&format!("count {count}"), &proposals, resolution);
        }
    }
}
