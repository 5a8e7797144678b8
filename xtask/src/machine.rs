//! Where and when a run happened: machine, date, commit and toolchain, for reports and baselines.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

/// Facts about the run, gathered once.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RunInfo {
    /// CPU model from `/proc/cpuinfo`.
    pub(crate) cpu: String,
    /// Logical cores available.
    pub(crate) cores: usize,
    /// Total memory from `/proc/meminfo`.
    pub(crate) memory: String,
    /// OS name and kernel.
    pub(crate) os: String,
    /// `rustc --version`.
    pub(crate) rustc: String,
    /// `git rev-parse --short HEAD`, plus `-dirty` when the tree has changes.
    pub(crate) commit: String,
    /// The start of the run, `YYYY-MM-DD HH:MM UTC`.
    pub(crate) date: String,
    /// The 1-minute load average when the run started (`/proc/loadavg`), if known: a load above
    /// the core count means other work competed with the benchmarks.
    pub(crate) load_average: Option<f64>,
    /// The highest 1-minute load average sampled while the run went on (after every suite), if any
    /// sample was taken: the load *during* the run, which the start alone does not show.
    pub(crate) load_max: Option<f64>,
    /// How long the run took, once it is over: building the suites, the main pass, and the
    /// rounds after it (paired rounds and re-measuring).
    pub(crate) timings: Option<RunTimings>,
}

/// Wall-clock time of the parts of one `cargo xtask bench` run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RunTimings {
    /// Building the bench binaries (little when they are up to date).
    pub(crate) build: std::time::Duration,
    /// Every suite once, at the run's settings.
    pub(crate) main_pass: std::time::Duration,
    /// The paired rounds and the re-measuring of flagged rows.
    pub(crate) rounds: std::time::Duration,
}

impl RunTimings {
    /// `26.4 min (build 1.2, main pass 17.0, rounds 8.2)`.
    pub(crate) fn describe(&self) -> String {
        let minutes = |d: std::time::Duration| d.as_secs_f64() / 60.0;
        format!(
            "{:.1} min (build {:.1}, main pass {:.1}, rounds {:.1})",
            minutes(self.build + self.main_pass + self.rounds),
            minutes(self.build),
            minutes(self.main_pass),
            minutes(self.rounds)
        )
    }
}

impl RunInfo {
    /// Gathers the facts; anything unavailable reads `unknown`.
    pub(crate) fn gather(workspace_root: &Path) -> Self {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let os_release = fs::read_to_string("/etc/os-release").unwrap_or_default();
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let os = match (os_name(&os_release), kernel.trim()) {
            (Some(name), "") => name,
            (Some(name), kernel) => format!("{name}, Linux {kernel}"),
            (None, "") => std::env::consts::OS.to_owned(),
            (None, kernel) => format!("Linux {kernel}"),
        };
        Self {
            cpu: cpu_model(&cpuinfo).unwrap_or_else(|| "unknown".to_owned()),
            cores,
            memory: mem_total(&meminfo).unwrap_or_else(|| "unknown".to_owned()),
            os,
            rustc: command_output("rustc", &["--version"], workspace_root)
                .unwrap_or_else(|| "unknown".to_owned()),
            commit: git_commit(workspace_root).unwrap_or_else(|| "unknown".to_owned()),
            date: format_utc(SystemTime::now()),
            load_average: current_load(),
            load_max: None,
            timings: None,
        }
    }

    /// Records a load sample taken during the run.
    pub(crate) fn sample_load(&mut self) {
        let samples = [self.load_max, current_load()];
        self.load_max = samples.into_iter().flatten().reduce(f64::max);
    }

    /// The highest load seen: at the start or during the run.
    pub(crate) fn peak_load(&self) -> Option<f64> {
        [self.load_average, self.load_max]
            .into_iter()
            .flatten()
            .reduce(f64::max)
    }

    /// Whether the machine was busier than its core count at any sample: wall-clock comparisons
    /// from such a run are not judged.
    pub(crate) fn too_busy(&self) -> bool {
        self.peak_load()
            .is_some_and(|load| load > self.cores as f64)
    }

    /// `load 1.2 at start, 3.4 at most during the run, on 2 cores`.
    pub(crate) fn load_line(&self) -> String {
        let show =
            |load: Option<f64>| load.map_or_else(|| "unknown".to_owned(), |l| format!("{l:.2}"));
        format!(
            "load {} at start, {} at most during the run (1-minute averages), on {} cores",
            show(self.load_average),
            show(self.load_max),
            self.cores
        )
    }

    /// A warning when the machine was busier than its core count, so noisy numbers are not trusted.
    pub(crate) fn load_warning(&self) -> Option<String> {
        let load = self.load_average?;
        (load > self.cores as f64).then(|| {
            format!(
                "load average {load:.1} on {} cores when the run started; expect noisy numbers",
                self.cores
            )
        })
    }

    /// One line for baselines: `AMD EPYC 7763, 2 cores, 7.8 GiB, Ubuntu 24.04`.
    pub(crate) fn machine_line(&self) -> String {
        format!(
            "{}, {} cores, {}, {}",
            self.cpu, self.cores, self.memory, self.os
        )
    }
}

/// The 1-minute load average now, from `/proc/loadavg`.
pub(crate) fn current_load() -> Option<f64> {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| load_average(&text))
}

fn command_output(program: &str, args: &[&str], dir: &Path) -> Option<String> {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn git_commit(dir: &Path) -> Option<String> {
    let commit = command_output("git", &["rev-parse", "--short", "HEAD"], dir)?;
    let dirty = command_output("git", &["status", "--porcelain"], dir)
        .is_some_and(|status| !status.is_empty());
    Some(if dirty {
        format!("{commit}-dirty")
    } else {
        commit
    })
}

/// The first `model name` of `/proc/cpuinfo`.
fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find(|line| line.starts_with("model name"))
        .and_then(|line| line.split_once(':'))
        .map(|(_, model)| model.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// `MemTotal` of `/proc/meminfo` in GiB.
fn mem_total(meminfo: &str) -> Option<String> {
    let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(format!("{:.1} GiB", kib / (1024.0 * 1024.0)))
}

/// The first field of `/proc/loadavg`.
fn load_average(loadavg: &str) -> Option<f64> {
    loadavg.split_whitespace().next()?.parse().ok()
}

/// `PRETTY_NAME` of `/etc/os-release`.
fn os_name(os_release: &str) -> Option<String> {
    os_release
        .lines()
        .find_map(|line| line.strip_prefix("PRETTY_NAME="))
        .map(|name| name.trim_matches('"').to_owned())
}

/// `YYYY-MM-DD HH:MM UTC`; a time jiff cannot represent (far outside years -9999..=9999) reads
/// `unknown`.
pub(crate) fn format_utc(time: SystemTime) -> String {
    jiff::Timestamp::try_from(time).map_or_else(
        |_| "unknown".to_owned(),
        |timestamp| timestamp.strftime("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn utc_dates() {
        let at = |secs: u64| format_utc(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), "1970-01-01 00:00 UTC");
        assert_eq!(at(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(at(1_795_962_257), "2026-11-29 14:24 UTC");
        assert_eq!(at(4_107_542_399), "2100-02-28 23:59 UTC");
    }

    #[test]
    fn proc_files_parse() {
        let cpuinfo = "processor\t: 0\nmodel name\t: AMD EPYC   7763 64-Core Processor\n";
        assert_eq!(
            cpu_model(cpuinfo).as_deref(),
            Some("AMD EPYC 7763 64-Core Processor")
        );
        assert_eq!(
            mem_total("MemTotal:        8147484 kB\nMemFree: 1 kB\n").as_deref(),
            Some("7.8 GiB")
        );
        assert_eq!(
            os_name("NAME=\"Ubuntu\"\nPRETTY_NAME=\"Ubuntu 24.04.1 LTS\"\n").as_deref(),
            Some("Ubuntu 24.04.1 LTS")
        );
        assert_eq!(cpu_model(""), None);
        assert_eq!(load_average("8.37 8.74 7.99 3/712 40420\n"), Some(8.37));
        assert_eq!(load_average(""), None);
    }

    #[test]
    fn busy_machines_are_flagged() {
        let mut info = RunInfo {
            cpu: "cpu".into(),
            cores: 2,
            memory: "1 GiB".into(),
            os: "Linux".into(),
            rustc: "rustc".into(),
            commit: "abc".into(),
            date: "d".into(),
            load_average: Some(8.4),
            load_max: None,
            timings: None,
        };
        assert!(info
            .load_warning()
            .is_some_and(|w| w.starts_with("load average 8.4 on 2 cores")));
        info.load_average = Some(1.5);
        assert_eq!(info.load_warning(), None);
        info.load_average = None;
        assert_eq!(info.load_warning(), None);
    }

    #[test]
    fn a_load_above_the_cores_during_the_run_makes_it_too_busy_to_judge() {
        let mut info = RunInfo {
            cpu: "cpu".into(),
            cores: 2,
            memory: "1 GiB".into(),
            os: "Linux".into(),
            rustc: "rustc".into(),
            commit: "abc".into(),
            date: "d".into(),
            load_average: Some(0.5),
            load_max: Some(1.9),
            timings: None,
        };
        assert!(!info.too_busy());
        info.load_max = Some(2.5);
        assert!(info.too_busy());
        assert_eq!(
            info.load_line(),
            "load 0.50 at start, 2.50 at most during the run (1-minute averages), on 2 cores"
        );
        info.load_average = None;
        info.load_max = None;
        assert!(!info.too_busy());
    }
}
