//! A solution: the plan's evaluation, then what the solver proved about it.

use comfy_table::Cell;
use serde_json::{json, Value};

use super::{evaluation_body, evaluation_json, fmt_gap, fmt_s, header, headline, right, View};
use crate::instance::Instance;
use crate::solution::{Method, Solution, Status};
use crate::strategy::megatron::args::Launch;
use crate::units::GB;

/// What each status means, for the legend under the solver's table.
fn status_meaning(status: Status) -> &'static str {
    match status {
        Status::Optimal => "the plan is proven within the gap target of the best plan",
        Status::TimeLimit => "the time limit stopped the search; the gap says how far it got",
        Status::NodeLimit => "the node limit stopped a MIP; the gap says how far it got",
        Status::Interrupted => "Ctrl-C stopped the search; the gap says how far it got",
        Status::PlacementGap => {
            "every configuration was settled, but the plan's real placement communicates more slowly than the best placement the bound assumes, by more than the gap target"
        }
    }
}

/// The solution as text: the headline (the evaluator's step time, the one that counts), what
/// was proven, then where the time goes and the stages. `--verbose` adds the solver's internal
/// figures, labelled as diagnostics.
pub fn solution_text(inst: &Instance, sol: &Solution, view: &View) -> String {
    let e = &sol.evaluation;
    let mut out = header(inst, &sol.plan, e);
    out.push_str(&headline(e, view));
    out.push('\n');
    let mut t = view.table();
    t.set_header(vec!["proven lower bound", "gap", "status", "solve time"]);
    t.add_row(vec![
        Cell::new(fmt_s(sol.lower_bound_s)),
        right(fmt_gap(sol.gap)),
        Cell::new(sol.status.to_string()),
        right(fmt_s(sol.solve_time_s)),
    ]);
    out.push_str(&format!("{t}\n"));
    out.push_str(&view.wrap(
        &format!(
            "No plan of the space searched (--verbose shows it) steps faster than the lower bound; gap = (step time - bound) / step time. {}: {}.",
            sol.status,
            status_meaning(sol.status)
        ),
        "",
    ));
    let c = &sol.configs;
    let solved = match sol.method {
        Method::Enumeration => "with every plan scored by the evaluator",
        _ => "solved as a MIP",
    };
    out.push_str(&view.wrap(
        &format!(
            "Configurations: {} in all; {} too big for memory, {} {solved}, {} pruned by their bound.",
            c.total, c.memory_infeasible, c.solved, c.pruned
        ),
        "",
    ));
    out.push_str(&evaluation_body(inst, &sol.plan, e, view));
    if view.verbose {
        out.push('\n');
        out.push_str(&diagnostics(sol, view));
    }
    out
}

/// The solver's internal figures: not the plan's step time, but what the search saw.
fn diagnostics(sol: &Solution, view: &View) -> String {
    let mut out = String::from("diagnostics (the solver's internal figures):\n");
    if sol.method == Method::Enumeration {
        out.push_str(&view.wrap(
            &format!("  method: {} (no MIP: every plan of the strategy's space scored by the evaluator, in order of a bound)", sol.method),
            "    ",
        ));
        return out;
    }
    for line in [
        format!("method: {}", sol.method),
        format!(
            "MIP objective at the plan the MIP returned: {} (communication at the best any placement allows)",
            fmt_s(sol.mip_objective_s)
        ),
        format!(
            "the evaluator's step time for that plan, before local search: {}",
            fmt_s(sol.mip_plan_step_time_s)
        ),
        format!("branch-and-bound nodes: {}", sol.nodes),
        format!(
            "first plan after: {}",
            sol.first_plan_s.map_or("-".to_string(), fmt_s)
        ),
    ] {
        out.push_str(&view.wrap(&format!("  {line}"), "    "));
    }
    for r in &sol.relaxations {
        out.push_str(&view.wrap(&format!("  relaxation: {r}"), "    "));
    }
    out.push_str(&view.wrap(&format!("  space searched: {}", sol.space.searched), "    "));
    for f in &sol.space.fixed {
        out.push_str(&view.wrap(&format!("  fixed: {f}"), "    "));
    }
    out
}

/// A solution as one JSON object: the evaluation's fields, the plan, and the proof.
pub fn solution_json(inst: &Instance, sol: &Solution) -> Value {
    let mut v = evaluation_json(inst, &sol.plan, &sol.evaluation);
    if let Some(obj) = v.as_object_mut() {
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
        obj.insert("first_plan_s".into(), json!(sol.first_plan_s));
        obj.insert(
            "space".into(),
            serde_json::to_value(&sol.space).unwrap_or_default(),
        );
    }
    v
}

/// What `watos solve --strategy` adds after the solution: the strategy and its space, a
/// framework's memory reserve, and on a GPU cluster the Megatron-LM arguments that run the plan.
pub fn strategy_text(
    name: &str,
    space: &str,
    inst: &Instance,
    launch: Option<&Launch>,
    view: &View,
) -> String {
    let mut out = String::from("\n");
    out.push_str(&view.wrap(&format!("strategy: {name}: {space}."), "  "));
    if inst.reserved_bytes > 0.0 {
        out.push_str(&view.wrap(
            &format!(
                "framework reserve: {} GB of each device's DRAM kept free; the capacities above are what is left of {} GB.",
                super::fixed(inst.reserved_bytes / GB, 1),
                super::fixed(inst.physical_dram_bytes() / GB, 1)
            ),
            "  ",
        ));
    }
    if let Some(l) = launch {
        out.push_str(&view.wrap(
            &format!(
                "Megatron-LM arguments ({} processes, one per GPU; data parallelism is the world size over tensor x pipeline):",
                l.world_size
            ),
            "  ",
        ));
        out.push_str(&view.wrap(&format!("  {}", l.line()), "    "));
    }
    out
}
