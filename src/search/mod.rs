//! `watos solve`: branch-and-bound over configurations, HiGHS below, the evaluator as judge.
//!
//! Configurations are visited in order of a cheap valid lower bound; each one's MIP is solved with
//! the best evaluated step time so far as cutoff. The search stops when every unvisited
//! configuration's bound is within the requested gap of the incumbent. The proven lower bound is
//! the least of the solved configurations' dual bounds and the unvisited ones' cheap bounds.

pub mod exhaustive;
pub mod local;
pub mod monolithic;

use std::time::Instant;

use serde::Serialize;

use crate::cost::config::{Config, ConfigCosts};
use crate::cost::{evaluate_with, Evaluation};
use crate::error::Error;
use crate::formulation::space::{configs, memory_need, quick_bound, MemoryNeed};
use crate::formulation::{MipComm, RawStatus, SolverOptions, StageMip, RELAXATIONS};
use crate::instance::Instance;
use crate::plan::Plan;

/// How `solve` runs.
#[derive(Debug, Clone)]
pub struct SearchOptions {
    pub solver: SolverOptions,
    /// Refine the MIP's plan with evaluator-scored local search.
    pub local_search: bool,
    /// Show a progress bar.
    pub progress: bool,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            solver: SolverOptions::default(),
            local_search: true,
            progress: false,
        }
    }
}

/// How the search ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Proven within the requested gap.
    Optimal,
    /// A time limit stopped the search; the gap says how far it got.
    TimeLimit,
    /// A node limit stopped a MIP; the gap says how far it got.
    NodeLimit,
    /// Every configuration was settled, but the real placement's communication costs more than
    /// the MIP's ideal by more than the requested gap (see `relaxations`).
    PlacementGap,
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
    /// `mip` or `exhaustive`.
    pub method: String,
}

/// One configuration ready to search.
pub(crate) struct Candidate {
    pub costs: ConfigCosts,
    pub bound_s: f64,
}

/// Configurations with their coefficients and cheap bounds, the memory-infeasible ones apart
/// (with the one that comes closest, for the explanation).
pub(crate) fn candidates(inst: &Instance) -> (Vec<Candidate>, usize, Option<(Config, MemoryNeed)>) {
    use rayon::prelude::*;
    let all = configs(inst);
    let scored: Vec<(ConfigCosts, MemoryNeed)> = all
        .par_iter()
        .map(|c| {
            let costs = ConfigCosts::new(inst, *c);
            let need = memory_need(&costs);
            (costs, need)
        })
        .collect();
    let mut closest: Option<(Config, MemoryNeed)> = None;
    let mut out = Vec::new();
    let mut rejected = 0;
    for (costs, need) in scored {
        if need.fits() {
            let bound_s = quick_bound(inst, &costs);
            out.push(Candidate { costs, bound_s });
        } else {
            rejected += 1;
            let ratio = need.total_bytes() / need.available_bytes;
            if closest
                .as_ref()
                .is_none_or(|(_, n)| ratio < n.total_bytes() / n.available_bytes)
            {
                closest = Some((costs.config, need));
            }
        }
    }
    out.sort_by(|a, b| {
        a.bound_s
            .total_cmp(&b.bound_s)
            .then(a.costs.config.cmp(&b.costs.config))
    });
    (out, rejected, closest)
}

/// The search ended without a plan: a limit stopped it first (not infeasibility), or nothing fits.
pub(crate) fn no_plan(
    inst: &Instance,
    closest: Option<(Config, MemoryNeed)>,
    stopped: bool,
    settled: usize,
    total: usize,
) -> Error {
    if stopped {
        Error::Limit(format!("the limit ran out after {settled} of {total} configurations, before any feasible plan was found"))
    } else {
        infeasible(inst, closest, true)
    }
}

/// Why nothing fits, with figures.
pub(crate) fn infeasible(
    inst: &Instance,
    closest: Option<(Config, MemoryNeed)>,
    all_failed_per_device: bool,
) -> Error {
    let dram = inst.hardware.dram_bytes() * inst.fabric().healthy_count() as f64;
    let mut msg = format!(
        "{} does not fit {} ({} healthy devices, {:.1} GB of DRAM in all)",
        inst.model.name,
        inst.hardware.name,
        inst.fabric().healthy_count(),
        dram / crate::units::GB
    );
    if let Some((c, need)) = closest {
        msg.push_str(&format!(
            ": {}. DRAM capacity is what runs out",
            need.explain(&c)
        ));
    }
    if all_failed_per_device {
        msg.push_str("; some configurations fit in aggregate, but in each one some device overflows even with activations and optimizer state parked on other stages");
    }
    Error::Infeasible(msg)
}

/// The incumbent: best evaluated plan so far.
struct Best {
    eval: Evaluation,
    plan: Plan,
    mip_objective_s: f64,
    config: usize,
}

/// Search state over the candidate configurations.
struct Run<'a> {
    inst: &'a Instance,
    cands: &'a [Candidate],
    /// Best proven bound per candidate (the cheap bound until its MIP is solved).
    bounds: Vec<f64>,
    solved: Vec<bool>,
    best: Option<Best>,
    nodes: u64,
    limited: bool,
    deadline: Option<Instant>,
}

impl Run<'_> {
    fn incumbent(&self) -> f64 {
        self.best
            .as_ref()
            .map_or(f64::INFINITY, |b| b.eval.step_time_s)
    }

    fn out_of_time(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    fn options(&self, base: &SolverOptions, gap: f64) -> SolverOptions {
        let mut o = SolverOptions { gap, ..*base };
        if let Some(d) = self.deadline {
            o.time_limit_s = Some(
                d.saturating_duration_since(Instant::now())
                    .as_secs_f64()
                    .max(0.01),
            );
        }
        o
    }

    /// Solves candidate `k`'s MIP with `comm`; keeps its bound (ideal communication only) and any
    /// better evaluated plan. `cutoff`: only plans below it matter.
    fn solve(
        &mut self,
        k: usize,
        comm: MipComm,
        bounding: bool,
        opts: &SolverOptions,
        cutoff: f64,
    ) -> Result<(), Error> {
        let costs = &self.cands[k].costs;
        let res = StageMip::new(self.inst, costs, comm, None)
            .solve(opts, cutoff.is_finite().then_some(cutoff))?;
        self.nodes += res.nodes;
        if res.status == RawStatus::Limit {
            self.limited = true;
        }
        if bounding {
            self.solved[k] = true;
            self.bounds[k] = self.bounds[k].max(res.bound_s);
        }
        if let Some(raw) = res.plan {
            let (plan, eval) = score(self.inst, costs, raw)?;
            if eval.feasible && eval.step_time_s < self.incumbent() {
                self.best = Some(Best {
                    eval,
                    plan,
                    mip_objective_s: res.objective_s,
                    config: k,
                });
            }
        }
        Ok(())
    }

    fn lower_bound(&self) -> f64 {
        self.bounds.iter().copied().fold(f64::INFINITY, f64::min)
    }
}

/// Finds the plan with the smallest step time and proves how far it can be from the best.
///
/// Three phases: branch-and-bound over configurations (HiGHS at half the requested gap, the other
/// half left for what placement adds); the incumbent's configuration solved again with its real
/// placement's communication costs (a primal heuristic); then, while the gap is above the target,
/// the configurations whose bounds hold it open are solved to a tighter gap.
///
/// ```no_run
/// let inst = watos::Instance::load("instances/gpt3-175b-wafer.toml").unwrap();
/// let sol = watos::search::solve(&inst, &Default::default()).unwrap();
/// assert!(sol.lower_bound_s <= sol.evaluation.step_time_s);
/// ```
pub fn solve(inst: &Instance, opts: &SearchOptions) -> Result<Solution, Error> {
    let start = Instant::now();
    let (cands, rejected, closest) = candidates(inst);
    if cands.is_empty() {
        return Err(infeasible(inst, closest, false));
    }
    let target = opts.solver.gap;
    let mut run = Run {
        inst,
        cands: &cands,
        bounds: cands.iter().map(|c| c.bound_s).collect(),
        solved: vec![false; cands.len()],
        best: None,
        nodes: 0,
        limited: false,
        deadline: opts
            .solver
            .time_limit_s
            .map(|t| start + std::time::Duration::from_secs_f64(t)),
    };
    let bar = crate::report::progress_bar(opts.progress, cands.len() as u64, "configurations");
    // Phase 1: configurations in order of their cheap bound.
    for (k, cand) in cands.iter().enumerate() {
        if run.bounds[k] >= run.incumbent() * (1.0 - target) || run.out_of_time() {
            break;
        }
        let o = run.options(&opts.solver, target / 2.0);
        let cutoff = run.incumbent();
        run.solve(k, MipComm::ideal(inst, &cand.costs), true, &o, cutoff)?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let Some(first) = run.best.as_ref() else {
        let settled = run.solved.iter().filter(|s| **s).count();
        return Err(no_plan(
            inst,
            closest,
            run.limited || run.out_of_time(),
            settled,
            cands.len(),
        ));
    };
    // Phase 2: the incumbent's configuration with its own placement's communication.
    let k = first.config;
    if !run.out_of_time() {
        let placement = first
            .plan
            .placement(inst.fabric())
            .map_err(crate::cost::plan_error)?;
        let comm = MipComm::of_placement(inst, &cands[k].costs, &placement);
        let o = run.options(&opts.solver, target / 2.0);
        let cutoff = run.incumbent();
        run.solve(k, comm, false, &o, cutoff)?;
    }
    let Some(best) = run.best.take() else {
        return Err(infeasible(inst, closest, true));
    };
    let mip_plan_step_time_s = best.eval.step_time_s;
    let (plan, evaluation) = local::refine_if(
        opts.local_search,
        inst,
        &cands[best.config].costs,
        best.plan,
        best.eval,
    );
    run.best = Some(Best {
        eval: evaluation,
        plan,
        mip_objective_s: best.mip_objective_s,
        config: best.config,
    });
    // Phase 3: tighten the bounds that keep the gap open.
    loop {
        let goal = run.incumbent() * (1.0 - target);
        let open: Vec<usize> = (0..cands.len())
            .filter(|k| run.bounds[*k] < goal && !(run.solved[*k] && run.bounds[*k] >= goal))
            .collect();
        let Some(k) = open
            .into_iter()
            .min_by(|a, b| run.bounds[*a].total_cmp(&run.bounds[*b]))
        else {
            break;
        };
        if run.out_of_time() {
            break;
        }
        let before = run.bounds[k];
        let o = run.options(&opts.solver, target / 10.0);
        let cutoff = run.incumbent();
        run.solve(k, MipComm::ideal(inst, &cands[k].costs), true, &o, cutoff)?;
        if run.bounds[k] <= before && run.solved[k] && run.limited {
            break;
        }
        if run.bounds[k] < goal {
            // Proven as far as HiGHS can at this gap: the rest of the gap is placement.
            run.bounds[k] = run.bounds[k].max(before);
            break;
        }
    }
    let best = run
        .best
        .take()
        .ok_or_else(|| infeasible(inst, None, true))?;
    let solved = run.solved.iter().filter(|s| **s).count();
    Ok(Solution::conclude(
        Found {
            plan: best.plan,
            evaluation: best.eval,
            bound_s: run.lower_bound(),
            mip_objective_s: best.mip_objective_s,
            mip_plan_step_time_s,
            configs: ConfigStats {
                total: cands.len() + rejected,
                memory_infeasible: rejected,
                solved,
                pruned: cands.len() - solved,
            },
            nodes: run.nodes,
            out_of_time: run.out_of_time(),
            limited: run.limited,
        },
        &opts.solver,
        start,
        "mip",
    ))
}

/// What a search found and how it stopped.
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
}

impl Solution {
    /// The gap and status of what a search found: optimal within the target; otherwise stopped by
    /// time or nodes; otherwise the placement relaxation is what keeps the gap open.
    pub(crate) fn conclude(
        found: Found,
        solver: &SolverOptions,
        start: Instant,
        method: &str,
    ) -> Self {
        let step = found.evaluation.step_time_s;
        let lower_bound_s = found.bound_s.min(step);
        let gap = (step - lower_bound_s) / step;
        let status = if gap <= solver.gap + 1e-12 {
            Status::Optimal
        } else if found.out_of_time {
            Status::TimeLimit
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
            relaxations: RELAXATIONS.iter().map(|s| s.to_string()).collect(),
            method: method.into(),
        }
    }
}

/// The evaluator's verdict on a MIP plan, default placement: as returned, or with its parking
/// untangled if that is feasible and no slower (both formulations do).
pub(crate) fn score(
    inst: &Instance,
    costs: &ConfigCosts,
    raw: Plan,
) -> Result<(Plan, Evaluation), Error> {
    let placement = raw
        .placement(inst.fabric())
        .map_err(crate::cost::plan_error)?;
    let tidy = local::untangle_parking(&raw, &|j| costs.inflight(j));
    let e_raw = evaluate_with(inst, &raw, costs, &placement);
    let e_tidy = evaluate_with(inst, &tidy, costs, &placement);
    Ok(
        if e_tidy.feasible && e_tidy.step_time_s <= e_raw.step_time_s {
            (tidy, e_tidy)
        } else {
            (raw, e_raw)
        },
    )
}
