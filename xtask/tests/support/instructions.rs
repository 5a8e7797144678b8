//! The fake workspace of the `cargo xtask bench --instructions` tests: a local `gungraun`
//! package (so xtask finds a library version), a fake `gungraun-runner` in
//! `<target>/gungraun-runner/bin` that prints that version, and a `benches/instructions.rs` that
//! prints one gungraun JSON summary per row of `FAKE_COUNTS` (`group/function/parameter=
//! instructions;...`, a function's `-` written `_` in the summary as gungraun does), lists them
//! with `--list`, and honours a gungraun pattern (`a::b::*` or an exact path). Nothing runs under
//! Valgrind.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

const FAKE_SUITE: &str = r#"
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let list = args.iter().any(|a| a == "--list");
    let pattern = args.iter().find(|a| !a.starts_with("--")).cloned();
    let rows = std::env::var("FAKE_COUNTS").unwrap_or_default();
    for spec in rows.split(';').filter(|s| !s.is_empty()) {
        let (id, count) = spec.split_once('=').unwrap();
        let parts: Vec<&str> = id.split('/').collect();
        let function = parts[1].replace('-', "_");
        let path = format!("instructions::{}::{}::{}", parts[0], function, parts[2]);
        if let Some(p) = &pattern {
            let p = p.replace("[*]", "*");
            let matched = match p.strip_suffix('*') {
                Some(prefix) => path.starts_with(prefix),
                None => path == p,
            };
            if !matched { continue; }
        }
        if list { println!("{path}: benchmark"); continue; }
        println!(
            "{{\"group\":\"{}\",\"function_name\":\"{function}\",\"id\":\"{}\",\"profiles\":[{{\"tool\":\"Callgrind\",\"data\":{{\"total\":{{\"summary\":{{\"Callgrind\":{{\"Ir\":{{\"metrics\":{{\"Left\":{{\"Int\":{count}}}}}}},\"EstimatedCycles\":{{\"metrics\":{{\"Left\":{{\"Int\":{count}}}}}}}}}}}}}}}}}]}}",
            parts[0], parts[2]
        );
    }
}
"#;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fake workspace, removed when dropped.
pub struct Fake {
    /// The workspace's root directory.
    pub root: PathBuf,
}

impl Fake {
    /// A fresh workspace under the temp dir, named after `tag` (one per test file).
    pub fn new(tag: &str) -> Self {
        let root = std::env::temp_dir().join(format!(
            "xtask-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&root);
        let write = |path: &str, contents: &str| {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, contents).unwrap();
        };
        write(
            "Cargo.toml",
            "[workspace]\nresolver = \"2\"\nmembers = [\"fake\", \"gungraun\"]\n",
        );
        write(
            "gungraun/Cargo.toml",
            "[package]\nname = \"gungraun\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
        );
        write("gungraun/src/lib.rs", "");
        write(
            "fake/Cargo.toml",
            "[package]\nname = \"fake-suite\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
             [dev-dependencies]\ngungraun = { path = \"../gungraun\" }\n\n\
             [[bench]]\nname = \"instructions\"\nharness = false\n",
        );
        write("fake/src/lib.rs", "");
        write("fake/benches/instructions.rs", FAKE_SUITE);
        write(
            "target/gungraun-runner/bin/gungraun-runner",
            "#!/bin/sh\necho gungraun-runner 0.1.0\n",
        );
        let runner = root.join("target/gungraun-runner/bin/gungraun-runner");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&runner, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Self { root }
    }

    pub fn baseline_path(&self) -> PathBuf {
        self.root.join("docs").join("instructions.json")
    }

    /// Writes `docs/instructions.json` with these rows (`id=count;...`).
    pub fn write_baseline(&self, rows: &str) {
        let rows: Vec<serde_json::Value> = rows
            .split(';')
            .filter(|s| !s.is_empty())
            .map(|spec| {
                let (id, count) = spec.split_once('=').unwrap();
                serde_json::json!({"id": id, "crate": "fake-suite", "instructions": count.parse::<u64>().unwrap()})
            })
            .collect();
        let document =
            serde_json::json!({"schema": 1, "rustc": "rustc test", "commit": "abc", "rows": rows});
        std::fs::create_dir_all(self.baseline_path().parent().unwrap()).unwrap();
        std::fs::write(self.baseline_path(), document.to_string()).unwrap();
    }

    pub fn baseline_counts(&self) -> Vec<(String, u64)> {
        let text = std::fs::read_to_string(self.baseline_path()).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        value["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| {
                (
                    row["id"].as_str().unwrap().to_owned(),
                    row["instructions"].as_u64().unwrap(),
                )
            })
            .collect()
    }

    /// `xtask bench --instructions <args>` with `FAKE_COUNTS=counts`.
    pub fn run(&self, counts: &str, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["bench", "--instructions"])
            .args(args)
            .arg("--manifest-path")
            .arg(self.root.join("Cargo.toml"))
            .current_dir(&self.root)
            .env("FAKE_COUNTS", counts)
            .env("CARGO_TARGET_DIR", self.root.join("target"))
            .env("CARGO_INCREMENTAL", "0")
            .output()
            .expect("xtask starts")
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The table line of `function parameter`.
pub fn row<'a>(stdout: &'a str, function: &str, parameter: &str) -> &'a str {
    stdout
        .lines()
        .find(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            !line.starts_with('[')
                && words
                    .windows(2)
                    .any(|pair| pair[0] == function && pair[1] == parameter)
        })
        .unwrap_or_else(|| panic!("no table row `{function} {parameter}`:\n{stdout}"))
}
