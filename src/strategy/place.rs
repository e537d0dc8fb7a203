//! The placement of a plan, chosen by the evaluator: [`placement::optimize`] with the evaluator's
//! step time as its score, and the plan's `dies` pinned to the result. The MIP's bound charges
//! communication at the best any placement allows, so nothing here moves the bound; a better
//! placement only shrinks the gap.

use crate::cost::{evaluate_with, ConfigCosts, Evaluation};
use crate::instance::Instance;
use crate::placement::{self, Budget, Placement};
use crate::plan::Plan;

/// Placements scored for each plan a MIP returns (the search scores many such plans).
pub const PER_PLAN: usize = 48;

/// Placements scored when refining the plan the search settled on.
pub const FINAL: usize = 400;

/// The seed that orders placement moves: fixed, so that a search repeats exactly.
pub const SEED: u64 = 0x5741_544f_53;

/// `plan` on the best placement found within `scores` evaluations, starting from `start` (its
/// own placement), pinned into its `dies`; with its evaluation. Never slower than the start.
pub fn place(
    inst: &Instance,
    costs: &ConfigCosts,
    plan: Plan,
    start: Placement,
    scores: usize,
) -> (Plan, Evaluation) {
    let fabric = inst.fabric();
    let mut score = |g: &Placement| {
        let e = evaluate_with(inst, &plan, costs, g);
        Some((e.step_time_s, g.mean_pipeline_hops(fabric)))
    };
    let (g, _) = placement::optimize(fabric, start, &mut score, Budget { scores, seed: SEED });
    let mut out = plan;
    out.pin(&g, fabric);
    let eval = evaluate_with(inst, &out, costs, &g);
    (out, eval)
}
