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

/// [`refine`] when `on`, the plan as it is otherwise.
pub fn refine_if(
    on: bool,
    inst: &Instance,
    costs: &ConfigCosts,
    plan: Plan,
    eval: Evaluation,
) -> (Plan, Evaluation) {
    if on {
        refine(inst, costs, plan, eval)
    } else {
        (plan, eval)
    }
}

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

/// Removes parking chains: when stage `j` both hosts bytes of a kind for others and parks bytes of
/// that kind elsewhere, the senders park directly on `j`'s helpers instead. Memory on every stage
/// stays the same and no transfer gets slower (optimizer state moves once per step whoever sends
/// it; activations are rerouted only from senders with at least as many micro-batches in flight,
/// which is what the helper's per-micro-batch charge depends on). The MIP leaves such chains when
/// they cost nothing in its objective; people reading the plan should not have to see them.
pub fn untangle_parking(plan: &Plan, inflight: &dyn Fn(u32) -> f64) -> Plan {
    use crate::plan::{Park, ParkKind};
    let mut out = plan.clone();
    for what in [ParkKind::Activations, ParkKind::Optimizer] {
        for _ in 0..4 * plan.stages.len() * plan.stages.len() {
            // flows[s][h]: bytes s parks on h.
            let p = out.stages.len();
            let mut flows = vec![vec![0u64; p]; p];
            for (s, st) in out.stages.iter().enumerate() {
                for park in st.park.iter().filter(|x| x.what == what) {
                    flows[s][park.to as usize] += park.bytes;
                }
            }
            let mut moved = false;
            'find: for j in 0..p {
                for s in 0..p {
                    if flows[s][j] == 0
                        || (what == ParkKind::Activations
                            && inflight(s as u32) < inflight(j as u32))
                    {
                        continue;
                    }
                    for h in 0..p {
                        if h == j || flows[j][h] == 0 {
                            continue;
                        }
                        let d = flows[s][j].min(flows[j][h]);
                        flows[s][j] -= d;
                        flows[j][h] -= d;
                        if s != h {
                            flows[s][h] += d;
                        }
                        moved = true;
                        break 'find;
                    }
                }
            }
            if !moved {
                break;
            }
            for (s, st) in out.stages.iter_mut().enumerate() {
                st.park.retain(|x| x.what != what);
                for (h, bytes) in flows[s].iter().enumerate() {
                    if *bytes > 0 {
                        st.park.push(Park {
                            to: h as u32,
                            what,
                            bytes: *bytes,
                        });
                    }
                }
                st.park.sort_by_key(|x| (x.what as u8, x.to));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Park, ParkKind};

    #[test]
    fn chains_collapse_to_direct_parking() {
        let mut plan = Plan::uniform(3, 1, 1, 3, 1, Recompute::None);
        plan.stages[1].park.push(Park {
            to: 0,
            what: ParkKind::Optimizer,
            bytes: 5,
        });
        plan.stages[0].park.push(Park {
            to: 2,
            what: ParkKind::Optimizer,
            bytes: 8,
        });
        let out = untangle_parking(&plan, &|_| 1.0);
        assert_eq!(
            out.stages[0].park,
            vec![Park {
                to: 2,
                what: ParkKind::Optimizer,
                bytes: 3
            }]
        );
        assert_eq!(
            out.stages[1].park,
            vec![Park {
                to: 2,
                what: ParkKind::Optimizer,
                bytes: 5
            }]
        );
        assert!(out.stages[2].park.is_empty());
    }

    #[test]
    fn activations_from_shallower_stages_stay_put() {
        // Stage 2 holds fewer micro-batches than stage 1: rerouting its activations would raise
        // the helper's per-micro-batch charge.
        let mut plan = Plan::uniform(3, 1, 1, 3, 1, Recompute::None);
        plan.stages[2].park.push(Park {
            to: 1,
            what: ParkKind::Activations,
            bytes: 5,
        });
        plan.stages[1].park.push(Park {
            to: 0,
            what: ParkKind::Activations,
            bytes: 5,
        });
        let out = untangle_parking(&plan, &|j| (3 - j) as f64);
        assert_eq!(out, plan);
    }
}
