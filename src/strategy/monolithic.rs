//! `solve` by the monolithic formulation: one MIP over many configurations at once
//! ([`MonolithicMip`]), to benchmark against the decomposition of [`super::decomposition::solve`].
//!
//! The candidates are the memory-feasible configurations in order of their cheap bound. One MIP
//! over thousands of them may be too big, so the MIP takes the first `max_candidates`; every
//! configuration left out is bounded by its cheap bound, so `min(MIP dual bound, cheap bound of
//! the first one left out)` is still a true lower bound. If that leaves the gap open (or the
//! first MIP has no feasible plan), the next `max_candidates` get a MIP of their own, with the
//! incumbent as cutoff, until the next cheap bound is within the gap of the incumbent. With
//! `max_candidates` at least the number of candidates it is one MIP over the whole space.

use std::time::Instant;

use crate::cost::Evaluation;
use crate::error::{Error, InfeasibleReason};
use crate::formulation::monolithic::MonolithicMip;
use crate::formulation::{RawStatus, SolverOptions};
use crate::instance::Instance;
use crate::plan::Plan;
use crate::solution::{ConfigStats, Found, Method, Solution};

use super::{candidates, infeasible, local, no_plan, score, Observer, SearchOptions};

/// Configurations in one monolithic MIP unless told otherwise.
pub const DEFAULT_MAX_CANDIDATES: usize = 64;

/// How the monolithic solve runs, beyond [`SearchOptions`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonolithicOptions {
    /// Configurations per MIP (at least 1).
    pub max_candidates: usize,
}

impl Default for MonolithicOptions {
    fn default() -> Self {
        MonolithicOptions {
            max_candidates: DEFAULT_MAX_CANDIDATES,
        }
    }
}

/// The size of the MIPs a monolithic solve built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MipSize {
    /// MIPs solved.
    pub mips: usize,
    /// Rows and columns of the largest one.
    pub rows: usize,
    pub columns: usize,
}

/// The monolithic formulation as a strategy: one MIP over up to `max_candidates` configurations
/// at a time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Monolithic {
    pub options: MonolithicOptions,
}

impl super::Strategy for Monolithic {
    fn name(&self) -> &'static str {
        "monolithic"
    }

    fn space(&self) -> &'static str {
        "the decomposition's space, as one MIP choosing the configuration with a binary per configuration"
    }

    fn solve(
        &self,
        inst: &Instance,
        opts: &SearchOptions,
        observer: &dyn Observer,
    ) -> Result<Solution, Error> {
        solve_with(inst, opts, &self.options, observer).map(|(s, _)| s)
    }
}

/// The incumbent: best evaluated plan so far.
struct Best {
    eval: Evaluation,
    plan: Plan,
    mip_objective_s: f64,
    config: usize,
}

/// Finds the plan with the smallest step time by monolithic MIPs over blocks of candidates (see
/// the module documentation) and proves how far it can be from the best; also returns the size
/// of the MIPs it built.
///
/// Each MIP is solved to half the requested gap, the other half left for what placement adds
/// (as [`super::decomposition::solve`] does); its plan is re-scored by the evaluator with the default
/// placement, then refined by local search if asked.
///
/// ```no_run
/// let inst = watos::Instance::load("instances/llama-30b-wafer.toml").unwrap();
/// let (sol, size) = watos::strategy::monolithic::solve_with(&inst, &Default::default(), &Default::default(), &watos::strategy::Silent).unwrap();
/// assert!(sol.lower_bound_s <= sol.evaluation.step_time_s && size.mips >= 1);
/// ```
pub fn solve_with(
    inst: &Instance,
    opts: &SearchOptions,
    mono: &MonolithicOptions,
    observer: &dyn Observer,
) -> Result<(Solution, MipSize), Error> {
    let start = Instant::now();
    let (cands, rejected, closest) = candidates(inst);
    if cands.is_empty() {
        return Err(infeasible(inst, closest, InfeasibleReason::Aggregate));
    }
    let target = opts.solver.gap;
    let per_mip = mono.max_candidates.max(1);
    let deadline = opts
        .solver
        .time_limit_s
        .map(|t| start + std::time::Duration::from_secs_f64(t.max(0.0)));
    let out_of_time = || deadline.is_some_and(|d| Instant::now() >= d);
    observer.start(cands.len() as u64, "configurations");
    let mut best: Option<Best> = None;
    // Least dual bound of the MIPs solved so far; the candidates from `next` on are bounded by
    // their cheap bounds.
    let mut mip_bound = f64::INFINITY;
    let mut next = 0;
    let mut nodes = 0;
    let mut limited = false;
    let mut size = MipSize::default();
    while next < cands.len() && !out_of_time() {
        let incumbent = best.as_ref().map_or(f64::INFINITY, |b| b.eval.step_time_s);
        if cands[next].bound_s >= incumbent * (1.0 - target) {
            break;
        }
        let end = (next + per_mip).min(cands.len());
        let block = &cands[next..end];
        let mip = MonolithicMip::ideal(inst, &block.iter().map(|c| &c.costs).collect::<Vec<_>>());
        size.mips += 1;
        size.rows = size.rows.max(mip.rows());
        size.columns = size.columns.max(mip.columns());
        let mut o = SolverOptions {
            gap: target / 2.0,
            ..opts.solver
        };
        if let Some(d) = deadline {
            o.time_limit_s = Some(
                d.saturating_duration_since(Instant::now())
                    .as_secs_f64()
                    .max(0.01),
            );
        }
        let res = mip.solve(&o, incumbent.is_finite().then_some(incumbent))?;
        nodes += res.nodes;
        limited |= res.status == RawStatus::Limit;
        mip_bound = mip_bound.min(res.bound_s);
        next = end;
        observer.advance(block.len() as u64);
        if let (Some(k), Some(raw)) = (res.choice, res.plan) {
            let k = k + (end - block.len());
            let (plan, eval) = score(inst, &cands[k].costs, raw)?;
            if eval.feasible && eval.step_time_s < incumbent {
                best = Some(Best {
                    eval,
                    plan,
                    mip_objective_s: res.objective_s,
                    config: k,
                });
            }
        }
    }
    observer.finish();
    let Some(best) = best else {
        return Err(no_plan(
            inst,
            closest,
            limited || out_of_time(),
            next,
            cands.len(),
        ));
    };
    let mip_plan_step_time_s = best.eval.step_time_s;
    let (plan, evaluation) = local::refine_if(
        opts.local_search,
        inst,
        &cands[best.config].costs,
        best.plan,
        best.eval,
    );
    let left_out = cands.get(next).map_or(f64::INFINITY, |c| c.bound_s);
    let solution = Solution::conclude(
        Found {
            plan,
            evaluation,
            bound_s: mip_bound.min(left_out),
            mip_objective_s: best.mip_objective_s,
            mip_plan_step_time_s,
            configs: ConfigStats {
                total: cands.len() + rejected,
                memory_infeasible: rejected,
                solved: next,
                pruned: cands.len() - next,
            },
            nodes,
            out_of_time: out_of_time(),
            limited,
        },
        &opts.solver,
        start,
        Method::Monolithic,
    );
    Ok((solution, size))
}
