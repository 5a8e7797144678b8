//! Aggregation against an independent sequential model: conflict groups per key, one winner per
//! group under each resolution, a proposal rejected if it loses any group, and the merged payload
//! equal to a plain fold of the accepted ones; the same through the concurrent `Aggregator`
//! (4 threads) and with a parallel threshold of 1.

use std::collections::{BTreeMap, BTreeSet};

use hivekit_lockfree::{aggregate, Aggregator, Priority, Proposal, ProposalError, Resolution, Sum};

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) % n
    }
}

type P = Proposal<u8, Sum<u64>>;

fn proposals(rng: &mut Rng, count: u64, keys: u64) -> Vec<P> {
    let mut ids: Vec<u64> = (0..count).map(|i| i * 3 + 1).collect();
    for i in (1..ids.len()).rev() {
        ids.swap(i, rng.below(i as u64 + 1) as usize);
    }
    ids.into_iter()
        .map(|id| {
            let reads: Vec<u8> = (0..rng.below(3)).map(|_| rng.below(keys) as u8).collect();
            let writes: Vec<u8> = (0..rng.below(3)).map(|_| rng.below(keys) as u8).collect();
            Proposal::new(id, Sum(id))
                .reads(reads)
                .writes(writes)
                .priority(Priority::ALL[rng.below(4) as usize])
        })
        .collect()
}

/// The rejected ids under `resolution`, from the definition.
fn model_rejected(input: &[P], resolution: Resolution) -> BTreeSet<u64> {
    let mut keys: BTreeMap<u8, Vec<(usize, bool)>> = BTreeMap::new();
    for (index, p) in input.iter().enumerate() {
        let touched: BTreeSet<u8> = p.reads.iter().chain(&p.writes).copied().collect();
        for key in touched {
            keys.entry(key)
                .or_default()
                .push((index, p.writes.contains(&key)));
        }
    }
    let mut rejected = BTreeSet::new();
    for members in keys.values() {
        if members.len() < 2 || !members.iter().any(|&(_, w)| w) {
            continue;
        }
        let winner = match resolution {
            Resolution::RejectAll => {
                rejected.extend(members.iter().map(|&(i, _)| input[i].id.0));
                continue;
            }
            Resolution::FirstSubmitted => members[0],
            Resolution::HighestPriority => *members
                .iter()
                .min_by_key(|&&(i, _)| (std::cmp::Reverse(input[i].priority), input[i].id))
                .unwrap(),
        };
        for &(i, writes) in members {
            if i != winner.0 && (winner.1 || writes) {
                rejected.insert(input[i].id.0);
            }
        }
    }
    rejected
}

fn check(input: Vec<P>, resolution: Resolution, label: &str) {
    let rejected = model_rejected(&input, resolution);
    let expected_accepted: Vec<u64> = input
        .iter()
        .map(|p| p.id.0)
        .filter(|id| !rejected.contains(id))
        .collect();
    let expected_merged = expected_accepted
        .iter()
        .copied()
        .map(Sum)
        .reduce(|a, b| Sum(a.0 + b.0));

    let outcome = aggregate(input, resolution).unwrap();
    let accepted: Vec<u64> = outcome.accepted.iter().map(|id| id.0).collect();
    let mut sorted_accepted = accepted.clone();
    sorted_accepted.sort_unstable();
    let mut sorted_expected = expected_accepted.clone();
    sorted_expected.sort_unstable();
    assert_eq!(
        sorted_accepted, sorted_expected,
        "{label} {resolution:?}: accepted"
    );
    let got_rejected: BTreeSet<u64> = outcome.rejected.iter().map(|(id, _)| id.0).collect();
    assert_eq!(got_rejected, rejected, "{label} {resolution:?}: rejected");
    assert_eq!(
        outcome.rejected.len(),
        rejected.len(),
        "{label}: each rejected once"
    );
    assert_eq!(
        outcome.merged, expected_merged,
        "{label} {resolution:?}: merged"
    );
}

#[test]
fn aggregate_matches_the_model_on_small_and_medium_inputs() {
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    for resolution in [
        Resolution::FirstSubmitted,
        Resolution::HighestPriority,
        Resolution::RejectAll,
    ] {
        for (count, keys) in [
            (0, 4),
            (1, 1),
            (2, 1),
            (5, 3),
            (12, 6),
            (40, 10),
            (300, 64),
            (2_000, 300),
        ] {
            for case in 0..4 {
                let input = proposals(&mut rng, count, keys);
                check(input, resolution, &format!("{count}x{keys}#{case}"));
            }
        }
    }
}

#[test]
fn the_concurrent_aggregator_matches_the_model_whatever_the_submission_interleaving() {
    let mut rng = Rng(0xDEAD_BEEF_0BAD_F00D);
    for threshold in [None, Some(1)] {
        for count in [3_u64, 64, 1_500] {
            let input = proposals(&mut rng, count, 40);
            // HighestPriority does not depend on the submission order.
            let rejected = model_rejected(&input, Resolution::HighestPriority);
            let expected: u64 = input
                .iter()
                .map(|p| p.id.0)
                .filter(|id| !rejected.contains(id))
                .sum();
            let aggregator = match threshold {
                None => Aggregator::new(),
                Some(t) => Aggregator::with_parallel_threshold(t),
            };
            let chunks: Vec<Vec<P>> = {
                let mut chunks: Vec<Vec<P>> = (0..4).map(|_| Vec::new()).collect();
                for (i, p) in input.into_iter().enumerate() {
                    chunks[i % 4].push(p);
                }
                chunks
            };
            std::thread::scope(|scope| {
                for chunk in chunks {
                    let aggregator = &aggregator;
                    scope.spawn(move || {
                        for p in chunk {
                            let id = p.id;
                            aggregator.submit(p).unwrap();
                            // A resubmission of the same id is refused and changes nothing.
                            assert_eq!(
                                aggregator.submit(Proposal::new(id, Sum(1_000_000)).writes([0])),
                                Err(ProposalError::DuplicateId(id))
                            );
                        }
                    });
                }
            });
            assert_eq!(aggregator.len(), count as usize);
            let outcome = aggregator.finish(Resolution::HighestPriority);
            let got_rejected: BTreeSet<u64> = outcome.rejected.iter().map(|(id, _)| id.0).collect();
            assert_eq!(
                got_rejected, rejected,
                "count {count} threshold {threshold:?}"
            );
            assert_eq!(
                outcome.accepted.len() + outcome.rejected.len(),
                count as usize
            );
            assert_eq!(
                outcome.merged.map(|s| s.0),
                (!outcome.accepted.is_empty()).then_some(expected),
                "count {count} threshold {threshold:?}"
            );
        }
    }
}
