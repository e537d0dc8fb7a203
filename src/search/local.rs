//! Local search: the MIP plans with ideal communication; the evaluator knows the real placement.
//! First-improvement hill climbing over placements (which stage runs on which block of dies) and
//! small plan moves (a layer to a neighbouring stage, a layer to another recomputation mode),
//! every candidate scored by the evaluator and kept only if feasible and faster.

use crate::cost::config::ConfigCosts;
use crate::cost::{evaluate_with, Evaluation, Recompute};
use crate::instance::Instance;
use crate::plan::Plan;

/// Evaluations local search may spend.
pub const BUDGET: usize = 400;

/// Improves a plan; returns it with its evaluation (the input if nothing better was found).
pub fn refine(
    inst: &Instance,
    costs: &ConfigCosts,
    plan: Plan,
    eval: Evaluation,
) -> (Plan, Evaluation) {
    let mut best = (plan, eval);
    let mut spent = 0;
    let fabric = inst.fabric();
    // Pin the default placement so that placement moves can edit it.
    let mut pinned = best.0.clone();
    if pinned.pin_placement(fabric).is_err() {
        return best;
    }
    let score = |cand: &Plan, spent: &mut usize| -> Option<Evaluation> {
        *spent += 1;
        let placement = cand.placement(fabric).ok()?;
        let e = evaluate_with(inst, cand, costs, &placement);
        e.feasible.then_some(e)
    };
    best.0 = pinned.clone();
    let mut improved = true;
    while improved && spent < BUDGET {
        improved = false;
        for cand in neighbours(&pinned) {
            if spent >= BUDGET {
                break;
            }
            if let Some(e) = score(&cand, &mut spent) {
                if e.step_time_s < best.1.step_time_s * (1.0 - 1e-12) {
                    pinned = cand.clone();
                    best = (cand, e);
                    improved = true;
                    break;
                }
            }
        }
    }
    best
}

/// Candidate moves from a plan with pinned placement, cheapest ideas first.
fn neighbours(plan: &Plan) -> Vec<Plan> {
    let mut out = Vec::new();
    let p = plan.stages.len();
    // Swap the devices of two stages (all replicas at once).
    for a in 0..p {
        for b in a + 1..p {
            let mut c = plan.clone();
            let da = c.stages[a].dies.take();
            let db = c.stages[b].dies.take();
            c.stages[a].dies = db;
            c.stages[b].dies = da;
            out.push(c);
        }
    }
    // Move one layer to a neighbouring stage, in each mode it has.
    for j in 0..p {
        for to in [j.wrapping_sub(1), j + 1] {
            if to >= p || plan.stages[j].layers <= 1 {
                continue;
            }
            for r in Recompute::ALL {
                if plan.stages[j].recompute.get(r) == 0 {
                    continue;
                }
                let mut c = plan.clone();
                *c.stages[j].recompute.get_mut(r) -= 1;
                c.stages[j].layers -= 1;
                *c.stages[to].recompute.get_mut(r) += 1;
                c.stages[to].layers += 1;
                out.push(c);
            }
        }
    }
    // Change the recomputation mode of one layer.
    for j in 0..p {
        for from in Recompute::ALL {
            for to in Recompute::ALL {
                if from == to || plan.stages[j].recompute.get(from) == 0 {
                    continue;
                }
                let mut c = plan.clone();
                *c.stages[j].recompute.get_mut(from) -= 1;
                *c.stages[j].recompute.get_mut(to) += 1;
                out.push(c);
            }
        }
    }
    out
}
