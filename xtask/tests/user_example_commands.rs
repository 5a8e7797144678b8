//! The `cargo run -p PACKAGE --example NAME` commands users copy from the README, docs/ and the
//! examples' own doc comments must name a package that has that example (and features it declares).
//! Checked against `cargo metadata --no-deps`, so nothing is built.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Package name -> (example names, feature names).
fn packages() -> BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--manifest-path",
        ])
        .arg(root().join("Cargo.toml"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let mut packages = BTreeMap::new();
    for package in metadata["packages"].as_array().expect("packages") {
        let examples = package["targets"]
            .as_array()
            .expect("targets")
            .iter()
            .filter(|t| {
                t["kind"]
                    .as_array()
                    .is_some_and(|k| k.iter().any(|k| k == "example"))
            })
            .map(|t| t["name"].as_str().unwrap_or_default().to_owned())
            .collect();
        let features = package["features"]
            .as_object()
            .map(|f| f.keys().cloned().collect())
            .unwrap_or_default();
        packages.insert(
            package["name"].as_str().unwrap_or_default().to_owned(),
            (examples, features),
        );
    }
    packages
}

fn files() -> Vec<PathBuf> {
    let root = root();
    let mut files = vec![root.join("README.md")];
    for dir in ["docs", "examples"] {
        for entry in std::fs::read_dir(root.join(dir)).expect("dir") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "md" || e == "rs") {
                files.push(path);
            }
        }
    }
    for entry in std::fs::read_dir(root.join("crates")).expect("crates") {
        let examples = entry.expect("entry").path().join("examples");
        if let Ok(dir) = std::fs::read_dir(&examples) {
            files.extend(dir.map(|e| e.expect("entry").path()));
        }
    }
    files
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

#[test]
fn documented_example_commands_name_the_right_package() {
    let packages = packages();
    let pattern = regex::Regex::new(r"cargo run((?:\s+-q)?\s+-p\s+(\S+)(?:\s+--features\s+(\S+))?\s+--example\s+([A-Za-z0-9_-]+))")
        .expect("regex");
    let mut wrong = Vec::new();
    let mut checked = 0;
    for file in files() {
        let text = std::fs::read_to_string(&file).expect("read");
        // Doc comments wrap: join the lines so a command split over two comment lines is seen.
        let text = text.replace("\n//! ", " ").replace("\n//!", " ");
        for captures in pattern.captures_iter(&text) {
            checked += 1;
            let package = captures[2].trim_matches('`');
            let example = &captures[4];
            let command = format!("cargo run{}", &captures[1]);
            match packages.get(package) {
                None => wrong.push(format!(
                    "{}: `{command}`: no package `{package}`",
                    relative(&file)
                )),
                Some((examples, features)) => {
                    if !examples.contains(example) {
                        let owner = packages
                            .iter()
                            .find(|(_, (e, _))| e.contains(example))
                            .map(|(name, _)| name.as_str())
                            .unwrap_or("none");
                        wrong.push(format!(
                            "{}: `{command}`: `{package}` has no example `{example}` (it is in `{owner}`)",
                            relative(&file)
                        ));
                    }
                    if let Some(feature) = captures.get(3) {
                        for feature in feature.as_str().trim_matches('`').split(',') {
                            if !features.contains(feature) {
                                wrong.push(format!(
                                    "{}: `{command}`: `{package}` has no feature `{feature}`",
                                    relative(&file)
                                ));
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(checked >= 9, "only {checked} commands found");
    assert!(
        wrong.is_empty(),
        "{} wrong command(s):\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
