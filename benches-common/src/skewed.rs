//! A skewed, history-like proposal workload: what conflict detection meets on real inputs.
//!
//! Modelled on a repository's commit history, each commit a proposal writing the files it touched
//! and reading directories: key popularity has a heavy tail (a few keys, like the lock file or the
//! root directory, are in a large share of all proposals), and so has proposal width (most touch a
//! handful of keys, a few touch thousands). Almost every proposal then lands in some conflict
//! group, and the hot keys' groups have hundreds to thousands of members, unlike
//! [`proposal_specs`](crate::proposals::proposal_specs)' uniform 4-key proposals with 10 % in
//! small clusters.
//!
//! Keys come as `u64` ([`ProposalSpec`]'s keys, scattered values) or as path-like strings
//! ([`path_key`]), so a suite can measure both the integer and the string-hashing cost.

use rand::Rng;

use crate::proposals::{scatter, ProposalSpec};
use crate::workload::rng;

/// The widest proposal [`skewed_specs`] generates (in keys).
pub const MAX_WIDTH: usize = 4_096;

/// `n` proposals with heavy-tailed key popularity and heavy-tailed width, numbered `0..n`.
///
/// - Width: a Pareto draw (minimum 2 keys, tail index 1.2) capped at [`MAX_WIDTH`]; the mean is
///   about 9 keys, one proposal in a few hundred touches more than 200.
/// - Keys: ranks drawn with density proportional to `1 / (rank + 1)` over a universe of `4 n`
///   keys (at least 1,024), a continuous Zipf with exponent 1: the hottest key is in about 5 % of
///   all key occurrences. A rank becomes a key through a bijective mix, so keys are scattered
///   `u64` values, and [`path_key`] turns one into a path. A proposal may draw a key twice (a real
///   change can list a file twice); detection counts it once.
/// - Access: each drawn key is written with probability 0.6, otherwise read.
///
/// The same arguments always give the same proposals.
///
/// # Examples
///
/// ```
/// use benches_common::skewed::{skewed_specs, MAX_WIDTH};
///
/// let specs = skewed_specs(1_000, 7);
/// assert_eq!(specs.len(), 1_000);
/// assert!(specs.iter().all(|spec| (2..=MAX_WIDTH).contains(&spec.keys().count())));
/// assert_eq!(specs, skewed_specs(1_000, 7));
/// ```
pub fn skewed_specs(n: usize, seed: u64) -> Vec<ProposalSpec> {
    let mut rng = rng(seed);
    let universe = (4 * n).max(1_024) as f64;
    let log_universe = (universe + 1.0).ln();
    (0..n)
        .map(|id| {
            let uniform: f64 = rng.gen_range(f64::EPSILON..1.0);
            let width = (2.0 / uniform.powf(1.0 / 1.2)).min(MAX_WIDTH as f64) as usize;
            let mut spec = ProposalSpec {
                id: id as u64,
                priority: rng.gen_range(0..4),
                reads: Vec::new(),
                writes: Vec::new(),
            };
            for _ in 0..width {
                // Inverse CDF of the density 1 / (x + 1) on [0, universe).
                let rank = ((rng.gen::<f64>() * log_universe).exp() - 1.0) as u64;
                let key = scatter(rank + 1);
                if rng.gen_bool(0.6) {
                    spec.writes.push(key);
                } else {
                    spec.reads.push(key);
                }
            }
            spec
        })
        .collect()
}

/// `count` proposals writing the same `width` keys: the widest conflict, where every key is
/// contested by every proposal (the width row).
///
/// # Examples
///
/// ```
/// let specs = benches_common::skewed::same_keys_specs(2, 16);
/// assert_eq!(specs[0].writes, specs[1].writes);
/// assert_eq!(specs[1].writes.len(), 16);
/// ```
pub fn same_keys_specs(count: usize, width: usize) -> Vec<ProposalSpec> {
    let keys: Vec<u64> = (1..=width as u64).map(scatter).collect();
    (0..count as u64)
        .map(|id| ProposalSpec {
            id,
            priority: 0,
            reads: Vec::new(),
            writes: keys.clone(),
        })
        .collect()
}

/// A path-like string for `key`, as a file in a source tree: about 30 bytes, sharing long
/// prefixes with other keys, as real paths do (so hashing and comparing cost what they cost on
/// paths).
///
/// # Examples
///
/// ```
/// use benches_common::skewed::path_key;
///
/// assert_eq!(path_key(42), path_key(42));
/// assert_ne!(path_key(42), path_key(43));
/// assert!(path_key(42).starts_with("crates/"));
/// ```
pub fn path_key(key: u64) -> String {
    format!(
        "crates/c{}/src/m{}/{:016x}.rs",
        key % 23,
        (key >> 8) % 61,
        key
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn popularity_and_width_have_heavy_tails() {
        let specs = skewed_specs(10_000, 1);
        let mut touches: HashMap<u64, usize> = HashMap::new();
        let mut occurrences = 0;
        for spec in &specs {
            for key in spec.keys() {
                *touches.entry(key).or_default() += 1;
                occurrences += 1;
            }
        }
        let hottest = touches.values().copied().max().unwrap_or(0);
        assert!(
            hottest * 50 > occurrences,
            "hottest key {hottest} of {occurrences}"
        );
        let widest = specs.iter().map(|spec| spec.keys().count()).max();
        assert!(widest > Some(500), "widest {widest:?}");
        let mean = occurrences / specs.len();
        assert!((4..=20).contains(&mean), "mean width {mean}");
    }

    #[test]
    fn path_keys_are_distinct_for_distinct_keys() {
        let specs = skewed_specs(1_000, 2);
        let mut paths: HashMap<String, u64> = HashMap::new();
        for key in specs.iter().flat_map(ProposalSpec::keys) {
            assert_eq!(*paths.entry(path_key(key)).or_insert(key), key);
        }
    }
}
