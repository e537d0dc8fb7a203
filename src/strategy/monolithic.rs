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

use crate::cost::{ConfigCosts, Evaluation};
use crate::error::{Error, InfeasibleReason};
use crate::formulation::monolithic::MonolithicMip;
use crate::formulation::{Deadline, RawStatus, SolverOptions};
use crate::instance::Instance;
use crate::plan::Plan;
use crate::solution::{ConfigStats, Found, Method, Solution};

use super::space::Frontier;
use super::{infeasible, local, next_candidates, no_plan, score, Observer, SearchOptions};

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
    costs: ConfigCosts,
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
    let mut frontier = Frontier::new(inst);
    let target = opts.solver.gap;
    let per_mip = mono.max_candidates.max(1);
    let deadline = Deadline::of(start, &opts.solver);
    let out_of_time = || deadline.passed();
    observer.start(frontier.total as u64, "configurations");
    let mut best: Option<Best> = None;
    // Least dual bound of the MIPs solved so far; the configurations still in the frontier are
    // bounded by their own bounds.
    let mut mip_bound = f64::INFINITY;
    let (mut solved, mut nodes, mut limited, mut first_plan_s) = (0, 0, false, None);
    let mut size = MipSize::default();
    while !out_of_time() {
        let incumbent = best.as_ref().map_or(f64::INFINITY, |b| b.eval.step_time_s);
        let block = next_candidates(inst, &mut frontier, per_mip);
        let Some(first) = block.first() else { break };
        if first.bound_s >= incumbent * (1.0 - target) {
            // Back where it came from, for the final bound.
            mip_bound = mip_bound.min(first.bound_s);
            break;
        }
        let mip = MonolithicMip::ideal(inst, &block.iter().map(|c| &c.costs).collect::<Vec<_>>());
        size.mips += 1;
        size.rows = size.rows.max(mip.rows());
        size.columns = size.columns.max(mip.columns());
        let o = deadline.limit(&SolverOptions {
            gap: target / 2.0,
            ..opts.solver
        });
        let res = mip.solve(&o, incumbent.is_finite().then_some(incumbent))?;
        nodes += res.nodes;
        limited |= res.status == RawStatus::Limit;
        mip_bound = mip_bound.min(res.bound_s);
        solved += block.len();
        observer.advance(block.len() as u64);
        if let (Some(k), Some(raw)) = (res.choice, res.plan) {
            let costs = block[k].costs.clone();
            let (plan, eval) = score(inst, &costs, raw)?;
            if eval.feasible && eval.step_time_s < incumbent {
                first_plan_s.get_or_insert_with(|| start.elapsed().as_secs_f64());
                best = Some(Best {
                    eval,
                    plan,
                    mip_objective_s: res.objective_s,
                    costs,
                });
            }
        }
    }
    observer.finish();
    let Some(best) = best else {
        if solved == 0 && frontier.open() == 0 {
            return Err(infeasible(
                inst,
                frontier.closest,
                InfeasibleReason::Aggregate,
            ));
        }
        return Err(no_plan(
            inst,
            frontier.closest,
            limited || out_of_time(),
            solved,
            frontier.total,
        ));
    };
    let mip_plan_step_time_s = best.eval.step_time_s;
    let (plan, evaluation) =
        local::refine_if(opts.local_search, inst, &best.costs, best.plan, best.eval);
    let solution = Solution::conclude(
        inst,
        Found {
            plan,
            evaluation,
            bound_s: mip_bound.min(frontier.least_bound()),
            mip_objective_s: best.mip_objective_s,
            mip_plan_step_time_s,
            configs: ConfigStats {
                total: frontier.total,
                memory_infeasible: frontier.memory_infeasible,
                solved,
                pruned: frontier
                    .total
                    .saturating_sub(frontier.memory_infeasible + solved),
            },
            nodes,
            out_of_time: out_of_time(),
            limited,
            first_plan_s,
        },
        &opts.solver,
        start,
        Method::Monolithic,
        super::decomposition::SPACE,
    );
    Ok((solution, size))
}
