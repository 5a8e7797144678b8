//! Seeded determinism: one mixing function behind retry jitter, the seeded order of ready stages,
//! each stage's [`StageContext::seed`](crate::StageContext::seed) and the name table's hash.

/// splitmix64's finaliser: a cheap, bijective, well-mixed hash of a `u64`.
pub(crate) fn mix(mut value: u64) -> u64 {
    value = value.wrapping_add(0x9e37_79b9_7f4a_7c15);
    value = (value ^ (value >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    value ^ (value >> 31)
}

/// Stage `stage`'s seed within a run seeded with `run_seed`: distinct stages get unrelated seeds.
pub(crate) fn stage_seed(run_seed: u64, stage: u32) -> u64 {
    mix(run_seed ^ mix(u64::from(stage)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_stages_of_one_run_get_distinct_seeds() {
        let seeds: std::collections::HashSet<u64> = (0..1_000).map(|s| stage_seed(7, s)).collect();
        assert_eq!(seeds.len(), 1_000);
    }

    #[test]
    fn the_same_run_seed_and_stage_give_the_same_seed() {
        assert_eq!(stage_seed(42, 3), stage_seed(42, 3));
        assert_ne!(stage_seed(42, 3), stage_seed(43, 3));
    }
}
