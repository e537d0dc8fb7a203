//! `watos validate`: predicted against measured for published GPU training runs.

use std::process::ExitCode;

use clap::Args;
use comfy_table::{Cell, CellAlignment, Table};

use crate::error::Error;
use crate::report::{fmt_pct, fmt_s, View};
use crate::units::GIB;
use crate::validate::{self, Group, Quantity, Row, Validation};

/// Flags of `watos validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// Runs the validation and prints it; exit status 0 when every threshold holds, 1 otherwise.
/// (About 60 plans in a few tens of milliseconds: no progress bar needed.)
pub fn run(args: &ValidateArgs) -> Result<ExitCode, Error> {
    let v = validate::run()?;
    if args.json {
        let value = serde_json::to_value(&v)
            .map_err(|e| Error::Solver(format!("cannot write the report as JSON: {e}")))?;
        super::print_json(&value)?;
    } else {
        let view = View {
            width: View::output_width(),
            ..View::default()
        };
        super::print(&text(&v, &view))?;
    }
    Ok(if v.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn right(s: String) -> Cell {
    Cell::new(s).set_alignment(CellAlignment::Right)
}

/// A row's value in the unit its source prints.
fn fmt_value(q: Quantity, x: f64) -> String {
    match q {
        Quantity::StepTime => fmt_s(x),
        Quantity::LayerForward | Quantity::LayerBackward => format!("{:.2} ms", x * 1e3),
        Quantity::Memory => format!("{:.2} GiB", x / GIB),
        Quantity::Utilisation => fmt_pct(x),
    }
}

/// A signed percentage, `+0.0%` for what rounds to zero.
fn fmt_signed(x: f64) -> String {
    let text = crate::report::fixed(100.0 * x, 1);
    if text.starts_with('-') {
        format!("{text}%")
    } else {
        format!("+{text}%")
    }
}

fn rows_table(rows: &[&Row], with_plan: bool, view: &View) -> Table {
    let mut t = view.table();
    let mut header = vec!["run", "predicted", "measured", "error"];
    if with_plan {
        header.push("plan");
    }
    t.set_header(header);
    for r in rows {
        let mut cells = vec![
            Cell::new(format!(
                "{}{}",
                r.label,
                if r.feasible { "" } else { " (does NOT fit)" }
            )),
            right(fmt_value(r.quantity, r.predicted)),
            right(fmt_value(r.quantity, r.measured)),
            right(fmt_signed(r.signed_error)),
        ];
        if with_plan {
            cells.push(Cell::new(&r.plan));
        }
        t.add_row(cells);
    }
    View::keep_whole(&mut t, 1..4);
    t
}

/// The validation as readable tables.
pub fn text(v: &Validation, view: &View) -> String {
    let mut out = view.wrap(
        &format!(
            "Evaluator against published GPU training runs on {} (error = (predicted - measured) / measured; negative times are optimistic)",
            v.hardware
        ),
        "",
    );
    out.push('\n');
    for g in Group::ALL {
        let rows: Vec<&Row> = v.rows_of(g).collect();
        if rows.is_empty() {
            continue;
        }
        out.push_str(g.title());
        out.push('\n');
        let with_plan = matches!(g, Group::MegatronTable1 | Group::KorthikantiTable5);
        out.push_str(&rows_table(&rows, with_plan, view).to_string());
        out.push('\n');
        if g == Group::MegatronTable1 {
            out.push_str(&view.wrap(v.table1_knobs_note, ""));
            out.push_str(&knobs_table(v, view).to_string());
            out.push('\n');
        }
        out.push('\n');
    }
    out.push_str(&summary_table(v, view).to_string());
    out.push_str("\n\n");
    out.push_str(&checks_table(v, view).to_string());
    out.push_str("\n\n");
    out.push_str(&view.wrap(&v.calculon.text(), ""));
    out.push_str("\n\n");
    out.push_str(if v.passed {
        "PASSED: every threshold holds.\n"
    } else {
        "FAILED: see the thresholds above.\n"
    });
    out
}

fn knobs_table(v: &Validation, view: &View) -> Table {
    let mut t = view.table();
    t.set_header(vec![
        "run",
        "D x T x P",
        "micro-batch",
        "interleave",
        "gradient all-reduce",
    ]);
    for k in &v.table1_knobs {
        t.add_row(vec![
            Cell::new(format!("{}B", k.params_b)),
            Cell::new(format!("{} x {} x {}", k.dp, k.tp, k.pp)),
            right(k.micro_batch.to_string()),
            right(k.interleave.to_string()),
            Cell::new(if k.dp_overlap {
                "overlapped (PyTorch DDP)"
            } else {
                "after backward (local DDP)"
            }),
        ]);
    }
    t
}

fn summary_table(v: &Validation, view: &View) -> Table {
    let mut t = view.table();
    t.set_header(vec![
        "group",
        "rows",
        "mean |error|",
        "worst |error|",
        "worst row",
        "mean signed",
    ]);
    for g in &v.groups {
        t.add_row(vec![
            Cell::new(g.title),
            right(g.rows.to_string()),
            right(fmt_pct(g.mean_abs_error)),
            right(fmt_pct(g.worst_abs_error)),
            Cell::new(&g.worst_row),
            right(fmt_signed(g.mean_signed_error)),
        ]);
    }
    t
}

fn checks_table(v: &Validation, view: &View) -> Table {
    let mut t = view.table();
    t.set_header(vec!["threshold", "value", "limit", "holds"]);
    for c in &v.checks {
        let (value, limit) = if c.count {
            (format!("{}", c.value), format!("{}", c.limit))
        } else {
            (fmt_pct(c.value), fmt_pct(c.limit))
        };
        t.add_row(vec![
            Cell::new(&c.name),
            right(value),
            right(format!("<= {limit}")),
            Cell::new(if c.passed { "yes" } else { "NO" }),
        ]);
    }
    t
}
