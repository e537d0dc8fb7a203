//! Co-exploration inside one MIP: the architecture choice as integer variables of the same model
//! as the strategy, for spaces small enough to stay tractable.
//!
//! Built on the monolithic formulation ([`MonolithicMip`]), with no change to it: a block is a
//! (design, configuration) pair, its costs those of the configuration on that design's hardware
//! (compute, SRAM, DRAM capacity in the memory rows, DRAM and D2D bandwidth in the time rows).
//! One binary `z` per block and `sum z = 1` choose the design and the configuration together, so
//! "DRAM stacks per die" is the integer `sum_d stacks_d sum_k z_dk`, and the stacks' capacity
//! enters the chosen block's memory rows, their bandwidth its time rows. A design does not enter
//! linearly (bandwidth divides traffic, compute divides work), which is why each design keeps
//! its own disaggregated block: the LP relaxation of the union is then as strong as each block's.
//!
//! Blocks are taken in order of their cheap bound over every design, as many as [`MAX_BLOCKS`]
//! per MIP; the configurations left out are bounded by their cheap bound, so the least of that and
//! the MIP's dual bound is a lower bound over the whole space. Further MIPs take the next blocks
//! while their bound could beat the best plan. The chosen plan is scored by the evaluator, as the
//! strategies' are.

use serde::Serialize;

use crate::cost::ConfigCosts;
use crate::error::Error;
use crate::formulation::monolithic::MonolithicMip;
use crate::formulation::{MipComm, SolverOptions};
use crate::instance::Instance;
use crate::strategy::space::Frontier;
use crate::strategy::{local, next_candidates, score};

use super::budget::Budget;
use super::space::{Design, DesignSpace};
use super::sweep::instance;
use super::{ExploreOptions, Outcome, Shares, Workload};

/// Most designs the co-exploration MIP takes.
pub const MAX_DESIGNS: usize = 64;

/// Most blocks (design, configuration) in one MIP: HiGHS solves a few hundred in seconds.
pub const MAX_BLOCKS: usize = 256;

/// What the co-exploration MIP found.
#[derive(Debug, Clone, Serialize)]
pub struct CoExploration {
    pub design: Design,
    pub outcome: Outcome,
    /// Lower bound on every plan of every design of the space.
    #[serde(with = "super::inf")]
    pub lower_bound_s: f64,
    pub gap: f64,
    /// The MIP's objective at its plan (communication at its best, see `RELAXATIONS`).
    pub mip_objective_s: f64,
    pub designs: usize,
    pub blocks: usize,
    /// Rows and columns of the largest MIP.
    pub rows: usize,
    pub columns: usize,
    pub mips: usize,
}

/// The best design of a small space and its plan, from MIPs that choose both.
///
/// ```no_run
/// let s = watos::explore::DesignSpace::load("space.toml").unwrap();
/// # let w: watos::explore::Workload = unimplemented!();
/// let c = watos::explore::mip::co_explore(&s, &w, &Default::default()).unwrap();
/// assert!(c.lower_bound_s <= c.outcome.step_time_s);
/// ```
pub fn co_explore(
    space: &DesignSpace,
    w: &Workload,
    opts: &ExploreOptions,
) -> Result<CoExploration, Error> {
    let designs: Vec<Design> = (0..space.points())
        .take(MAX_DESIGNS + 1)
        .map(|i| space.design(i))
        .filter(|d| Budget::of(space, d).broken().is_none())
        .collect();
    if space.points() > MAX_DESIGNS as u64 || designs.is_empty() {
        return Err(Error::invalid(
            "--method",
            format!(
                "the space holds {} designs, {} within budget; the co-exploration MIP takes 1 to {MAX_DESIGNS}",
                space.points(),
                designs.len()
            ),
            "use --method sweep, or narrow the space",
        ));
    }
    let instances: Vec<Instance> = designs
        .iter()
        .map(|d| instance(w, space.hardware(d), opts))
        .collect::<Result<_, _>>()?;
    // Every memory-feasible configuration of every design, in order of its cheap bound.
    let mut blocks: Vec<(usize, ConfigCosts, f64)> = Vec::new();
    for (i, inst) in instances.iter().enumerate() {
        let mut frontier = Frontier::new(inst);
        for c in next_candidates(inst, &mut frontier, usize::MAX) {
            blocks.push((i, c.costs, c.bound_s));
        }
    }
    blocks.sort_by(|a, b| a.2.total_cmp(&b.2).then(a.0.cmp(&b.0)));
    let solver = SolverOptions {
        gap: opts.gap / 2.0,
        threads: 1,
        seed: opts.seed,
        ..SolverOptions::default()
    };
    let mut found = CoExploration {
        design: designs[0],
        outcome: Outcome::infeasible(f64::INFINITY),
        lower_bound_s: f64::INFINITY,
        gap: 1.0,
        mip_objective_s: f64::NAN,
        designs: designs.len(),
        blocks: blocks.len(),
        rows: 0,
        columns: 0,
        mips: 0,
    };
    let mut mip_bound = f64::INFINITY;
    let mut next = 0;
    while next < blocks.len() {
        let incumbent = found.outcome.step_time_s;
        if blocks[next].2 >= incumbent * (1.0 - opts.gap) {
            break;
        }
        let batch = &blocks[next..(next + MAX_BLOCKS).min(blocks.len())];
        next += batch.len();
        let mip = MonolithicMip::new(
            batch
                .iter()
                .map(|(i, costs, _)| (costs, MipComm::ideal(&instances[*i], costs)))
                .collect(),
        );
        found.rows = found.rows.max(mip.rows());
        found.columns = found.columns.max(mip.columns());
        found.mips += 1;
        let res = mip.solve(&solver, incumbent.is_finite().then_some(incumbent))?;
        mip_bound = mip_bound.min(res.bound_s);
        if let (Some(k), Some(raw)) = (res.choice, res.plan) {
            let (i, costs, _) = &batch[k];
            let inst = &instances[*i];
            let (plan, eval) = score(inst, costs, raw)?;
            let (plan, eval) = local::refine_if(true, inst, costs, plan, eval);
            if eval.feasible && eval.step_time_s < incumbent {
                found.design = designs[*i];
                found.mip_objective_s = res.objective_s;
                found.outcome = Outcome {
                    step_time_s: eval.step_time_s,
                    lower_bound_s: f64::NAN,
                    tokens_per_s: eval.tokens_per_s,
                    mfu: eval.mfu,
                    status: String::new(),
                    shares: Shares::of(&eval),
                    plan_text: plan.to_string(),
                    plan: Some(plan),
                };
            }
        }
    }
    let left_out = blocks.get(next).map_or(f64::INFINITY, |b| b.2);
    let step = found.outcome.step_time_s;
    found.lower_bound_s = mip_bound.min(left_out).min(step);
    found.outcome.lower_bound_s = found.lower_bound_s;
    if !step.is_finite() {
        return Err(Error::Infeasible(Box::new(crate::error::Infeasibility {
            model: w.name.clone(),
            hardware: space.name.clone(),
            healthy_devices: 0,
            dram_total_bytes: 0.0,
            closest: None,
            reason: crate::error::InfeasibleReason::Aggregate,
            detail: None,
        })));
    }
    found.gap = (step - found.lower_bound_s) / step;
    found.outcome.status = if found.gap <= opts.gap + 1e-12 {
        "optimal".into()
    } else {
        "placement_gap".into()
    };
    Ok(found)
}
