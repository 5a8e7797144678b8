//! Instruction counts: the rows of `cargo xtask bench --instructions`, the committed baseline
//! (`docs/instructions.json`) and the 2% gate.
//!
//! Callgrind counts the instructions one call executes. For single-threaded code that number is the
//! same on every run of the same binary, whatever the machine's load, so a change of a few percent
//! is a real change: this is the regression gate that wall-clock numbers on a shared machine cannot
//! be. Counts move with the compiler and its flags, so the baseline records the `rustc` it came from.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::XtaskError;
use crate::table::align;
use crate::units::format_ratio;

/// A hivekit row that grows by more than this, in percent of the baseline, fails the gate.
pub(crate) const GATE_PCT: f64 = 2.0;

/// The baseline schema this xtask reads and writes.
const SCHEMA: u32 = 1;

/// One measured benchmark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct InstructionRow {
    /// `group/function/parameter`.
    pub(crate) id: String,
    /// The package whose suite ran it.
    #[serde(rename = "crate")]
    pub(crate) krate: String,
    /// Instructions executed (callgrind's `Ir`).
    pub(crate) instructions: u64,
    /// Callgrind's estimate of the cycles (from its simulated cache hits and misses), if reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) estimated_cycles: Option<u64>,
}

impl InstructionRow {
    fn parts(&self) -> (&str, &str, &str) {
        let mut parts = self.id.splitn(3, '/');
        (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        )
    }

    /// Whether the row measures hivekit (function id starting with `hivekit`) rather than a peer.
    pub(crate) fn is_hivekit(&self) -> bool {
        self.parts().1.starts_with("hivekit")
    }
}

/// `docs/instructions.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct InstructionBaseline {
    /// Always [`SCHEMA`].
    pub(crate) schema: u32,
    /// The compiler the counts come from (`rustc --version`).
    pub(crate) rustc: String,
    /// The commit they were blessed at.
    pub(crate) commit: String,
    /// The rows, by id.
    pub(crate) rows: Vec<InstructionRow>,
}

impl InstructionBaseline {
    /// Reads the baseline; `None` when the file does not exist.
    pub(crate) fn load(path: &Path) -> Result<Option<Self>, XtaskError> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(XtaskError::io("read", path, error)),
        };
        let bad = |message: String| XtaskError::BadInputFile {
            path: path.to_owned(),
            message,
        };
        let baseline: Self = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if baseline.schema != SCHEMA {
            return Err(bad(format!(
                "schema {} is not supported (this xtask reads {SCHEMA})",
                baseline.schema
            )));
        }
        Ok(Some(baseline))
    }

    /// This run's rows over the old baseline's: rows that did not run this time (`-p`, `--filter`)
    /// keep their old counts, so blessing a subset does not drop the rest.
    pub(crate) fn blessed(
        old: Option<&Self>,
        rows: &[InstructionRow],
        rustc: String,
        commit: String,
    ) -> Self {
        let mut by_id: BTreeMap<String, InstructionRow> = old
            .map(|old| {
                old.rows
                    .iter()
                    .map(|row| (row.id.clone(), row.clone()))
                    .collect()
            })
            .unwrap_or_default();
        for row in rows {
            by_id.insert(row.id.clone(), row.clone());
        }
        Self {
            schema: SCHEMA,
            rustc,
            commit,
            rows: by_id.into_values().collect(),
        }
    }

    /// Writes the baseline as pretty JSON (one row per few lines, so a re-bless diffs by row).
    pub(crate) fn save(&self, path: &Path) -> Result<(), XtaskError> {
        let json =
            serde_json::to_string_pretty(self).map_err(|error| XtaskError::BadInputFile {
                path: path.to_owned(),
                message: error.to_string(),
            })?;
        fs::write(path, json + "\n").map_err(|error| XtaskError::io("write", path, error))
    }

    fn get(&self, id: &str) -> Option<&InstructionRow> {
        self.rows.iter().find(|row| row.id == id)
    }
}

/// A row against its baseline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Change {
    /// No baseline row with this id.
    New,
    /// The change in percent of the baseline count (`+1.5` is more instructions).
    Percent(f64),
}

/// The change of every row, in row order.
pub(crate) fn changes(
    rows: &[InstructionRow],
    baseline: Option<&InstructionBaseline>,
) -> Vec<Change> {
    rows.iter()
        .map(|row| {
            match baseline.and_then(|b| b.get(&row.id)) {
                // From a count of 0: unchanged, or grown beyond any percentage.
                Some(old) if old.instructions == 0 => Change::Percent(if row.instructions == 0 {
                    0.0
                } else {
                    f64::INFINITY
                }),
                Some(old) => Change::Percent(
                    (row.instructions as f64 - old.instructions as f64) / old.instructions as f64
                        * 100.0,
                ),
                None => Change::New,
            }
        })
        .collect()
}

/// The hivekit rows that grew by more than [`GATE_PCT`], as `id +3.1% (1200 -> 1237)`.
pub(crate) fn regressions(
    rows: &[InstructionRow],
    changes: &[Change],
    baseline: Option<&InstructionBaseline>,
) -> Vec<String> {
    rows.iter()
        .zip(changes)
        .filter_map(|(row, change)| match change {
            Change::Percent(pct) if row.is_hivekit() && *pct > GATE_PCT => {
                let old = baseline
                    .and_then(|b| b.get(&row.id))
                    .map_or(0, |old| old.instructions);
                Some(format!(
                    "{} {pct:+.2}% ({old} -> {})",
                    row.id, row.instructions
                ))
            }
            _ => None,
        })
        .collect()
}

/// `peer / hivekit` instructions for the rows of the same group and parameter, as the ratio column
/// shows it: on a peer row `hivekit 3.2x fewer`, on a hivekit row `vs arc-swap 3.2x`.
fn ratio_cell(rows: &[InstructionRow], index: usize) -> String {
    let row = &rows[index];
    let (group, _, parameter) = row.parts();
    let same_case = |other: &InstructionRow| {
        let (g, _, p) = other.parts();
        g == group && p == parameter && other.instructions > 0
    };
    if row.is_hivekit() && row.instructions > 0 {
        let peers: Vec<String> = rows
            .iter()
            .filter(|other| !other.is_hivekit() && same_case(other))
            .map(|peer| {
                let ratio = peer.instructions as f64 / row.instructions as f64;
                format!("{} {}", peer.parts().1, format_ratio(ratio))
            })
            .collect();
        if peers.is_empty() {
            String::new()
        } else {
            format!("vs {}", peers.join(", "))
        }
    } else {
        let ours = rows
            .iter()
            .filter(|other| other.is_hivekit() && same_case(other))
            .min_by_key(|other| other.parts().1 != "hivekit");
        match ours {
            Some(ours) if row.instructions > 0 => {
                let ratio = row.instructions as f64 / ours.instructions.max(1) as f64;
                let direction = if ratio >= 1.0 { "fewer" } else { "(more)" };
                format!("{} {} {direction}", ours.parts().1, format_ratio(ratio))
            }
            _ => String::new(),
        }
    }
}

/// The instruction table: one line per row, the group named on its first row.
pub(crate) fn render(rows: &[InstructionRow], changes: &[Change]) -> String {
    let mut lines = vec![[
        "group",
        "function",
        "parameter",
        "instructions",
        "est. cycles",
        "vs peers",
        "vs baseline",
    ]
    .map(str::to_owned)
    .to_vec()];
    let mut previous_group = "";
    for (index, row) in rows.iter().enumerate() {
        let (group, function, parameter) = row.parts();
        let change = match changes.get(index) {
            Some(Change::Percent(pct)) => {
                let flag = if row.is_hivekit() && *pct > GATE_PCT {
                    "  REGRESSED"
                } else {
                    ""
                };
                format!("{pct:+.2}%{flag}")
            }
            Some(Change::New) | None => "new".to_owned(),
        };
        lines.push(vec![
            if group == previous_group {
                String::new()
            } else {
                group.to_owned()
            },
            function.to_owned(),
            parameter.to_owned(),
            row.instructions.to_string(),
            row.estimated_cycles
                .map_or_else(String::new, |cycles| cycles.to_string()),
            ratio_cell(rows, index),
            change,
        ]);
        previous_group = group;
    }
    let mut out = String::new();
    for line in align(&lines) {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, instructions: u64) -> InstructionRow {
        InstructionRow {
            id: id.to_owned(),
            krate: "hivekit-lockfree".to_owned(),
            instructions,
            estimated_cycles: Some(instructions * 2),
        }
    }

    fn baseline(rows: &[InstructionRow]) -> InstructionBaseline {
        InstructionBaseline::blessed(None, rows, "rustc".into(), "abc".into())
    }

    #[test]
    fn a_hivekit_row_growing_more_than_two_percent_fails_naming_the_row() {
        let old = baseline(&[
            row("snapshot_reads/hivekit/read", 1000),
            row("snapshot_reads/arc-swap/read", 1000),
        ]);
        let new = [
            row("snapshot_reads/hivekit/read", 1021),
            row("snapshot_reads/arc-swap/read", 1500),
        ];
        let changes = changes(&new, Some(&old));
        assert_eq!(
            regressions(&new, &changes, Some(&old)),
            ["snapshot_reads/hivekit/read +2.10% (1000 -> 1021)"]
        );
    }

    #[test]
    fn two_percent_exactly_and_peers_and_new_rows_pass() {
        let old = baseline(&[row("g/hivekit/1", 1000), row("g/peer/1", 10)]);
        let new = [
            row("g/hivekit/1", 1020),
            row("g/peer/1", 100),
            row("g/hivekit-new/1", 5),
        ];
        let changes = changes(&new, Some(&old));
        assert_eq!(changes[2], Change::New);
        assert!(regressions(&new, &changes, Some(&old)).is_empty());
    }

    #[test]
    fn blessing_a_subset_keeps_the_other_rows() {
        let old = baseline(&[row("a/hivekit/1", 1), row("b/hivekit/1", 2)]);
        let blessed = InstructionBaseline::blessed(
            Some(&old),
            &[row("b/hivekit/1", 3)],
            "rustc 2".into(),
            "def".into(),
        );
        let counts: Vec<(&str, u64)> = blessed
            .rows
            .iter()
            .map(|r| (r.id.as_str(), r.instructions))
            .collect();
        assert_eq!(counts, [("a/hivekit/1", 1), ("b/hivekit/1", 3)]);
        assert_eq!(blessed.rustc, "rustc 2");
    }

    #[test]
    fn saved_baselines_load_back_and_bad_ones_are_rejected() {
        let path = std::env::temp_dir().join(format!("xtask-instr-{}.json", std::process::id()));
        let original = baseline(&[row("g/hivekit/1", 42)]);
        original.save(&path).expect("saves");
        assert_eq!(
            InstructionBaseline::load(&path).expect("loads"),
            Some(original)
        );
        fs::write(
            &path,
            r#"{"schema": 9, "rustc": "", "commit": "", "rows": []}"#,
        )
        .expect("write");
        let error = InstructionBaseline::load(&path).unwrap_err();
        assert_eq!(error.exit_code(), 2);
        fs::remove_file(&path).expect("cleanup");
        assert_eq!(
            InstructionBaseline::load(Path::new("/nonexistent/i.json")).expect("missing is none"),
            None
        );
    }

    #[test]
    fn the_table_shows_counts_ratios_and_changes() {
        let rows = [row("g/hivekit/1", 100), row("g/arc-swap/1", 320)];
        let old = baseline(&[row("g/hivekit/1", 90)]);
        let table = render(&rows, &changes(&rows, Some(&old)));
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("group  function"), "{table}");
        assert!(lines[1].contains("vs arc-swap 3.2x"), "{table}");
        assert!(lines[1].ends_with("+11.11%  REGRESSED"), "{table}");
        assert!(lines[2].contains("hivekit 3.2x fewer"), "{table}");
        assert!(lines[2].ends_with("new"), "{table}");
    }
}
