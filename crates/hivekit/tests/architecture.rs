//! The tidy test of `docs/ARCHITECTURE.md` (as rust-analyzer's `tidy.rs` does for its docs): every
//! path and every Rust name the document writes in backticks must still exist, so the document
//! cannot silently drift from the code it describes.
//!
//! - A span that starts with a top-level entry of the repository (`crates/x/src/y.rs`,
//!   `docs/PERFORMANCE.md`, `examples/`, ...) must name an existing file or directory.
//! - A span that is a Rust name or path (`SnapshotCell<T>`, `Hive::decide`, `cost()`,
//!   `max_in_flight`) must have each of its segments defined in the workspace's sources: a
//!   CamelCase segment as a `struct`, `enum`, `trait`, `type` or enum variant, a snake_case segment as
//!   a `fn`, a field or a `mod`, or as a package, target or feature in a manifest. Names that belong
//!   to other crates are listed in [`EXTERNAL`].

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// Names the document uses that are defined outside this workspace (std, tokio, futures, dashmap)
/// or are not Rust items (crate names, commands).
const EXTERNAL: &[&str] = &[
    "Arc",
    "FuturesUnordered",
    "LocalSet",
    "block_in_place",
    "block_on",
    "catch_unwind",
    "clock_gettime",
    "dashmap",
    "quanta",
    "std",
    "thiserror",
    "tracing",
];

/// Top-level entries whose paths the document may name.
const ROOTS: &[&str] = &[
    "crates/",
    "docs/",
    "examples/",
    "benches-common/",
    "xtask/",
    ".ci/",
    "README.md",
    "Cargo.toml",
];

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The backticked spans of `text`, outside fenced code blocks.
fn backticked(text: &str) -> Vec<String> {
    let mut spans = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut parts = line.split('`');
        parts.next();
        while let (Some(span), Some(_)) = (parts.next(), parts.next()) {
            spans.push(span.to_owned());
        }
    }
    spans
}

/// Every `.rs` file below `dir`, skipping build output.
fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            files.push(path);
        }
    }
}

/// The names the workspace's sources define: types, traits, variants, functions, fields, modules.
fn defined_names(root: &Path) -> BTreeSet<String> {
    let mut files = Vec::new();
    for dir in ["crates", "benches-common", "examples", "xtask"] {
        rust_files(&root.join(dir), &mut files);
    }
    let mut names = BTreeSet::new();
    for file in files {
        let source = fs::read_to_string(&file).unwrap_or_default();
        for line in source.lines() {
            let line = line.trim_start();
            if line.starts_with("//") {
                continue;
            }
            let words: Vec<&str> = line
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .filter(|word| !word.is_empty())
                .collect();
            for pair in words.windows(2) {
                if matches!(
                    pair[0],
                    "struct" | "enum" | "trait" | "type" | "union" | "fn" | "mod" | "const"
                ) {
                    names.insert(pair[1].to_owned());
                }
            }
            // An enum variant or a field: `Name,` `Name {` `Name(` `name:` at the start of a line.
            let head: String = line
                .trim_start_matches("pub(crate) ")
                .trim_start_matches("pub ")
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let rest = line
                .trim_start_matches("pub(crate) ")
                .trim_start_matches("pub ")
                .get(head.len()..)
                .unwrap_or_default();
            if !head.is_empty()
                && (rest.starts_with(',')
                    || rest.starts_with(" =") && !rest.starts_with(" ==")
                    || rest.starts_with(" {")
                    || rest.starts_with('(')
                    || rest.starts_with(':') && !rest.starts_with("::"))
            {
                names.insert(head);
            }
        }
    }
    names.extend(cargo_names(root));
    names
}

/// The names the manifests define: packages, targets (examples, benches) and features.
fn cargo_names(root: &Path) -> BTreeSet<String> {
    let mut manifests = vec![root.join("Cargo.toml"), root.join("examples/Cargo.toml")];
    for dir in ["crates", "."] {
        for entry in fs::read_dir(root.join(dir)).into_iter().flatten().flatten() {
            manifests.push(entry.path().join("Cargo.toml"));
        }
    }
    let mut names = BTreeSet::new();
    for manifest in manifests {
        let text = fs::read_to_string(manifest).unwrap_or_default();
        let mut in_features = false;
        for line in text.lines() {
            if line.starts_with('[') {
                in_features = line == "[features]";
            } else if let Some(name) = line.strip_prefix("name = ") {
                names.insert(name.trim_matches('"').to_owned());
            } else if in_features {
                if let Some((feature, _)) = line.split_once(" = ") {
                    names.insert(feature.to_owned());
                }
            }
        }
    }
    names
}

/// The Rust name segments of `span` if it reads as a Rust name or path (`Hive::decide`,
/// `SnapshotCell<T>`, `cost()`), else `None`.
fn rust_segments(span: &str) -> Option<Vec<String>> {
    let without_generics = match span.find('<') {
        Some(start) if span.ends_with('>') => &span[..start],
        Some(_) => return None,
        None => span,
    };
    let name = without_generics
        .strip_suffix("()")
        .unwrap_or(without_generics);
    let segments: Vec<&str> = name.split("::").collect();
    let identifier = |segment: &&str| {
        segment.chars().next().is_some_and(|c| c.is_alphabetic())
            && segment.chars().all(|c| c.is_alphanumeric() || c == '_')
    };
    if segments.iter().all(identifier) && segments.iter().any(|s| s.contains(char::is_lowercase)) {
        Some(segments.into_iter().map(str::to_owned).collect())
    } else {
        None
    }
}

#[test]
fn every_path_and_name_in_architecture_md_still_exists() {
    let root = repository();
    let document = fs::read_to_string(root.join("docs/ARCHITECTURE.md"))
        .expect("docs/ARCHITECTURE.md is readable");
    let defined = defined_names(&root);
    let mut missing = Vec::new();
    let mut checked = 0;
    for span in backticked(&document) {
        let top_level = ROOTS
            .iter()
            .any(|root| span.starts_with(root) || span == root.trim_end_matches('/'));
        if top_level && !span.contains(' ') {
            checked += 1;
            if !root.join(&span).exists() {
                missing.push(format!("path `{span}`"));
            }
        } else if let Some(segments) = rust_segments(&span) {
            for segment in segments {
                // `crate` and `self` in a path are keywords, not names.
                if matches!(segment.as_str(), "crate" | "self") {
                    continue;
                }
                checked += 1;
                if !defined.contains(&segment) && !EXTERNAL.contains(&segment.as_str()) {
                    missing.push(format!("name `{segment}` (in `{span}`)"));
                }
            }
        }
    }
    assert!(
        checked > 100,
        "only {checked} paths and names checked: is the span parser broken?"
    );
    assert!(
        missing.is_empty(),
        "docs/ARCHITECTURE.md names what no longer exists:\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn the_tidy_parser_finds_paths_and_names_and_skips_code_blocks() {
    let text = "see `crates/x/src/y.rs` and `Hive::decide`\n```text\n`not/this`\n```\n`cost()`";
    assert_eq!(
        backticked(text),
        ["crates/x/src/y.rs", "Hive::decide", "cost()"]
    );
    assert_eq!(
        rust_segments("SnapshotCell<T>"),
        Some(vec!["SnapshotCell".to_owned()])
    );
    assert_eq!(
        rust_segments("Hive::decide"),
        Some(vec!["Hive".to_owned(), "decide".to_owned()])
    );
    assert_eq!(
        rust_segments("Proposal<K, P>"),
        Some(vec!["Proposal".to_owned()])
    );
    assert_eq!(rust_segments("tests/<area>_<topic>.rs"), None);
    assert_eq!(rust_segments("cargo xtask bench"), None);
    assert_eq!(rust_segments("HIVEKIT_BENCH_QUICK=1"), None);
    assert_eq!(rust_segments("--cfg"), None);
}
