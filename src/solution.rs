//! What a search returns: the plan, the evaluator's verdict on it, and what was proven about it.

use std::time::Instant;

use serde::Serialize;

use crate::cost::Evaluation;
use crate::formulation::{relaxations, SolverOptions};
use crate::instance::Instance;
use crate::plan::Plan;

/// How the search ended. One spelling everywhere: tables, JSON and the README print the
/// snake_case name.
///
/// ```
/// assert_eq!(watos::solution::Status::PlacementGap.to_string(), "placement_gap");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Proven within the requested gap.
    Optimal,
    /// A time limit stopped the search; the gap says how far it got.
    TimeLimit,
    /// A node limit stopped a MIP; the gap says how far it got.
    NodeLimit,
    /// The user stopped the search (Ctrl-C); the gap says how far it got.
    Interrupted,
    /// Every configuration was settled, but the real placement's communication costs more than
    /// the MIP's ideal by more than the requested gap (see `relaxations`).
    PlacementGap,
}

impl Status {
    /// The name tables and JSON print.
    pub fn name(self) -> &'static str {
        match self {
            Status::Optimal => "optimal",
            Status::TimeLimit => "time_limit",
            Status::NodeLimit => "node_limit",
            Status::Interrupted => "interrupted",
            Status::PlacementGap => "placement_gap",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which search found the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Branch-and-bound over configurations, one MIP each.
    Decomposition,
    /// One MIP over many configurations.
    Monolithic,
    /// Every plan of the space enumerated.
    Exhaustive,
    /// Every plan of a framework's rule-bound space scored by the evaluator (no MIP), in order of
    /// a bound that prunes the rest: the bound is the least step time of that space.
    Enumeration,
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Method::Decomposition => "decomposition",
            Method::Monolithic => "monolithic",
            Method::Exhaustive => "exhaustive",
            Method::Enumeration => "enumeration",
        })
    }
}

/// Counts of what the search did with the configurations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ConfigStats {
    pub total: usize,
    /// Ruled out by the aggregate memory test.
    pub memory_infeasible: usize,
    /// MIPs solved.
    pub solved: usize,
    /// Skipped because their bound could not beat the incumbent by more than the gap.
    pub pruned: usize,
}

/// The answer of `watos solve`.
#[derive(Debug, Clone, Serialize)]
pub struct Solution {
    pub plan: Plan,
    /// The evaluator's verdict on `plan` (the printed figures).
    pub evaluation: Evaluation,
    /// Proven lower bound on the step time of every plan in the space.
    pub lower_bound_s: f64,
    /// `(step_time - lower_bound) / step_time`.
    pub gap: f64,
    pub status: Status,
    pub solve_time_s: f64,
    /// The MIP's objective at the plan it returned (before local search), and the evaluator's
    /// figure for that same plan.
    pub mip_objective_s: f64,
    pub mip_plan_step_time_s: f64,
    pub configs: ConfigStats,
    pub nodes: u64,
    /// Terms the MIP under-estimates.
    pub relaxations: Vec<String>,
    /// The plans the bound is proven over.
    pub space: Space,
    pub method: Method,
    /// Seconds from the start to the first feasible plan.
    pub first_plan_s: Option<f64>,
}

/// The space a lower bound is proven over: what the strategy searched, and the plan fields it
/// fixes (each with why no plan is lost) or that the instance's limits narrow.
#[derive(Debug, Clone, Serialize)]
pub struct Space {
    pub searched: String,
    pub fixed: Vec<String>,
}

impl Space {
    /// The space of strategy `searched` on an instance (its `[limits]` named).
    ///
    /// ```
    /// let inst = watos::Instance::load(concat!(env!("CARGO_MANIFEST_DIR"), "/instances/gpt3-175b-wafer.toml")).unwrap();
    /// let s = watos::solution::Space::of(&inst, "every configuration");
    /// assert!(s.fixed.iter().any(|f| f.contains("ZeRO-1")));
    /// ```
    pub fn of(inst: &Instance, searched: &str) -> Self {
        let mut fixed: Vec<String> = crate::strategy::space::SPACE_NOTES
            .iter()
            .map(|s| s.to_string())
            .collect();
        let l = &inst.limits;
        for (name, v) in [
            ("max_micro_batch", l.max_micro_batch),
            ("max_tp", l.max_tp),
            ("max_pp", l.max_pp),
        ] {
            if let Some(v) = v {
                fixed.push(format!(
                    "the instance's [limits] {name} = {v} narrows the space: the bound holds only over plans within it"
                ));
            }
        }
        for (on, rule) in [
            (l.no_parking, "no_parking"),
            (l.tp_divides_kv_heads, "tp_divides_kv_heads"),
            (l.tp_within_node, "tp_within_node"),
        ] {
            if on {
                fixed.push(format!(
                    "the framework rule {rule} narrows the space: the bound holds only over plans that obey it"
                ));
            }
        }
        if inst.reserved_bytes > 0.0 {
            fixed.push(format!(
                "{} GB of each device's DRAM is kept free for the framework: the bound holds only over plans that leave it free",
                inst.reserved_bytes / crate::units::GB
            ));
        }
        Space {
            searched: searched.to_string(),
            fixed,
        }
    }
}

/// What a search found and how it stopped, before the gap and status are worked out.
pub(crate) struct Found {
    pub plan: Plan,
    pub evaluation: Evaluation,
    /// Least proven bound over the space (the plan's own step time caps it).
    pub bound_s: f64,
    pub mip_objective_s: f64,
    pub mip_plan_step_time_s: f64,
    pub configs: ConfigStats,
    pub nodes: u64,
    pub out_of_time: bool,
    pub limited: bool,
    pub first_plan_s: Option<f64>,
}

impl Found {
    /// Why a search that stopped early stopped: the user, else the clock.
    pub(crate) fn stop_status() -> Status {
        if crate::formulation::interrupted() {
            Status::Interrupted
        } else {
            Status::TimeLimit
        }
    }
}

impl Solution {
    /// The gap and status of what a search found: optimal within the target; otherwise stopped by
    /// time or nodes; otherwise the placement relaxation is what keeps the gap open.
    pub(crate) fn conclude(
        inst: &Instance,
        found: Found,
        solver: &SolverOptions,
        start: Instant,
        method: Method,
        space: &str,
    ) -> Self {
        let step = found.evaluation.step_time_s;
        // A bound above a plan the evaluator scored is a bug in the encoding, not a result: fail
        // loudly in debug builds. Only the solver's own tolerance (1e-6 relative) is absorbed.
        debug_assert!(
            found.bound_s <= step * (1.0 + 1e-6),
            "bound {} s above the plan's {} s ({})",
            found.bound_s,
            step,
            found.plan
        );
        let lower_bound_s = found.bound_s.min(step);
        let gap = (step - lower_bound_s) / step;
        let status = if gap <= solver.gap + 1e-12 {
            Status::Optimal
        } else if found.out_of_time {
            Found::stop_status()
        } else if found.limited {
            if solver.node_limit.is_some() {
                Status::NodeLimit
            } else {
                Status::TimeLimit
            }
        } else {
            Status::PlacementGap
        };
        Solution {
            gap,
            plan: found.plan,
            evaluation: found.evaluation,
            lower_bound_s,
            status,
            solve_time_s: start.elapsed().as_secs_f64(),
            mip_objective_s: found.mip_objective_s,
            mip_plan_step_time_s: found.mip_plan_step_time_s,
            configs: found.configs,
            nodes: found.nodes,
            relaxations: relaxations(inst.fabric()),
            space: Space::of(inst, space),
            method,
            first_plan_s: found.first_plan_s,
        }
    }
}
