//! `detect_conflicts` and `aggregate` called from inside rayon pool jobs, many at once, with key types and sizes that alternate (so kept buffers are recycled across types): every report equals the one a fresh plain thread computes.

use hivekit_lockfree::{aggregate, detect_conflicts, ConflictReport, Proposal, Resolution, Sum};
use rayon::prelude::*;

fn input(seed: u64, count: usize, space: u64, per: u64) -> Vec<Proposal<u64, Sum<u64>>> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..count as u64)
        .map(|i| {
            let keys: Vec<u64> = (0..per).map(|_| next() % space).collect();
            let split = (next() % (per + 1)) as usize;
            Proposal::new(i.wrapping_mul(0x2545_F491_4F6C_DD1D), Sum(i))
                .writes(keys[..split].to_vec())
                .reads(keys[split..].to_vec())
        })
        .collect()
}

fn strings(proposals: &[Proposal<u64, Sum<u64>>]) -> Vec<Proposal<String, Sum<u64>>> {
    proposals
        .iter()
        .map(|p| Proposal {
            id: p.id,
            priority: p.priority,
            reads: p.reads.iter().map(|k| format!("s{k}")).collect(),
            writes: p.writes.iter().map(|k| format!("s{k}")).collect(),
            payload: p.payload,
        })
        .collect()
}

/// The expected report, computed on a fresh thread (no kept buffers, not a pool thread).
fn fresh<K: std::hash::Hash + Eq + Clone + Sync + Send>(
    proposals: &[Proposal<K, Sum<u64>>],
) -> ConflictReport<K> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| detect_conflicts(proposals).unwrap())
            .join()
            .unwrap()
    })
}

#[test]
fn concurrent_calls_from_pool_jobs_match_a_fresh_thread() {
    // Sizes on every path: small, single table, partitioned serial, partitioned parallel.
    let shapes: &[(usize, u64, u64)] = &[
        (10, 6, 3),
        (300, 40, 3),
        (5_000, 3_000, 4),
        (17_000, 200_000, 4),
        (12_000, 50, 6),
        (20_000, 5, 4),
    ];
    let inputs: Vec<Vec<Proposal<u64, Sum<u64>>>> = shapes
        .iter()
        .enumerate()
        .map(|(seed, &(count, space, per))| input(seed as u64 + 1, count, space, per))
        .collect();
    let expected: Vec<ConflictReport<u64>> = inputs.iter().map(|input| fresh(input)).collect();
    let expected_strings: Vec<ConflictReport<String>> =
        inputs.iter().map(|input| fresh(&strings(input))).collect();
    let string_inputs: Vec<Vec<Proposal<String, Sum<u64>>>> =
        inputs.iter().map(|input| strings(input)).collect();
    // Each job runs a different input and key type, several rounds, in an order that differs per job.
    (0..24_usize).into_par_iter().for_each(|job| {
        for round in 0..3 {
            let which = (job * 5 + round * 7) % inputs.len();
            if (job + round) % 2 == 0 {
                let report = detect_conflicts(&inputs[which]).unwrap();
                assert_eq!(
                    report, expected[which],
                    "job {job} round {round} input {which} (u64)"
                );
            } else {
                let report = detect_conflicts(&string_inputs[which]).unwrap();
                assert_eq!(
                    report, expected_strings[which],
                    "job {job} round {round} input {which} (String)"
                );
            }
        }
    });
    // And aggregate inside the pool against aggregate on a fresh thread.
    let fresh_aggregates: Vec<_> = inputs
        .iter()
        .map(|input| {
            let input = input.clone();
            std::thread::spawn(move || aggregate(input, Resolution::HighestPriority).unwrap())
                .join()
                .unwrap()
        })
        .collect();
    (0..inputs.len()).into_par_iter().for_each(|which| {
        let outcome = aggregate(inputs[which].clone(), Resolution::HighestPriority).unwrap();
        assert_eq!(
            outcome, fresh_aggregates[which],
            "aggregate of input {which}"
        );
    });
}
