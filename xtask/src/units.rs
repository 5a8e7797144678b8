//! Human units for times, rates and counts, and parsing criterion's own time strings.

use crate::results::Throughput;

/// A figure measured against a limit counts as at the limit within a relative 1e-9: "a change of
/// exactly the threshold is not beyond it", and 3.3 / 1.1 is 2.9999999999999996, not 3.
fn slack(limit: f64) -> f64 {
    limit.abs().max(1.0) * 1e-9
}

/// `value > limit`, a value at the limit (within [`slack`]) not beyond it.
pub(crate) fn beyond(value: f64, limit: f64) -> bool {
    value > limit + slack(limit)
}

/// `value >= limit`, a value at the limit (within [`slack`]) reaching it.
pub(crate) fn reaches(value: f64, limit: f64) -> bool {
    value >= limit - slack(limit)
}

/// Three significant digits: `4.41`, `44.1`, `441`.
fn three_digits(value: f64) -> String {
    let magnitude = value.abs();
    // Thresholds sit where rounding would add a digit (9.996 prints as `10.0`, not `10.00`).
    if magnitude < 9.995 {
        format!("{value:.2}")
    } else if magnitude < 99.95 {
        format!("{value:.1}")
    } else {
        format!("{value:.0}")
    }
}

/// A duration in nanoseconds as `980 ps`, `4.41 ns`, `12.3 us`, `1.50 ms` or `2.00 s`.
pub(crate) fn format_ns(ns: f64) -> String {
    const UNITS: [(f64, &str); 5] = [
        (1e-3, "ps"),
        (1.0, "ns"),
        (1e3, "us"),
        (1e6, "ms"),
        (1e9, "s"),
    ];
    if !ns.is_finite() {
        return "n/a".to_owned();
    }
    // 999.7 ns would print as `1000 ns`: values that round to 1000 move up a unit.
    let (scale, unit) = UNITS
        .iter()
        .copied()
        .find(|(scale, _)| (ns / scale).abs() < 999.5)
        .unwrap_or(UNITS[UNITS.len() - 1]);
    format!("{} {unit}", three_digits(ns / scale))
}

/// A rate with SI (`K`, `M`, `G`) or binary (`Ki`, `Mi`, `Gi`) prefixes: `3.32 Gelem/s`.
fn format_rate(per_second: f64, unit: &str, binary: bool) -> String {
    let base: f64 = if binary { 1024.0 } else { 1000.0 };
    let prefixes: [&str; 5] = if binary {
        ["", "Ki", "Mi", "Gi", "Ti"]
    } else {
        ["", "K", "M", "G", "T"]
    };
    let mut value = per_second;
    let mut index = 0;
    // Up a prefix where three digits would print the base itself (999.7 M is `1.00 G`, as a
    // median of 999.6 ns is `1.00 us`).
    while value >= base - 0.5 && index + 1 < prefixes.len() {
        value /= base;
        index += 1;
    }
    format!("{} {}{unit}/s", three_digits(value), prefixes[index])
}

/// The throughput of one iteration taking `median_ns`: `3.32 Gelem/s`, `1.20 GiB/s`.
pub(crate) fn format_throughput(throughput: Throughput, median_ns: f64) -> String {
    if median_ns <= 0.0 || !median_ns.is_finite() {
        return "n/a".to_owned();
    }
    let per_second = |amount: u64| amount as f64 * 1e9 / median_ns;
    match throughput {
        Throughput::Elements(n) | Throughput::ElementsAndBytes { elements: n, .. } => {
            format_rate(per_second(n), "elem", false)
        }
        Throughput::Bytes(n) => format_rate(per_second(n), "B", true),
        Throughput::BytesDecimal(n) => format_rate(per_second(n), "B", false),
        Throughput::Bits(n) => format_rate(per_second(n), "bit", false),
    }
}

/// A per-operation count: integers without decimals, fractions with two (`0`, `3`, `2.50`).
pub(crate) fn format_count(value: f64) -> String {
    if (value - value.round()).abs() < 0.005 {
        format!("{:.0}", value.round())
    } else {
        format!("{value:.2}")
    }
}

/// A ratio: `3.2x`, `0.85x`, `120x`.
pub(crate) fn format_ratio(ratio: f64) -> String {
    // Thresholds sit where rounding would add a digit (99.96 prints as `100x`, not `100.0x`).
    if ratio < 0.995 {
        format!("{ratio:.2}x")
    } else if ratio < 99.95 {
        format!("{ratio:.1}x")
    } else {
        format!("{ratio:.0}x")
    }
}

/// Parses a time as criterion prints it (`2.9035 ns`, `986.59 ps`, `1.0020 µs`) into nanoseconds.
pub(crate) fn parse_criterion_time(value: f64, unit: &str) -> Option<f64> {
    let scale = match unit {
        "ps" => 1e-3,
        "ns" => 1.0,
        "µs" | "us" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        _ => return None,
    };
    Some(value * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_pick_the_right_unit() {
        assert_eq!(format_ns(0.98659), "987 ps");
        assert_eq!(format_ns(4.414), "4.41 ns");
        assert_eq!(format_ns(44.14), "44.1 ns");
        assert_eq!(format_ns(9.996), "10.0 ns");
        assert_eq!(format_ns(441.4), "441 ns");
        assert_eq!(format_ns(12_345.0), "12.3 us");
        assert_eq!(format_ns(1_500_000.0), "1.50 ms");
        assert_eq!(format_ns(2e9), "2.00 s");
        assert_eq!(format_ns(f64::NAN), "n/a");
    }

    #[test]
    fn rounding_up_moves_to_the_next_unit() {
        assert_eq!(format_ns(999.7), "1.00 us");
        assert_eq!(format_ns(0.9999), "1.00 ns");
        assert_eq!(format_ns(999_990_000.0), "1.00 s");
    }

    #[test]
    fn throughput_units() {
        assert_eq!(
            format_throughput(Throughput::Elements(10), 3.0),
            "3.33 Gelem/s"
        );
        assert_eq!(
            format_throughput(Throughput::Elements(1), 1_000.0),
            "1.00 Melem/s"
        );
        assert_eq!(
            format_throughput(Throughput::Bytes(1024), 1_000_000_000.0),
            "1.00 KiB/s"
        );
        assert_eq!(
            format_throughput(Throughput::BytesDecimal(2_000), 1_000_000_000.0),
            "2.00 KB/s"
        );
        assert_eq!(format_throughput(Throughput::Bits(5), 1e9), "5.00 bit/s");
        assert_eq!(format_throughput(Throughput::Elements(5), 0.0), "n/a");
    }

    #[test]
    fn counts_and_ratios() {
        assert_eq!(format_count(0.0), "0");
        assert_eq!(format_count(3.0001), "3");
        assert_eq!(format_count(2.5), "2.50");
        assert_eq!(format_ratio(3.21), "3.2x");
        assert_eq!(format_ratio(0.849), "0.85x");
        assert_eq!(format_ratio(123.4), "123x");
    }

    #[test]
    fn criterion_times_parse() {
        assert_eq!(parse_criterion_time(2.5, "ns"), Some(2.5));
        assert_eq!(parse_criterion_time(1.5, "µs"), Some(1500.0));
        assert_eq!(parse_criterion_time(500.0, "ps"), Some(0.5));
        assert_eq!(parse_criterion_time(3.0, "ms"), Some(3e6));
        assert_eq!(parse_criterion_time(1.0, "s"), Some(1e9));
        assert_eq!(parse_criterion_time(1.0, "weeks"), None);
    }
}
