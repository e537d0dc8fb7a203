//! `watos solve --exhaustive`: enumerate the same space the MIP searches (every configuration,
//! every split of the layers over the stages, every recomputation mix, every weight tier), solve
//! the continuous parking for each by LP, and score each plan with the evaluator, on every
//! placement when a mesh is small enough to enumerate them (else on the default layout, the best
//! plan's placement searched for afterwards). For small instances and for the tests that check
//! the MIP against it.

use std::time::Instant;

use itertools::Itertools;

use crate::cost::{evaluate_ideal, evaluate_with, plan_error, ConfigCosts, Evaluation};
use crate::error::{Error, InfeasibleReason};
use crate::formulation::{relaxations, MipComm, SolverOptions, StageMip};
use crate::hardware::Fabric;
use crate::instance::Instance;
use crate::placement::Placement;
use crate::plan::{Plan, RecomputeCounts, Stage, WeightSource};
use crate::solution::{ConfigStats, Method, Solution, Status};
use crate::workload::LayerLayout;

use super::space::Frontier;
use super::{infeasible, next_candidates, Observer, SearchOptions};

/// Enumeration as a strategy (small instances only).
#[derive(Debug, Clone, Copy, Default)]
pub struct Exhaustive;

impl super::Strategy for Exhaustive {
    fn name(&self) -> &'static str {
        "exhaustive"
    }

    fn space(&self) -> &'static str {
        "the decomposition's space, every plan enumerated (parking by LP)"
    }

    fn solve(
        &self,
        inst: &Instance,
        opts: &SearchOptions,
        observer: &dyn Observer,
    ) -> Result<Solution, Error> {
        solve_observed(inst, &opts.solver, observer)
    }
}

/// Plans beyond which enumeration is refused (use the MIP).
pub const MAX_PLANS: u64 = 2_000_000;

/// Enumerates every plan of the space.
pub fn solve(inst: &Instance, solver: &SolverOptions) -> Result<Solution, Error> {
    solve_observed(inst, solver, &super::Silent)
}

/// [`solve`], watched. A time limit or Ctrl-C stops it, also within a configuration; the plan is then
/// the best enumerated so far and the bound the least over what was enumerated and the cheap
/// bounds of the configurations not reached.
pub fn solve_observed(
    inst: &Instance,
    solver: &SolverOptions,
    observer: &dyn Observer,
) -> Result<Solution, Error> {
    let start = Instant::now();
    let deadline = crate::formulation::Deadline::of(start, solver);
    let stopped = || deadline.passed();
    let mut frontier = Frontier::new(inst);
    let cands = next_candidates(inst, &mut frontier, usize::MAX);
    let (rejected, closest) = (frontier.memory_infeasible, frontier.closest.take());
    let layers = inst.model.layers;
    let total: u64 = cands
        .iter()
        .map(|c| layouts_count(&c.costs.layout, c.costs.config.pp))
        .fold(0u64, u64::saturating_add);
    // Without a limit a huge space would never end; with one, enumeration stops at it.
    if total > MAX_PLANS && solver.time_limit_s.is_none() {
        return Err(Error::invalid(
            "--exhaustive",
            format!("the space holds about {total} plans, more than the {MAX_PLANS} enumeration allows"),
            "use `watos solve` without --exhaustive (the MIP proves its gap), give a --time-limit, or a smaller instance",
        ));
    }
    let mut best: Option<(Evaluation, Plan)> = None;
    let mut bound = f64::INFINITY;
    let lp = SolverOptions {
        gap: 0.0,
        time_limit_s: None,
        ..*solver
    };
    observer.start(cands.len() as u64, "configurations");
    let mut done = 0;
    let mut first_plan_s = None;
    'configs: for cand in &cands {
        if stopped() {
            break;
        }
        if let Some(b) = &best {
            observer.status(b.0.step_time_s, bound.min(b.0.step_time_s));
        }
        let c = &cand.costs;
        let p = c.config.pp;
        let placements = every_placement(inst, c);
        for split in compositions(layers, p)
            .into_iter()
            .filter(|split| split.iter().all(|n| *n >= c.config.interleave))
        {
            let per_stage: Vec<Vec<Stage>> = stage_options(c, &split);
            for stages in per_stage.iter().multi_cartesian_product() {
                // One configuration of a deep pipeline holds millions of plans, so the limit is
                // checked plan by plan (a clock read is far cheaper than an evaluation). A
                // configuration left part-way counts as not reached (its cheap bound stands for it
                // below); the plans it gave are kept.
                if stopped() {
                    break 'configs;
                }
                let stages: Vec<Stage> = stages.into_iter().cloned().collect();
                let plan = Plan {
                    dp: c.config.dp,
                    ep: c.config.ep,
                    tp: c.config.tp,
                    pp: p,
                    micro_batch: c.config.micro_batch,
                    sequence_parallel: c.config.sequence_parallel,
                    interleave: c.config.interleave,
                    zero1: c.config.zero1,
                    dp_overlap: c.config.dp_overlap,
                    weight_streaming: false,
                    stages,
                };
                let Some((plan, eval, relaxed)) = best_parking(inst, c, plan, &lp, &placements)?
                else {
                    continue;
                };
                bound = bound.min(relaxed);
                if best
                    .as_ref()
                    .is_none_or(|b| eval.step_time_s < b.0.step_time_s)
                {
                    first_plan_s.get_or_insert_with(|| start.elapsed().as_secs_f64());
                    best = Some((eval, plan));
                }
            }
        }
        done += 1;
        observer.advance(1);
    }
    observer.finish();
    let out_of_time = done < cands.len();
    // What was not enumerated is bounded by its cheap bound.
    for cand in &cands[done..] {
        bound = bound.min(cand.bound_s);
    }
    let Some((evaluation, plan)) = best else {
        if out_of_time {
            return Err(super::no_plan(
                inst,
                closest,
                true,
                done,
                cands.len() + rejected,
            ));
        }
        let reason = if cands.is_empty() {
            InfeasibleReason::Aggregate
        } else {
            InfeasibleReason::PerDevice
        };
        return Err(infeasible(inst, closest, reason));
    };
    // Where placements were too many to enumerate, the best plan's is searched for.
    let (plan, evaluation) = match plan.placement(inst.fabric()) {
        Ok(g) if plan.stages.iter().all(|s| s.dies.is_none()) => {
            let c = ConfigCosts::new(inst, crate::plan::Config::of(&plan));
            super::place::place(inst, &c, plan, g, super::place::FINAL)
        }
        _ => (plan, evaluation),
    };
    let lower_bound_s = bound.min(evaluation.step_time_s);
    let gap = (evaluation.step_time_s - lower_bound_s) / evaluation.step_time_s;
    Ok(Solution {
        gap,
        mip_objective_s: lower_bound_s,
        mip_plan_step_time_s: evaluation.step_time_s,
        plan,
        evaluation,
        lower_bound_s,
        status: if out_of_time && gap > solver.gap {
            crate::solution::Found::stop_status()
        } else {
            Status::Optimal
        },
        solve_time_s: start.elapsed().as_secs_f64(),
        configs: ConfigStats {
            total: cands.len() + rejected,
            memory_infeasible: rejected,
            solved: done,
            pruned: cands.len() - done,
        },
        nodes: 0,
        relaxations: relaxations(inst.fabric()),
        space: crate::solution::Space::of(
            inst,
            "the decomposition's space, every plan enumerated (parking by LP)",
        ),
        method: Method::Exhaustive,
        first_plan_s,
    })
}

/// Placements enumerated per configuration at most: every assignment of its devices to the
/// healthy dies (ring orders included) on a mesh this small.
const MAX_PLACEMENTS: u64 = 24;

/// Every placement of a configuration when there are at most [`MAX_PLACEMENTS`] (on a mesh; on a
/// cluster's single switch every placement costs the same), else none: the plans are then scored
/// on the default layout and the best one's placement is searched for.
fn every_placement(inst: &Instance, c: &ConfigCosts) -> Vec<Placement> {
    let fabric = inst.fabric();
    let healthy: Vec<u32> = (0..fabric.device_count())
        .filter(|id| fabric.is_healthy(*id))
        .collect();
    let (d, t, p) = (
        c.config.dp as usize,
        c.config.tp as usize,
        c.config.pp as usize,
    );
    let k = d * t * p;
    let count = (0..k as u64)
        .map(|i| healthy.len() as u64 - i.min(healthy.len() as u64))
        .try_fold(1u64, |acc, f| acc.checked_mul(f))
        .unwrap_or(u64::MAX);
    if !matches!(fabric, Fabric::Mesh(_)) || count > MAX_PLACEMENTS || k > healthy.len() {
        return Vec::new();
    }
    healthy
        .into_iter()
        .permutations(k)
        .filter_map(|devs| {
            let groups = (0..d)
                .map(|r| {
                    (0..p)
                        .map(|j| devs[(r * p + j) * t..(r * p + j + 1) * t].to_vec())
                        .collect()
                })
                .collect();
            Placement::from_groups(groups, fabric)
        })
        .collect()
}

/// The plan as it is if it fits (parking only adds time), else with the parking an LP finds; with
/// its evaluation on the best of `placements` (the default layout if there are none, the
/// placement pinned otherwise) and its step time at ideal communication (what bounds it). `None`
/// if nothing fits.
fn best_parking(
    inst: &Instance,
    c: &ConfigCosts,
    plan: Plan,
    lp: &SolverOptions,
    placements: &[Placement],
) -> Result<Option<(Plan, Evaluation, f64)>, Error> {
    let placement = plan.placement(inst.fabric()).map_err(plan_error)?;
    let plain = evaluate_with(inst, &plan, c, &placement);
    let (plan, e, relaxed) = if plain.feasible {
        let relaxed = evaluate_ideal(inst, &plan, c).step_time_s;
        (plan, plain, relaxed)
    } else {
        // The parking LP at the best any placement allows, placement classes relaxed.
        let mut comm = MipComm::ideal(inst, c);
        comm.units = None;
        let mip = StageMip::new(c, comm, Some(&plan));
        let res = mip.solve(lp, None)?;
        let Some(parked) = res.plan else {
            return Ok(None);
        };
        let e = evaluate_with(inst, &parked, c, &placement);
        if !e.feasible {
            return Ok(None);
        }
        (parked, e, res.objective_s)
    };
    let best = placements
        .iter()
        .map(|g| (g, evaluate_with(inst, &plan, c, g)))
        .min_by(|a, b| a.1.step_time_s.total_cmp(&b.1.step_time_s));
    Ok(Some(match best {
        Some((g, eg)) if eg.step_time_s < e.step_time_s => {
            let mut pinned = plan;
            pinned.pin(g, inst.fabric());
            (pinned, eg, relaxed)
        }
        _ => (plan, e, relaxed),
    }))
}

/// Every stage a split allows: per stage, every recomputation mix of each run of one layer kind,
/// and each weight source the stage could use.
fn stage_options(c: &ConfigCosts, split: &[u32]) -> Vec<Vec<Stage>> {
    let mut start = 0u32;
    split
        .iter()
        .enumerate()
        .map(|(j, n)| {
            let sources: &[WeightSource] = if c.sram_could_hold(j as u32) {
                &WeightSource::ALL
            } else {
                &[WeightSource::Dram]
            };
            let runs = segments(&c.layout, start, *n);
            start += n;
            let mixes: Vec<Vec<RecomputeCounts>> = runs
                .iter()
                .map(|len| mode_mixes(*len).collect::<Vec<_>>())
                .multi_cartesian_product()
                .collect();
            mixes
                .into_iter()
                .flat_map(|recompute| {
                    sources.iter().map(move |w| Stage {
                        layers: *n,
                        recompute: recompute.clone(),
                        weights: *w,
                        park: Vec::new(),
                        dies: None,
                    })
                })
                .collect()
        })
        .collect()
}

/// Lengths of the runs of one layer kind among layers `start .. start + n`.
fn segments(layout: &LayerLayout, start: u32, n: u32) -> Vec<u32> {
    let mut out: Vec<(usize, u32)> = Vec::new();
    for k in layout.kinds_in(start, n) {
        match out.last_mut() {
            Some((kind, len)) if *kind == k => *len += 1,
            _ => out.push((k, 1)),
        }
    }
    out.into_iter().map(|(_, len)| len).collect()
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

/// Plans per configuration (an upper estimate with both weight sources everywhere), for the size
/// guard: counted stage by stage over where each stage starts, never enumerated.
fn layouts_count(layout: &LayerLayout, p: u32) -> u64 {
    let layers: u32 = layout.blocks.iter().map(|b| b.layers).sum();
    let stage = |start: u32, n: u32| -> u64 {
        segments(layout, start, n)
            .iter()
            .map(|k| (*k as u64 + 1) * (*k as u64 + 2) / 2)
            .fold(2u64, u64::saturating_mul)
    };
    // ways[s]: plans of the stages still to place when they start at layer s.
    let mut ways = vec![0u64; layers as usize + 1];
    ways[layers as usize] = 1;
    for _ in 0..p {
        let mut next = vec![0u64; layers as usize + 1];
        for start in 0..layers {
            next[start as usize] = (1..=layers - start)
                .map(|n| stage(start, n).saturating_mul(ways[(start + n) as usize]))
                .fold(0u64, u64::saturating_add);
        }
        ways = next;
        if ways.iter().all(|w| *w == 0) {
            break;
        }
    }
    ways[0]
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
    fn the_size_guard_counts_without_enumerating() {
        let m: crate::Model =
            toml::from_str("name='m'\nlayers=4\nhidden=8\nheads=2\nvocab=10\ntied_embeddings=true")
                .unwrap();
        // 4 layers on 2 stages: splits 1+3, 2+2, 3+1; a stage of k layers has 2 (k+1)(k+2)/2
        // options: 6*20 + 12*12 + 20*6 = 384.
        assert_eq!(layouts_count(&m.layout(), 2), 384);
        // GPT-3's 96 layers on 56 stages: astronomically many, counted at once.
        let big: crate::Model = toml::from_str(
            "name='m'\nlayers=96\nhidden=8\nheads=2\nvocab=10\ntied_embeddings=true",
        )
        .unwrap();
        assert!(layouts_count(&big.layout(), 56) > MAX_PLANS);
    }

    #[test]
    fn mode_mixes_count_is_triangular() {
        assert_eq!(mode_mixes(3).count(), 10);
        assert!(mode_mixes(3).all(|m| m.total() == 3));
    }
}
