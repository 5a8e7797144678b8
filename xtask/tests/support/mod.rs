//! A tiny synthetic workspace for the `cargo xtask bench` tests: one bench target, a fake
//! criterion (no dependencies, builds in about a second), that lists and "measures" the rows of
//! `FAKE_ROWS`: `id=median[,low,high[,throughput]]` separated by `;` (times in ns; the interval
//! defaults to +-1%; throughput `E<n>` elements, `B<n>` bytes, `D<n>` decimal bytes per
//! iteration), writing criterion 0.8's `new/benchmark.json` and `new/estimates.json` under
//! `CRITERION_HOME` and printing criterion's `time:` lines; the rounds after the main pass measure
//! `FAKE_ROUND_ROWS` if set, and `FAKE_EXTRAS` (`id@name@value;...`) is appended to
//! `extras.jsonl`.
#![allow(dead_code, unreachable_pub)] // Each test binary uses a subset.

pub mod instructions;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

const FAKE_BENCH: &str = r#"
use std::io::Write;
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let list = args.iter().any(|a| a == "--list");
    let filter = args.last().filter(|a| !a.starts_with("--") && a.as_str() != "never").cloned();
    let home = std::env::var("CRITERION_HOME").unwrap_or_else(|_| "target/criterion".into());
    // The rounds after the main pass (their own criterion home) measure FAKE_ROUND_ROWS if set.
    let rows = match std::env::var("FAKE_ROUND_ROWS") {
        Ok(rows) if home.contains("hivekit-rounds") => rows,
        _ => std::env::var("FAKE_ROWS").unwrap_or_default(),
    };
    let exact: Option<Vec<String>> = filter.as_ref().and_then(|f| f.strip_prefix("^(?:")?.strip_suffix(")$").map(|inner| inner.split('|').map(|id| id.replace('\\', "")).collect()));
    let mut extras = String::new();
    for spec in std::env::var("FAKE_EXTRAS").unwrap_or_default().split(';').filter(|s| !s.is_empty()) {
        let parts: Vec<&str> = spec.split('@').collect();
        let ids: Vec<&str> = parts[0].split('/').collect();
        extras.push_str(&format!(
            "{{\"group\":\"{}\",\"function\":\"{}\",\"parameter\":\"{}\",\"name\":\"{}\",\"value\":{}}}\n",
            ids[0], ids.get(1).unwrap_or(&""), ids.get(2).unwrap_or(&""), parts[1], parts[2]));
    }
    if !list {
        if let Ok(dir) = std::env::var("HIVEKIT_EXTRAS_DIR") {
            std::fs::create_dir_all(&dir).unwrap();
            let mut file = std::fs::OpenOptions::new().create(true).append(true).open(std::path::Path::new(&dir).join("extras.jsonl")).unwrap();
            file.write_all(extras.as_bytes()).unwrap();
        }
    }
    for spec in rows.split(';').filter(|s| !s.is_empty()) {
        let (id, numbers) = spec.split_once('=').unwrap();
        match (&exact, &filter) {
            (Some(ids), _) => if !ids.iter().any(|x| x == id) { continue; },
            (None, Some(f)) => if !id.contains(f.as_str()) { continue; },
            _ => {}
        }
        if list { println!("{id}: benchmark"); continue; }
        let numbers: Vec<&str> = numbers.split(',').collect();
        let median: f64 = numbers[0].parse().unwrap();
        let (low, high): (f64, f64) = if numbers.len() >= 3 {
            (numbers[1].parse().unwrap(), numbers[2].parse().unwrap())
        } else {
            (median * 0.99, median * 1.01)
        };
        let throughput = match numbers.get(3) {
            Some(t) if t.starts_with('E') => format!("{{\"Elements\":{}}}", &t[1..]),
            Some(t) if t.starts_with('B') => format!("{{\"Bytes\":{}}}", &t[1..]),
            Some(t) if t.starts_with('D') => format!("{{\"BytesDecimal\":{}}}", &t[1..]),
            _ => "null".to_owned(),
        };
        let parts: Vec<&str> = id.split('/').collect();
        let dir = std::path::Path::new(&home).join(id.replace('|', "_")).join("new");
        std::fs::create_dir_all(&dir).unwrap();
        let value = if parts.len() > 2 { format!("\"{}\"", parts[2]) } else { "null".into() };
        let function = if parts.len() > 1 { format!("\"{}\"", parts[1]) } else { "null".into() };
        std::fs::write(dir.join("benchmark.json"), format!(
            "{{\"group_id\":\"{}\",\"function_id\":{function},\"value_str\":{value},\"throughput\":{throughput},\"full_id\":\"{id}\",\"directory_name\":\"{id}\",\"title\":\"{id}\"}}",
            parts[0])).unwrap();
        std::fs::write(dir.join("estimates.json"), format!(
            "{{\"median\":{{\"confidence_interval\":{{\"confidence_level\":0.95,\"lower_bound\":{low:?},\"upper_bound\":{high:?}}},\"point_estimate\":{median:?},\"standard_error\":0.1}}}}")).unwrap();
        eprintln!("Benchmarking {id}");
        println!("{id}\n                        time:   [{low:.4} ns {median:.4} ns {high:.4} ns]");
        std::io::stdout().flush().unwrap();
    }
}
"#;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh synthetic workspace with its own target directory, removed when dropped.
pub struct Fake {
    pub root: PathBuf,
}

impl Fake {
    pub fn new() -> Self {
        let root = std::env::temp_dir().join(format!(
            "xtask-user-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&root);
        let package = root.join("fake");
        std::fs::create_dir_all(package.join("benches")).unwrap();
        std::fs::create_dir_all(package.join("src")).unwrap();
        std::fs::write(
            root.join("Cargo.toml"),
            "[workspace]\nresolver = \"2\"\nmembers = [\"fake\"]\n",
        )
        .unwrap();
        std::fs::write(
            package.join("Cargo.toml"),
            "[package]\nname = \"fake-suite\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
             [[bench]]\nname = \"suite\"\nharness = false\n",
        )
        .unwrap();
        std::fs::write(package.join("src/lib.rs"), "").unwrap();
        std::fs::write(package.join("benches/suite.rs"), FAKE_BENCH).unwrap();
        Self { root }
    }

    pub fn manifest(&self) -> String {
        self.root.join("Cargo.toml").to_str().unwrap().to_owned()
    }

    pub fn baseline_path(&self, name: &str) -> PathBuf {
        self.root
            .join("target")
            .join("hivekit-baselines")
            .join(format!("{name}.json"))
    }

    /// `xtask bench <args> --manifest-path <fake>` with `env` set.
    pub fn run(&self, env: &[(&str, &str)], args: &[&str]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
        command
            .arg("bench")
            .args(args)
            .arg("--manifest-path")
            .arg(self.manifest())
            .current_dir(&self.root)
            .env("CARGO_TARGET_DIR", self.root.join("target"))
            .env("CARGO_INCREMENTAL", "0")
            .env_remove("FAKE_EXTRAS")
            .env_remove("FAKE_ROUND_ROWS");
        for (key, value) in env {
            command.env(key, value);
        }
        command.output().expect("xtask starts")
    }

    /// `xtask bench <args>` with `FAKE_ROWS=rows`.
    pub fn bench(&self, rows: &str, args: &[&str]) -> Output {
        self.run(&[("FAKE_ROWS", rows)], args)
    }

    /// `xtask bench --quick --rounds 0 <args>` with `FAKE_ROWS=rows`.
    pub fn quick(&self, rows: &str, args: &[&str]) -> Output {
        let mut all = vec!["--quick", "--rounds", "0"];
        all.extend_from_slice(args);
        self.bench(rows, &all)
    }

    /// Saves the rows as baseline `name`, quickly; fails the test if that fails.
    pub fn save(&self, rows: &str, name: &str) {
        let output = self.quick(rows, &["--save-baseline", name]);
        let (stdout, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
        assert!(self.baseline_path(name).is_file(), "{stdout}\n{stderr}");
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A command's stdout and stderr as text.
pub fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
