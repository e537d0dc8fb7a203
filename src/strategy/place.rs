//! The placement of a plan, chosen by the evaluator: [`placement::optimize`] with the evaluator's
//! step time as its score, and the plan's `dies` pinned to the result. The MIP's bound charges
//! communication at the best any placement allows, so nothing here moves the bound; a better
//! placement only shrinks the gap.
//!
//! A second MIP was measured against this and dropped: each (replica, stage) group picked one
//! region of healthy dies (a binary per group and region: every healthy rectangle of `tp` dies
//! and every group of the layouts built from scratch), regions disjoint, minimising each ring's
//! shortfall from the best ring plus the Manhattan distance between the centres of groups that
//! talk (pipeline and data-parallel neighbours, sender and helper). On the four shipped wafer
//! instances, each without faults, with the two faulty dies and one faulty link, and with
//! 10% of dies or of links faulty (16 cases, the plan the search finds, 400 evaluator scores of
//! local search after either start), constructive layouts plus local search gave the faster step
//! in 13 cases, the MIP plus the same local search in 2 (by 0.10% and 0.01%), one tie; the MIP
//! alone beat it once. Constructive plus local search took 0.1-0.35 s, the MIP its 10 s time
//! limit in 15 of the 16 cases: its surrogate (centre distances) does not see link sharing or
//! parking traffic, which the evaluator charges.

use crate::cost::{evaluate_with, ConfigCosts, Evaluation};
use crate::instance::Instance;
use crate::placement::{self, Budget, Placement};
use crate::plan::Plan;

/// Placements scored for each plan a MIP returns (the search scores many such plans).
pub const PER_PLAN: usize = 48;

/// Placements scored when refining the plan the search settled on.
pub const FINAL: usize = 400;

/// The seed that orders placement moves: fixed, so that a search repeats exactly.
pub const SEED: u64 = 0x0057_4154_4f53;

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
