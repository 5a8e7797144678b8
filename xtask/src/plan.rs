//! The time plan of a full run (`cargo xtask bench` without `--quick`), printed before it starts.
//!
//! A criterion row costs its warm-up, its measurement and a fixed overhead (input setup, the
//! allocation probe, the bootstrap analysis). The measurement is the configured time unless one
//! iteration is so slow that criterion's minimum iteration count takes longer: criterion 0.8's
//! `Auto` sampling measures `n(n+1)/2` iterations (linear) while that fits in twice the target time,
//! and otherwise `n` samples of at least one iteration each (flat). [`row_cost`] models exactly that,
//! so the plan needs per row only its timing (the suite defaults of `benches_common::criterion()`,
//! [`FULL`], or a group's own, [`timing_of`]) and its time per iteration, read from the last results in the
//! criterion home (a row never measured counts as fast: the plan says how many those are).
//!
//! The paired rounds after the main pass run quick settings on the full sizes and are planned the
//! same way. The budget is [`BUDGET`], five minutes under issue 10's 30-minute limit, so that a full
//! run on a loaded machine still ends in time.

use std::collections::HashMap;
use std::time::Duration;

/// What a full run may take by plan: 25 minutes, leaving 5 of the 30-minute limit for load.
pub(crate) const BUDGET: Duration = Duration::from_secs(25 * 60);

/// Per row on top of warm-up and measurement: building the input, the allocation probe (about
/// 20 ms plus one operation), the 20,000-resample bootstrap and the report.
const ROW_OVERHEAD: Duration = Duration::from_millis(250);

/// The suites' timings (`benches-common/src/timing.rs`, shared by path so that the plan and
/// `benches_common::criterion()` read the same numbers).
#[path = "../../benches-common/src/timing.rs"]
#[allow(
    unreachable_pub,
    reason = "a public module of benches-common, included here as a private one"
)]
mod timing;

pub(crate) use timing::{Timing, FULL, QUICK};

/// The full-mode timing of the row `group/function/parameter`: the suites' defaults, or the
/// settings a suite gives the group (each line names the bench file that sets it; keep them in
/// step when a suite changes its group's settings).
pub(crate) fn timing_of(id: &str) -> Timing {
    let mut parts = id.split('/');
    let group = parts.next().unwrap_or_default();
    let parameter = id.rsplit('/').next().unwrap_or_default();
    let ten = Timing {
        samples: 10,
        ..FULL
    };
    match group {
        // crates/hive/benches/rows/waiting.rs
        "waiting_agents" => Timing {
            samples: 10,
            warm_up: Duration::from_millis(500),
            measurement: Duration::from_secs(5),
        },
        // crates/runtime/benches/runtime.rs (flat sampling; a process start per iteration)
        "startup_time" => Timing {
            samples: 10,
            warm_up: Duration::from_millis(10),
            measurement: Duration::from_millis(200),
        },
        // crates/swarm/benches/swarm.rs
        "dependency_resolution" | "pipeline_construction" => ten,
        // crates/lockfree/benches/aggregation.rs: `limit_samples` from 1M proposals on
        "commutative_aggregation" if parameter.contains("1m") => ten,
        // crates/lockfree/benches/conflict.rs: the quadratic peer beyond 1k proposals
        "conflict_detection" if id.contains("/pairwise/") && !parameter.ends_with("00") => ten,
        _ => FULL,
    }
}

/// What criterion spends measuring one row whose iteration takes `iteration` (see the module doc).
pub(crate) fn measurement_cost(timing: Timing, iteration: Duration) -> Duration {
    let n = timing.samples.max(1);
    let target = timing.measurement.as_secs_f64();
    let iter = iteration.as_secs_f64();
    if iter <= 0.0 {
        return timing.measurement;
    }
    let linear = (n * (n + 1) / 2) as f64 * iter;
    let seconds = if linear > 2.0 * target {
        // Flat: n samples of d iterations each, d = ceil(target / (n * iter)) >= 1.
        let per_sample = (target / (n as f64 * iter)).ceil().max(1.0);
        n as f64 * per_sample * iter
    } else {
        // Linear: sample i runs i * d iterations, d = ceil(target / linear) >= 1.
        (target / linear).ceil().max(1.0) * linear
    };
    Duration::from_secs_f64(seconds)
}

/// One row's whole cost: warm-up (at least one iteration), measurement, one more iteration for the
/// allocation probe, and [`ROW_OVERHEAD`].
pub(crate) fn row_cost(timing: Timing, iteration: Duration) -> Duration {
    timing.warm_up.max(iteration) + measurement_cost(timing, iteration) + iteration + ROW_OVERHEAD
}

/// The plan of one run: per group, rows and time, and the paired rounds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    /// `(group, rows, time)`, in the order the rows were listed.
    pub(crate) groups: Vec<(String, usize, Duration)>,
    /// Rows with no recorded time per iteration (counted as fast).
    pub(crate) unmeasured: usize,
    /// The paired rounds: `rounds` x the ratio rows with quick timing.
    pub(crate) rounds: Duration,
}

impl Plan {
    /// Plans the rows `ids` (in run order) with the recorded times per iteration in `iterations`
    /// (nanoseconds by id), and `rounds` paired rounds over `paired` (ids among `ids`).
    pub(crate) fn new(
        ids: &[String],
        iterations: &HashMap<String, f64>,
        paired: &[String],
        rounds: usize,
    ) -> Self {
        let iteration = |id: &str| {
            iterations
                .get(id)
                .filter(|ns| ns.is_finite() && **ns >= 0.0)
                .map(|ns| Duration::from_secs_f64(ns / 1e9))
        };
        let mut groups: Vec<(String, usize, Duration)> = Vec::new();
        let mut unmeasured = 0;
        for id in ids {
            let known = iteration(id);
            unmeasured += usize::from(known.is_none());
            let cost = row_cost(timing_of(id), known.unwrap_or_default());
            let group = id.split('/').next().unwrap_or_default();
            match groups.iter_mut().find(|(name, _, _)| name == group) {
                Some((_, rows, time)) => {
                    *rows += 1;
                    *time += cost;
                }
                None => groups.push((group.to_owned(), 1, cost)),
            }
        }
        let per_round: Duration = paired
            .iter()
            .map(|id| row_cost(QUICK, iteration(id).unwrap_or_default()))
            .sum();
        Plan {
            groups,
            unmeasured,
            rounds: per_round * u32::try_from(rounds).unwrap_or(u32::MAX),
        }
    }

    /// The main pass and the paired rounds together.
    pub(crate) fn total(&self) -> Duration {
        self.groups
            .iter()
            .map(|(_, _, time)| *time)
            .sum::<Duration>()
            + self.rounds
    }

    /// The plan as printed before a full run: the total against [`BUDGET`], then the costliest
    /// groups.
    pub(crate) fn render(&self) -> String {
        let minutes = |d: Duration| d.as_secs_f64() / 60.0;
        let rows: usize = self.groups.iter().map(|(_, rows, _)| rows).sum();
        let mut text = format!(
            "plan: {rows} rows in {} groups, about {:.1} min (main pass {:.1} min, paired rounds {:.1} min); budget {:.0} min{}\n",
            self.groups.len(),
            minutes(self.total()),
            minutes(self.total() - self.rounds),
            minutes(self.rounds),
            minutes(BUDGET),
            if self.total() > BUDGET { ", OVER BUDGET" } else { "" },
        );
        if self.unmeasured > 0 {
            text.push_str(&format!(
                "  {} rows have no recorded time yet and are planned as fast rows\n",
                self.unmeasured
            ));
        }
        let mut costly: Vec<&(String, usize, Duration)> = self.groups.iter().collect();
        costly.sort_by_key(|group| std::cmp::Reverse(group.2));
        for (group, rows, time) in costly.iter().take(8) {
            text.push_str(&format!(
                "  {group}: {rows} rows, {:.1} min\n",
                minutes(*time)
            ));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_fast_row_costs_its_configured_times() {
        // 50 ns: whole linear passes of 63.75 us up to the 1.2 s target.
        let fast = measurement_cost(FULL, Duration::from_nanos(50));
        assert!((fast.as_secs_f64() - 1.2).abs() < 1e-3, "{fast:?}");
        assert_eq!(
            row_cost(FULL, Duration::ZERO),
            FULL.warm_up + FULL.measurement + ROW_OVERHEAD
        );
    }

    #[test]
    fn a_slow_row_costs_its_minimum_iterations() {
        // 100 ms per iteration, 50 samples: linear would need 1,275 iterations (127 s), so flat: 50.
        let flat = measurement_cost(FULL, 100 * MS);
        assert!((flat.as_secs_f64() - 5.0).abs() < 1e-6, "{flat:?}");
        // 1 ms: linear needs 1.275 s (within 2x the 1.2 s target), so one pass of it.
        let linear = measurement_cost(FULL, MS);
        assert!((linear.as_secs_f64() - 1.275).abs() < 1e-6, "{linear:?}");
        // 2 ms: linear would need 2.55 s, more than 2x the target, so flat: 50 samples of 12.
        let flat_many = measurement_cost(FULL, 2 * MS);
        assert!(
            (flat_many.as_secs_f64() - 1.2).abs() < 1e-6,
            "{flat_many:?}"
        );
        // A 1M-proposal row (10 samples) of 400 ms: 10 iterations, 4 s.
        let big = measurement_cost(timing_of("commutative_aggregation/hivekit/1m"), 400 * MS);
        assert!((big.as_secs_f64() - 4.0).abs() < 1e-6, "{big:?}");
    }

    #[test]
    fn groups_with_their_own_settings_are_planned_with_them() {
        assert_eq!(timing_of("snapshot_read/hivekit/1r"), FULL);
        assert_eq!(timing_of("waiting_agents/hivekit/1000x100").samples, 10);
        assert_eq!(
            timing_of("waiting_agents/hivekit/1000x100").measurement,
            Duration::from_secs(5)
        );
        assert_eq!(
            timing_of("dependency_resolution/hivekit/100000").samples,
            10
        );
        assert_eq!(timing_of("commutative_aggregation/hivekit/100k"), FULL);
        assert_eq!(timing_of("conflict_detection/pairwise/10k").samples, 10);
        assert_eq!(timing_of("conflict_detection/pairwise/100"), FULL);
    }

    #[test]
    fn the_plan_adds_groups_and_rounds_and_flags_a_plan_over_budget() {
        let ids: Vec<String> = ["a/hivekit/1", "a/peer/1", "b/hivekit/1"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        let iterations = HashMap::from([("b/hivekit/1".to_owned(), 1e8)]);
        let plan = Plan::new(&ids, &iterations, &ids[..2], 5);
        assert_eq!(plan.groups.len(), 2);
        assert_eq!(plan.groups[0].1, 2);
        assert_eq!(plan.unmeasured, 2);
        assert_eq!(plan.rounds, 10 * row_cost(QUICK, Duration::ZERO));
        assert_eq!(
            plan.total(),
            2 * row_cost(FULL, Duration::ZERO) + row_cost(FULL, 100 * MS) + plan.rounds
        );
        assert!(plan.render().starts_with("plan: 3 rows in 2 groups"));
        assert!(!plan.render().contains("OVER BUDGET"));
        // 1,000 default rows of 1.75 s each: 29 min.
        let many: Vec<String> = (0..1_000).map(|i| format!("g/hivekit/{i}")).collect();
        let over = Plan::new(&many, &HashMap::new(), &[], 0);
        assert!(over.total() > BUDGET);
        assert!(over.render().contains("OVER BUDGET"));
    }
}
