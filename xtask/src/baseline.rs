//! xtask's own baseline format: versioned JSON under `<target>/hivekit-baselines/NAME.json`.
//!
//! ```json
//! {"schema": 1, "created": "2026-11-23 15:04 UTC", "commit": "7ad05da", "machine": "..", "quick": true,
//!  "results": [{"id": "snapshot_reads/hivekit/1r", "crate": "hivekit-lockfree", "group": "snapshot_reads",
//!               "function": "hivekit", "parameter": "1r", "median_ns": 4.41, "ci_low_ns": 4.3,
//!               "ci_high_ns": 4.5, "throughput": {"elements": 1}, "extras": {"allocs_per_op": 0.0}}]}
//! ```
//!
//! The same document is what `--json PATH` writes. `schema` changes only when a field changes meaning
//! or disappears; new optional fields keep it.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::XtaskError;
use crate::results::{BenchResult, Throughput};

/// The schema version this xtask reads and writes.
pub(crate) const SCHEMA: u32 = 1;

/// A saved run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Baseline {
    /// Always [`SCHEMA`] when written by this version.
    pub(crate) schema: u32,
    /// When the run happened (UTC).
    pub(crate) created: String,
    /// `git rev-parse --short HEAD`, with `-dirty` for a dirty tree.
    pub(crate) commit: String,
    /// CPU model, cores, memory and OS, in one line.
    pub(crate) machine: String,
    /// Whether the run was in quick mode (quick numbers are noisier).
    pub(crate) quick: bool,
    /// One entry per benchmark.
    pub(crate) results: Vec<BaselineEntry>,
}

/// One benchmark in a baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct BaselineEntry {
    /// `group/function/parameter`: the key rows are compared by.
    pub(crate) id: String,
    /// The package whose suite ran it.
    #[serde(rename = "crate", default)]
    pub(crate) krate: String,
    /// The group.
    pub(crate) group: String,
    /// The function id (empty if none).
    #[serde(default)]
    pub(crate) function: String,
    /// The parameter (empty if none).
    #[serde(default)]
    pub(crate) parameter: String,
    /// Median time per iteration in ns.
    pub(crate) median_ns: f64,
    /// Lower bound of the median's confidence interval in ns.
    pub(crate) ci_low_ns: f64,
    /// Upper bound of the median's confidence interval in ns.
    pub(crate) ci_high_ns: f64,
    /// Throughput per iteration, if any.
    #[serde(default)]
    pub(crate) throughput: Option<Throughput>,
    /// Extra figures (`allocs_per_op`, `bytes_per_op`, ...).
    #[serde(default)]
    pub(crate) extras: BTreeMap<String, f64>,
}

impl From<&BenchResult> for BaselineEntry {
    fn from(result: &BenchResult) -> Self {
        Self {
            id: result.id.clone(),
            krate: result.krate.clone(),
            group: result.group.clone(),
            function: result.function.clone(),
            parameter: result.parameter.clone(),
            median_ns: result.median_ns,
            ci_low_ns: result.ci_low_ns,
            ci_high_ns: result.ci_high_ns,
            throughput: result.throughput,
            extras: result.extras.clone(),
        }
    }
}

impl Baseline {
    /// Wraps the results of a run.
    pub(crate) fn new(
        created: String,
        commit: String,
        machine: String,
        quick: bool,
        results: &[BenchResult],
    ) -> Self {
        Self {
            schema: SCHEMA,
            created,
            commit,
            machine,
            quick,
            results: results.iter().map(BaselineEntry::from).collect(),
        }
    }

    /// The entry with this id.
    pub(crate) fn get(&self, id: &str) -> Option<&BaselineEntry> {
        self.results.iter().find(|entry| entry.id == id)
    }

    /// Parses a baseline document, rejecting other schema versions.
    pub(crate) fn parse(json: &str, path: &Path) -> Result<Self, XtaskError> {
        let bad = |message: String| XtaskError::BadInputFile {
            path: path.to_owned(),
            message,
        };
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|error| bad(error.to_string()))?;
        match value.get("schema").and_then(serde_json::Value::as_u64) {
            Some(schema) if schema == u64::from(SCHEMA) => {}
            Some(schema) => {
                return Err(bad(format!(
                    "baseline schema {schema} is not supported (this xtask reads schema {SCHEMA})"
                )))
            }
            None => return Err(bad("no `schema` field; not an xtask baseline".to_owned())),
        }
        let baseline: Self =
            serde_json::from_value(value).map_err(|error| bad(error.to_string()))?;
        // No measurement is negative: such a row is corrupt, and compared as if it were fine it
        // would read `within noise` whatever the run measured.
        if let Some(entry) = baseline
            .results
            .iter()
            .find(|entry| !(entry.median_ns.is_finite() && entry.median_ns >= 0.0))
        {
            return Err(bad(format!(
                "row `{}` has median_ns {}; a median is a time of 0 ns or more",
                entry.id, entry.median_ns
            )));
        }
        Ok(baseline)
    }

    /// Loads `path`; a missing file is [`XtaskError::MissingBaseline`] named `name`.
    pub(crate) fn load(path: &Path, name: &str) -> Result<Self, XtaskError> {
        match fs::read_to_string(path) {
            Ok(json) => Self::parse(&json, path),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                Err(XtaskError::MissingBaseline {
                    name: name.to_owned(),
                    path: path.to_owned(),
                })
            }
            Err(error) => Err(XtaskError::BadInputFile {
                path: path.to_owned(),
                message: error.to_string(),
            }),
        }
    }

    /// Writes the document as pretty JSON, creating the parent directory.
    pub(crate) fn save(&self, path: &Path) -> Result<(), XtaskError> {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            fs::create_dir_all(dir)
                .map_err(|error| XtaskError::io("create directory", dir, error))?;
        }
        let mut json = serde_json::to_string_pretty(self).map_err(|error| XtaskError::Io {
            action: "serialise",
            path: path.to_owned(),
            source: error.into(),
        })?;
        json.push('\n');
        fs::write(path, json).map_err(|error| XtaskError::io("write", path, error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::tests::row;

    fn sample() -> Baseline {
        let mut with_extras = row("snapshot_reads", "hivekit", "1r", 4.41);
        with_extras.throughput = Some(Throughput::Elements(1));
        with_extras.extras.insert("allocs_per_op".into(), 0.0);
        Baseline::new(
            "2026-11-23 15:04 UTC".into(),
            "7ad05da-dirty".into(),
            "test cpu, 2 cores".into(),
            true,
            &[with_extras, row("startup_time", "arc-swap", "", 1200.0)],
        )
    }

    #[test]
    fn save_load_round_trip() {
        let dir = std::env::temp_dir().join(format!("xtask-baseline-{}", std::process::id()));
        let path = dir.join("hivekit-baselines").join("main.json");
        let baseline = sample();
        baseline.save(&path).expect("saves");
        let loaded = Baseline::load(&path, "main").expect("loads");
        fs::remove_dir_all(&dir).expect("cleanup");
        assert_eq!(loaded, baseline);
        assert_eq!(loaded.schema, 1);
        assert_eq!(
            loaded.get("snapshot_reads/hivekit/1r").map(|e| e.median_ns),
            Some(4.41)
        );
        assert!(loaded.get("nope").is_none());
    }

    #[test]
    fn written_json_has_the_documented_fields() {
        let value = serde_json::to_value(sample()).expect("serialises");
        for field in ["schema", "created", "commit", "machine", "quick", "results"] {
            assert!(value.get(field).is_some(), "{field}");
        }
        let entry = &value["results"][0];
        for field in [
            "id",
            "crate",
            "group",
            "function",
            "parameter",
            "median_ns",
            "ci_low_ns",
            "ci_high_ns",
            "throughput",
            "extras",
        ] {
            assert!(entry.get(field).is_some(), "{field}");
        }
        assert_eq!(entry["throughput"], serde_json::json!({"elements": 1}));
    }

    #[test]
    fn missing_file_is_missing_baseline() {
        let error = Baseline::load(Path::new("/nonexistent/xtask/b.json"), "b").unwrap_err();
        assert!(matches!(error, XtaskError::MissingBaseline { .. }));
        assert_eq!(error.exit_code(), 2);
    }

    #[test]
    fn wrong_schema_and_garbage_are_rejected() {
        let path = Path::new("b.json");
        let future = r#"{"schema": 2, "created": "", "commit": "", "machine": "", "quick": false, "results": []}"#;
        let error = Baseline::parse(future, path).unwrap_err();
        assert!(
            error.to_string().contains("schema 2 is not supported"),
            "{error}"
        );
        assert!(Baseline::parse("not json", path).is_err());
        assert!(Baseline::parse(r#"{"results": []}"#, path).is_err());
    }
}
