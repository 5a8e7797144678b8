//! The one table printed at the end of `cargo xtask bench`: all crates, grouped by crate and group.

use crate::report::{Column, Report};

/// Renders rows as aligned text columns separated by two spaces (widths in characters).
pub(crate) fn align(rows: &[Vec<String>]) -> Vec<String> {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|row| row.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    rows.iter()
        .map(|row| {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                if c > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                let pad = widths[c].saturating_sub(cell.chars().count());
                line.extend(std::iter::repeat_n(' ', pad));
            }
            line.trim_end().to_owned()
        })
        .collect()
}

/// The terminal table: a header, then per crate a title line and its rows, with the group named on
/// its first row.
pub(crate) fn render_table(report: &Report<'_>) -> String {
    if report.results.is_empty() {
        return "no benchmark results\n".to_owned();
    }
    let columns = report.columns();
    let header: Vec<String> = std::iter::once("group")
        .chain(columns.iter().map(|c| c.header()))
        .map(str::to_owned)
        .collect();
    // Rows of the one table; `None` marks a crate title line, which does not take part in alignment.
    let mut lines: Vec<Option<Vec<String>>> = vec![Some(header)];
    let mut titles = Vec::new();
    for section in report.sections() {
        titles.push(section.krate.clone());
        lines.push(None);
        for group in &section.groups {
            for (n, &index) in group.rows.iter().enumerate() {
                let name = if n == 0 {
                    group.group.clone()
                } else {
                    String::new()
                };
                let cells = std::iter::once(name)
                    .chain(columns.iter().map(|&c| report.cell(index, c)))
                    .collect();
                lines.push(Some(cells));
            }
        }
    }
    let aligned = align(&lines.iter().flatten().cloned().collect::<Vec<_>>());
    let mut aligned = aligned.into_iter();
    let mut titles = titles.into_iter();
    let mut out = String::new();
    for line in &lines {
        let text = match line {
            Some(_) => aligned.next().unwrap_or_default(),
            None => format!("\n{}", titles.next().unwrap_or_default()),
        };
        out.push_str(&text);
        out.push('\n');
    }
    out
}

/// A short legend under the table, so a reader never has to guess which way a ratio points.
pub(crate) fn legend(columns: &[Column]) -> String {
    let mut out = String::from(
        "median and CI: criterion's median time per iteration and its 95% confidence interval\n",
    );
    if columns.contains(&Column::VsPeers) {
        out.push_str("vs peers: peer median / hivekit median, same group and parameter (>1: hivekit faster)\n");
    }
    if columns.contains(&Column::Verdict) {
        out.push_str(
            "verdict: regressed/improved only beyond the threshold AND with non-overlapping CIs\n",
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::tests::row;

    #[test]
    fn columns_align_by_characters() {
        let lines = align(&[
            vec!["a".into(), "µs".into(), "x".into()],
            vec!["long".into(), "b".into(), "".into()],
        ]);
        assert_eq!(lines, ["a     µs  x", "long  b"]);
    }

    #[test]
    fn table_has_crate_titles_and_group_once() {
        let mut rows = vec![
            row("snapshot_reads", "hivekit", "1r", 2.0),
            row("snapshot_reads", "arc-swap", "1r", 6.0),
        ];
        for r in &mut rows {
            r.krate = "hivekit-lockfree".into();
        }
        let report = Report::new(&rows, None);
        let table = render_table(&report);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("group"), "{table}");
        assert!(lines[0].contains("vs peers"), "{table}");
        assert_eq!(lines[2], "hivekit-lockfree");
        assert!(lines[3].starts_with("snapshot_reads  hivekit"), "{table}");
        assert!(lines[4].starts_with("                arc-swap"), "{table}");
        assert!(lines[4].ends_with("hivekit 3.0x faster"), "{table}");
    }

    #[test]
    fn empty_run_says_so() {
        assert!(render_table(&Report::new(&[], None)).contains("no benchmark results"));
    }
}
