//! `watos explore` and `watos merge` as tables: the best designs with what binds each, the best
//! design per model, the references, the Pareto front, the best design per value of each range,
//! and the sensitivities of the best design.

use comfy_table::Cell;

use crate::explore::answer::{BucketBest, Shown};
use crate::explore::budget::Budget;
use crate::explore::mip::CoExploration;
use crate::explore::rules::Dim;
use crate::explore::{DesignSpace, Outcome, Report, Shares};

use super::{fixed, fmt_count, fmt_gap, fmt_pct, fmt_s, right, View};

/// The score's unit: tokens/s per wafer for one model, model PFLOP/s per wafer for a mix.
pub fn score_text(r: &Report, score: f64) -> String {
    match r.workloads.as_slice() {
        [w] => fmt_count(score * w.tokens_per_step / w.flops_per_step),
        _ => fixed(score / 1e15, 2),
    }
}

fn score_name(r: &Report) -> &'static str {
    if r.workloads.len() == 1 {
        "tokens/s per wafer"
    } else {
        "mix PFLOP/s per wafer"
    }
}

/// What binds a plan, read from where its step goes and what is full, and which budgets the
/// design has used up: `compute 81%, D2D 11%; DRAM full; area 99%`.
pub fn binds(o: &Outcome, b: &Budget) -> String {
    let s: &Shares = &o.shares;
    let mut parts = [
        ("compute", s.compute + s.recompute),
        ("DRAM bandwidth", s.dram_bandwidth),
        ("D2D", s.d2d),
        ("pipeline bubble", s.bubble),
    ];
    parts.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut out: Vec<String> = parts
        .iter()
        .filter(|(_, x)| *x >= 0.1)
        .map(|(n, x)| format!("{n} {}", fmt_pct(*x)))
        .collect();
    if s.dram_used >= 0.99 || s.recompute >= 0.01 {
        out.push(format!(
            "DRAM capacity{}",
            if s.recompute >= 0.01 {
                format!(" (recompute {})", fmt_pct(s.recompute))
            } else {
                String::new()
            }
        ));
    }
    let mut budgets = Vec::new();
    for (name, used, have, full) in [
        ("area", b.used_mm2, b.usable_mm2, 0.97),
        ("shoreline", b.shoreline_needed_mm, b.shoreline_mm, 0.95),
        ("reticle", b.die_mm2, b.reticle_mm2, 0.95),
        (
            "power",
            b.power_w,
            b.max_power_w.unwrap_or(f64::INFINITY),
            0.95,
        ),
    ] {
        if used >= full * have {
            budgets.push(format!("{name} {}", fmt_pct(used / have)));
        }
    }
    let mut text = out.join(", ");
    if !budgets.is_empty() {
        text.push_str(&format!("; {}", budgets.join(", ")));
    }
    text
}

fn baseline(r: &Report) -> Option<(&str, f64)> {
    r.references
        .first()
        .filter(|x| x.score > 0.0)
        .map(|x| (x.name.as_str(), x.score))
}

fn versus(r: &Report, score: f64) -> String {
    match baseline(r) {
        Some((_, b)) => format!("{}x", fixed(score / b, 3)),
        None => "-".into(),
    }
}

fn plan_cell(s: &Shown) -> String {
    s.outcomes
        .iter()
        .map(|o| o.plan_text.clone())
        .collect::<Vec<_>>()
        .join("\n")
}

fn binds_cell(s: &Shown) -> String {
    s.outcomes
        .iter()
        .map(|o| binds(o, &s.budget))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The report as tables, with legends.
pub fn text(r: &Report, view: &View) -> String {
    let mut out = String::new();
    let broken: Vec<String> = r
        .broken
        .iter()
        .map(|(b, n)| format!("{} {}", b.name(), fmt_count(*n as f64)))
        .collect();
    out.push_str(&view.wrap(
        &format!(
            "{}: {} designs; over a budget: {}.",
            r.space.name,
            fmt_count(r.points as f64),
            broken.join(", ")
        ),
        "  ",
    ));
    for (w, n) in r.workloads.iter().zip(&r.cannot_hold) {
        out.push_str(&view.wrap(
            &format!(
                "{}: {} tokens per step, weight {}; {} designs cannot hold its state.",
                w.name,
                fmt_count(w.tokens_per_step),
                fixed(w.weight, 2),
                fmt_count(*n as f64)
            ),
            "  ",
        ));
    }
    out.push('\n');
    let vs = baseline(r).map_or("vs -".to_string(), |(n, _)| format!("vs {n}"));
    let mut t = view.table();
    t.set_header(vec![
        "#",
        "design",
        score_name(r),
        vs.as_str(),
        "plan",
        "memory mm^2",
        "binds",
    ]);
    for (i, s) in r.best.iter().enumerate() {
        t.add_row(vec![
            right((i + 1).to_string()),
            Cell::new(&s.label),
            right(score_text(r, s.score)),
            right(versus(r, s.score)),
            Cell::new(plan_cell(s)),
            right(fmt_count(s.budget.memory_mm2)),
            Cell::new(binds_cell(s)),
        ]);
    }
    View::keep_whole(&mut t, [0, 2, 3, 5]);
    out.push_str(&format!("Best designs\n{t}\n"));
    out.push_str(&view.wrap(
        &format!(
            "design: mesh per wafer, TFLOP/s per die, DRAM stacks x GB per stack / TB/s per stack, D2D TB/s per link and direction. Every design solved to a {} gap. memory mm^2: wafer area spent on DRAM stacks and their PHYs. binds: where the step goes (compute with recomputation, DRAM traffic not hidden, D2D transfers, pipeline bubble) and what is full (DRAM capacity; area, shoreline, reticle or power budgets).",
            fmt_gap(r.options.gap)
        ),
        "",
    ));
    if !r.sensitivity.is_empty() {
        out.push('\n');
        out.push_str(&sensitivity(r, view));
    }
    if !r.per_model.is_empty() {
        let mut t = view.table();
        t.set_header(vec![
            "model",
            "best design",
            "tokens/s per wafer",
            "plan",
            "binds",
        ]);
        for (w, s) in r.workloads.iter().zip(&r.per_model) {
            let o = &s.outcomes[0];
            t.add_row(vec![
                Cell::new(&w.name),
                Cell::new(&s.label),
                right(fmt_count(o.tokens_per_s / f64::from(s.design.wafers))),
                Cell::new(&o.plan_text),
                Cell::new(binds(o, &s.budget)),
            ]);
        }
        View::keep_whole(&mut t, [2]);
        out.push_str(&format!("\nBest design per model\n{t}\n"));
    }
    out.push_str(&references(r, view));
    out.push_str(&front(r, view));
    for dim in Dim::ALL {
        let rows: Vec<&BucketBest> = r.buckets.iter().filter(|b| b.dim == dim).collect();
        if rows.len() > 1 {
            out.push_str(&by_value(r, dim, &rows, view));
        }
    }
    let run = &r.run;
    out.push_str(&view.wrap(
        &format!(
            "\nRun: {} s on {} threads; {} designs bounded by their configurations, {} skipped by a bound without a solve, {} solves to the {} gap, {} to the {} gap, {} for sensitivities and references.",
            fixed(run.seconds, 1),
            run.threads,
            fmt_count(run.bounded as f64),
            fmt_count(run.pruned as f64),
            fmt_count(run.coarse_solves as f64),
            fmt_gap(r.options.coarse_gap),
            fmt_count(run.fine_solves as f64),
            fmt_gap(r.options.gap),
            fmt_count(run.other_solves as f64)
        ),
        "",
    ));
    out
}

fn sensitivity(r: &Report, view: &View) -> String {
    let mut t = view.table();
    t.set_header(vec!["resource", "-10%", "+10%", "+10% breaks"]);
    let resources: Vec<&str> =
        r.sensitivity
            .iter()
            .map(|s| s.resource.as_str())
            .fold(Vec::new(), |mut v, x| {
                if !v.contains(&x) {
                    v.push(x);
                }
                v
            });
    for res in resources {
        let at = |f: f64| {
            r.sensitivity
                .iter()
                .find(|s| s.resource == res && (s.factor - f).abs() < 1e-9)
        };
        let change = |f: f64| match at(f) {
            None => "-".into(),
            Some(s) if s.score <= 0.0 => "no plan fits".into(),
            Some(s) => format!("{:+.2}%", 100.0 * s.change()),
        };
        t.add_row(vec![
            Cell::new(res),
            right(change(0.9)),
            right(change(1.1)),
            Cell::new(
                at(1.1)
                    .and_then(|s| s.broken)
                    .map_or("nothing", |b| b.name()),
            ),
        ]);
    }
    View::keep_whole(&mut t, [1, 2]);
    format!(
        "Sensitivity of the best design: change of its score with 10% less or more of one resource\n{t}\n{}",
        view.wrap(
            &format!("Each variant solved to a {} gap, the design itself too. DRAM capacity changes the GB per stack (taller stacks, same footprint). +10% breaks: the budget the larger design exceeds.", fmt_gap(r.options.gap / 10.0)),
            ""
        )
    )
}

fn references(r: &Report, view: &View) -> String {
    if r.references.is_empty() {
        return String::new();
    }
    let best = r.best.first().map_or(0.0, |s| s.score);
    let mut t = view.table();
    t.set_header(vec![
        "reference",
        score_name(r),
        "best / it",
        "in the space",
        "plan",
    ]);
    for x in &r.references {
        t.add_row(vec![
            Cell::new(&x.name),
            right(score_text(r, x.score)),
            right(if x.score > 0.0 {
                format!("{}x", fixed(best / x.score, 3))
            } else {
                "-".into()
            }),
            Cell::new(x.in_space.map_or("no".into(), |i| format!("design {i}"))),
            Cell::new(
                x.outcomes
                    .iter()
                    .map(|o| o.plan_text.clone())
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
        ]);
    }
    View::keep_whole(&mut t, [1, 2]);
    format!("\nReferences\n{t}\n")
}

fn front(r: &Report, view: &View) -> String {
    let mut t = view.table();
    t.set_header(vec![
        "memory mm^2 per wafer",
        "memory share",
        score_name(r),
        "design",
    ]);
    for s in &r.front {
        t.add_row(vec![
            right(fmt_count(s.budget.memory_mm2)),
            right(fmt_pct(s.budget.memory_share)),
            right(score_text(r, s.score)),
            Cell::new(&s.label),
        ]);
    }
    View::keep_whole(&mut t, [0, 1, 2]);
    format!(
        "\nPareto front: the best score for the wafer area spent on memory\n{t}\n{}",
        view.wrap(
            "memory share: DRAM stacks and PHYs over a die site's compute and memory area.",
            ""
        )
    )
}

fn by_value(r: &Report, dim: Dim, rows: &[&BucketBest], view: &View) -> String {
    let best = r.best.first().map_or(0.0, |s| s.score);
    let mut t = view.table();
    t.set_header(vec![
        dim.name(),
        score_name(r),
        "of the best",
        "best design",
        "binds",
    ]);
    for b in rows {
        t.add_row(vec![
            Cell::new(&b.value),
            right(score_text(r, b.best.score)),
            right(if best > 0.0 {
                fmt_pct(b.best.score / best)
            } else {
                "-".into()
            }),
            Cell::new(&b.best.label),
            Cell::new(binds_cell(&b.best)),
        ]);
    }
    View::keep_whole(&mut t, [1, 2]);
    format!("\nBest design by {}\n{t}\n", dim.name())
}

/// The co-exploration MIP's answer.
pub fn mip_text(space: &DesignSpace, c: &CoExploration, view: &View) -> String {
    let mut t = view.table();
    t.set_header(vec!["design", "step time", "lower bound", "gap", "plan"]);
    t.add_row(vec![
        Cell::new(space.label(&c.design)),
        right(fmt_s(c.outcome.step_time_s)),
        right(fmt_s(c.lower_bound_s)),
        right(fmt_gap(c.gap)),
        Cell::new(&c.outcome.plan_text),
    ]);
    format!(
        "{t}\n{}",
        view.wrap(
            &format!(
                "One MIP over {} designs x their configurations ({} blocks, {} rows, {} columns): the design is chosen by binaries z (DRAM stacks per die = sum of stacks x z), the plan by the strategy's variables. Lower bound: the MIP's dual bound and the least cheap bound of the configurations left out.",
                c.designs, c.blocks, c.rows, c.columns
            ),
            ""
        )
    )
}
