//! Per-benchmark figures beside criterion's timings (allocations per op, ...), for `cargo xtask bench`.
//!
//! Each figure is one JSON line appended to `extras.jsonl` in the extras directory:
//! `{"group": .., "function": .., "parameter": .., "name": .., "value": ..}`. xtask clears the file
//! before a run and reads it after; a later line for the same key and name wins.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::PathBuf;

/// Names a benchmark the way criterion does: group, function id and parameter (`""` for none).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BenchKey {
    /// The benchmark group (`snapshot_reads`).
    pub group: String,
    /// The function id: the implementation (`hivekit`, `arc-swap`).
    pub function: String,
    /// The parameter (`1r`, `1000`), or empty.
    pub parameter: String,
}

impl BenchKey {
    /// The id criterion gives the benchmark: `group/function/parameter`, empty parts left out.
    ///
    /// # Examples
    ///
    /// ```
    /// use benches_common::BenchKey;
    ///
    /// assert_eq!(BenchKey::from(("g", "hivekit", "1k")).id(), "g/hivekit/1k");
    /// assert_eq!(BenchKey::from(("g", "hivekit", "")).id(), "g/hivekit");
    /// ```
    pub fn id(&self) -> String {
        [&self.group, &self.function, &self.parameter]
            .iter()
            .filter(|part| !part.is_empty())
            .map(|part| part.as_str())
            .collect::<Vec<_>>()
            .join("/")
    }
}

impl<G: Into<String>, F: Into<String>, P: ToString> From<(G, F, P)> for BenchKey {
    fn from((group, function, parameter): (G, F, P)) -> Self {
        Self {
            group: group.into(),
            function: function.into(),
            parameter: parameter.to_string(),
        }
    }
}

/// The file extra figures are appended to: `$HIVEKIT_EXTRAS_DIR/extras.jsonl`, by default
/// `target/hivekit-extras/extras.jsonl` in the workspace (or under `$CARGO_TARGET_DIR`).
pub fn extras_path() -> PathBuf {
    let dir = match std::env::var_os("HIVEKIT_EXTRAS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    // benches-common lives one level below the workspace root.
                    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                        .join("..")
                        .join("target")
                });
            target.join("hivekit-extras")
        }
    };
    dir.join("extras.jsonl")
}

/// Appends one figure for a benchmark. Failures to write are reported on stderr, never fatal: a
/// missing figure must not stop a bench run.
pub fn record_extra(key: &BenchKey, name: &str, value: f64) {
    let path = extras_path();
    let line = serde_json::json!({
        "group": key.group,
        "function": key.function,
        "parameter": key.parameter,
        "name": name,
        "value": value,
    });
    let result = path
        .parent()
        .map_or(Ok(()), fs::create_dir_all)
        .and_then(|()| OpenOptions::new().create(true).append(true).open(&path))
        .and_then(|mut file| writeln!(file, "{line}"));
    if let Err(error) = result {
        eprintln!(
            "benches-common: cannot record {name} in {}: {error}",
            path.display()
        );
    }
}
