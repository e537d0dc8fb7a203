//! What `watos bench` measured, one row per instance and formulation, and its renderings: a table
//! that fits the terminal, CSV and Markdown. The scaling plot is in [`super::scaling`].

use comfy_table::{Cell, CellAlignment, ContentArrangement};
use serde::Serialize;

use super::{fmt_gap, View};

/// One solve of one instance by one formulation. Figures a run did not produce (no plan, or a
/// formulation without MIPs) are `None`.
///
/// ```
/// let row = watos::report::BenchRow::new("gpu8-llama3-8b", "Llama 3 8B on 8 H100", 8, "decomposition");
/// assert_eq!(row.status, "");
/// assert!(row.step_time_s.is_none());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BenchRow {
    /// The instance file's name, without `.toml`.
    pub file: String,
    /// The instance's own name.
    pub instance: String,
    /// Healthy devices (dies or GPUs).
    pub devices: usize,
    /// `wafer` or `cluster`.
    pub fabric: String,
    pub formulation: String,
    /// A solution status (`optimal`, `time_limit`, `node_limit`, `placement_gap`), or why there is
    /// no plan: `time_limit` / `node_limit` (a limit ran out first), `infeasible`, `too_large`
    /// (enumeration refused), `failed`.
    pub status: String,
    pub step_time_s: Option<f64>,
    pub lower_bound_s: Option<f64>,
    /// `(step time - lower bound) / step time`.
    pub gap: Option<f64>,
    /// Wall time of the whole solve, also when it found nothing.
    pub solve_time_s: f64,
    pub first_plan_s: Option<f64>,
    /// When the gap first reached the target (`None`: never).
    pub target_gap_s: Option<f64>,
    pub nodes: Option<u64>,
    /// Columns and rows of the MIP of the plan's configuration (monolithic: of its largest MIP).
    pub mip_columns: Option<usize>,
    pub mip_rows: Option<usize>,
    /// Time to build that MIP (monolithic: its first) from the configurations' coefficients:
    /// communication costs, variables and rows.
    pub mip_build_s: Option<f64>,
    /// Configurations enumerated, and those solved as a MIP (or enumerated plan by plan).
    pub configurations: Option<usize>,
    pub mips_solved: Option<usize>,
    pub plan: Option<String>,
    /// Mean wall time of one evaluation of the plan.
    pub evaluate_s: Option<f64>,
    /// Why there is no plan, in words.
    pub message: Option<String>,
}

impl BenchRow {
    /// A row with its identity and nothing measured yet.
    pub fn new(file: &str, instance: &str, devices: usize, formulation: &str) -> Self {
        BenchRow {
            file: file.into(),
            instance: instance.into(),
            devices,
            formulation: formulation.into(),
            ..Default::default()
        }
    }

    /// Whether the gap target was reached (a plan proven within it).
    pub fn reached(&self) -> bool {
        self.target_gap_s.is_some()
    }
}

/// Seconds in three significant figures, narrow enough for a table column: `60.3 ms`, `1.23 s`,
/// `-` for nothing.
///
/// ```
/// use watos::report::fmt_short_s;
/// assert_eq!(fmt_short_s(Some(0.0603)), "60.3 ms");
/// assert_eq!(fmt_short_s(Some(12.345)), "12.3 s");
/// assert_eq!(fmt_short_s(Some(420.0)), "420 s");
/// assert_eq!(fmt_short_s(None), "-");
/// ```
pub fn fmt_short_s(s: Option<f64>) -> String {
    let Some(s) = s.filter(|s| s.is_finite()) else {
        return "-".into();
    };
    let (v, unit) = if s >= 1.0 {
        (s, "s")
    } else if s >= 1e-3 {
        (s * 1e3, "ms")
    } else {
        (s * 1e6, "us")
    };
    let decimals = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    format!("{v:.decimals$} {unit}")
}

/// A gap target as people write it: `1%`, `0.5%`.
///
/// ```
/// assert_eq!(watos::report::fmt_target(0.01), "1%");
/// assert_eq!(watos::report::fmt_target(0.005), "0.5%");
/// ```
pub fn fmt_target(gap: f64) -> String {
    let pct = format!("{:.3}", 100.0 * gap);
    format!("{}%", pct.trim_end_matches('0').trim_end_matches('.'))
}

/// A count with thousands separators.
fn fmt_count(n: u64) -> String {
    super::fmt_count(n as f64)
}

/// One column of the bench table: header, alignment and each row's text.
struct Column {
    header: String,
    right: bool,
    cells: Vec<String>,
}

impl Column {
    fn new(header: &str, right: bool, rows: &[BenchRow], f: impl Fn(&BenchRow) -> String) -> Self {
        Column {
            header: header.into(),
            right,
            cells: rows.iter().map(f).collect(),
        }
    }

    /// Widest line of the header or a cell.
    fn width(&self) -> usize {
        std::iter::once(&self.header)
            .chain(&self.cells)
            .flat_map(|s| s.lines())
            .map(|l| l.chars().count())
            .max()
            .unwrap_or(0)
    }
}

/// Every column, most wanted first. The first one (the instance) wraps; the others are kept whole.
fn columns(rows: &[BenchRow], gap_target: f64) -> Vec<Column> {
    // An instance's name and devices once, on the first of its rows.
    let first = |i: usize| i == 0 || rows[i - 1].file != rows[i].file;
    let instance = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            if first(i) {
                r.file.clone()
            } else {
                String::new()
            }
        })
        .collect();
    let devices = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            if first(i) {
                fmt_count(r.devices as u64)
            } else {
                String::new()
            }
        })
        .collect();
    let mip = |r: &BenchRow| match (r.mip_columns, r.mip_rows) {
        (Some(c), Some(n)) => format!("{} x {}", fmt_count(c as u64), fmt_count(n as u64)),
        _ => "-".into(),
    };
    vec![
        Column {
            header: "instance".into(),
            right: false,
            cells: instance,
        },
        Column {
            header: "devices".into(),
            right: true,
            cells: devices,
        },
        Column::new("formulation", false, rows, |r| r.formulation.clone()),
        Column::new("status", false, rows, |r| r.status.clone()),
        Column::new("gap", true, rows, |r| r.gap.map_or("-".into(), fmt_gap)),
        Column::new("solve\ntime", true, rows, |r| {
            fmt_short_s(Some(r.solve_time_s))
        }),
        Column::new(
            &format!("to {}\ngap", fmt_target(gap_target)),
            true,
            rows,
            |r| fmt_short_s(r.target_gap_s),
        ),
        Column::new("first\nplan", true, rows, |r| fmt_short_s(r.first_plan_s)),
        Column::new("step\ntime", true, rows, |r| fmt_short_s(r.step_time_s)),
        Column::new("nodes", true, rows, |r| {
            r.nodes.map_or("-".into(), fmt_count)
        }),
        Column::new("MIP columns\nx rows", true, rows, mip),
        Column::new("MIP\nbuild", true, rows, |r| fmt_short_s(r.mip_build_s)),
        Column::new("lower\nbound", true, rows, |r| fmt_short_s(r.lower_bound_s)),
        Column::new("MIPs /\nconfigs", true, rows, |r| {
            match (r.mips_solved, r.configurations) {
                (Some(s), Some(t)) => format!("{} / {}", fmt_count(s as u64), fmt_count(t as u64)),
                _ => "-".into(),
            }
        }),
        Column::new("one\nevaluation", true, rows, |r| fmt_short_s(r.evaluate_s)),
        Column::new("plan", false, rows, |r| r.plan.clone().unwrap_or_default()),
    ]
}

/// The narrowest the instance column gets before columns are dropped instead.
const MIN_INSTANCE_WIDTH: usize = 10;

/// Columns of [`columns`] always shown: the instance, status and gap (they fit the narrowest
/// terminal, 40 columns).
const ALWAYS: [usize; 3] = [0, 3, 4];

/// The other columns, most wanted first: formulation, solve time, time to the gap target, devices,
/// first plan, step time, then the rest in their order.
const WANTED: [usize; 5] = [2, 5, 6, 1, 7];

/// The bench table at the view's width: the instance, status and gap always, then as many of the
/// other columns as fit, most wanted first (formulation, solve time, time to the gap target,
/// devices, first plan, step time, ...), shown in their usual order; every column with
/// `view.wide`. Followed by a legend of what is shown and what is not.
///
/// ```
/// use watos::report::{bench_table, BenchRow, View};
/// let mut row = BenchRow::new("gpu8-llama3-8b", "Llama 3 8B on 8 H100", 8, "decomposition");
/// row.status = "optimal".into();
/// row.solve_time_s = 0.5;
/// let text = bench_table(&[row], 0.01, &View { width: 60, ..Default::default() });
/// assert!(text.lines().all(|l| l.chars().count() <= 60), "{text}");
/// assert!(text.contains("optimal"));
/// ```
pub fn bench_table(rows: &[BenchRow], gap_target: f64, view: &View) -> String {
    let mut all = columns(rows, gap_target);
    let width = usize::from(view.width);
    // comfy-table: one space of padding on each side of a cell and a border between columns.
    let cost = |c: &Column| c.width() + 3;
    let mut shown: Vec<usize> = ALWAYS.to_vec();
    if view.wide {
        shown = (0..all.len()).collect();
    } else {
        let mut used: usize =
            1 + MIN_INSTANCE_WIDTH + 3 + ALWAYS[1..].iter().map(|&i| cost(&all[i])).sum::<usize>();
        let rest = (0..all.len()).filter(|i| !ALWAYS.contains(i) && !WANTED.contains(i));
        for i in WANTED.into_iter().chain(rest) {
            if used + cost(&all[i]) <= width {
                used += cost(&all[i]);
                shown.push(i);
            }
        }
        shown.sort_unstable();
    }
    let hidden: Vec<String> = (0..all.len())
        .filter(|i| !shown.contains(i))
        .map(|i| all[i].header.replace('\n', " "))
        .collect();
    let mut t = view.table();
    t.set_header(shown.iter().map(|&i| all[i].header.clone()));
    for r in 0..rows.len() {
        t.add_row(shown.iter().map(|&i| {
            let c = &mut all[i];
            let cell = Cell::new(std::mem::take(&mut c.cells[r]));
            if c.right {
                cell.set_alignment(CellAlignment::Right)
            } else {
                cell
            }
        }));
    }
    // Figures stay whole; the instance (and the plan, if shown) wrap.
    let plan = all.len() - 1;
    let whole: Vec<usize> = shown
        .iter()
        .enumerate()
        .filter(|(_, &i)| i != 0 && i != plan)
        .map(|(k, _)| k)
        .collect();
    View::keep_whole(&mut t, whole);
    if view.wide {
        t.set_content_arrangement(ContentArrangement::Disabled);
    }
    let mut legend = format!(
        "to {} gap: when the plan was first proven within the gap target; -: never. ",
        fmt_target(gap_target)
    );
    if !hidden.is_empty() {
        legend.push_str(&format!(
            "Not shown at this width: {} (--wide shows every column; --json and --csv every figure).",
            hidden.join(", ")
        ));
    } else {
        legend.push_str("MIP: of the plan's configuration (monolithic: its largest MIP).");
    }
    format!("{t}\n{}", view.wrap(&legend, ""))
}

/// Field names of [`bench_csv`], in order.
const CSV_FIELDS: &[&str] = &[
    "file",
    "instance",
    "devices",
    "formulation",
    "status",
    "step_time_s",
    "lower_bound_s",
    "gap",
    "solve_time_s",
    "first_plan_s",
    "target_gap_s",
    "nodes",
    "mip_columns",
    "mip_rows",
    "mip_build_s",
    "configurations",
    "mips_solved",
    "plan",
    "evaluate_s",
    "message",
];

/// The rows as CSV (RFC 4180: a header line, fields quoted where they hold a comma, a quote or a
/// line break), figures in SI units as the JSON has them, empty where there is none.
///
/// ```
/// let mut row = watos::report::BenchRow::new("a", "A, the first", 8, "decomposition");
/// row.solve_time_s = 1.5;
/// let csv = watos::report::bench_csv(&[row]);
/// assert!(csv.starts_with("file,instance,devices,formulation,"));
/// assert!(csv.lines().nth(1).unwrap().starts_with("a,\"A, the first\",8,decomposition,,"));
/// ```
pub fn bench_csv(rows: &[BenchRow]) -> String {
    let mut out = CSV_FIELDS.join(",");
    out.push('\n');
    let num = |x: Option<f64>| x.map_or(String::new(), |v| v.to_string());
    let int = |x: Option<usize>| x.map_or(String::new(), |v| v.to_string());
    for r in rows {
        let fields = [
            r.file.clone(),
            r.instance.clone(),
            r.devices.to_string(),
            r.formulation.clone(),
            r.status.clone(),
            num(r.step_time_s),
            num(r.lower_bound_s),
            num(r.gap),
            r.solve_time_s.to_string(),
            num(r.first_plan_s),
            num(r.target_gap_s),
            r.nodes.map_or(String::new(), |n| n.to_string()),
            int(r.mip_columns),
            int(r.mip_rows),
            num(r.mip_build_s),
            int(r.configurations),
            int(r.mips_solved),
            r.plan.clone().unwrap_or_default(),
            num(r.evaluate_s),
            r.message.clone().unwrap_or_default(),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The rows as a GitHub Markdown table of the figures a reader of the README wants: devices,
/// formulation, status, step time, gap, solve time, time to the gap target and to the first plan,
/// MIPs solved of the configurations, and the MIP's size.
///
/// ```
/// let mut row = watos::report::BenchRow::new("a", "Llama 3 8B on 8 H100", 8, "decomposition");
/// row.status = "optimal".into();
/// let md = watos::report::bench_markdown(&[row], 0.01);
/// assert!(md.lines().nth(2).unwrap().starts_with("| Llama 3 8B on 8 H100 | 8 | decomposition | optimal |"));
/// ```
pub fn bench_markdown(rows: &[BenchRow], gap_target: f64) -> String {
    let mut out = format!(
        "| instance | devices | formulation | status | step time | gap | solve time | to {} gap | first plan | MIPs / configurations | MIP columns x rows |\n|---|--:|---|---|--:|--:|--:|--:|--:|--:|--:|\n",
        fmt_target(gap_target)
    );
    for r in rows {
        let mip = match (r.mip_columns, r.mip_rows) {
            (Some(c), Some(n)) => format!("{} x {}", fmt_count(c as u64), fmt_count(n as u64)),
            _ => "-".into(),
        };
        let mips = match (r.mips_solved, r.configurations) {
            (Some(m), Some(c)) => format!("{} / {}", fmt_count(m as u64), fmt_count(c as u64)),
            _ => "-".into(),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.instance.replace('|', "\\|"),
            fmt_count(r.devices as u64),
            r.formulation,
            r.status,
            fmt_short_s(r.step_time_s),
            r.gap.map_or("-".into(), fmt_gap),
            fmt_short_s(Some(r.solve_time_s)),
            fmt_short_s(r.target_gap_s),
            fmt_short_s(r.first_plan_s),
            mips,
            mip,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(file: &str, formulation: &str) -> BenchRow {
        let mut r = BenchRow::new(file, "Some model on some machine", 16_384, formulation);
        r.status = "placement_gap".into();
        r.step_time_s = Some(38.6);
        r.gap = Some(0.053);
        r.solve_time_s = 12.0;
        r.mip_columns = Some(12_345);
        r.mip_rows = Some(23_456);
        r.plan = Some("D8 T8 P8  micro-batch 1  sequence-parallel".into());
        r
    }

    #[test]
    fn the_table_fits_every_width_and_names_what_it_leaves_out() {
        let rows = [
            row("gpu16384-llama3.1-405b", "decomposition"),
            row("gpu16384-llama3.1-405b", "monolithic"),
        ];
        for width in [40u16, 60, 80, 100, 140, 200] {
            let view = View {
                width,
                ..Default::default()
            };
            let text = bench_table(&rows, 0.01, &view);
            for line in text.lines() {
                assert!(line.chars().count() <= width.into(), "{width}:\n{text}");
            }
            assert!(
                text.contains("placement_gap") && text.contains("5.30%"),
                "{text}"
            );
            if width >= 100 {
                assert!(
                    text.contains("16,384") && text.contains("monolithic"),
                    "{text}"
                );
            }
        }
        let narrow = bench_table(
            &rows,
            0.01,
            &View {
                width: 100,
                ..Default::default()
            },
        );
        assert!(narrow.contains("Not shown at this width:"), "{narrow}");
        // The instance is named once for its two rows.
        assert_eq!(narrow.matches("16,384").count(), 1, "{narrow}");
    }

    #[test]
    fn wide_shows_every_column() {
        let view = View {
            width: 80,
            wide: true,
            ..Default::default()
        };
        let text = bench_table(&[row("a", "decomposition")], 0.01, &view);
        assert!(
            text.contains("12,345 x 23,456") && text.contains("micro-batch 1"),
            "{text}"
        );
        assert!(!text.contains("Not shown"), "{text}");
    }

    #[test]
    fn csv_quotes_what_needs_it_and_leaves_missing_figures_empty() {
        let mut r = row("a", "exhaustive");
        r.message = Some("the space holds \"about\" 10 plans, more than allowed".into());
        r.nodes = None;
        let csv = bench_csv(&[r]);
        let line = csv.lines().nth(1).unwrap();
        assert!(
            line.ends_with(",\"the space holds \"\"about\"\" 10 plans, more than allowed\""),
            "{line}"
        );
        assert_eq!(
            csv.lines().next().unwrap().split(',').count(),
            CSV_FIELDS.len()
        );
        // nodes (field 12) is empty.
        assert_eq!(line.split(',').nth(11), Some(""));
    }

    #[test]
    fn short_times_keep_three_figures() {
        assert_eq!(fmt_short_s(Some(0.000_012_34)), "12.3 us");
        assert_eq!(fmt_short_s(Some(1.0)), "1.00 s");
        assert_eq!(fmt_short_s(Some(f64::NAN)), "-");
    }
}
