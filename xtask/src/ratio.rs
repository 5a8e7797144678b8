//! Ratios between hivekit and its peers, measured side by side in the same group and parameter.
//!
//! A row whose function id starts with `hivekit` is ours; every other function id is a peer. The ratio
//! is `peer median / hivekit median`: above 1, hivekit is that many times faster.

use crate::results::BenchResult;
use crate::units::format_ratio;

/// A peer's time divided by a hivekit row's time.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PeerRatio {
    /// The other row's function id.
    pub(crate) other: String,
    /// `peer median / hivekit median`.
    pub(crate) ratio: f64,
}

/// The ratio cell of one row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RatioCell {
    /// A hivekit row: its ratio against each peer with the same group and parameter.
    Ours(Vec<PeerRatio>),
    /// A peer row: the hivekit row it is compared with (`other`) and the ratio.
    Peer(PeerRatio),
    /// Nothing to compare with.
    Alone,
}

/// `peer / ours`, or `None` when a median is not a positive number.
fn ratio(peer: &BenchResult, ours: &BenchResult) -> Option<f64> {
    let valid = |ns: f64| ns.is_finite() && ns > 0.0;
    (valid(peer.median_ns) && valid(ours.median_ns)).then(|| peer.median_ns / ours.median_ns)
}

fn same_case(a: &BenchResult, b: &BenchResult) -> bool {
    a.krate == b.krate && a.group == b.group && a.parameter == b.parameter
}

/// The ratio cell of every row, in row order.
pub(crate) fn ratio_cells(results: &[BenchResult]) -> Vec<RatioCell> {
    results
        .iter()
        .map(|row| {
            if row.is_hivekit() {
                let peers: Vec<PeerRatio> = results
                    .iter()
                    .filter(|other| !other.is_hivekit() && same_case(row, other))
                    .filter_map(|peer| {
                        ratio(peer, row).map(|ratio| PeerRatio {
                            other: peer.function.clone(),
                            ratio,
                        })
                    })
                    .collect();
                if peers.is_empty() {
                    RatioCell::Alone
                } else {
                    RatioCell::Ours(peers)
                }
            } else {
                // Prefer the row named exactly `hivekit` over variants such as `hivekit-sharded`.
                let candidates = || {
                    results
                        .iter()
                        .filter(|other| other.is_hivekit() && same_case(row, other))
                };
                let ours = candidates()
                    .find(|other| other.function == "hivekit")
                    .or_else(|| candidates().next());
                match ours.and_then(|ours| ratio(row, ours).map(|r| (ours, r))) {
                    Some((ours, ratio)) => RatioCell::Peer(PeerRatio {
                        other: ours.function.clone(),
                        ratio,
                    }),
                    None => RatioCell::Alone,
                }
            }
        })
        .collect()
}

/// `faster` or `(slower)` after a ratio.
fn direction(ratio: f64) -> &'static str {
    if ratio >= 1.0 {
        "faster"
    } else {
        "(slower)"
    }
}

/// The cell text: `hivekit 3.2x faster` on a peer row, `vs arc-swap 3.2x, mutex 0.80x` on a hivekit
/// row (the same ratio, kept compact because a group may have many peers), empty when alone.
pub(crate) fn format_ratio_cell(cell: &RatioCell) -> String {
    match cell {
        RatioCell::Alone => String::new(),
        RatioCell::Peer(peer) => format!(
            "{} {} {}",
            peer.other,
            format_ratio(peer.ratio),
            direction(peer.ratio)
        ),
        RatioCell::Ours(peers) => {
            let ratios: Vec<String> = peers
                .iter()
                .map(|peer| format!("{} {}", peer.other, format_ratio(peer.ratio)))
                .collect();
            format!("vs {}", ratios.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::tests::row;

    #[test]
    fn peer_rows_show_how_much_faster_hivekit_is() {
        let rows = [
            row("snapshot_reads", "hivekit", "1r", 2.0),
            row("snapshot_reads", "arc-swap", "1r", 6.4),
            row("snapshot_reads", "rwlock", "1r", 1.6),
        ];
        let cells = ratio_cells(&rows);
        assert_eq!(
            cells[1],
            RatioCell::Peer(PeerRatio {
                other: "hivekit".into(),
                ratio: 3.2
            })
        );
        assert_eq!(format_ratio_cell(&cells[1]), "hivekit 3.2x faster");
        assert_eq!(format_ratio_cell(&cells[2]), "hivekit 0.80x (slower)");
        assert_eq!(
            format_ratio_cell(&cells[0]),
            "vs arc-swap 3.2x, rwlock 0.80x"
        );
    }

    #[test]
    fn only_the_same_group_and_parameter_compare() {
        let rows = [
            row("snapshot_reads", "hivekit", "1r", 2.0),
            row("snapshot_reads", "arc-swap", "4r", 6.0),
            row("snapshot_writes", "arc-swap", "1r", 6.0),
        ];
        let cells = ratio_cells(&rows);
        assert!(cells.iter().all(|cell| *cell == RatioCell::Alone));
    }

    #[test]
    fn exact_hivekit_is_preferred_over_variants() {
        let rows = [
            row("g", "hivekit-sharded", "8", 1.0),
            row("g", "hivekit", "8", 2.0),
            row("g", "mutex", "8", 4.0),
        ];
        let cells = ratio_cells(&rows);
        assert_eq!(format_ratio_cell(&cells[2]), "hivekit 2.0x faster");
        // Both hivekit rows list the peer.
        assert_eq!(format_ratio_cell(&cells[0]), "vs mutex 4.0x");
        assert_eq!(format_ratio_cell(&cells[1]), "vs mutex 2.0x");
    }

    #[test]
    fn a_zero_median_gives_no_ratio() {
        let rows = [row("g", "hivekit", "", 0.0), row("g", "peer", "", 1.0)];
        assert!(ratio_cells(&rows).iter().all(|c| *c == RatioCell::Alone));
    }
}
