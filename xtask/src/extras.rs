//! Extra figures (allocations per op, ...) that benches-common appends to `extras.jsonl`.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::Path;

use serde::Deserialize;

use crate::error::XtaskError;
use crate::results::BenchResult;

/// The file name inside `$HIVEKIT_EXTRAS_DIR`.
pub(crate) const EXTRAS_FILE: &str = "extras.jsonl";

/// One line of `extras.jsonl`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct ExtraLine {
    group: String,
    function: String,
    #[serde(default)]
    parameter: String,
    name: String,
    value: f64,
}

/// Figures per benchmark key `(group, function, parameter)`, by figure name.
pub(crate) type Extras = HashMap<(String, String, String), BTreeMap<String, f64>>;

/// Parses `extras.jsonl`. A later line for the same key and name wins; lines that do not parse are
/// returned as warnings (a bench may have been killed mid-write) rather than failing the run.
pub(crate) fn parse_extras(text: &str) -> (Extras, Vec<String>) {
    let mut extras = Extras::new();
    let mut warnings = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<ExtraLine>(line) {
            Ok(extra) => {
                extras
                    .entry((extra.group, extra.function, extra.parameter))
                    .or_default()
                    .insert(extra.name, extra.value);
            }
            Err(error) => warnings.push(format!("{EXTRAS_FILE} line {}: {error}", index + 1)),
        }
    }
    (extras, warnings)
}

/// Reads `<dir>/extras.jsonl`; a missing file means no extras.
pub(crate) fn read_extras(dir: &Path) -> Result<(Extras, Vec<String>), XtaskError> {
    let path = dir.join(EXTRAS_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => Ok(parse_extras(&text)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            Ok((Extras::new(), Vec::new()))
        }
        Err(error) => Err(XtaskError::io("read", path, error)),
    }
}

/// Empties `<dir>/extras.jsonl` before a run, creating the directory if needed.
pub(crate) fn clear_extras(dir: &Path) -> Result<(), XtaskError> {
    fs::create_dir_all(dir).map_err(|error| XtaskError::io("create directory", dir, error))?;
    let path = dir.join(EXTRAS_FILE);
    fs::write(&path, "").map_err(|error| XtaskError::io("write", path, error))
}

/// Attaches the extras to the rows with the same group, function and parameter.
pub(crate) fn join_extras(results: &mut [BenchResult], extras: &Extras) {
    for result in results {
        let key = (
            result.group.clone(),
            result.function.clone(),
            result.parameter.clone(),
        );
        if let Some(figures) = extras.get(&key) {
            result
                .extras
                .extend(figures.iter().map(|(k, v)| (k.clone(), *v)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::tests::row;

    const JSONL: &str = r#"{"group":"snapshot_reads","function":"hivekit","name":"allocs_per_op","parameter":"1r","value":3.0}
{"group":"snapshot_reads","function":"hivekit","name":"bytes_per_op","parameter":"1r","value":96.0}
{"group":"snapshot_reads","function":"hivekit","name":"allocs_per_op","parameter":"1r","value":0.0}
{"group":"startup_time","function":"hivekit","name":"allocs_per_op","parameter":"","value":12.5}
{"group":"torn","function":
"#;

    #[test]
    fn later_lines_win_and_bad_lines_warn() {
        let (extras, warnings) = parse_extras(JSONL);
        let key = ("snapshot_reads".into(), "hivekit".into(), "1r".into());
        assert_eq!(extras[&key]["allocs_per_op"], 0.0);
        assert_eq!(extras[&key]["bytes_per_op"], 96.0);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with("extras.jsonl line 5:"),
            "{warnings:?}"
        );
    }

    #[test]
    fn joined_by_group_function_and_parameter() {
        let (extras, _) = parse_extras(JSONL);
        let mut rows = vec![
            row("snapshot_reads", "hivekit", "1r", 4.0),
            row("snapshot_reads", "arc-swap", "1r", 5.0),
            row("startup_time", "hivekit", "", 9.0),
        ];
        join_extras(&mut rows, &extras);
        assert_eq!(rows[0].extras.get("bytes_per_op"), Some(&96.0));
        assert!(rows[1].extras.is_empty());
        assert_eq!(rows[2].extras.get("allocs_per_op"), Some(&12.5));
    }

    #[test]
    fn clear_then_read_is_empty() {
        let dir = std::env::temp_dir().join(format!("xtask-extras-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("mkdir");
        fs::write(dir.join(EXTRAS_FILE), JSONL).expect("write");
        clear_extras(&dir).expect("clears");
        let (extras, warnings) = read_extras(&dir).expect("reads");
        fs::remove_dir_all(&dir).expect("cleanup");
        assert!(extras.is_empty() && warnings.is_empty());
    }
}
