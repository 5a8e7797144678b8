//! Seeded proposal sets for the lockfree and hive suites: plain data, converted by each bench.
//!
//! [`proposal_specs`] builds `n` proposals of `k` keys where exactly the requested fraction touches a
//! contested key, so a bench at "10 % conflicts" really has 10 % of its proposals in conflict groups.

use rand::seq::SliceRandom;
use rand::Rng;

use crate::workload::rng;

/// One proposal as plain data: what `hivekit_lockfree::Proposal<u64, _>` is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposalSpec {
    /// Unique id; `0..n` in input order.
    pub id: u64,
    /// Priority index, `0` (low) ..= `3` (critical).
    pub priority: u8,
    /// Keys read.
    pub reads: Vec<u64>,
    /// Keys written.
    pub writes: Vec<u64>,
}

impl ProposalSpec {
    /// Every key the proposal touches, writes first.
    pub fn keys(&self) -> impl Iterator<Item = u64> + '_ {
        self.writes.iter().chain(&self.reads).copied()
    }
}

/// `n` proposals of `keys_per_proposal` keys (half written, rounded up, the rest read), of which
/// `conflict_count(n, conflict_rate)` touch a contested key and the others touch only keys nobody
/// else touches.
///
/// Conflicting proposals come in clusters of 2 to 4 sharing one contested key: the first member of
/// a cluster writes it, every other member writes it (write-write) or reads it (read-write) with
/// equal odds. Proposals are then shuffled, so conflicts are spread over the input, and numbered
/// `0..n` in their final order. Keys are distinct scattered 64-bit values, not a dense range. The
/// same arguments always give the same proposals.
///
/// # Panics
///
/// If `keys_per_proposal` is 0 or `conflict_rate` is outside `0.0..=1.0` (bench inputs are constants).
///
/// # Examples
///
/// ```
/// use benches_common::proposals::{conflict_count, proposal_specs};
///
/// let specs = proposal_specs(1_000, 4, 0.1, 7);
/// assert_eq!(specs.len(), 1_000);
/// assert!(specs.iter().all(|spec| spec.keys().count() == 4));
/// assert_eq!(conflict_count(1_000, 0.1), 100);
/// assert_eq!(specs, proposal_specs(1_000, 4, 0.1, 7));
/// ```
pub fn proposal_specs(
    n: usize,
    keys_per_proposal: usize,
    conflict_rate: f64,
    seed: u64,
) -> Vec<ProposalSpec> {
    assert!(keys_per_proposal > 0, "keys_per_proposal must be positive");
    assert!(
        (0.0..=1.0).contains(&conflict_rate),
        "conflict_rate must be within 0..=1"
    );
    let mut rng = rng(seed);
    let mut next_key = 0_u64;
    let mut fresh_key = move || {
        next_key += 1;
        scatter(next_key)
    };
    let writes = keys_per_proposal.div_ceil(2);
    let mut specs: Vec<ProposalSpec> = (0..n)
        .map(|_| ProposalSpec {
            id: 0,
            priority: rng.gen_range(0..4),
            writes: (0..writes).map(|_| fresh_key()).collect(),
            reads: (writes..keys_per_proposal).map(|_| fresh_key()).collect(),
        })
        .collect();

    // The first `conflicting` proposals form the clusters; the shuffle below spreads them.
    let conflicting = conflict_count(n, conflict_rate);
    let mut start = 0;
    while start < conflicting {
        let remaining = conflicting - start;
        let mut size = rng.gen_range(2..=4).min(remaining);
        if remaining - size == 1 {
            // Never leave a single proposal to conflict with nobody.
            size += 1;
        }
        let contested = fresh_key();
        for (member, spec) in specs[start..start + size].iter_mut().enumerate() {
            if member == 0 || rng.gen_bool(0.5) || spec.reads.is_empty() {
                spec.writes[0] = contested;
            } else {
                spec.reads[0] = contested;
            }
        }
        start += size;
    }

    specs.shuffle(&mut rng);
    for (id, spec) in specs.iter_mut().enumerate() {
        spec.id = id as u64;
    }
    specs
}

/// How many of `n` proposals [`proposal_specs`] puts in conflict at `conflict_rate`:
/// `round(n * rate)`, except that a lone conflicting proposal is impossible, so 1 becomes 2 (when
/// `n >= 2`, else 0).
pub fn conflict_count(n: usize, conflict_rate: f64) -> usize {
    let count = (n as f64 * conflict_rate).round() as usize;
    match count.min(n) {
        1 if n >= 2 => 2,
        1 => 0,
        count => count,
    }
}

/// `n` payloads of `values_per_payload` values drawn from `0..universe`: element sets for merge
/// benches (a payload becomes a set or a map of counters).
///
/// # Examples
///
/// ```
/// let payloads = benches_common::proposals::payload_values(10, 3, 100, 1);
/// assert_eq!(payloads.len(), 10);
/// assert!(payloads.iter().flatten().all(|value| *value < 100));
/// ```
pub fn payload_values(
    n: usize,
    values_per_payload: usize,
    universe: u64,
    seed: u64,
) -> Vec<Vec<u64>> {
    let mut rng = rng(seed);
    (0..n)
        .map(|_| {
            (0..values_per_payload)
                .map(|_| rng.gen_range(0..universe.max(1)))
                .collect()
        })
        .collect()
}

/// A bijective mix (splitmix64's finaliser): distinct counters give distinct, scattered keys.
pub(crate) fn scatter(counter: u64) -> u64 {
    let mut x = counter.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// The proposals that touch a key some other proposal also touches (all shared keys are
    /// written by their first cluster member, so every shared key is contested).
    fn touching_shared(specs: &[ProposalSpec]) -> usize {
        let mut touches: HashMap<u64, usize> = HashMap::new();
        for spec in specs {
            for key in spec.keys() {
                *touches.entry(key).or_default() += 1;
            }
        }
        specs
            .iter()
            .filter(|spec| spec.keys().any(|key| touches[&key] > 1))
            .count()
    }

    #[test]
    fn exact_conflict_fraction() {
        for (n, rate) in [
            (100, 0.0),
            (100, 0.1),
            (1_000, 0.5),
            (1_000, 1.0),
            (7, 0.2),
            (3, 0.34),
        ] {
            let specs = proposal_specs(n, 4, rate, 42);
            assert_eq!(
                touching_shared(&specs),
                conflict_count(n, rate),
                "n {n} rate {rate}"
            );
            let ids: Vec<u64> = specs.iter().map(|spec| spec.id).collect();
            assert_eq!(ids, (0..n as u64).collect::<Vec<_>>());
        }
    }

    #[test]
    fn one_key_proposals_still_conflict() {
        let specs = proposal_specs(50, 1, 0.5, 3);
        assert_eq!(touching_shared(&specs), 25);
        assert!(specs
            .iter()
            .all(|spec| spec.writes.len() == 1 && spec.reads.is_empty()));
    }
}
