//! `watos solve --exhaustive`: enumerate the same space the MIP searches (every configuration,
//! every split of the layers over the stages, every recomputation mix, every weight tier), solve
//! the continuous parking for each by LP, and score each plan with the evaluator. For small
//! instances and for the tests that check the MIP against it.

use std::time::Instant;

use itertools::Itertools;

use crate::cost::{evaluate_ideal, evaluate_with};
use crate::error::Error;
use crate::formulation::{MipComm, SolverOptions, StageMip, RELAXATIONS};
use crate::instance::Instance;
use crate::plan::{Plan, RecomputeCounts, Stage, Tier};

use super::{candidates, infeasible, ConfigStats, Solution, Status};

/// Plans beyond which enumeration is refused (use the MIP).
pub const MAX_PLANS: u64 = 2_000_000;

/// Enumerates every plan of the space.
pub fn solve(inst: &Instance, solver: &SolverOptions) -> Result<Solution, Error> {
    let start = Instant::now();
    let (cands, rejected, closest) = candidates(inst);
    let layers = inst.model.layers;
    let total: u64 = cands
        .iter()
        .map(|c| layouts_count(layers, c.costs.config.pp))
        .sum();
    if total > MAX_PLANS {
        return Err(Error::invalid(
            "--exhaustive",
            format!("the space holds about {total} plans, more than the {MAX_PLANS} enumeration allows"),
            "use `watos solve` without --exhaustive (the MIP proves its gap), or a smaller instance",
        ));
    }
    let mut best: Option<(crate::cost::Evaluation, Plan)> = None;
    let mut bound = f64::INFINITY;
    let lp = SolverOptions {
        gap: 0.0,
        ..*solver
    };
    for cand in &cands {
        let c = &cand.costs;
        let p = c.config.pp;
        let sram_ok: Vec<bool> = (0..p)
            .map(|j| c.stage_params(j, 1) * c.state.weights <= c.sram_weight_bytes)
            .collect();
        for split in compositions(layers, p) {
            let per_stage: Vec<Vec<Stage>> = split
                .iter()
                .enumerate()
                .map(|(j, n)| {
                    let tiers: &[Tier] = if sram_ok[j] {
                        &[Tier::Dram, Tier::Sram]
                    } else {
                        &[Tier::Dram]
                    };
                    mode_mixes(*n)
                        .flat_map(|mix| {
                            tiers.iter().map(move |t| Stage {
                                layers: *n,
                                recompute: mix,
                                weights: *t,
                                park: Vec::new(),
                                dies: None,
                            })
                        })
                        .collect()
                })
                .collect();
            for stages in per_stage.iter().multi_cartesian_product() {
                let stages: Vec<Stage> = stages.into_iter().cloned().collect();
                let plan = Plan {
                    dp: c.config.dp,
                    tp: c.config.tp,
                    pp: p,
                    micro_batch: c.config.micro_batch,
                    sequence_parallel: c.config.sequence_parallel,
                    interleave: 1,
                    zero1: c.config.zero1,
                    dp_overlap: false,
                    stages,
                };
                let placement = plan
                    .placement(inst.fabric())
                    .map_err(crate::cost::plan_error)?;
                let plain = evaluate_with(inst, &plan, c, &placement);
                // Parking only adds time: a plan that fits without it is best without it.
                let (plan, eval, relaxed) = if plain.feasible {
                    let relaxed = evaluate_ideal(inst, &plan, c).step_time_s;
                    (plan, plain, relaxed)
                } else {
                    let mip = StageMip::new(inst, c, MipComm::ideal(inst, c), Some(&plan.stages));
                    let res = mip.solve(&lp, None)?;
                    let Some(parked) = res.plan else { continue };
                    let e = evaluate_with(inst, &parked, c, &placement);
                    (parked, e, res.objective_s)
                };
                if !eval.feasible {
                    continue;
                }
                bound = bound.min(relaxed);
                if best
                    .as_ref()
                    .is_none_or(|b| eval.step_time_s < b.0.step_time_s)
                {
                    best = Some((eval, plan));
                }
            }
        }
    }
    let Some((evaluation, plan)) = best else {
        return Err(infeasible(inst, closest, !cands.is_empty()));
    };
    let lower_bound_s = bound.min(evaluation.step_time_s);
    Ok(Solution {
        gap: (evaluation.step_time_s - lower_bound_s) / evaluation.step_time_s,
        mip_objective_s: lower_bound_s,
        mip_plan_step_time_s: evaluation.step_time_s,
        plan,
        evaluation,
        lower_bound_s,
        status: Status::Optimal,
        solve_time_s: start.elapsed().as_secs_f64(),
        configs: ConfigStats {
            total: cands.len() + rejected,
            memory_infeasible: rejected,
            solved: cands.len(),
            pruned: 0,
        },
        nodes: 0,
        relaxations: RELAXATIONS.iter().map(|s| s.to_string()).collect(),
        method: "exhaustive".into(),
    })
}

/// Ways to split `n` layers into `p` stages of at least one.
fn compositions(n: u32, p: u32) -> Vec<Vec<u32>> {
    if p == 1 {
        return if n >= 1 { vec![vec![n]] } else { Vec::new() };
    }
    (1..=n.saturating_sub(p - 1))
        .flat_map(|first| {
            compositions(n - first, p - 1)
                .into_iter()
                .map(move |mut rest| {
                    rest.insert(0, first);
                    rest
                })
        })
        .collect()
}

/// Every way to run `n` layers in the three recomputation modes.
fn mode_mixes(n: u32) -> impl Iterator<Item = RecomputeCounts> {
    (0..=n).flat_map(move |none| {
        (0..=n - none).map(move |sel| RecomputeCounts {
            none,
            selective: sel,
            full: n - none - sel,
        })
    })
}

/// Plans per configuration (an upper estimate with both tiers everywhere), for the size guard.
fn layouts_count(n: u32, p: u32) -> u64 {
    compositions(n, p)
        .iter()
        .map(|split| {
            split
                .iter()
                .map(|k| 2 * ((*k as u64 + 1) * (*k as u64 + 2) / 2))
                .product::<u64>()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compositions_of_five_into_three() {
        // C(4, 2) = 6.
        assert_eq!(compositions(5, 3).len(), 6);
        assert!(compositions(5, 3)
            .iter()
            .all(|c| c.iter().sum::<u32>() == 5 && c.iter().all(|x| *x >= 1)));
    }

    #[test]
    fn mode_mixes_count_is_triangular() {
        assert_eq!(mode_mixes(3).count(), 10);
        assert!(mode_mixes(3).all(|m| m.total() == 3));
    }
}
