//! `--filter` for `cargo xtask bench --instructions`: which benchmarks of a gungraun suite to run.
//!
//! Our filter is a regex on row ids (`group/function/parameter`, a function's `_` read as `-`);
//! gungraun selects by one wildcard pattern on a module path (`FILE::GROUP::FUNCTION::ID`). So a
//! suite is first asked for its benchmarks (`--list`), the regex picks the rows, and the suite
//! runs once per group or function whose rows are all picked (`FILE::GROUP::*`), else once per
//! picked row (its exact path): only the picked rows run.

use regex::Regex;

/// One benchmark a suite lists (`--list` prints `FILE::GROUP::FUNCTION::ID: benchmark`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listed {
    /// The whole module path, as gungraun's filter matches it.
    pub(crate) path: String,
    file: String,
    group: String,
    function: String,
    id: Option<String>,
}

impl Listed {
    /// The row id the run reports for this benchmark (as `row_id` in [`crate::instructions`]).
    pub(crate) fn row_id(&self) -> String {
        let function = self.function.replace('_', "-");
        match &self.id {
            Some(id) => format!("{}/{function}/{id}", self.group),
            None => format!("{}/{function}", self.group),
        }
    }
}

/// The benchmarks in a suite's `--list` output; lines that are not benchmarks are skipped.
pub(crate) fn parse_list(output: &str) -> Vec<Listed> {
    output
        .lines()
        .filter_map(|line| {
            let path = line.trim().strip_suffix(": benchmark")?;
            let mut parts = path.split("::");
            let (file, group, function) = (parts.next()?, parts.next()?, parts.next()?);
            let id = parts.collect::<Vec<_>>().join("::");
            Some(Listed {
                path: path.to_owned(),
                file: file.to_owned(),
                group: group.to_owned(),
                function: function.to_owned(),
                id: (!id.is_empty()).then_some(id),
            })
        })
        .collect()
}

/// What to run of one suite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Selection {
    /// Every benchmark (no filter, or the filter picks them all): one run without a pattern.
    Everything,
    /// None of them: the suite is not run.
    Nothing,
    /// One run per pattern.
    Patterns(Vec<String>),
}

/// A module path as a gungraun pattern that matches it alone (`*`, `?`, `[` and `]` stand for
/// themselves inside a class).
fn literal(path: &str) -> String {
    let mut pattern = String::with_capacity(path.len());
    for character in path.chars() {
        match character {
            '*' | '?' | '[' | ']' => {
                pattern.push('[');
                pattern.push(character);
                pattern.push(']');
            }
            other => pattern.push(other),
        }
    }
    pattern
}

/// Which of `listed` run under `filter` (a regex on row ids), in as few runs as the picked rows
/// allow: a whole group, else a whole function, else each row.
pub(crate) fn select(listed: &[Listed], filter: Option<&Regex>) -> Selection {
    let Some(filter) = filter else {
        return Selection::Everything;
    };
    let picked: Vec<bool> = listed
        .iter()
        .map(|bench| filter.is_match(&bench.row_id()))
        .collect();
    if !picked.contains(&true) {
        return Selection::Nothing;
    }
    if !picked.contains(&false) {
        return Selection::Everything;
    }
    let all_picked = |same: &dyn Fn(&Listed) -> bool| {
        listed
            .iter()
            .zip(&picked)
            .filter(|(bench, _)| same(bench))
            .all(|(_, picked)| *picked)
    };
    let mut patterns: Vec<String> = Vec::new();
    for (bench, _) in listed.iter().zip(&picked).filter(|(_, picked)| **picked) {
        let in_group = |other: &Listed| other.file == bench.file && other.group == bench.group;
        let in_function = |other: &Listed| in_group(other) && other.function == bench.function;
        let pattern = if all_picked(&in_group) {
            format!(
                "{}::*",
                literal(&format!("{}::{}", bench.file, bench.group))
            )
        } else if bench.id.is_some() && all_picked(&in_function) {
            let function = format!("{}::{}::{}", bench.file, bench.group, bench.function);
            format!("{}::*", literal(&function))
        } else {
            literal(&bench.path)
        };
        if !patterns.contains(&pattern) {
            patterns.push(pattern);
        }
    }
    Selection::Patterns(patterns)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = "\
instructions::snapshot_reads::arc_swap_load::one: benchmark
instructions::snapshot_reads::hivekit::one: benchmark
instructions::snapshot_reads::hivekit::many: benchmark
instructions::conflict_detection::hivekit_detect::n_1k: benchmark
instructions::conflict_detection::hivekit_detect::n_100k: benchmark
instructions::pipeline_build::hivekit: benchmark

0 tests, 6 benchmarks
";

    fn select_with(pattern: &str) -> Selection {
        let listed = parse_list(LIST);
        select(&listed, Some(&Regex::new(pattern).unwrap()))
    }

    fn patterns(list: &[&str]) -> Selection {
        Selection::Patterns(list.iter().map(|p| (*p).to_owned()).collect())
    }

    #[test]
    fn a_listing_becomes_the_row_ids_the_run_reports() {
        let ids: Vec<String> = parse_list(LIST).iter().map(Listed::row_id).collect();
        assert_eq!(
            ids,
            [
                "snapshot_reads/arc-swap-load/one",
                "snapshot_reads/hivekit/one",
                "snapshot_reads/hivekit/many",
                "conflict_detection/hivekit-detect/n_1k",
                "conflict_detection/hivekit-detect/n_100k",
                "pipeline_build/hivekit",
            ]
        );
    }

    #[test]
    fn no_filter_or_one_that_picks_every_row_runs_the_suite_once_without_a_pattern() {
        assert_eq!(select(&parse_list(LIST), None), Selection::Everything);
        assert_eq!(select_with("."), Selection::Everything);
    }

    #[test]
    fn a_filter_that_picks_no_row_of_a_suite_does_not_run_it() {
        assert_eq!(select_with("^waiting_agents/"), Selection::Nothing);
    }

    #[test]
    fn whole_groups_and_functions_run_by_pattern_and_single_rows_by_their_exact_path() {
        assert_eq!(
            select_with("^conflict_detection/"),
            patterns(&["instructions::conflict_detection::*"])
        );
        assert_eq!(
            select_with("^snapshot_reads/hivekit/"),
            patterns(&["instructions::snapshot_reads::hivekit::*"])
        );
        assert_eq!(
            select_with("n_100k$|/arc-swap-load/|^pipeline_build/"),
            patterns(&[
                "instructions::snapshot_reads::arc_swap_load::*",
                "instructions::conflict_detection::hivekit_detect::n_100k",
                "instructions::pipeline_build::*",
            ])
        );
        assert_eq!(
            select_with("hivekit/one"),
            patterns(&["instructions::snapshot_reads::hivekit::one"]),
            "`hivekit/one` picks one row of a function with two"
        );
    }

    #[test]
    fn wildcard_characters_in_a_path_stand_for_themselves() {
        assert_eq!(literal("a::b[1]::c*?"), "a::b[[]1[]]::c[*][?]");
    }
}
