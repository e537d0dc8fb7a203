//! Strategies: ways of choosing plans. Each has a space, rules and a search, and returns a plan
//! scored by the one evaluator, so `compare` is a loop over strategies and "watos is never slower
//! than a baseline" is testable. The searches read costs and bounds from `cost` and MIPs from
//! `formulation`; they compute no physics of their own.

pub mod decomposition;
pub mod exhaustive;
pub mod faults;
pub mod gpu_node;
pub mod local;
pub mod megatron;
pub mod monolithic;
pub mod place;
pub mod seeded;
pub mod space;
pub mod streaming;

use crate::cost::bound::{shortfall, MemoryNeed};
use crate::cost::{evaluate_with, plan_error, ConfigCosts, Evaluation};
use crate::error::{Error, Infeasibility, InfeasibleReason};
use crate::formulation::SolverOptions;
use crate::instance::Instance;
use crate::plan::{Config, Plan};
use crate::solution::Solution;

/// How a search runs.
#[derive(Debug, Clone)]
pub struct SearchOptions {
    pub solver: SolverOptions,
    /// Refine the MIP's plan with evaluator-scored local search.
    pub local_search: bool,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            solver: SolverOptions::default(),
            local_search: true,
        }
    }
}

/// Watches a search make progress (the command line draws a bar; tests watch nothing).
pub trait Observer: Sync {
    /// `total` units of `what` to go through.
    fn start(&self, total: u64, what: &str) {
        let _ = (total, what);
    }
    /// `n` more done.
    fn advance(&self, n: u64) {
        let _ = n;
    }
    /// `done` units settled in all (for searches that know the count, not the increments).
    fn settled(&self, done: u64) {
        let _ = done;
    }
    /// The best plan so far and the proven lower bound (seconds per step).
    fn status(&self, incumbent_s: f64, bound_s: f64) {
        let _ = (incumbent_s, bound_s);
    }
    /// The search is over.
    fn finish(&self) {}
}

/// An observer that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Observer for Silent {}

/// A way of choosing plans.
///
/// ```
/// let inst = watos::Instance::load(concat!(env!("CARGO_MANIFEST_DIR"), "/instances/llama3-70b-wafer.toml")).unwrap();
/// let s = watos::strategy::by_name("decomposition").unwrap();
/// let sol = s.solve(&inst, &Default::default(), &watos::strategy::Silent).unwrap();
/// assert!(sol.lower_bound_s <= sol.evaluation.step_time_s);
/// ```
pub trait Strategy {
    /// Its name on the command line.
    fn name(&self) -> &'static str;
    /// What it searches, in a sentence.
    fn space(&self) -> &'static str;
    /// The instance its plans run on and are scored on: by default `inst` with the framework
    /// reserve of its `[limits]` taken off every device's DRAM; a baseline may add its framework's
    /// rules or move to its own hardware. Applying it twice changes nothing.
    fn instance(&self, inst: &Instance) -> Result<Instance, Error> {
        Ok(inst.with_reserve(inst.limits.reserve_bytes()))
    }
    /// The best plan it finds on `inst` as given, scored by the evaluator, with what it proved
    /// ([`run`] first turns the instance into [`Strategy::instance`]).
    fn solve(
        &self,
        inst: &Instance,
        opts: &SearchOptions,
        observer: &dyn Observer,
    ) -> Result<Solution, Error>;
}

/// Every strategy by name: `watos` is watos's own search (the decomposition with the baselines'
/// plans as incumbents, [`seeded`]); the others of watos's formulations; then the baselines.
pub const NAMES: &[&str] = &[
    "watos",
    "decomposition",
    "monolithic",
    "exhaustive",
    "megatron",
    "gpu-node",
    "weight-streaming",
];

/// What `watos compare` runs by default, watos first: every one of these [`by_name`] knows.
pub const COMPARED: &[&str] = &["watos", "megatron", "weight-streaming", "gpu-node"];

/// The strategy of a name in [`NAMES`].
pub fn by_name(name: &str) -> Option<Box<dyn Strategy>> {
    match name {
        "watos" => Some(Box::new(seeded::Watos)),
        "decomposition" => Some(Box::new(decomposition::Decomposition)),
        "monolithic" => Some(Box::new(monolithic::Monolithic::default())),
        "exhaustive" => Some(Box::new(exhaustive::Exhaustive)),
        "megatron" => Some(Box::new(megatron::Megatron::default())),
        "gpu-node" => Some(Box::new(gpu_node::GpuNode)),
        "weight-streaming" => Some(Box::new(streaming::WeightStreaming)),
        _ => None,
    }
}

/// A strategy's answer and the instance it planned on (the one to print and re-score it on).
#[derive(Debug, Clone)]
pub struct Outcome {
    pub instance: Instance,
    pub solution: Solution,
}

/// Runs a strategy on the instance it plans on ([`Strategy::instance`]).
///
/// ```
/// let inst = watos::Instance::load(concat!(env!("CARGO_MANIFEST_DIR"), "/instances/llama3-70b-wafer.toml")).unwrap();
/// let s = watos::strategy::by_name("megatron").unwrap();
/// let out = watos::strategy::run(s.as_ref(), &inst, &Default::default(), &watos::strategy::Silent).unwrap();
/// assert_eq!(out.instance.reserved_bytes, 3e9);
/// assert!(out.solution.plan.stages.iter().all(|s| s.park.is_empty()));
/// ```
pub fn run(
    strategy: &dyn Strategy,
    inst: &Instance,
    opts: &SearchOptions,
    observer: &dyn Observer,
) -> Result<Outcome, Error> {
    let instance = strategy.instance(inst)?;
    let solution = strategy.solve(&instance, opts, observer)?;
    Ok(Outcome { instance, solution })
}

/// The default strategy's search ([`decomposition::solve`]), watched by nobody.
pub fn solve(inst: &Instance, opts: &SearchOptions) -> Result<Solution, Error> {
    decomposition::solve(inst, opts, &Silent)
}

/// One configuration ready to search.
pub(crate) struct Candidate {
    pub costs: ConfigCosts,
    pub bound_s: f64,
}

/// The next `max` memory-feasible configurations of `frontier` in order of their cheap bound
/// (every one left with `usize::MAX`), refining bounds as they come up.
pub(crate) fn next_candidates(
    inst: &Instance,
    frontier: &mut space::Frontier,
    max: usize,
) -> Vec<Candidate> {
    let mut out = Vec::new();
    while out.len() < max {
        let Some(e) = frontier.pop() else { break };
        match e.refinement {
            space::Refinement::Compute => {
                if let Some((_, bounds)) = frontier.refine(inst, &e) {
                    let q = bounds.iter().map(|b| b.1).fold(f64::INFINITY, f64::min);
                    frontier.push(&e, q, space::Refinement::Quick);
                }
            }
            _ => out.push(Candidate {
                costs: ConfigCosts::new(inst, e.config),
                bound_s: e.bound_s,
            }),
        }
    }
    out
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
        infeasible(inst, closest, InfeasibleReason::PerDevice)
    }
}

/// Why nothing fits, with figures.
pub(crate) fn infeasible(
    inst: &Instance,
    closest: Option<(Config, MemoryNeed)>,
    reason: InfeasibleReason,
) -> Error {
    let healthy = inst.fabric().healthy_count();
    Error::Infeasible(Box::new(Infeasibility {
        model: inst.model.name.clone(),
        hardware: inst.hardware.name.clone(),
        healthy_devices: healthy,
        dram_total_bytes: inst.hardware.dram_bytes() * healthy as f64,
        closest: closest.map(|(c, need)| shortfall(&need, &c)),
        reason,
        detail: None,
    }))
}

/// The evaluator's verdict on a MIP plan: as returned, or with its parking untangled if that is
/// feasible and no slower (every formulation does this), then on the best placement a short
/// search finds from the default layout ([`place::place`]), pinned.
pub(crate) fn score(
    inst: &Instance,
    costs: &ConfigCosts,
    raw: Plan,
) -> Result<(Plan, Evaluation), Error> {
    let placement = raw.placement(inst.fabric()).map_err(plan_error)?;
    let tidy = local::untangle_parking(&raw, &|j| costs.inflight(j));
    let e_raw = evaluate_with(inst, &raw, costs, &placement);
    let e_tidy = evaluate_with(inst, &tidy, costs, &placement);
    let plan = if e_tidy.feasible && e_tidy.step_time_s <= e_raw.step_time_s {
        tidy
    } else {
        raw
    };
    Ok(place::place(inst, costs, plan, placement, place::PER_PLAN))
}
