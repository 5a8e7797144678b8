//! Reading criterion 0.8: its stdout while it runs, and its files on disk afterwards.
//!
//! Layout (checked against criterion 0.8.2): for every benchmark,
//! `<CRITERION_HOME>/<group>/<function>/<parameter>/new/{benchmark.json,estimates.json}`, where each
//! path segment is sanitised (`/`, `:` and other characters become `_`, long names are cut). The
//! sanitised names cannot be mapped back, so benchmarks are identified by the ids inside
//! `benchmark.json`, never by their directory.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Deserialize;

use crate::error::XtaskError;
use crate::results::{BenchResult, Throughput};
use crate::units::parse_criterion_time;

/// The ids and throughput of one benchmark, from `new/benchmark.json`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BenchmarkMeta {
    /// The group id.
    pub(crate) group: String,
    /// The function id, empty when there is none.
    pub(crate) function: String,
    /// The parameter, empty when there is none.
    pub(crate) parameter: String,
    /// `group/function/parameter`, as criterion joins them.
    pub(crate) full_id: String,
    /// The id as printed on stdout (cut to 100 characters plus `...`).
    pub(crate) title: String,
    /// Throughput per iteration, if the group set one.
    pub(crate) throughput: Option<Throughput>,
}

/// The median and its confidence interval, from `new/estimates.json`, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct MedianEstimate {
    /// Point estimate of the median.
    pub(crate) median_ns: f64,
    /// Lower bound of its confidence interval.
    pub(crate) ci_low_ns: f64,
    /// Upper bound of its confidence interval.
    pub(crate) ci_high_ns: f64,
}

#[derive(Deserialize)]
struct RawBenchmark {
    group_id: String,
    function_id: Option<String>,
    value_str: Option<String>,
    throughput: Option<RawThroughput>,
    full_id: String,
    title: String,
}

/// criterion's own serde spelling of `Throughput`.
#[derive(Deserialize)]
enum RawThroughput {
    Bits(u64),
    Bytes(u64),
    BytesDecimal(u64),
    Elements(u64),
    ElementsAndBytes { elements: u64, bytes: u64 },
}

impl From<RawThroughput> for Throughput {
    fn from(raw: RawThroughput) -> Self {
        match raw {
            RawThroughput::Bits(n) => Self::Bits(n),
            RawThroughput::Bytes(n) => Self::Bytes(n),
            RawThroughput::BytesDecimal(n) => Self::BytesDecimal(n),
            RawThroughput::Elements(n) => Self::Elements(n),
            RawThroughput::ElementsAndBytes { elements, bytes } => {
                Self::ElementsAndBytes { elements, bytes }
            }
        }
    }
}

#[derive(Deserialize)]
struct RawEstimates {
    median: RawEstimate,
}

#[derive(Deserialize)]
struct RawEstimate {
    confidence_interval: RawInterval,
    point_estimate: f64,
}

#[derive(Deserialize)]
struct RawInterval {
    lower_bound: f64,
    upper_bound: f64,
}

/// Parses criterion's `benchmark.json`.
pub(crate) fn parse_benchmark_json(json: &str) -> Result<BenchmarkMeta, serde_json::Error> {
    let raw: RawBenchmark = serde_json::from_str(json)?;
    Ok(BenchmarkMeta {
        group: raw.group_id,
        function: raw.function_id.unwrap_or_default(),
        parameter: raw.value_str.unwrap_or_default(),
        full_id: raw.full_id,
        title: raw.title,
        throughput: raw.throughput.map(Throughput::from),
    })
}

/// Parses criterion's `estimates.json`, keeping the median.
pub(crate) fn parse_estimates_json(json: &str) -> Result<MedianEstimate, serde_json::Error> {
    let raw: RawEstimates = serde_json::from_str(json)?;
    Ok(MedianEstimate {
        median_ns: raw.median.point_estimate,
        ci_low_ns: raw.median.confidence_interval.lower_bound,
        ci_high_ns: raw.median.confidence_interval.upper_bound,
    })
}

/// A benchmark criterion reported as finished on stdout.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Completed {
    /// The benchmark's title (its full id unless longer than 100 characters).
    pub(crate) title: String,
    /// criterion's typical time per iteration (the middle of `time: [low typical high]`), in ns.
    pub(crate) typical_ns: f64,
}

/// Follows criterion's stdout line by line and recognises finished benchmarks.
///
/// criterion prints `<id> time:   [low typical high]` when the id is at most 23 characters long,
/// otherwise the id alone on one line and `time:` indented on the next. With a previous run on disk
/// it also prints a `change:` block whose `time:` line holds percentages; that one is skipped.
#[derive(Debug, Default)]
pub(crate) struct ProgressParser {
    previous: String,
}

impl ProgressParser {
    /// Feeds one stdout line; returns the benchmark it completes, if any.
    pub(crate) fn feed(&mut self, line: &str) -> Option<Completed> {
        let line = strip_ansi(line);
        let completed = parse_time_line(&line).and_then(|(prefix, typical_ns)| {
            let title = if prefix.is_empty() {
                self.previous.as_str()
            } else {
                prefix
            };
            (!title.is_empty() && title != "change:").then(|| Completed {
                title: title.to_owned(),
                typical_ns,
            })
        });
        let trimmed = line.trim();
        if !trimmed.is_empty() {
            self.previous = trimmed.to_owned();
        }
        completed
    }
}

/// The benchmark a stderr line `Benchmarking <title>` starts (not its later phase lines such as
/// `Benchmarking <title>: Warming up for 1.0000 s`).
pub(crate) fn started(line: &str) -> Option<&str> {
    const PHASES: [&str; 5] = [
        ": Warming up for ",
        ": Collecting ",
        ": Analyzing",
        ": Profiling for ",
        ": Complete (Analysis Disabled)",
    ];
    let title = line.strip_prefix("Benchmarking ")?.trim_end();
    let is_phase = PHASES.iter().any(|phase| title.contains(phase));
    (!is_phase && !title.is_empty()).then_some(title)
}

/// Splits `<prefix> time:   [1.0 ns 2.0 ns 3.0 ns]` into the prefix and the middle time in ns.
fn parse_time_line(line: &str) -> Option<(&str, f64)> {
    let (prefix, rest) = line.split_once("time:")?;
    let inside = rest.trim_start().strip_prefix('[')?;
    let (inside, _) = inside.split_once(']')?;
    let tokens: Vec<&str> = inside.split_whitespace().collect();
    let [_, _, value, unit, _, _] = tokens.as_slice() else {
        return None;
    };
    let typical = parse_criterion_time(value.parse().ok()?, unit)?;
    Some((prefix.trim(), typical))
}

/// Removes ANSI escape sequences (`ESC [ ... letter`), in case criterion colours its output.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for next in chars.by_ref() {
                if next.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Parses the output of `-- --list`: one `<id>: benchmark` line per benchmark.
pub(crate) fn parse_list(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|line| line.trim_end().strip_suffix(": benchmark"))
        .map(str::to_owned)
        .collect()
}

/// A `new/benchmark.json` found on disk with its estimates.
struct Found {
    meta: BenchmarkMeta,
    estimate: MedianEstimate,
    modified: SystemTime,
}

/// Reads the results of the benchmarks that ran in this run from the criterion home.
///
/// `ran` lists, in run order, the titles seen on stdout and the crate whose suite printed them; only
/// these are read, so results left by earlier runs never leak in. The second value explains, one
/// message per title, the benchmarks that ran but whose results could not be read; such a problem
/// never costs the rest of the run. Files that are not criterion 0.8's (other versions, unrelated
/// directories) are skipped.
pub(crate) fn collect_results(
    criterion_home: &Path,
    ran: &[(String, String)],
) -> Result<(Vec<BenchResult>, Vec<String>), XtaskError> {
    let wanted: HashMap<&str, ()> = ran.iter().map(|(title, _)| (title.as_str(), ())).collect();
    let mut found: HashMap<String, Found> = HashMap::new();
    let mut problems: HashMap<String, String> = HashMap::new();
    let mut new_dirs = Vec::new();
    find_new_dirs(criterion_home, &mut new_dirs)?;
    for dir in new_dirs {
        let meta = match fs::read_to_string(dir.join("benchmark.json"))
            .ok()
            .and_then(|text| parse_benchmark_json(&text).ok())
        {
            Some(meta) if wanted.contains_key(meta.title.as_str()) => meta,
            _ => continue,
        };
        let estimates_path = dir.join("estimates.json");
        let estimate = match fs::read_to_string(&estimates_path)
            .map_err(|error| error.to_string())
            .and_then(|text| parse_estimates_json(&text).map_err(|error| error.to_string()))
        {
            Ok(estimate) => estimate,
            Err(error) => {
                problems.insert(
                    meta.title,
                    format!("cannot read {}: {error}", estimates_path.display()),
                );
                continue;
            }
        };
        let modified = fs::metadata(&estimates_path)
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let newer = found
            .get(&meta.title)
            .is_none_or(|existing| existing.modified < modified);
        if newer {
            found.insert(
                meta.title.clone(),
                Found {
                    meta,
                    estimate,
                    modified,
                },
            );
        }
    }
    let mut results = Vec::new();
    let mut missing = Vec::new();
    for (title, krate) in ran {
        match found.remove(title) {
            Some(Found { meta, estimate, .. }) => results.push(BenchResult {
                krate: krate.clone(),
                id: meta.full_id,
                group: meta.group,
                function: meta.function,
                parameter: meta.parameter,
                median_ns: estimate.median_ns,
                ci_low_ns: estimate.ci_low_ns,
                ci_high_ns: estimate.ci_high_ns,
                throughput: meta.throughput,
                extras: BTreeMap::new(),
            }),
            None => {
                let reason = problems
                    .remove(title)
                    .unwrap_or_else(|| "criterion left no results for it".to_owned());
                missing.push(format!("`{title}` ran but is left out: {reason}"));
            }
        }
    }
    Ok((results, missing))
}

/// The last recorded median time per iteration (nanoseconds) of every benchmark in the criterion
/// home, by full id: what [`crate::plan`] plans a row with. Unreadable entries are skipped (the plan
/// counts their rows as not measured).
pub(crate) fn recorded_medians(criterion_home: &Path) -> HashMap<String, f64> {
    let mut new_dirs = Vec::new();
    if find_new_dirs(criterion_home, &mut new_dirs).is_err() {
        return HashMap::new();
    }
    new_dirs
        .iter()
        .filter_map(|dir| {
            let meta =
                parse_benchmark_json(&fs::read_to_string(dir.join("benchmark.json")).ok()?).ok()?;
            let estimate =
                parse_estimates_json(&fs::read_to_string(dir.join("estimates.json")).ok()?).ok()?;
            Some((meta.full_id, estimate.median_ns))
        })
        .collect()
}

/// Every directory named `new` below `dir` (criterion's latest results), skipping its `report` tree.
fn find_new_dirs(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), XtaskError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(XtaskError::io("read directory", dir, error)),
    };
    for entry in entries {
        let entry = entry.map_err(|error| XtaskError::io("read directory", dir, error))?;
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let path = entry.path();
        // `new`, `base` and `report` are criterion's own directories only where they hold its
        // files: a benchmark whose function or parameter is named so (`g/hivekit/new`) lives in
        // a directory of that name, with its own `new/` below.
        match entry.file_name().to_str() {
            Some("new") if path.join("benchmark.json").is_file() => out.push(path),
            Some("base") if path.join("benchmark.json").is_file() => {}
            Some("report") if path.join("index.html").is_file() => {}
            _ => find_new_dirs(&path, out)?,
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Copied from a criterion 0.8.2 run (`vec_sum/hivekit/10`, Throughput::Elements(10)).
    pub(crate) const BENCHMARK_JSON: &str = r#"{"group_id":"vec_sum","function_id":"hivekit","value_str":"10","throughput":{"Elements":10},"full_id":"vec_sum/hivekit/10","directory_name":"vec_sum/hivekit/10","title":"vec_sum/hivekit/10"}"#;

    /// Copied from the same run.
    pub(crate) const ESTIMATES_JSON: &str = r#"{"mean":{"confidence_interval":{"confidence_level":0.95,"lower_bound":2.9256831197582516,"upper_bound":3.121235020131508},"point_estimate":3.0091969660949687,"standard_error":0.05102044296804677},"median":{"confidence_interval":{"confidence_level":0.95,"lower_bound":2.9055963081414102,"upper_bound":3.080367376937874},"point_estimate":2.964425979757924,"standard_error":0.03757721725472416},"median_abs_dev":{"confidence_interval":{"confidence_level":0.95,"lower_bound":0.011580853053350954,"upper_bound":0.1747479785944127},"point_estimate":0.0732830298947647,"standard_error":0.045798170786171565},"slope":{"confidence_interval":{"confidence_level":0.95,"lower_bound":2.9034554484608215,"upper_bound":3.1958442594351606},"point_estimate":3.014066714515356,"standard_error":0.07948937701051358},"std_dev":{"confidence_interval":{"confidence_level":0.95,"lower_bound":0.037198544858553506,"upper_bound":0.24011178568519706},"point_estimate":0.17021890024091096,"standard_error":0.05705689279142579}}"#;

    /// A benchmark without parameter or throughput, whose group needs sanitising on disk.
    const ODD_BENCHMARK_JSON: &str = r#"{"group_id":"odd name/with:stuff","function_id":"hivekit","value_str":null,"throughput":null,"full_id":"odd name/with:stuff/hivekit","directory_name":"odd name_with_stuff/hivekit","title":"odd name/with:stuff/hivekit"}"#;

    /// Real stdout of a criterion 0.8.2 run with `--color never`.
    const STDOUT: &str = "\
vec_sum/hivekit/10      time:   [2.9035 ns 3.0141 ns 3.1958 ns]
                        thrpt:  [3.1291 Gelem/s 3.3178 Gelem/s 3.4442 Gelem/s]
Found 2 outliers among 10 measurements (20.00%)
  1 (10.00%) high mild
  1 (10.00%) high severe
vec_sum/naive-loop/1000 time:   [522.95 ns 628.69 ns 701.34 ns]
                        thrpt:  [1.4258 Gelem/s 1.5906 Gelem/s 1.9122 Gelem/s]
                 change:
                        time:   [-2.1234% +0.5012% +3.0000%] (p = 0.70 > 0.05)
                        thrpt:  [-2.9126% -0.4987% +2.1694%]
                        No change in performance detected.

odd name/with:stuff/hivekit
                        time:   [960.39 ps 986.59 ps 1.0020 µs]
                        change: [-1.0000% +0.1000% +1.2000%] (p = 0.50 > 0.05)
                        No change in performance detected.
";

    #[test]
    fn benchmark_json_parses() {
        let meta = parse_benchmark_json(BENCHMARK_JSON).expect("parses");
        assert_eq!(meta.group, "vec_sum");
        assert_eq!(meta.function, "hivekit");
        assert_eq!(meta.parameter, "10");
        assert_eq!(meta.full_id, "vec_sum/hivekit/10");
        assert_eq!(meta.throughput, Some(Throughput::Elements(10)));
        let odd = parse_benchmark_json(ODD_BENCHMARK_JSON).expect("parses");
        assert_eq!(odd.group, "odd name/with:stuff");
        assert_eq!(odd.parameter, "");
        assert_eq!(odd.throughput, None);
    }

    #[test]
    fn estimates_json_gives_the_median() {
        let estimate = parse_estimates_json(ESTIMATES_JSON).expect("parses");
        assert_eq!(estimate.median_ns, 2.964425979757924);
        assert_eq!(estimate.ci_low_ns, 2.9055963081414102);
        assert_eq!(estimate.ci_high_ns, 3.080367376937874);
    }

    #[test]
    fn malformed_files_are_errors() {
        assert!(parse_benchmark_json("{}").is_err());
        assert!(parse_estimates_json(r#"{"mean": {}}"#).is_err());
    }

    #[test]
    fn progress_lines_short_long_and_change_blocks() {
        let mut parser = ProgressParser::default();
        let completed: Vec<Completed> = STDOUT.lines().filter_map(|l| parser.feed(l)).collect();
        let titles: Vec<&str> = completed.iter().map(|c| c.title.as_str()).collect();
        assert_eq!(
            titles,
            [
                "vec_sum/hivekit/10",
                "vec_sum/naive-loop/1000",
                "odd name/with:stuff/hivekit"
            ]
        );
        let expected_ns = [3.0141, 628.69, 0.98659];
        for (done, expected) in completed.iter().zip(expected_ns) {
            assert!((done.typical_ns - expected).abs() < 1e-9, "{done:?}");
        }
    }

    #[test]
    fn start_lines_without_phases() {
        assert_eq!(
            started("Benchmarking vec_sum/hivekit/10"),
            Some("vec_sum/hivekit/10")
        );
        assert_eq!(
            started("Benchmarking odd name/with:stuff/hivekit"),
            Some("odd name/with:stuff/hivekit")
        );
        for phase in [
            "Benchmarking vec_sum/hivekit/10: Warming up for 50.000 ms",
            "Benchmarking vec_sum/hivekit/10: Collecting 10 samples in estimated 100.00 ms (29M iterations)",
            "Benchmarking vec_sum/hivekit/10: Analyzing",
            "     Running benches/sums.rs (/w/target/release/deps/sums-5ce3e55396eb7a88)",
        ] {
            assert_eq!(started(phase), None, "{phase}");
        }
    }

    #[test]
    fn coloured_output_is_understood() {
        let mut parser = ProgressParser::default();
        let line = "\u{1b}[32mvec_sum/hivekit/10\u{1b}[0m      time:   [\u{1b}[2m2.9 ns\u{1b}[0m \u{1b}[1m3.0 ns\u{1b}[0m \u{1b}[2m3.1 ns\u{1b}[0m]";
        assert_eq!(
            parser.feed(line),
            Some(Completed {
                title: "vec_sum/hivekit/10".into(),
                typical_ns: 3.0
            })
        );
    }

    #[test]
    fn list_output_parses() {
        let out = "vec_sum/hivekit/10: benchmark\nvec_sum/naive-loop/10: benchmark\n\nnoise\n";
        assert_eq!(
            parse_list(out),
            ["vec_sum/hivekit/10", "vec_sum/naive-loop/10"]
        );
    }

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().expect("has parent")).expect("mkdir");
        fs::write(path, text).expect("write");
    }

    #[test]
    fn collects_only_benchmarks_that_ran() {
        let home = std::env::temp_dir().join(format!("xtask-criterion-{}", std::process::id()));
        let _ = fs::remove_dir_all(&home);
        let ran_dir = home.join("vec_sum/hivekit/10/new");
        write(&ran_dir.join("benchmark.json"), BENCHMARK_JSON);
        write(&ran_dir.join("estimates.json"), ESTIMATES_JSON);
        // The `base` copy criterion keeps must not be read twice.
        write(
            &home.join("vec_sum/hivekit/10/base/benchmark.json"),
            BENCHMARK_JSON,
        );
        // A stale result from an earlier run, not seen on stdout this time.
        let stale = home.join("odd name_with_stuff/hivekit/new");
        write(&stale.join("benchmark.json"), ODD_BENCHMARK_JSON);
        write(&stale.join("estimates.json"), ESTIMATES_JSON);

        let ran = [
            ("vec_sum/hivekit/10".to_owned(), "hivekit-demo".to_owned()),
            ("vec_sum/gone/10".to_owned(), "hivekit-demo".to_owned()),
        ];
        let (results, missing) = collect_results(&home, &ran).expect("collects");
        fs::remove_dir_all(&home).expect("cleanup");
        assert_eq!(results.len(), 1);
        assert_eq!(results[0].id, "vec_sum/hivekit/10");
        assert_eq!(results[0].krate, "hivekit-demo");
        assert_eq!(results[0].median_ns, 2.964425979757924);
        assert_eq!(
            missing,
            ["`vec_sum/gone/10` ran but is left out: criterion left no results for it"]
        );
    }

    #[test]
    fn unreadable_files_skip_one_benchmark_not_the_run() {
        let home = std::env::temp_dir().join(format!("xtask-criterion-bad-{}", std::process::id()));
        let _ = fs::remove_dir_all(&home);
        let good = home.join("vec_sum/hivekit/10/new");
        write(&good.join("benchmark.json"), BENCHMARK_JSON);
        write(&good.join("estimates.json"), ESTIMATES_JSON);
        let torn = home.join("odd name_with_stuff/hivekit/new");
        write(&torn.join("benchmark.json"), ODD_BENCHMARK_JSON);
        write(&torn.join("estimates.json"), "{\"median\": ");
        write(&home.join("foreign/new/benchmark.json"), "not criterion's");

        let ran = [
            ("vec_sum/hivekit/10".to_owned(), "c".to_owned()),
            ("odd name/with:stuff/hivekit".to_owned(), "c".to_owned()),
        ];
        let (results, missing) = collect_results(&home, &ran).expect("collects");
        fs::remove_dir_all(&home).expect("cleanup");
        assert_eq!(results.len(), 1);
        assert_eq!(missing.len(), 1);
        assert!(missing[0].contains("estimates.json"), "{missing:?}");
    }

    #[test]
    fn missing_criterion_home_is_empty() {
        let (results, missing) =
            collect_results(Path::new("/nonexistent/xtask/criterion"), &[]).expect("empty");
        assert!(results.is_empty() && missing.is_empty());
    }
}
