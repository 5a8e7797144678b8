//! One measured benchmark: the row every report (table, markdown, JSON, baseline) is made of.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What one iteration processes, as criterion's `Throughput` says (stable, xtask-owned spelling).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Throughput {
    /// Elements per iteration.
    Elements(u64),
    /// Bytes per iteration, shown in binary units (KiB/s, MiB/s, GiB/s).
    Bytes(u64),
    /// Bytes per iteration, shown in decimal units (KB/s, MB/s, GB/s).
    BytesDecimal(u64),
    /// Bits per iteration.
    Bits(u64),
    /// Both; shown as elements.
    ElementsAndBytes {
        /// Elements per iteration.
        elements: u64,
        /// Bytes per iteration.
        bytes: u64,
    },
}

/// One benchmark that ran: ids as criterion reported them, the time estimates and the extras.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BenchResult {
    /// The package whose suite ran it.
    pub(crate) krate: String,
    /// The full id `group/function/parameter` (criterion's `full_id`).
    pub(crate) id: String,
    /// The group (`snapshot_reads`).
    pub(crate) group: String,
    /// The function id (`hivekit`, `arc-swap`); empty when criterion had none.
    pub(crate) function: String,
    /// The parameter (`1r`); empty when criterion had none.
    pub(crate) parameter: String,
    /// The median time per iteration, in nanoseconds.
    pub(crate) median_ns: f64,
    /// Lower bound of the median's confidence interval, in nanoseconds.
    pub(crate) ci_low_ns: f64,
    /// Upper bound of the median's confidence interval, in nanoseconds.
    pub(crate) ci_high_ns: f64,
    /// What an iteration processes, if the bench said.
    pub(crate) throughput: Option<Throughput>,
    /// Extra figures from benches-common (`allocs_per_op`, `bytes_per_op`, ...).
    pub(crate) extras: BTreeMap<String, f64>,
}

impl BenchResult {
    /// Whether this row measures hivekit itself (function id starting with `hivekit`) rather than a peer.
    pub(crate) fn is_hivekit(&self) -> bool {
        self.function.starts_with("hivekit")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A row for tests: the id is built from the parts, the CI is +-1 %.
    pub(crate) fn row(group: &str, function: &str, parameter: &str, median_ns: f64) -> BenchResult {
        let id = [group, function, parameter]
            .iter()
            .filter(|part| !part.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("/");
        BenchResult {
            krate: "hivekit-demo".into(),
            id,
            group: group.into(),
            function: function.into(),
            parameter: parameter.into(),
            median_ns,
            ci_low_ns: median_ns * 0.99,
            ci_high_ns: median_ns * 1.01,
            throughput: None,
            extras: BTreeMap::new(),
        }
    }

    #[test]
    fn hivekit_rows_are_recognised_by_prefix() {
        assert!(row("g", "hivekit", "", 1.0).is_hivekit());
        assert!(row("g", "hivekit-sharded", "", 1.0).is_hivekit());
        assert!(!row("g", "arc-swap", "", 1.0).is_hivekit());
    }

    #[test]
    fn throughput_json_spelling_is_stable() {
        let json = serde_json::to_string(&Throughput::Elements(10)).expect("serialises");
        assert_eq!(json, r#"{"elements":10}"#);
        let both: Throughput =
            serde_json::from_str(r#"{"elements_and_bytes":{"elements":2,"bytes":8}}"#)
                .expect("parses");
        assert_eq!(
            both,
            Throughput::ElementsAndBytes {
                elements: 2,
                bytes: 8
            }
        );
    }
}
