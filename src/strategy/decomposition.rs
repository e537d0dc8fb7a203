//! The decomposition: best-first branch-and-bound over configurations, HiGHS below, the evaluator
//! as judge.
//!
//! Every configuration starts at a bound that needs no costs ([`space::compute_bound`]); when it is
//! the least open bound it is refined to the stage model's cheap bound (and a few simple plans of
//! it are scored, which gives the first plans within milliseconds), and when it comes up again its
//! MIP is solved with the best evaluated step time as cutoff. The search stops when the least open
//! bound is within the requested gap of the incumbent, or at a limit; either way the proven lower
//! bound is that least open bound. MIPs at the head of the frontier are solved a batch at a time
//! on rayon's threads, each with the same cutoff, so results do not depend on timing.
//!
//! Where every configuration is settled but the placement holds the gap open, primal heuristics
//! only: the best configuration re-solved with its placement's communication, local search from a
//! few starts, and a second search without parking in the time left. None of them moves the bound.

use std::time::{Duration, Instant};

use rayon::prelude::*;

use crate::cost::{evaluate_with, plan_error, ConfigCosts, Evaluation};
use crate::error::{Error, InfeasibleReason};
use crate::formulation::{Deadline, MipComm, RawStatus, SolverOptions, StageMip, StageMipResult};
use crate::instance::Instance;
use crate::plan::{Plan, Recompute};
use crate::solution::{ConfigStats, Found, Method, Solution};

use super::space::{Entry, Frontier, Refinement};
use super::{infeasible, local, no_plan, score, Observer, SearchOptions};

/// The default strategy: branch-and-bound over configurations, one MIP per configuration.
#[derive(Debug, Clone, Copy, Default)]
pub struct Decomposition;

impl super::Strategy for Decomposition {
    fn name(&self) -> &'static str {
        "decomposition"
    }

    fn space(&self) -> &'static str {
        SPACE
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

/// The space the decomposition (and the monolithic MIP, and enumeration) search.
pub const SPACE: &str = "every configuration (data, expert, tensor, pipeline degrees, every micro-batch, interleaving); per stage its layers, the recomputation of each layer, weights in SRAM or DRAM, and bytes parked on every other stage";

/// How often the progress count of settled configurations is refreshed.
const COUNT_EVERY: Duration = Duration::from_millis(500);

/// The first slice of one MIP, in branch-and-bound nodes (nodes, not seconds: the same inputs
/// give the same plan on any machine under any load); each return gets four times the last.
const MIP_SLICE_NODES: u64 = 500;

/// Replaced incumbents local search also starts from.
const RUNNERS_UP: usize = 2;

/// Branch-and-bound nodes of a second-opinion solve with a placement's communication
/// (`Run::solve_placed`).
const PLACED_NODES: u64 = 4 * MIP_SLICE_NODES;

/// The incumbent: best evaluated plan so far.
struct Best {
    eval: Evaluation,
    plan: Plan,
    mip_objective_s: f64,
    /// The evaluator's step time of the plan as the MIP returned it (before local search).
    mip_plan_step_time_s: f64,
    costs: ConfigCosts,
}

/// Search state.
struct Run<'a> {
    inst: &'a Instance,
    start: Instant,
    deadline: Deadline,
    best: Option<Best>,
    first_plan_s: Option<f64>,
    nodes: u64,
    /// A node limit stopped some MIP.
    limited: bool,
    /// The user set a node limit (else MIPs run in slices of nodes).
    node_limited: bool,
    solved: usize,
    /// The last incumbents replaced, oldest first: local search ends where it starts, and a
    /// slightly slower plan can end faster.
    runners_up: Vec<(ConfigCosts, Plan, Evaluation)>,
}

impl Run<'_> {
    fn incumbent(&self) -> f64 {
        self.best
            .as_ref()
            .map_or(f64::INFINITY, |b| b.eval.step_time_s)
    }

    fn stopped(&self) -> bool {
        self.deadline.passed()
    }

    fn options(&self, base: &SolverOptions, gap: f64) -> SolverOptions {
        self.deadline.limit(&SolverOptions { gap, ..*base })
    }

    /// Keeps `plan` if it is feasible and faster than the incumbent.
    fn offer(&mut self, costs: &ConfigCosts, plan: Plan, eval: Evaluation, mip_objective_s: f64) {
        if !eval.feasible {
            return;
        }
        let step = eval.step_time_s;
        if step < self.incumbent() {
            self.first_plan_s
                .get_or_insert_with(|| self.start.elapsed().as_secs_f64());
            let replaced = self.best.replace(Best {
                mip_plan_step_time_s: step,
                eval,
                plan,
                mip_objective_s,
                costs: costs.clone(),
            });
            if let Some(b) = replaced {
                self.runners_up.push((b.costs, b.plan, b.eval));
                if self.runners_up.len() > RUNNERS_UP {
                    self.runners_up.remove(0);
                }
            }
        }
    }

    /// Scores the simplest plans of a configuration, Megatron-LM's way: layers split evenly, one
    /// recomputation mode for all, weights in DRAM, nothing parked. Microseconds each, and often
    /// close: the first incumbents come from here.
    fn simple_plans(&mut self, costs: &ConfigCosts) {
        for mode in Recompute::ALL {
            let plan = base_plan(costs, mode);
            if plan
                .stages
                .iter()
                .any(|s| s.layers < costs.config.interleave)
            {
                return;
            }
            let Ok(g) = plan.placement(self.inst.fabric()) else {
                return;
            };
            let eval = evaluate_with(self.inst, &plan, costs, &g);
            self.offer(costs, plan, eval, f64::NAN);
        }
    }

    /// Solves a configuration with the communication of `plan`'s placement (a primal heuristic:
    /// real costs, so its plan needs no placement luck), offers the plan and returns it.
    fn solve_placed(
        &mut self,
        costs: &ConfigCosts,
        plan: &Plan,
        parking: Parking,
        o: &SolverOptions,
    ) -> Result<Option<(Plan, Evaluation)>, Error> {
        let placement = plan.placement(self.inst.fabric()).map_err(plan_error)?;
        let mut comm = match parking {
            Parking::Shared => MipComm::of_placement_shared(self.inst, costs, &placement),
            _ => MipComm::of_placement(self.inst, costs, &placement),
        };
        comm.allow_parking &= parking != Parking::Off;
        // No bound rests on the second opinions: a budget of nodes. Without parking the plan is
        // a start for local search, worth having even if a little slower than the incumbent.
        let o = match parking {
            Parking::Alone => *o,
            _ => SolverOptions {
                node_limit: Some(o.node_limit.unwrap_or(PLACED_NODES).min(PLACED_NODES)),
                ..*o
            },
        };
        let cutoff = (parking != Parking::Off).then(|| self.incumbent());
        let res = StageMip::new(costs, comm, None).solve(&o, cutoff)?;
        self.nodes += res.nodes;
        let Some(raw) = res.plan else {
            return Ok(None);
        };
        let (plan, eval) = score(self.inst, costs, raw)?;
        let found = eval.feasible.then(|| (plan.clone(), eval.clone()));
        // Its objective is at this placement's communication; the diagnostics report the ideal
        // MIP's at the plan (filled in at the end, as for a simple plan).
        self.offer(costs, plan, eval, f64::NAN);
        Ok(found)
    }

    /// [`Run::solve_placed`] with parking priced alone, and if that plan parks, shared and off
    /// too; returns the plan without parking.
    fn solve_placed_all(
        &mut self,
        costs: &ConfigCosts,
        plan: &Plan,
        o: &SolverOptions,
    ) -> Result<Option<(Plan, Evaluation)>, Error> {
        let found = self.solve_placed(costs, plan, Parking::Alone, o)?;
        let parks = |p: &Plan| p.stages.iter().any(|s| !s.park.is_empty());
        if !found.as_ref().is_some_and(|(p, _)| parks(p)) && !parks(plan) {
            return Ok(None);
        }
        self.solve_placed(costs, plan, Parking::Shared, o)?;
        self.solve_placed(costs, plan, Parking::Off, o)
    }

    /// Takes a solved MIP's figures and plan.
    fn absorb(&mut self, costs: &ConfigCosts, res: StageMipResult) -> Result<f64, Error> {
        self.nodes += res.nodes;
        self.solved += 1;
        if res.status == RawStatus::Limit && self.node_limited {
            self.limited = true;
        }
        if let Some(raw) = res.plan {
            let (plan, eval) = score(self.inst, costs, raw)?;
            self.offer(costs, plan, eval, res.objective_s);
        }
        Ok(res.bound_s)
    }
}

/// Finds the plan with the smallest step time and proves how far it can be from the best (see the
/// module documentation); then re-solves the best configuration with its own placement's
/// communication to a tenth of the gap (a primal heuristic) and refines the plan by local search.
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
    let mut frontier = Frontier::new(inst);
    let target = opts.solver.gap;
    let mut run = Run {
        inst,
        start,
        deadline: Deadline::of(start, &opts.solver),
        best: None,
        first_plan_s: None,
        nodes: 0,
        limited: false,
        node_limited: opts.solver.node_limit.is_some(),
        solved: 0,
        runners_up: Vec::new(),
    };
    observer.start(frontier.total as u64, "configurations");
    let batch = rayon::current_num_threads().max(1);
    // Whether some configuration's memory floor fit (a plan may exist), and the configurations
    // whose MIP was solved.
    let mut any_fit = false;
    let mut settled = std::collections::HashSet::new();
    // Configurations whose MIP was solved tighter already: what is left is the placement gap.
    let mut tightened = std::collections::HashSet::new();
    // Configurations solved with their real placement's communication.
    let mut placed = std::collections::HashSet::new();
    // Slices a configuration's MIP has used up.
    let mut slices = std::collections::HashMap::new();
    // Starts for local search besides the incumbent.
    let mut starts: Vec<(ConfigCosts, Plan, Evaluation)> = Vec::new();
    let mut last_count = Instant::now();
    while !run.stopped() {
        let goal = run.incumbent() * (1.0 - target);
        if frontier.least_bound() >= goal {
            break;
        }
        let Some(e) = frontier.pop() else { break };
        match e.refinement {
            Refinement::Compute => {
                if let Some((costs, bounds)) = frontier.refine(inst, &e) {
                    any_fit = true;
                    let q = bounds.iter().map(|b| b.1).fold(f64::INFINITY, f64::min);
                    if q < run.incumbent() {
                        run.simple_plans(&costs);
                    }
                    frontier.push_classes(&e, &bounds);
                }
            }
            Refinement::Quick => {
                // The LP relaxations of the next few, at once: milliseconds each, and they rule
                // out most configurations the cheap bound could not.
                let todo = take_batch(&mut frontier, e, batch * 8, goal);
                let o = run.options(&opts.solver, target / 2.0);
                for (e, lp) in todo.iter().zip(lp_batch(inst, &todo, &o)) {
                    frontier.push(e, lp?, Refinement::Lp);
                }
            }
            Refinement::Lp => {
                let todo = take_batch(&mut frontier, e, batch, goal);
                let mut o = run.options(&opts.solver, target / 2.0);
                // Without a node limit, no one MIP may hold the search: it gets a slice of nodes,
                // and comes back with a longer one if its bound still matters.
                let slice = opts.solver.node_limit.is_none().then(|| {
                    let tries = todo
                        .iter()
                        .map(|e| slices.get(&e.index).copied().unwrap_or(0));
                    MIP_SLICE_NODES.saturating_mul(4u64.saturating_pow(tries.max().unwrap_or(0)))
                });
                if let Some(slice) = slice {
                    o.node_limit = Some(slice);
                }
                let cutoff = run.incumbent();
                let results = solve_batch(inst, &todo, &o, cutoff);
                for (e, res) in todo.iter().zip(results) {
                    let (costs, res) = res?;
                    let sliced = slice.is_some() && res.status == RawStatus::Limit;
                    let bound = run.absorb(&costs, res)?;
                    if sliced {
                        *slices.entry(e.index).or_insert(0) += 1;
                        frontier.push(e, bound, Refinement::Lp);
                        continue;
                    }
                    frontier.push(e, bound, Refinement::Solved);
                    settled.insert(e.index / 3);
                }
            }
            Refinement::Solved => {
                // Its MIP's bound holds the gap open. Solved tighter once; after that, what is left
                // is the placement: the MIP's ideal communication against the evaluator's real one.
                if !tightened.insert(e.index) {
                    // Before calling it a placement gap, look for the plan the bound promises
                    // with the configuration's real placement (once per configuration).
                    frontier.push(&e, e.bound_s, Refinement::Solved);
                    if !placed.insert(e.index / 3) {
                        break;
                    }
                    let costs = ConfigCosts::new(inst, e.config);
                    let base = base_plan(&costs, Recompute::None);
                    let o = run.options(&opts.solver, target / 10.0);
                    run.solve_placed_all(&costs, &base, &o)?;
                    continue;
                }
                let o = run.options(&opts.solver, target / 10.0);
                let cutoff = run.incumbent();
                let (costs, res) = solve_batch(inst, std::slice::from_ref(&e), &o, cutoff)
                    .pop()
                    .unwrap_or_else(|| Err(Error::Solver("no result".into())))?;
                let bound = run.absorb(&costs, res)?;
                frontier.push(&e, bound, Refinement::Solved);
            }
        }
        observer.status(run.incumbent(), frontier.least_bound().min(run.incumbent()));
        // Counting what is still open scans the frontier: a few times a second is enough.
        if last_count.elapsed() >= COUNT_EVERY {
            last_count = Instant::now();
            let goal = run.incumbent() * (1.0 - target);
            let open = frontier.open_below(goal);
            observer.settled(frontier.total.saturating_sub(open) as u64);
        }
    }
    if !run.stopped() {
        observer.settled(frontier.total as u64);
    }
    observer.finish();
    let Some(best) = run.best.take() else {
        if !run.stopped() {
            let reason = if any_fit {
                InfeasibleReason::PerDevice
            } else {
                InfeasibleReason::Aggregate
            };
            return Err(infeasible(inst, frontier.closest, reason));
        }
        let settled = settled.len() + frontier.memory_infeasible;
        return Err(no_plan(
            inst,
            frontier.closest,
            true,
            settled.min(frontier.total),
            frontier.total,
        ));
    };
    // The best configuration with its own placement's communication.
    run.best = Some(best);
    if !run.stopped() {
        if let Some(b) = run.best.as_ref() {
            let (costs, plan) = (b.costs.clone(), b.plan.clone());
            // Tighter than the search's MIPs: these only improve the plan. The plan without
            // parking is a start for local search too.
            let o = run.options(&opts.solver, target / 10.0);
            if let Some((plan, eval)) = run.solve_placed_all(&costs, &plan, &o)? {
                starts.push((costs, plan, eval));
            }
        }
    }
    let mut best = run
        .best
        .take()
        .ok_or_else(|| infeasible(inst, None, InfeasibleReason::PerDevice))?;
    starts.insert(
        0,
        (best.costs.clone(), best.plan.clone(), best.eval.clone()),
    );
    // Other starts only where the gap is still open: they cost a local search each.
    if best.eval.step_time_s * (1.0 - target) > frontier.least_bound() {
        starts.extend(std::mem::take(&mut run.runners_up).into_iter().rev());
    } else {
        starts.truncate(1);
    }
    let mut seen: Vec<Plan> = Vec::new();
    starts.retain(|s| {
        let new = !seen.contains(&s.1);
        seen.push(s.1.clone());
        new
    });
    let mut refined: Option<(Plan, Evaluation)> = None;
    for (i, (costs, start, eval)) in starts.into_iter().enumerate() {
        if run.stopped() && refined.is_some() {
            break;
        }
        let step = eval.step_time_s;
        let (plan, eval) = local::refine_if(opts.local_search, inst, &costs, start.clone(), eval);
        if refined
            .as_ref()
            .is_none_or(|r| eval.step_time_s < r.1.step_time_s)
        {
            refined = Some((plan, eval));
            if i > 0 {
                // Another start won: the diagnostics describe it.
                best.costs = costs;
                best.plan = start;
                best.mip_plan_step_time_s = step;
                best.mip_objective_s = f64::NAN;
            }
        }
    }
    let (mut plan, mut evaluation) =
        refined.ok_or_else(|| infeasible(inst, None, InfeasibleReason::PerDevice))?;
    if best.mip_objective_s.is_nan() {
        // A simple plan or a placed MIP's won: the ideal MIP's objective at it, for the same
        // diagnostics as a MIP plan.
        let comm = MipComm::ideal(inst, &best.costs);
        best.mip_objective_s =
            StageMip::new(&best.costs, comm, None).objective_of(&best.plan, inst.fabric());
    }
    // Where only the placement holds the gap open, a second search without parking, in the time
    // left: its plans are plans of this space that no link sharing can slow down, and its MIPs
    // pick configurations by what they reach without parking, which the placement then delivers.
    // On several wafers its best can beat every plan this search found. The bound stays this
    // search's, over the whole space.
    // The search itself finished or not; the second one running into the limit changes nothing.
    let out_of_time = run.stopped();
    let gap_open = evaluation.step_time_s * (1.0 - target) > frontier.least_bound();
    if gap_open && !inst.limits.no_parking && !out_of_time && !run.limited {
        let mut rigid = inst.clone();
        rigid.limits.no_parking = true;
        let o = SearchOptions {
            solver: run.deadline.limit(&opts.solver),
            ..opts.clone()
        };
        if let Ok(alt) = solve(&rigid, &o, &super::Silent) {
            run.nodes += alt.nodes;
            if alt.evaluation.feasible && alt.evaluation.step_time_s < evaluation.step_time_s {
                (plan, evaluation) = (alt.plan, alt.evaluation);
                best.mip_objective_s = alt.mip_objective_s;
                best.mip_plan_step_time_s = alt.mip_plan_step_time_s;
            }
        }
    }
    let mip_plan_step_time_s = best.mip_plan_step_time_s;
    let solved = run.solved.min(frontier.total);
    Ok(Solution::conclude(
        inst,
        Found {
            plan,
            evaluation,
            bound_s: frontier.least_bound(),
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
            nodes: run.nodes,
            out_of_time,
            limited: run.limited,
            first_plan_s: run.first_plan_s,
        },
        &opts.solver,
        start,
        Method::Decomposition,
        SPACE,
    ))
}

/// How a MIP with a placement's communication prices parking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Parking {
    /// Each pair of stages on its own paths, as if no other pair parked.
    Alone,
    /// As if every pair parked at once: the evaluator shares links among the pairs a plan uses
    /// (across a wafer boundary, dozens of flows on one crossing), and the price of a pair alone
    /// can pick parking the evaluator then finds slow.
    Shared,
    /// Nothing parked: a plan no contention can slow down.
    Off,
}

/// A configuration's simplest plan: layers split evenly, one recomputation mode, the default
/// placement.
fn base_plan(costs: &ConfigCosts, mode: Recompute) -> Plan {
    let c = costs.config;
    let mut plan = Plan::uniform(costs.model_layers, c.dp, c.tp, c.pp, c.micro_batch, mode);
    plan.ep = c.ep;
    plan.sequence_parallel = c.sequence_parallel;
    plan.interleave = c.interleave;
    plan.zero1 = c.zero1;
    plan.dp_overlap = c.dp_overlap;
    plan
}

/// `first` and the entries after it at the same refinement whose bound is below `goal`, up to
/// `max` in all.
fn take_batch(frontier: &mut Frontier, first: Entry, max: usize, goal: f64) -> Vec<Entry> {
    let level = first.refinement;
    let mut todo = vec![first];
    while todo.len() < max {
        match frontier.pop() {
            Some(m) if m.refinement == level && m.bound_s < goal => todo.push(m),
            Some(m) => {
                frontier.push(&m, m.bound_s, m.refinement);
                break;
            }
            None => break,
        }
    }
    todo
}

/// The costs of an entry's configuration and the communication its bound may assume: the best
/// any placement of its class allows.
fn entry_model(inst: &Instance, e: &Entry) -> (ConfigCosts, MipComm) {
    let costs = ConfigCosts::new(inst, e.config);
    let mut comm = MipComm::ideal(inst, &costs);
    comm.units = comm.units.map(|u| u.covering(e.class));
    (costs, comm)
}

/// The LP relaxations of some configurations' MIPs at once.
fn lp_batch(inst: &Instance, entries: &[Entry], opts: &SolverOptions) -> Vec<Result<f64, Error>> {
    entries
        .par_iter()
        .map(|e| {
            let (costs, comm) = entry_model(inst, e);
            StageMip::new(&costs, comm, None).lp_bound(opts)
        })
        .collect()
}

/// Solves the MIPs of some configurations at once, each with the same options and cutoff.
fn solve_batch(
    inst: &Instance,
    entries: &[Entry],
    opts: &SolverOptions,
    cutoff: f64,
) -> Vec<Result<(ConfigCosts, StageMipResult), Error>> {
    entries
        .par_iter()
        .map(|e| {
            let (costs, comm) = entry_model(inst, e);
            let res = StageMip::new(&costs, comm, None)
                .solve(opts, cutoff.is_finite().then_some(cutoff))?;
            Ok((costs, res))
        })
        .collect()
}
