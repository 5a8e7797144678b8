//! SVG charts beside the markdown report (plotters): one per group, hivekit beside each peer, and one
//! summary of every ratio target judged on paired rounds.
//!
//! - A group chart puts the group's parameters on the x axis (in run order, evenly spaced: they are
//!   sizes, thread counts or named cases) and the median time per iteration on a log y axis, one line
//!   per function; hivekit's lines are drawn thicker.
//! - The summary chart shows each paired ratio target as its interval over the rounds, divided by the
//!   target's factor and flipped so that up is always better: above the line at 1 the target is met,
//!   below it is not, across it is unclear.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::error::XtaskError;
use crate::report::Report;
use crate::targets::{Check, Outcome, Status};
use crate::units::format_ns;

/// The directory beside the markdown file the charts go to, and how the markdown links to it.
pub(crate) const CHART_DIR: &str = "charts";

/// The file name of the summary chart.
pub(crate) const SUMMARY_CHART: &str = "targets.svg";

const WIDTH: u32 = 720;
const HEIGHT: u32 = 360;

/// A group's chart file name: the group with anything but `[a-z0-9_-]` made `_`.
pub(crate) fn chart_file(group: &str) -> String {
    let name: String = group
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("{name}.svg")
}

fn chart_error(path: &Path, error: impl std::fmt::Display) -> XtaskError {
    XtaskError::Chart {
        path: path.to_owned(),
        message: error.to_string(),
    }
}

/// One line of a group chart: a function's (parameter index, median ns) points.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Line {
    /// The function id.
    pub(crate) function: String,
    /// Whether it is hivekit's.
    pub(crate) ours: bool,
    /// `(index of the parameter, median ns)`.
    pub(crate) points: Vec<(usize, f64)>,
}

/// The parameters (in first-seen order) and one line per function of a group's rows.
pub(crate) fn group_lines(report: &Report<'_>, rows: &[usize]) -> (Vec<String>, Vec<Line>) {
    let mut parameters: Vec<String> = Vec::new();
    let mut lines: Vec<Line> = Vec::new();
    for &index in rows {
        let row = &report.results[index];
        if !(row.median_ns.is_finite() && row.median_ns > 0.0) {
            continue;
        }
        let position = match parameters.iter().position(|p| *p == row.parameter) {
            Some(position) => position,
            None => {
                parameters.push(row.parameter.clone());
                parameters.len() - 1
            }
        };
        match lines.iter_mut().find(|line| line.function == row.function) {
            Some(line) => line.points.push((position, row.median_ns)),
            None => lines.push(Line {
                function: row.function.clone(),
                ours: row.is_hivekit(),
                points: vec![(position, row.median_ns)],
            }),
        }
    }
    (parameters, lines)
}

/// The y range of a log axis around `values`, padded by a factor of 1.5 either way.
fn log_range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (low, high) = values
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    (high > 0.0).then(|| (low / 1.5, high * 1.5))
}

fn draw_group(
    path: &Path,
    group: &str,
    parameters: &[String],
    lines: &[Line],
) -> Result<(), XtaskError> {
    let Some((low, high)) = log_range(lines.iter().flat_map(|l| l.points.iter().map(|p| p.1)))
    else {
        return Ok(());
    };
    let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| chart_error(path, e))?;
    let count = parameters.len().max(1);
    let mut chart = ChartBuilder::on(&root)
        .caption(group, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(72)
        .build_cartesian_2d(-0.5f64..count as f64 - 0.5, (low..high).log_scale())
        .map_err(|e| chart_error(path, e))?;
    let label = |x: &f64| {
        let index = x.round();
        if (x - index).abs() < 0.01 && index >= 0.0 {
            parameters.get(index as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .x_labels(count * 4 + 1)
        .x_label_formatter(&label)
        .y_label_formatter(&|y| format_ns(*y))
        .y_desc("median time per iteration (log)")
        .disable_x_mesh()
        .draw()
        .map_err(|e| chart_error(path, e))?;
    for (number, line) in lines.iter().enumerate() {
        let color = Palette99::pick(number).to_rgba();
        let width = if line.ours { 3 } else { 1 };
        let points: Vec<(f64, f64)> = line.points.iter().map(|&(x, y)| (x as f64, y)).collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(width)))
            .map_err(|e| chart_error(path, e))?
            .label(line.function.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(width))
            });
        chart
            .draw_series(
                points
                    .iter()
                    .map(|&point| Circle::new(point, width + 2, color.filled())),
            )
            .map_err(|e| chart_error(path, e))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()
        .map_err(|e| chart_error(path, e))?;
    root.present().map_err(|e| chart_error(path, e))
}

/// A paired ratio target on the summary chart: its interval and median as multiples of what the
/// target needs, up is better (1 is the target line).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Margin {
    /// Lower end.
    pub(crate) low: f64,
    /// Median.
    pub(crate) median: f64,
    /// Upper end.
    pub(crate) high: f64,
}

/// The margin of an outcome judged on paired rounds: `ratio / factor` for `faster_than`, `factor /
/// ratio` for `within` (so that above 1 is met for both).
pub(crate) fn margin(outcome: &Outcome) -> Option<Margin> {
    let ratio = outcome.paired?;
    match outcome.target.check {
        Check::FasterThan { factor, .. } => Some(Margin {
            low: ratio.low / factor,
            median: ratio.median / factor,
            high: ratio.high / factor,
        }),
        Check::Within { factor, .. } => Some(Margin {
            low: factor / ratio.high,
            median: factor / ratio.median,
            high: factor / ratio.low,
        }),
        _ => None,
    }
}

/// `outcomes` are `(number in the targets table, outcome, margin)`.
fn draw_summary(path: &Path, outcomes: &[(usize, &Outcome, Margin)]) -> Result<(), XtaskError> {
    let Some((low, high)) = log_range(
        outcomes
            .iter()
            .flat_map(|(_, _, m)| [m.low, m.high])
            .chain([1.0]),
    ) else {
        return Ok(());
    };
    let height = HEIGHT.max(120 + 14 * outcomes.len() as u32);
    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| chart_error(path, e))?;
    let count = outcomes.len();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "ratio targets: paired interval / what the target needs (above 1: met)",
            ("sans-serif", 16),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d((low..high).log_scale(), -0.5f64..count as f64 - 0.5)
        .map_err(|e| chart_error(path, e))?;
    chart
        .configure_mesh()
        .y_labels(count * 2 + 1)
        .y_label_formatter(&|y| {
            let index = y.round();
            let number = outcomes.get(index as usize).map(|(number, _, _)| *number);
            match number.filter(|_| (y - index).abs() < 0.01 && index >= 0.0) {
                Some(number) => format!("#{number}"),
                None => String::new(),
            }
        })
        .x_label_formatter(&|x| format!("{x:.2}x"))
        .x_desc("margin (log): interval of the paired ratio divided by the target's factor")
        .disable_y_mesh()
        .draw()
        .map_err(|e| chart_error(path, e))?;
    chart
        .draw_series(LineSeries::new(
            [(1.0, -0.5), (1.0, count as f64 - 0.5)],
            BLACK.stroke_width(2),
        ))
        .map_err(|e| chart_error(path, e))?;
    for (index, (_, outcome, margin)) in outcomes.iter().enumerate() {
        let color = match outcome.status {
            Status::Met => RGBColor(0x2e, 0x7d, 0x32),
            Status::NotMet => RGBColor(0xc6, 0x28, 0x28),
            _ => RGBColor(0xef, 0x8f, 0x00),
        };
        let y = index as f64;
        chart
            .draw_series(LineSeries::new(
                [(margin.low, y), (margin.high, y)],
                color.stroke_width(3),
            ))
            .map_err(|e| chart_error(path, e))?;
        chart
            .draw_series([Circle::new((margin.median, y), 4, color.filled())])
            .map_err(|e| chart_error(path, e))?;
    }
    root.present().map_err(|e| chart_error(path, e))
}

/// The charts written for one report.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Charts {
    /// Group name to file name (inside [`CHART_DIR`]).
    pub(crate) groups: Vec<(String, String)>,
    /// Whether the summary chart was drawn (some ratio target was judged on paired rounds).
    pub(crate) summary: bool,
}

impl Charts {
    /// The file of a group's chart, if it has one.
    pub(crate) fn group_file(&self, group: &str) -> Option<&str> {
        self.groups
            .iter()
            .find(|(name, _)| name == group)
            .map(|(_, file)| file.as_str())
    }
}

/// Writes every chart into `dir` (created if needed): groups with at least two rows, and the summary
/// of the outcomes judged on paired rounds.
pub(crate) fn write_charts(
    dir: &Path,
    report: &Report<'_>,
    outcomes: &[Outcome],
) -> Result<Charts, XtaskError> {
    std::fs::create_dir_all(dir).map_err(|error| XtaskError::io("create directory", dir, error))?;
    let mut charts = Charts::default();
    for section in report.sections() {
        for group in &section.groups {
            if group.rows.len() < 2 || charts.group_file(&group.group).is_some() {
                continue;
            }
            let (parameters, lines) = group_lines(report, &group.rows);
            let file = chart_file(&group.group);
            let path: PathBuf = dir.join(&file);
            draw_group(&path, &group.group, &parameters, &lines)?;
            charts.groups.push((group.group.clone(), file));
        }
    }
    // Numbered as in the targets table (1-based).
    let judged: Vec<(usize, &Outcome, Margin)> = outcomes
        .iter()
        .enumerate()
        .filter_map(|(index, outcome)| margin(outcome).map(|m| (index + 1, outcome, m)))
        .collect();
    if !judged.is_empty() {
        draw_summary(&dir.join(SUMMARY_CHART), &judged)?;
        charts.summary = true;
    }
    Ok(charts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paired::PairedRatio;
    use crate::results::tests::row;
    use crate::targets::{evaluate_paired, parse_targets};

    #[test]
    fn file_names_are_safe() {
        assert_eq!(chart_file("snapshot_reads"), "snapshot_reads.svg");
        assert_eq!(chart_file("odd name/with:Stuff"), "odd_name_with_stuff.svg");
    }

    #[test]
    fn margins_point_up_when_met() {
        let targets = parse_targets(
            r#"[{"crate": "c", "target": "t",
                 "check": {"faster_than": {"id": "g/hivekit/1", "peer": "p", "factor": 2}}},
                {"crate": "c", "target": "t",
                 "check": {"within": {"id": "g/hivekit/1", "peer": "p", "factor": 2}}}]"#,
            Path::new("t.json"),
        )
        .expect("parses");
        let mut outcomes = evaluate_paired(&targets, &[], &[]);
        let ratio = PairedRatio {
            median: 4.0,
            low: 3.0,
            high: 5.0,
            rounds: 5,
            coverage: 0.9375,
        };
        outcomes[0].paired = Some(ratio);
        outcomes[1].paired = Some(ratio);
        let faster = margin(&outcomes[0]).expect("margin");
        assert_eq!((faster.low, faster.median, faster.high), (1.5, 2.0, 2.5));
        let within = margin(&outcomes[1]).expect("margin");
        assert_eq!(
            (within.low, within.median, within.high),
            (0.4, 0.5, 2.0 / 3.0)
        );
    }

    #[test]
    fn charts_are_svg_files_one_per_group_and_a_summary() {
        let mut rows = vec![
            row("snapshot_reads", "hivekit", "1r", 2.0),
            row("snapshot_reads", "arc-swap", "1r", 6.0),
            row("snapshot_reads", "hivekit", "2r", 3.0),
            row("snapshot_reads", "arc-swap", "2r", 9.0),
            row("alone", "hivekit", "", 5.0),
        ];
        for r in &mut rows {
            r.krate = "hivekit-lockfree".into();
        }
        let report = Report::new(&rows, None);
        let targets = parse_targets(
            r#"[{"crate": "hivekit-lockfree", "target": "reads 2x faster",
                 "check": {"faster_than": {"id": "snapshot_reads/hivekit/1r", "peer": "arc-swap", "factor": 2}}}]"#,
            Path::new("t.json"),
        )
        .expect("parses");
        let rounds: Vec<crate::paired::Round> = (0..5)
            .map(|i| {
                crate::paired::Round::from([
                    ("snapshot_reads/hivekit/1r".to_owned(), 2.0),
                    ("snapshot_reads/arc-swap/1r".to_owned(), 5.0 + f64::from(i)),
                ])
            })
            .collect();
        let outcomes = evaluate_paired(&targets, &rows, &rounds);
        let dir = std::env::temp_dir().join(format!("xtask-charts-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let charts = write_charts(&dir, &report, &outcomes).expect("charts");
        let group = std::fs::read_to_string(dir.join("snapshot_reads.svg")).expect("group chart");
        let summary = std::fs::read_to_string(dir.join(SUMMARY_CHART)).expect("summary chart");
        let alone = dir.join("alone.svg").exists();
        std::fs::remove_dir_all(&dir).expect("cleanup");
        assert_eq!(
            charts.groups,
            [("snapshot_reads".to_owned(), "snapshot_reads.svg".to_owned())]
        );
        assert!(charts.summary);
        assert!(group.starts_with("<svg"), "{group}");
        assert!(
            group.contains("arc-swap") && group.contains("\n1r\n"),
            "{group}"
        );
        assert!(summary.contains("<svg"), "{summary}");
        assert!(!alone, "a group of one row gets no chart");
    }
}
