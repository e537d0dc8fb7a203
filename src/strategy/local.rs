//! Local search: the MIP plans with ideal communication; the evaluator knows the real placement.
//! First the placement ([`place`]: which dies run each group), then first-improvement hill
//! climbing over small plan moves (a layer to a neighbouring stage, a layer to another
//! recomputation mode, parked bytes to another helper), every candidate scored by the evaluator
//! and kept only if feasible and faster.

use crate::cost::{evaluate_with, ConfigCosts, Evaluation};
use crate::instance::Instance;

use super::place;

use crate::plan::{Plan, Recompute, RecomputeCounts, Stage};
use crate::workload::LayerLayout;

/// Evaluations the plan moves of local search may spend (the placement has its own budget,
/// [`place::FINAL`]).
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

/// Improves a plan; returns it with its evaluation (the input, on its placement pinned, if
/// nothing better was found). First the placement ([`place::place`], from the plan's own), then
/// plan moves on that placement: layers and modes ([`layer_moves`]) and helpers ([`park_moves`]).
pub fn refine(
    inst: &Instance,
    costs: &ConfigCosts,
    plan: Plan,
    eval: Evaluation,
) -> (Plan, Evaluation) {
    let fabric = inst.fabric();
    let Ok(start) = plan.placement(fabric) else {
        return (plan, eval);
    };
    let mut pinned = plan.clone();
    pinned.pin(&start, fabric);
    let placed = place::place(inst, costs, plan, start, place::FINAL);
    let no_worse = placed.1.feasible >= eval.feasible && placed.1.step_time_s <= eval.step_time_s;
    let mut best = if no_worse { placed } else { (pinned, eval) };
    let mut spent = 0;
    let score = |cand: &Plan, spent: &mut usize| -> Option<Evaluation> {
        *spent += 1;
        let g = cand.placement(fabric).ok()?;
        let e = evaluate_with(inst, cand, costs, &g);
        e.feasible.then_some(e)
    };
    let mut improved = true;
    while improved && spent < BUDGET {
        improved = false;
        let mut moves = layer_moves(&best.0, &costs.layout);
        moves.extend(park_moves(&best.0));
        for cand in moves {
            if spent >= BUDGET {
                break;
            }
            if let Some(e) = score(&cand, &mut spent) {
                if e.step_time_s < best.1.step_time_s * (1.0 - 1e-12) {
                    best = (cand, e);
                    improved = true;
                    break;
                }
            }
        }
    }
    best
}

/// Each parking entry sent to every other helper instead (the same bytes; an entry that meets
/// one of the same kind on its new helper joins it): a sender re-paired with a helper whose dies
/// may be nearer, or whose path shares fewer links.
fn park_moves(plan: &Plan) -> Vec<Plan> {
    let p = plan.stages.len() as u32;
    let mut out = Vec::new();
    for (j, stage) in plan.stages.iter().enumerate() {
        for (i, park) in stage.park.iter().enumerate() {
            for to in (0..p).filter(|h| *h != park.to && *h != j as u32) {
                let mut c = plan.clone();
                let entries = &mut c.stages[j].park;
                let moved = entries.remove(i);
                match entries
                    .iter_mut()
                    .find(|x| x.to == to && x.what == moved.what)
                {
                    Some(x) => x.bytes = x.bytes.saturating_add(moved.bytes),
                    None => entries.push(crate::plan::Park { to, ..moved }),
                }
                entries.sort_by_key(|x| (x.what as u8, x.to));
                out.push(c);
            }
        }
    }
    out
}

/// A stage's layers as runs of one kind each: `(kind, modes)`, in layer order.
fn kind_runs(stage: &Stage, layout: &LayerLayout, start: u32) -> Vec<(usize, RecomputeCounts)> {
    let mut out: Vec<(usize, RecomputeCounts)> = Vec::new();
    for (k, r) in layout
        .kinds_in(start, stage.layers)
        .zip(stage.modes_in_order())
    {
        match out.last_mut() {
            Some((kind, counts)) if *kind == k => *counts.get_mut(r) += 1,
            _ => out.push((k, RecomputeCounts::all(r, 1))),
        }
    }
    out
}

/// Plan moves, cheapest ideas first: a boundary layer to the neighbouring stage (in each mode
/// the boundary run has), then one layer to another recomputation mode.
fn layer_moves(plan: &Plan, layout: &LayerLayout) -> Vec<Plan> {
    let p = plan.stages.len();
    let mut starts = Vec::with_capacity(p);
    let mut at = 0u32;
    for s in &plan.stages {
        starts.push(at);
        at = at.saturating_add(s.layers);
    }
    let runs: Vec<Vec<(usize, RecomputeCounts)>> = plan
        .stages
        .iter()
        .zip(&starts)
        .map(|(s, start)| kind_runs(s, layout, *start))
        .collect();
    let with_runs = |base: &Plan, changed: &[(usize, Vec<(usize, RecomputeCounts)>)]| {
        let mut c = base.clone();
        for (j, r) in changed {
            c.stages[*j].recompute = r.iter().map(|(_, counts)| *counts).collect();
            c.stages[*j].layers = r.iter().map(|(_, counts)| counts.total() as u32).sum();
        }
        c
    };
    let mut out = Vec::new();
    for j in 0..p {
        for to in [j.wrapping_sub(1), j + 1] {
            if to >= p || plan.stages[j].layers <= 1 {
                continue;
            }
            // The layer at the boundary: the first run's when moving back, the last run's when
            // moving on; it joins the near end of the other stage.
            let back = to < j;
            let Some(&(kind, counts)) = (if back {
                runs[j].first()
            } else {
                runs[j].last()
            }) else {
                continue;
            };
            for r in Recompute::ALL {
                if counts.get(r) == 0 {
                    continue;
                }
                let mut from = runs[j].clone();
                let edge = if back { 0 } else { from.len() - 1 };
                *from[edge].1.get_mut(r) -= 1;
                from.retain(|(_, c)| c.total() > 0);
                let mut into = runs[to].clone();
                let near = if back { into.len().wrapping_sub(1) } else { 0 };
                match into.get_mut(near) {
                    Some((k, c)) if *k == kind => *c.get_mut(r) += 1,
                    _ if back => into.push((kind, RecomputeCounts::all(r, 1))),
                    _ => into.insert(0, (kind, RecomputeCounts::all(r, 1))),
                }
                out.push(with_runs(plan, &[(j, from), (to, into)]));
            }
        }
    }
    for (j, stage_runs) in runs.iter().enumerate() {
        for (i, (_, counts)) in stage_runs.iter().enumerate() {
            for from in Recompute::ALL {
                for to in Recompute::ALL {
                    if from == to || counts.get(from) == 0 {
                        continue;
                    }
                    let mut changed = stage_runs.clone();
                    *changed[i].1.get_mut(from) -= 1;
                    *changed[i].1.get_mut(to) += 1;
                    out.push(with_runs(plan, &[(j, changed)]));
                }
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
    fn a_boundary_layer_keeps_its_kind() {
        // Kinds: A A B | B B; moving stage 0's last layer (B) on prepends it to stage 1's B run;
        // moving stage 1's first layer back appends a B run to stage 0.
        let m: crate::Model = toml::from_str("name='m'\nlayers=5\nhidden=8\nheads=2\nvocab=10\ntied_embeddings=true\n[[block]]\nlayers=2\nffn_hidden=64\n[[block]]\nlayers=3").unwrap();
        let mut plan = Plan::uniform(5, 1, 1, 2, 1, Recompute::None);
        plan.stages[0].layers = 3;
        plan.stages[0].recompute = vec![
            RecomputeCounts::all(Recompute::None, 2),
            RecomputeCounts::all(Recompute::Full, 1),
        ];
        plan.stages[1].layers = 2;
        plan.stages[1].recompute = vec![RecomputeCounts::all(Recompute::None, 2)];
        let moves = layer_moves(&plan, &m.layout());
        let on = &moves[0];
        assert_eq!(
            on.stages.iter().map(|s| s.layers).collect::<Vec<_>>(),
            vec![2, 3]
        );
        assert_eq!(
            on.stages[1].recompute,
            vec![RecomputeCounts {
                none: 2,
                selective: 0,
                full: 1
            }]
        );
        let back = &moves[1];
        assert_eq!(back.stages[0].recompute.len(), 2);
        assert_eq!(
            back.stages[0].recompute[1],
            RecomputeCounts {
                none: 1,
                selective: 0,
                full: 1
            }
        );
    }

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
