//! Human tables and JSON for evaluations and solutions. Rendering only: nothing here searches or
//! scores.

use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};
use serde_json::json;

use crate::cost::Evaluation;
use crate::instance::Instance;
use crate::plan::Plan;
use crate::solution::Solution;
use crate::units::GB;

/// Seconds in the unit that reads best.
pub fn fmt_s(s: f64) -> String {
    if !s.is_finite() {
        return format!("{s}");
    }
    if s >= 1.0 {
        format!("{s:.3} s")
    } else if s >= 1e-3 {
        format!("{:.3} ms", s * 1e3)
    } else {
        format!("{:.3} us", s * 1e6)
    }
}

/// Bytes in GB.
pub fn fmt_gb(bytes: f64) -> String {
    format!("{:.2} GB", bytes / GB)
}

/// A fraction as a percentage.
pub fn fmt_pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

fn table() -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t
}

/// The evaluation as tables: headline figures, where the time goes, and each stage.
pub fn evaluation_text(inst: &Instance, plan: &Plan, e: &Evaluation) -> String {
    let mut out = String::new();
    out.push_str(&format!("{}\n", inst.name));
    out.push_str(&format!(
        "model: {:.2}B parameters, {:.2}B active per token, {:.3} TFLOP per token\n",
        e.params_total / 1e9,
        e.params_active / 1e9,
        e.model_flops_per_token / 1e12
    ));
    out.push_str(&format!(
        "plan: {}  ({} of {} devices, {} micro-batches per step)\n\n",
        plan,
        e.devices_used,
        inst.fabric().healthy_count(),
        e.micro_batches
    ));
    let mut head = table();
    head.set_header(vec!["step time", "tokens/s", "MFU", "HFU", "feasible"]);
    head.add_row(vec![
        fmt_s(e.step_time_s),
        format!("{:.0}", e.tokens_per_s),
        fmt_pct(e.mfu),
        fmt_pct(e.hfu),
        if e.feasible {
            "yes".into()
        } else {
            "NO".into()
        },
    ]);
    out.push_str(&format!("{head}\n"));
    if !e.violations.is_empty() {
        out.push_str("\ninfeasible:\n");
        for v in &e.violations {
            out.push_str(&format!("  - {v}\n"));
        }
    }
    out.push('\n');
    out.push_str(&breakdown_table(e).to_string());
    out.push_str("\n\n");
    out.push_str(&stage_table(plan, e).to_string());
    out.push('\n');
    out
}

fn breakdown_table(e: &Evaluation) -> Table {
    let b = &e.breakdown;
    let mut t = table();
    t.set_header(vec!["where the step goes", "time", "share"]);
    for (name, v) in [
        ("compute", b.compute_s),
        ("recomputation", b.recompute_s),
        ("DRAM traffic (exposed)", b.dram_s),
        ("tensor-parallel comm", b.tp_comm_s),
        ("pipeline comm", b.pp_comm_s),
        ("remote DRAM (parking)", b.remote_dram_s),
        ("pipeline bubble", b.bubble_s),
        ("data-parallel comm", b.dp_comm_s),
        ("optimizer", b.optimizer_s),
    ] {
        t.add_row(vec![
            Cell::new(name),
            Cell::new(fmt_s(v)).set_alignment(CellAlignment::Right),
            Cell::new(fmt_pct(v / e.step_time_s)).set_alignment(CellAlignment::Right),
        ]);
    }
    t
}

fn stage_table(plan: &Plan, e: &Evaluation) -> Table {
    let mut t = table();
    t.set_header(vec![
        "stage",
        "layers",
        "recompute n/s/f",
        "in flight",
        "time/micro-batch",
        "DRAM used",
        "weights",
        "optimizer",
        "activations",
        "parked out/in",
    ]);
    for (j, s) in e.stages.iter().enumerate() {
        let m = &s.memory;
        let crit = if j as u32 == e.critical_stage {
            " *"
        } else {
            ""
        };
        t.add_row(vec![
            format!("{j}{crit}"),
            s.layers.to_string(),
            format!(
                "{}/{}/{}",
                s.recompute_none, s.recompute_selective, s.recompute_full
            ),
            format!("{:.2}", s.inflight),
            fmt_s(s.time_per_microbatch_s),
            format!(
                "{:.1} / {:.0} GB",
                m.dram_used_bytes / GB,
                m.dram_capacity_bytes / GB
            ),
            format!(
                "{}{}",
                fmt_gb(m.weights_bytes),
                if m.weights_in_sram { " (SRAM)" } else { "" }
            ),
            fmt_gb(m.optimizer_bytes),
            fmt_gb(m.activations_bytes),
            format!(
                "{:.1} / {:.1} GB",
                m.parked_out_bytes / GB,
                m.parked_in_bytes / GB
            ),
        ]);
    }
    let _ = plan;
    t
}

/// The evaluation as one JSON object: the headline fields at the top level, the plan beside them.
pub fn evaluation_json(inst: &Instance, plan: &Plan, e: &Evaluation) -> String {
    let mut v = serde_json::to_value(e).unwrap_or_else(|err| json!({ "error": err.to_string() }));
    if let Some(obj) = v.as_object_mut() {
        obj.insert("instance".into(), json!(inst.name));
        obj.insert(
            "plan".into(),
            serde_json::to_value(plan).unwrap_or_default(),
        );
    }
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

/// A solution: the plan's evaluation, then what the solver proved.
pub fn solution_text(inst: &Instance, sol: &Solution) -> String {
    let mut out = evaluation_text(inst, &sol.plan, &sol.evaluation);
    let mut t = table();
    t.set_header(vec![
        "evaluated step time",
        "proven lower bound",
        "gap",
        "status",
        "solve time",
        "configurations",
    ]);
    t.add_row(vec![
        fmt_s(sol.evaluation.step_time_s),
        fmt_s(sol.lower_bound_s),
        format!("{:.2}%", 100.0 * sol.gap),
        sol.status.to_string(),
        fmt_s(sol.solve_time_s),
        format!(
            "{} in all: {} too big for memory, {} settled by MIP, {} pruned by bound",
            sol.configs.total,
            sol.configs.memory_infeasible,
            sol.configs.solved,
            sol.configs.pruned
        ),
    ]);
    out.push_str(&format!("\n{t}\n"));
    out.push_str(&format!(
        "method: {}; the MIP plan scored {} by the MIP and {} by the evaluator\n",
        sol.method,
        fmt_s(sol.mip_objective_s),
        fmt_s(sol.mip_plan_step_time_s)
    ));
    out
}

/// A solution as one JSON object: the evaluation's fields, the plan, and the proof.
pub fn solution_json(inst: &Instance, sol: &Solution) -> String {
    let mut v = serde_json::to_value(&sol.evaluation)
        .unwrap_or_else(|err| json!({ "error": err.to_string() }));
    if let Some(obj) = v.as_object_mut() {
        obj.insert("instance".into(), json!(inst.name));
        obj.insert(
            "plan".into(),
            serde_json::to_value(&sol.plan).unwrap_or_default(),
        );
        obj.insert("lower_bound_s".into(), json!(sol.lower_bound_s));
        obj.insert("gap".into(), json!(sol.gap));
        obj.insert(
            "status".into(),
            serde_json::to_value(sol.status).unwrap_or_default(),
        );
        obj.insert("solve_time_s".into(), json!(sol.solve_time_s));
        obj.insert("mip_objective_s".into(), json!(sol.mip_objective_s));
        obj.insert(
            "mip_plan_step_time_s".into(),
            json!(sol.mip_plan_step_time_s),
        );
        obj.insert(
            "configs".into(),
            serde_json::to_value(sol.configs).unwrap_or_default(),
        );
        obj.insert("nodes".into(), json!(sol.nodes));
        obj.insert("relaxations".into(), json!(sol.relaxations));
        obj.insert("method".into(), json!(sol.method));
    }
    serde_json::to_string_pretty(&v).unwrap_or_default()
}
