//! The rows of a run made presentable: one set of cells shared by the terminal table and markdown.

use crate::baseline::Baseline;
use crate::paired::Round;
use crate::ratio::{format_ratio_cell, ratio_cells, RatioCell};
use crate::results::BenchResult;
use crate::units::{format_count, format_ns, format_throughput};
use crate::verdict::{compare_all, confirm, format_change, format_remeasured, Comparison, Verdict};

/// A run's results with everything derived from them.
#[derive(Debug)]
pub(crate) struct Report<'a> {
    /// The rows, in run order.
    pub(crate) results: &'a [BenchResult],
    ratios: Vec<RatioCell>,
    comparisons: Option<Vec<Comparison>>,
    threshold_pct: f64,
}

/// The columns a report may show (after `group`, which the renderers place themselves).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Column {
    /// The function id.
    Function,
    /// The parameter.
    Parameter,
    /// Median time per iteration.
    Median,
    /// Confidence interval of the median.
    Interval,
    /// Throughput at the median.
    Throughput,
    /// Ratio against peers.
    VsPeers,
    /// Allocations per operation.
    Allocs,
    /// Bytes allocated per operation.
    Bytes,
    /// Change against the baseline.
    Change,
    /// Verdict against the baseline.
    Verdict,
}

impl Column {
    /// The header text.
    pub(crate) fn header(self) -> &'static str {
        match self {
            Self::Function => "function",
            Self::Parameter => "parameter",
            Self::Median => "median",
            Self::Interval => "CI (95%)",
            Self::Throughput => "throughput",
            Self::VsPeers => "vs peers",
            Self::Allocs => "allocs/op",
            Self::Bytes => "bytes/op",
            Self::Change => "change",
            Self::Verdict => "verdict",
        }
    }
}

/// One crate's rows, by group, in first-seen order.
#[derive(Debug, PartialEq)]
pub(crate) struct CrateSection {
    /// The package name.
    pub(crate) krate: String,
    /// Its groups.
    pub(crate) groups: Vec<GroupSection>,
}

/// One group's rows (indices into the results).
#[derive(Debug, PartialEq)]
pub(crate) struct GroupSection {
    /// The group name.
    pub(crate) group: String,
    /// Row indices, in run order.
    pub(crate) rows: Vec<usize>,
}

impl<'a> Report<'a> {
    /// Derives ratios and, with a baseline, the comparisons.
    pub(crate) fn new(results: &'a [BenchResult], baseline: Option<(&Baseline, f64)>) -> Self {
        Self {
            results,
            ratios: ratio_cells(results),
            comparisons: baseline
                .map(|(baseline, threshold)| compare_all(results, baseline, threshold)),
            threshold_pct: baseline.map_or(0.0, |(_, threshold)| threshold),
        }
    }

    /// The comparison of row `index`, if a baseline was given.
    pub(crate) fn comparison(&self, index: usize) -> Option<Comparison> {
        self.comparisons
            .as_ref()
            .and_then(|all| all.get(index).copied())
    }

    /// Indices of the rows that regressed against the baseline.
    pub(crate) fn regressions(&self) -> Vec<usize> {
        (0..self.results.len())
            .filter(|&i| {
                self.comparison(i)
                    .is_some_and(|c| c.verdict == Verdict::Regressed)
            })
            .collect()
    }

    /// Indices of the rows slower than the baseline by more than the threshold, intervals aside:
    /// the rows to measure again before judging.
    pub(crate) fn regression_candidates(&self) -> Vec<usize> {
        (0..self.results.len())
            .filter(|&i| {
                self.comparison(i)
                    .is_some_and(|c| c.is_candidate(self.threshold_pct))
            })
            .collect()
    }

    /// Re-judges the candidates ([`Self::regression_candidates`]) on `rounds` of re-measurement:
    /// `regressed` when the rounds confirm the slowdown, "within noise" otherwise. Rows no round
    /// measured keep their first verdict.
    pub(crate) fn confirm_regressions(
        &mut self,
        baseline: &Baseline,
        rounds: &[Round],
        threshold_pct: f64,
    ) {
        let flagged = self.regression_candidates();
        let Some(comparisons) = self.comparisons.as_mut() else {
            return;
        };
        for index in flagged {
            let row = &self.results[index];
            let Some(base) = baseline.get(&row.id) else {
                continue;
            };
            let medians: Vec<f64> = rounds
                .iter()
                .filter_map(|round| round.get(&row.id).copied())
                .collect();
            if medians.is_empty() {
                continue;
            }
            let (confirmed, interval) = confirm(base.median_ns, &medians, threshold_pct);
            comparisons[index].remeasured = interval;
            comparisons[index].verdict = if confirmed {
                Verdict::Regressed
            } else {
                Verdict::WithinNoise
            };
        }
    }

    /// How row `index` fared when re-measured, if it was.
    pub(crate) fn remeasured(&self, index: usize) -> Option<String> {
        self.comparison(index)
            .and_then(|c| c.remeasured)
            .map(|ratio| format_remeasured(&ratio))
    }

    /// The columns worth showing for the whole run: empty ones (no throughput, no allocations, no
    /// baseline) are left out.
    pub(crate) fn columns(&self) -> Vec<Column> {
        let all: Vec<usize> = (0..self.results.len()).collect();
        self.columns_for(&all)
    }

    /// The columns worth showing for some rows (one group's table in markdown).
    pub(crate) fn columns_for(&self, rows: &[usize]) -> Vec<Column> {
        let any = |test: &dyn Fn(usize) -> bool| rows.iter().any(|&index| test(index));
        let extra = |name: &'static str| move |i: usize| self.results[i].extras.contains_key(name);
        let mut columns = vec![
            Column::Function,
            Column::Parameter,
            Column::Median,
            Column::Interval,
        ];
        if any(&|i| self.results[i].throughput.is_some()) {
            columns.push(Column::Throughput);
        }
        if any(&|i| {
            self.ratios
                .get(i)
                .is_some_and(|cell| *cell != RatioCell::Alone)
        }) {
            columns.push(Column::VsPeers);
        }
        if any(&extra("allocs_per_op")) {
            columns.push(Column::Allocs);
        }
        if any(&extra("bytes_per_op")) {
            columns.push(Column::Bytes);
        }
        if self.comparisons.is_some() {
            columns.extend([Column::Change, Column::Verdict]);
        }
        columns
    }

    /// The text of one cell.
    pub(crate) fn cell(&self, index: usize, column: Column) -> String {
        let row = &self.results[index];
        let extra = |name: &str| {
            row.extras
                .get(name)
                .map_or_else(String::new, |v| format_count(*v))
        };
        match column {
            Column::Function => row.function.clone(),
            Column::Parameter => row.parameter.clone(),
            Column::Median => format_ns(row.median_ns),
            Column::Interval => format!(
                "{} .. {}",
                format_ns(row.ci_low_ns),
                format_ns(row.ci_high_ns)
            ),
            Column::Throughput => row
                .throughput
                .map(|t| format_throughput(t, row.median_ns))
                .unwrap_or_default(),
            Column::VsPeers => self
                .ratios
                .get(index)
                .map(format_ratio_cell)
                .unwrap_or_default(),
            Column::Allocs => extra("allocs_per_op"),
            Column::Bytes => extra("bytes_per_op"),
            Column::Change => format_change(self.comparison(index).and_then(|c| c.change_pct)),
            Column::Verdict => self
                .comparison(index)
                .map(|c| match c.remeasured {
                    Some(ratio) => format!("{} ({})", c.verdict, format_remeasured(&ratio)),
                    None => c.verdict.to_string(),
                })
                .unwrap_or_default(),
        }
    }

    /// Rows by crate, then group, each in first-seen order.
    pub(crate) fn sections(&self) -> Vec<CrateSection> {
        let mut sections: Vec<CrateSection> = Vec::new();
        for (index, row) in self.results.iter().enumerate() {
            let position = match sections.iter().position(|s| s.krate == row.krate) {
                Some(position) => position,
                None => {
                    sections.push(CrateSection {
                        krate: row.krate.clone(),
                        groups: Vec::new(),
                    });
                    sections.len() - 1
                }
            };
            let groups = &mut sections[position].groups;
            match groups.iter_mut().find(|g| g.group == row.group) {
                Some(group) => group.rows.push(index),
                None => groups.push(GroupSection {
                    group: row.group.clone(),
                    rows: vec![index],
                }),
            }
        }
        for group in sections.iter_mut().flat_map(|s| s.groups.iter_mut()) {
            self.order_by_parameter(&mut group.rows);
        }
        sections
    }

    /// Puts the rows of one parameter together (parameters in first-seen order, rows of a parameter
    /// in run order), so each peer sits next to the hivekit row it is compared with, whatever order
    /// the suite ran them in.
    fn order_by_parameter(&self, rows: &mut [usize]) {
        let mut parameters: Vec<&str> = Vec::new();
        for &index in rows.iter() {
            let parameter = self.results[index].parameter.as_str();
            if !parameters.contains(&parameter) {
                parameters.push(parameter);
            }
        }
        let rank = |index: &usize| {
            let parameter = self.results[*index].parameter.as_str();
            parameters.iter().position(|p| *p == parameter)
        };
        // A stable sort keeps run order within a parameter.
        rows.sort_by_key(rank);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::tests::row;
    use crate::results::Throughput;

    fn rows() -> Vec<BenchResult> {
        let mut a = row("snapshot_reads", "hivekit", "1r", 2.0);
        a.krate = "hivekit-lockfree".into();
        a.extras.insert("allocs_per_op".into(), 0.0);
        a.throughput = Some(Throughput::Elements(1));
        let mut b = row("execute_baseline", "hivekit", "ready", 50.0);
        b.krate = "hivekit-runtime".into();
        let mut c = row("snapshot_reads", "arc-swap", "1r", 6.0);
        c.krate = "hivekit-lockfree".into();
        let mut d = row("snapshot_writes", "hivekit", "1w", 90.0);
        d.krate = "hivekit-lockfree".into();
        vec![a, b, c, d]
    }

    #[test]
    fn sections_group_by_crate_then_group() {
        let rows = rows();
        let report = Report::new(&rows, None);
        let sections = report.sections();
        assert_eq!(sections.len(), 2);
        assert_eq!(sections[0].krate, "hivekit-lockfree");
        assert_eq!(sections[0].groups[0].rows, [0, 2]);
        assert_eq!(sections[0].groups[1].group, "snapshot_writes");
        assert_eq!(sections[1].groups[0].rows, [1]);
    }

    #[test]
    fn rows_of_a_parameter_sit_together() {
        let rows = vec![
            row("snapshot_reads", "hivekit", "1r", 2.0),
            row("snapshot_reads", "hivekit", "2r", 3.0),
            row("snapshot_reads", "arc-swap", "1r", 6.0),
            row("snapshot_reads", "arc-swap", "2r", 7.0),
        ];
        let report = Report::new(&rows, None);
        assert_eq!(report.sections()[0].groups[0].rows, [0, 2, 1, 3]);
    }

    #[test]
    fn empty_columns_are_left_out() {
        let rows = rows();
        let report = Report::new(&rows, None);
        assert_eq!(
            report.columns(),
            [
                Column::Function,
                Column::Parameter,
                Column::Median,
                Column::Interval,
                Column::Throughput,
                Column::VsPeers,
                Column::Allocs
            ]
        );
        assert_eq!(report.cell(0, Column::Median), "2.00 ns");
        assert_eq!(report.cell(0, Column::Interval), "1.98 ns .. 2.02 ns");
        assert_eq!(report.cell(0, Column::Throughput), "500 Melem/s");
        assert_eq!(report.cell(2, Column::VsPeers), "hivekit 3.0x faster");
        assert_eq!(report.cell(1, Column::Allocs), "");
        // The runtime group alone has neither throughput, peers nor allocations.
        assert_eq!(
            report.columns_for(&[1]),
            [
                Column::Function,
                Column::Parameter,
                Column::Median,
                Column::Interval
            ]
        );
    }

    #[test]
    fn baseline_adds_change_and_verdict() {
        let rows = rows();
        let mut old = rows.clone();
        old[3].median_ns = 60.0;
        old[3].ci_low_ns = 59.0;
        old[3].ci_high_ns = 61.0;
        let baseline = Baseline::new(String::new(), String::new(), String::new(), true, &old[..]);
        let report = Report::new(&rows, Some((&baseline, 10.0)));
        assert!(report
            .columns()
            .ends_with(&[Column::Change, Column::Verdict]));
        assert_eq!(report.cell(3, Column::Change), "+50.0%");
        assert_eq!(report.cell(3, Column::Verdict), "regressed");
        assert_eq!(report.cell(0, Column::Verdict), "within noise");
        assert_eq!(report.regressions(), [3]);
    }

    #[test]
    fn a_flag_the_rounds_do_not_confirm_is_noise() {
        let rows = rows();
        let mut old = rows.clone();
        for index in [0, 3] {
            old[index].median_ns /= 1.5;
            old[index].ci_low_ns = old[index].median_ns * 0.99;
            old[index].ci_high_ns = old[index].median_ns * 1.01;
        }
        let baseline = Baseline::new(String::new(), String::new(), String::new(), true, &old[..]);
        let mut report = Report::new(&rows, Some((&baseline, 10.0)));
        assert_eq!(report.regressions(), [0, 3]);
        // Row 0 comes back at its baseline; row 3 stays 50% slower.
        let rounds: Vec<Round> = (0..5)
            .map(|_| {
                Round::from([
                    (rows[0].id.clone(), old[0].median_ns),
                    (rows[3].id.clone(), rows[3].median_ns),
                ])
            })
            .collect();
        report.confirm_regressions(&baseline, &rounds, 10.0);
        assert_eq!(report.regressions(), [3]);
        assert_eq!(
            report.cell(0, Column::Verdict),
            "within noise (re-measured 5 rounds: +0.0% (+0.0%..+0.0%))"
        );
        assert_eq!(
            report.remeasured(3).as_deref(),
            Some("re-measured 5 rounds: +50.0% (+50.0%..+50.0%)")
        );
    }
}
