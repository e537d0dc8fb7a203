//! Human tables and JSON for evaluations and solutions. Rendering only: nothing here searches or
//! scores.
//!
//! Tables fit the width they are given ([`View::width`]: the terminal's, else `COLUMNS`, else
//! 100): comfy-table wraps cell text to fit, and the widest tables keep their less-used columns
//! for `--wide`. Every table with marks or abbreviations is followed by a legend.

mod bars;
mod bench;
mod compare;
mod diemap;
pub mod explore;
mod faults;
mod scaling;
mod solution;
mod svg;

use comfy_table::{
    presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, ColumnConstraint, ContentArrangement, Table,
};
use serde_json::{json, Value};

use crate::cost::{Evaluation, StageMemory};
use crate::instance::Instance;
use crate::plan::Plan;
use crate::units::GB;

pub use bars::{baseline_of, comparison_svg, relative};
pub use compare::{comparison_json, comparison_text, fmt_speedup};
pub use diemap::{die_map_text, placement_json};
pub use faults::{faults_json, faults_text};
pub use solution::{solution_json, solution_text, strategy_text};

pub use bench::{bench_csv, bench_markdown, bench_table, fmt_short_s, fmt_target, BenchRow};
pub use scaling::{scaling_svg, PlotSetting};
pub use svg::die_map_svg;

/// How text output is laid out.
///
/// ```
/// let v = watos::report::View { width: 80, ..Default::default() };
/// assert!(!v.wide && !v.verbose);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    /// Columns available; tables wrap their cells to fit.
    pub width: u16,
    /// Every column, including the per-stage memory by category.
    pub wide: bool,
    /// The solver's internal figures too (diagnostics).
    pub verbose: bool,
    /// The die map even when it is wider or longer than the terminal.
    pub map: bool,
}

impl Default for View {
    fn default() -> Self {
        View {
            width: 100,
            wide: false,
            verbose: false,
            map: false,
        }
    }
}

impl View {
    /// The width of standard output: the terminal's when it is one, else the `COLUMNS`
    /// environment variable, else 100 (pipes and files get tables a reader can still open).
    pub fn output_width() -> u16 {
        Table::new()
            .width()
            .or_else(|| std::env::var("COLUMNS").ok()?.trim().parse().ok())
            .unwrap_or(100)
            .clamp(40, 1000)
    }

    /// A table in watos's style that fits this view.
    pub(crate) fn table(&self) -> Table {
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_width(self.width);
        t
    }

    /// Keeps `columns` of `t` at their content's width (short figures), so that wrapping to fit
    /// falls on the text columns, at word boundaries, instead of splitting numbers.
    pub(crate) fn keep_whole(t: &mut Table, columns: impl IntoIterator<Item = usize>) {
        for i in columns {
            if let Some(c) = t.column_mut(i) {
                c.set_constraint(ColumnConstraint::ContentWidth);
            }
        }
    }

    /// `text` wrapped at word boundaries to the view's width, each line after the first indented.
    pub(crate) fn wrap(&self, text: &str, indent: &str) -> String {
        wrap(text, usize::from(self.width), indent)
    }
}

/// `text` wrapped at word boundaries to `width` columns, continuation lines starting with
/// `indent`; line breaks in `text` are kept.
///
/// ```
/// assert_eq!(watos::report::wrap("a bb ccc", 5, "  "), "a bb\n  ccc\n");
/// assert_eq!(watos::report::wrap("a\nb", 5, ""), "a\nb\n");
/// ```
pub fn wrap(text: &str, width: usize, indent: &str) -> String {
    text.lines().map(|l| wrap_line(l, width, indent)).collect()
}

fn wrap_line(text: &str, width: usize, indent: &str) -> String {
    let mut out = String::new();
    // The text's own leading spaces (a list item's) start its first line.
    let mut line = text[..text.len() - text.trim_start().len()].to_string();
    let mut empty = true;
    for word in text.split_whitespace() {
        if !empty && line.chars().count() + 1 + word.chars().count() > width {
            out.push_str(&line);
            out.push('\n');
            line = indent.to_string();
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    out.push_str(if empty { "" } else { &line });
    out.push('\n');
    out
}

/// Seconds in the unit that reads best: `0 s` for nothing, three significant decimals otherwise.
///
/// ```
/// use watos::report::fmt_s;
/// assert_eq!(fmt_s(0.0), "0 s");
/// assert_eq!(fmt_s(-0.0), "0 s");
/// assert_eq!(fmt_s(0.0123), "12.300 ms");
/// assert_eq!(fmt_s(4.2e-8), "42.000 ns");
/// ```
pub fn fmt_s(s: f64) -> String {
    if !s.is_finite() {
        return format!("{s}");
    }
    let a = s.abs();
    if a < 5e-13 {
        "0 s".into()
    } else if a >= 1.0 {
        format!("{s:.3} s")
    } else if a >= 1e-3 {
        format!("{:.3} ms", s * 1e3)
    } else if a >= 1e-6 {
        format!("{:.3} us", s * 1e6)
    } else {
        format!("{:.3} ns", s * 1e9)
    }
}

/// Bytes in GB, two decimals.
pub fn fmt_gb(bytes: f64) -> String {
    format!("{} GB", fixed(bytes / GB, 2))
}

/// A fraction as a percentage with one decimal (never `-0.0%`).
///
/// ```
/// assert_eq!(watos::report::fmt_pct(-1e-9), "0.0%");
/// assert_eq!(watos::report::fmt_pct(0.714), "71.4%");
/// ```
pub fn fmt_pct(x: f64) -> String {
    format!("{}%", fixed(100.0 * x, 1))
}

/// `x` with `decimals` decimals, without the minus sign of a value that rounds to zero.
pub fn fixed(x: f64, decimals: usize) -> String {
    let text = format!("{x:.decimals$}");
    match text.strip_prefix('-') {
        Some(rest) if rest.chars().all(|c| c == '0' || c == '.') => rest.to_string(),
        _ => text,
    }
}

/// A gap (a fraction) as a percentage with two decimals.
///
/// ```
/// assert_eq!(watos::report::fmt_gap(0.00495), "0.50%");
/// ```
pub fn fmt_gap(x: f64) -> String {
    format!("{}%", fixed(100.0 * x, 2))
}

/// A whole number with thousands separators.
fn fmt_count(x: f64) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    let digits = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if x <= -0.5 {
        out.insert(0, '-');
    }
    out
}

fn right(text: impl Into<String>) -> Cell {
    Cell::new(text.into()).set_alignment(CellAlignment::Right)
}

/// The lines above the tables: what runs on what, and the plan.
fn header(inst: &Instance, plan: &Plan, e: &Evaluation) -> String {
    let lines = [
        inst.name.clone(),
        format!(
            "model: {:.2}B parameters, {:.2}B active per token, {:.3} TFLOP per token",
            e.params_total / 1e9,
            e.params_active / 1e9,
            e.model_flops_per_token / 1e12
        ),
        format!("plan: {plan}"),
        format!(
            "      {} of {} devices, {} micro-batches per step",
            e.devices_used,
            inst.fabric().healthy_count(),
            e.micro_batches
        ),
    ];
    lines.join("\n") + "\n\n"
}

/// The evaluation as tables: headline figures, where the time goes, and each stage.
pub fn evaluation_text(inst: &Instance, plan: &Plan, e: &Evaluation, view: &View) -> String {
    let mut out = header(inst, plan, e);
    out.push_str(&headline(e, view));
    out.push_str(&evaluation_body(inst, plan, e, view));
    out
}

/// The one step time, with throughput and utilisation.
fn headline(e: &Evaluation, view: &View) -> String {
    let mut head = view.table();
    head.set_header(vec!["step time", "tokens/s", "MFU", "HFU", "feasible"]);
    head.add_row(vec![
        Cell::new(fmt_s(e.step_time_s)),
        right(fmt_count(e.tokens_per_s)),
        right(fmt_pct(e.mfu)),
        right(fmt_pct(e.hfu)),
        Cell::new(if e.feasible { "yes" } else { "NO" }),
    ]);
    let mut out = format!("{head}\n");
    out.push_str(&view.wrap(
        "MFU: model FLOPs (no recomputation) per second over the peak of the devices used; HFU: the FLOPs executed, recomputation included",
        "",
    ));
    if !e.violations.is_empty() {
        out.push_str("\ninfeasible:\n");
        for v in &e.violations {
            out.push_str(&view.wrap(&format!("  - {v}"), "    "));
        }
    }
    out
}

/// Where the time goes, the stages, and (on a wafer) where they run.
fn evaluation_body(inst: &Instance, plan: &Plan, e: &Evaluation, view: &View) -> String {
    let mut out = String::from("\n");
    out.push_str(&breakdown_table(e, view).to_string());
    out.push_str("\n\n");
    out.push_str(&stage_table(e, view).to_string());
    out.push('\n');
    out.push_str(&view.wrap(&stage_legend(view), ""));
    let map = die_map_text(inst, plan, e, view, view.map);
    if !map.is_empty() {
        out.push('\n');
        out.push_str(&map);
    }
    if view.wide {
        out.push_str("\nDRAM of one device by category, GB\n");
        out.push_str(&memory_table(e, view).to_string());
        out.push('\n');
        out.push_str(&view.wrap(
            "DRAM used = weights + gradients + optimizer + activations + workspace + parked in - parked out. Parked: activations and optimizer state kept in the DRAM of the same-rank device of another stage. (x): weights held in SRAM, not in DRAM.",
            "",
        ));
    }
    out
}

fn breakdown_table(e: &Evaluation, view: &View) -> Table {
    let b = &e.breakdown;
    let mut t = view.table();
    t.set_header(vec!["where the step goes", "time", "share"]);
    for (name, v) in [
        ("compute", b.compute_s),
        ("recomputation", b.recompute_s),
        ("DRAM traffic (exposed)", b.dram_s),
        ("tensor-parallel comm", b.tp_comm_s),
        ("expert all-to-all", b.ep_comm_s),
        ("pipeline comm", b.pp_comm_s),
        ("remote DRAM (parking)", b.remote_dram_s),
        ("pipeline bubble", b.bubble_s),
        ("data-parallel comm", b.dp_comm_s),
        ("optimizer", b.optimizer_s),
    ] {
        t.add_row(vec![
            Cell::new(name),
            right(fmt_s(v)),
            right(fmt_pct(v / e.step_time_s)),
        ]);
    }
    t
}

/// Per stage: layers, recomputation, time and DRAM used.
fn stage_table(e: &Evaluation, view: &View) -> Table {
    let mut t = view.table();
    t.set_header(vec![
        "stage",
        "layers",
        "recompute\nn/s/f",
        "in\nflight",
        "time per\nmicro-batch",
        "DRAM used\nof capacity",
    ]);
    for (j, s) in e.stages.iter().enumerate() {
        let m = &s.memory;
        let crit = if j as u32 == e.critical_stage {
            " *"
        } else {
            ""
        };
        t.add_row(vec![
            Cell::new(format!("{j}{crit}")),
            right(s.layers.to_string()),
            right(format!(
                "{}/{}/{}",
                s.recompute_none, s.recompute_selective, s.recompute_full
            )),
            right(fixed(s.inflight, 2)),
            right(fmt_s(s.time_per_microbatch_s)),
            right(format!(
                "{} / {} GB",
                fixed(dram_used(m) / GB, 1),
                fixed(m.dram_capacity_bytes / GB, 0)
            )),
        ]);
    }
    t
}

/// A stage's DRAM use as shown. A plan that parks more than a stage holds is infeasible (its
/// violation says so); the DRAM it uses is not negative for that.
fn dram_used(m: &StageMemory) -> f64 {
    m.dram_used_bytes.max(0.0)
}

/// Per stage, DRAM of one device by category, adding up to the DRAM used (`--wide`).
fn memory_table(e: &Evaluation, view: &View) -> Table {
    let mut t = view.table();
    t.set_header(vec![
        "stage",
        "weights",
        "grad-\nients",
        "opti-\nmizer",
        "acti-\nvations",
        "work-\nspace",
        "parked\nin",
        "parked\nout",
        "DRAM\nused",
    ]);
    let gb = |b: f64| right(fixed(b / GB, 2));
    for (j, s) in e.stages.iter().enumerate() {
        let m = &s.memory;
        let weights = if m.weights_in_sram {
            right(format!("({})", fixed(m.weights_bytes / GB, 2)))
        } else {
            gb(m.weights_bytes)
        };
        t.add_row(vec![
            Cell::new(j.to_string()),
            weights,
            gb(m.grads_bytes),
            gb(m.optimizer_bytes),
            gb(m.activations_bytes),
            gb(m.workspace_bytes),
            gb(m.parked_in_bytes),
            gb(m.parked_out_bytes),
            gb(dram_used(m)),
        ]);
    }
    t
}

fn stage_legend(view: &View) -> String {
    let mut legend = String::from(
        "*: the critical stage, whose time per micro-batch sets the pipeline's pace. n/s/f: layers with no, selective and full recomputation. in flight: micro-batches whose activations the stage holds at once. DRAM per device.",
    );
    legend.push_str(if view.wide {
        ""
    } else {
        " --wide: DRAM by category."
    });
    legend
}

/// The evaluation as one JSON object: the headline fields at the top level, the plan beside them.
pub fn evaluation_json(inst: &Instance, plan: &Plan, e: &Evaluation) -> Value {
    let mut v = serde_json::to_value(e).unwrap_or_else(|err| json!({ "error": err.to_string() }));
    if let Some(obj) = v.as_object_mut() {
        obj.insert("instance".into(), json!(inst.name));
        obj.insert(
            "plan".into(),
            serde_json::to_value(plan).unwrap_or_default(),
        );
        if let Ok(g) = plan.placement(inst.fabric()) {
            obj.insert("placement".into(), placement_json(inst.fabric(), &g));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(fixed(-0.004, 2), "0.00");
        assert_eq!(fixed(-0.5, 2), "-0.50");
        assert_eq!(fmt_count(26296.4), "26,296");
        assert_eq!(fmt_count(999.0), "999");
        assert_eq!(fmt_s(1e-15), "0 s");
        assert_eq!(fmt_s(2.5), "2.500 s");
    }

    #[test]
    fn wrapping_keeps_words_whole() {
        let text = wrap("the quick brown fox jumps", 10, "  ");
        assert!(text.lines().all(|l| l.chars().count() <= 10), "{text}");
        assert_eq!(
            text.split_whitespace().collect::<Vec<_>>().join(" "),
            "the quick brown fox jumps"
        );
    }
}
