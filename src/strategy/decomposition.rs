//! The decomposition: branch-and-bound over configurations, HiGHS below, the evaluator as judge.
//!
//! Configurations are visited in order of a cheap valid lower bound; each one's MIP is solved with
//! the best evaluated step time so far as cutoff. The search stops when every unvisited
//! configuration's bound is within the requested gap of the incumbent. The proven lower bound is
//! the least of the solved configurations' dual bounds and the unvisited ones' cheap bounds.

use std::time::Instant;

use crate::cost::{plan_error, Evaluation};
use crate::error::{Error, InfeasibleReason};
use crate::formulation::{MipComm, RawStatus, SolverOptions, StageMip};
use crate::instance::Instance;
use crate::plan::Plan;
use crate::solution::{ConfigStats, Found, Method, Solution};

use super::{candidates, infeasible, local, no_plan, score, Candidate, Observer, SearchOptions};

/// The default strategy: branch-and-bound over configurations, one MIP per configuration.
#[derive(Debug, Clone, Copy, Default)]
pub struct Decomposition;

impl super::Strategy for Decomposition {
    fn name(&self) -> &'static str {
        "decomposition"
    }

    fn space(&self) -> &'static str {
        "every configuration (data, tensor, pipeline degrees, micro-batch, sequence parallelism, ZeRO-1); per stage its layers, recomputation of each layer, weights in SRAM or DRAM, and bytes parked on every other stage"
    }

    fn solve(
        &self,
        inst: &Instance,
        opts: &SearchOptions,
        observer: &dyn Observer,
    ) -> Result<Solution, Error> {
        solve(inst, opts, observer)
    }
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
        let res =
            StageMip::new(costs, comm, None).solve(opts, cutoff.is_finite().then_some(cutoff))?;
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
/// let sol = watos::strategy::solve(&inst, &Default::default()).unwrap();
/// assert!(sol.lower_bound_s <= sol.evaluation.step_time_s);
/// ```
pub fn solve(
    inst: &Instance,
    opts: &SearchOptions,
    observer: &dyn Observer,
) -> Result<Solution, Error> {
    let start = Instant::now();
    let (cands, rejected, closest) = candidates(inst);
    if cands.is_empty() {
        return Err(infeasible(inst, closest, InfeasibleReason::Aggregate));
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
    observer.start(cands.len() as u64, "configurations");
    // Phase 1: configurations in order of their cheap bound.
    for (k, cand) in cands.iter().enumerate() {
        if run.bounds[k] >= run.incumbent() * (1.0 - target) || run.out_of_time() {
            break;
        }
        let o = run.options(&opts.solver, target / 2.0);
        let cutoff = run.incumbent();
        run.solve(k, MipComm::ideal(inst, &cand.costs), true, &o, cutoff)?;
        observer.advance(1);
    }
    observer.finish();
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
        let placement = first.plan.placement(inst.fabric()).map_err(plan_error)?;
        let comm = MipComm::of_placement(inst, &cands[k].costs, &placement);
        let o = run.options(&opts.solver, target / 2.0);
        let cutoff = run.incumbent();
        run.solve(k, comm, false, &o, cutoff)?;
    }
    let Some(best) = run.best.take() else {
        return Err(infeasible(inst, closest, InfeasibleReason::PerDevice));
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
        .ok_or_else(|| infeasible(inst, None, InfeasibleReason::PerDevice))?;
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
        Method::Decomposition,
    ))
}
