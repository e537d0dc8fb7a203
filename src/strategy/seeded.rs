//! The `watos` strategy: the decomposition with the baselines' plans on the same hardware as
//! incumbents, so that watos never answers with a plan slower than a baseline's.
//!
//! Every plan of the megatron strategy is a plan of watos's space (its configurations are
//! watos's own, its rules only narrow them, its reserve only leaves DRAM unused), so the
//! decomposition's bound covers it. The decomposition stops within its gap target of that bound,
//! which leaves room for a baseline's plan to be up to the gap faster: the incumbent closes it.
//!
//! The weight-streaming strategy's plans are not in watos's space (they split each layer over
//! every die whatever the heads, [`crate::cost::streaming`]); its best plan is taken as an
//! incumbent too. Its search scores every plan of its space, so its step time is a proven bound
//! over that space, and the lesser of the two bounds covers both spaces.

use crate::error::Error;
use crate::instance::Instance;
use crate::plan::Plan;
use crate::solution::{Solution, Status};

use super::decomposition::{self, Decomposition};
use super::megatron::{self, Pins};
use super::{Observer, SearchOptions, Silent, Strategy};

/// watos's search with baseline incumbents (see the module documentation).
#[derive(Debug, Clone, Copy, Default)]
pub struct Watos;

impl Strategy for Watos {
    fn name(&self) -> &'static str {
        "watos"
    }

    fn space(&self) -> &'static str {
        decomposition::SPACE
    }

    fn solve(
        &self,
        inst: &Instance,
        opts: &SearchOptions,
        observer: &dyn Observer,
    ) -> Result<Solution, Error> {
        let mut sol = Decomposition.solve(inst, opts, observer)?;
        let rules = megatron::rules(inst);
        if let Ok(base) = megatron::search(&rules, &Pins::default(), "", opts, &Silent) {
            seed(inst, &mut sol, &base.plan, "megatron", opts.solver.gap);
        }
        if inst.hardware.cluster.is_none() {
            if let Ok(base) = super::streaming::search(inst, opts, &Silent) {
                seed(
                    inst,
                    &mut sol,
                    &base.plan,
                    "weight-streaming",
                    opts.solver.gap,
                );
            }
        }
        Ok(sol)
    }
}

/// Takes `plan` (a baseline's, named `from`) as the answer if the evaluator scores it feasible
/// and faster on `inst`; the lower bound stays the search's, which covers it, and the status
/// becomes optimal if the gap closes to within `gap_target`. Returns whether it was taken.
///
/// ```
/// use watos::{Instance, Plan, plan::Recompute, strategy::seeded::seed};
/// let inst = Instance::load(concat!(env!("CARGO_MANIFEST_DIR"), "/instances/gpt3-175b-wafer.toml")).unwrap();
/// let mut sol = watos::strategy::solve(&inst, &Default::default()).unwrap();
/// // A slower plan is not taken.
/// let slow = Plan::uniform(96, 1, 8, 7, 1, Recompute::Full);
/// assert!(!seed(&inst, &mut sol, &slow, "a test", 0.01));
/// ```
pub fn seed(inst: &Instance, sol: &mut Solution, plan: &Plan, from: &str, gap_target: f64) -> bool {
    let Ok(e) = crate::cost::evaluate(inst, plan) else {
        return false;
    };
    if !e.feasible || e.step_time_s >= sol.evaluation.step_time_s {
        return false;
    }
    sol.plan = plan.clone();
    sol.evaluation = e;
    let step = sol.evaluation.step_time_s;
    sol.lower_bound_s = sol.lower_bound_s.min(step);
    sol.gap = (step - sol.lower_bound_s) / step;
    if sol.gap <= gap_target + 1e-12 {
        sol.status = Status::Optimal;
    }
    sol.space.fixed.push(format!(
        "the plan is the {from} strategy's, taken as an incumbent: it is faster than the search's own (the bound is the search's, capped by this plan's step time)"
    ));
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_faster_plan_is_taken_and_the_bound_kept() {
        let inst = Instance::load(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/instances/gpt3-175b-wafer.toml"
        ))
        .unwrap();
        let mut sol = super::super::solve(&inst, &SearchOptions::default()).unwrap();
        let bound = sol.lower_bound_s;
        // Pretend the search had stopped at a plan 10% slower than its own: its plan, taken
        // back as an incumbent, closes the gap again.
        let own = sol.plan.clone();
        let step = sol.evaluation.step_time_s;
        sol.evaluation.step_time_s *= 1.1;
        sol.status = Status::TimeLimit;
        assert!(seed(&inst, &mut sol, &own, "a test", 0.01));
        assert_eq!(sol.evaluation.step_time_s, step);
        assert_eq!(sol.lower_bound_s, bound);
        assert!((sol.gap - (step - bound) / step).abs() < 1e-15);
        assert_eq!(sol.status, Status::Optimal);
        assert!(sol.space.fixed.last().unwrap().contains("a test"));
    }
}
