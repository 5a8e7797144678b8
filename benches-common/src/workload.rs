//! Seeded workload generators shared by every suite.

use rand::rngs::SmallRng;
use rand::SeedableRng;

/// The seed every generator uses unless a bench asks for another, so runs see the same input.
pub const DEFAULT_SEED: u64 = 0x5eed_4117_e5ee_d001;

/// A small fast generator seeded with `seed`.
pub fn rng(seed: u64) -> SmallRng {
    SmallRng::seed_from_u64(seed)
}

/// Deterministic CPU work of about `rounds` dependent multiply-xor steps (a few hundred picoseconds
/// each), opaque to the optimiser. Stands in for the computation inside an agent or a command.
///
/// # Examples
///
/// ```
/// assert_eq!(benches_common::workload::spin(100), benches_common::workload::spin(100));
/// ```
pub fn spin(rounds: u64) -> u64 {
    let mut state = std::hint::black_box(0x9e37_79b9_7f4a_7c15_u64);
    for round in 0..rounds {
        state ^= state >> 29;
        state = state
            .wrapping_mul(0xbf58_476d_1ce4_e5b9)
            .wrapping_add(round);
    }
    std::hint::black_box(state)
}
