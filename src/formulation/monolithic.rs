//! The monolithic MIP: one model over a set of candidate configurations, the alternative to the
//! decomposition of `search::solve` (branch-and-bound over configurations, one [`StageMip`] each).
//!
//! One binary `z_k` per configuration, `sum_k z_k = 1`, objective `sum_k objective_k`. Block `k`
//! is the per-configuration encoding of [`StageMip`] added by the same builder
//! (`ConfigBlock::add`) with every constant multiplied by `z_k`: at `z_k = 0` the block is
//! all zeros (implied by its own rows, no big-M), at `z_k = 1` it is the stand-alone MIP. The
//! variables are disaggregated per configuration: the LP relaxation of the union is the convex
//! hull of the blocks' LP relaxations, as strong as solving each block's LP. The one relaxation
//! is the stand-alone MIP's ([`relaxations`]): communication at the best any placement allows.
//!
//! Units: HiGHS's tolerances are absolute, so time is measured in one unit common to every block
//! (the smallest cheap bound among the candidates: the optimum is then about 1), memory in one
//! device's DRAM, which all configurations share.
//!
//! [`StageMip`]: super::StageMip
//! [`relaxations`]: super::relaxations

use good_lp::{constraint, variable, Expression, Variable};

use crate::cost::bound::quick_bound;
use crate::cost::ConfigCosts;
use crate::error::Error;
use crate::hardware::Fabric;
use crate::instance::Instance;
use crate::plan::Plan;

use super::solver::{RawStatus, SolverOptions};
use super::{time_unit, ConfigBlock, MipComm, Model};

/// HiGHS options for this structure. Probing off: probing fixes each binary both ways and
/// propagates, and fixing `z_k` runs through its whole block; measured (HiGHS 1.16, one thread)
/// it took 3.5 s of a 3.7 s solve over 168 configurations of a 2 x 4 wafer, and made the whole
/// solve 1.3 to 4 times slower on the shipped instances with 64 configurations per MIP; the
/// bounds without it still close the gap.
const TUNING: &[(&str, i32)] = &[("presolve_rule_off", 1 << 15)];

/// One MIP over several configurations, built and ready to solve.
pub struct MonolithicMip<'a> {
    model: Model,
    /// Activation binaries, one per block.
    z: Vec<Variable>,
    blocks: Vec<ConfigBlock<'a>>,
    /// Seconds per MIP time unit, common to every block.
    time_unit: f64,
}

/// What the monolithic solve found.
#[derive(Debug, Clone)]
pub struct MonolithicResult {
    /// Index (in the order given to [`MonolithicMip::new`]) of the chosen configuration.
    pub choice: Option<usize>,
    /// Best plan found (default placement), if any.
    pub plan: Option<Plan>,
    /// Its MIP objective (seconds).
    pub objective_s: f64,
    /// Proven lower bound on every plan of every configuration in the model (seconds).
    pub bound_s: f64,
    pub status: RawStatus,
    pub nodes: u64,
}

impl<'a> MonolithicMip<'a> {
    /// Builds the MIP over `configs`, each with the communication its block charges.
    pub fn new(configs: Vec<(&'a ConfigCosts, MipComm)>) -> Self {
        // The smallest cheap bound puts the optimum near 1; a degenerate bound (0 for an empty
        // model) falls back to the blocks' own step-time estimates.
        let cheapest = configs
            .iter()
            .map(|(c, comm)| quick_bound(c, &comm.stage, comm.units.as_ref(), c.config.dp_overlap))
            .filter(|b| b.is_finite() && *b > 0.0)
            .fold(f64::INFINITY, f64::min);
        let fallback = configs
            .iter()
            .map(|(c, comm)| time_unit(c, comm))
            .fold(f64::INFINITY, f64::min);
        let unit = [cheapest, fallback, 1.0]
            .into_iter()
            .find(|u| u.is_finite())
            .unwrap_or(1.0);
        let mut model = Model::new();
        let mut z = Vec::with_capacity(configs.len());
        let mut blocks = Vec::with_capacity(configs.len());
        for (costs, comm) in configs {
            let on = model.add(variable().binary());
            z.push(on);
            blocks.push(ConfigBlock::add(
                &mut model,
                costs,
                comm,
                None,
                Some(on),
                unit,
            ));
        }
        if !z.is_empty() {
            let one: Expression = z.iter().copied().sum();
            model.push(constraint!(one == 1.0));
        }
        MonolithicMip {
            model,
            z,
            blocks,
            time_unit: unit,
        }
    }

    /// Every configuration with the communication at the best any placement allows: the dual
    /// bound is then a lower bound over all placements.
    pub fn ideal(inst: &Instance, configs: &[&'a ConfigCosts]) -> Self {
        Self::new(
            configs
                .iter()
                .map(|c| (*c, MipComm::ideal(inst, c)))
                .collect(),
        )
    }

    /// Configurations in the model.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Rows (constraints) handed to HiGHS.
    pub fn rows(&self) -> usize {
        self.model.rows()
    }

    /// Columns (variables) handed to HiGHS.
    pub fn columns(&self) -> usize {
        self.model.cols()
    }

    /// Seconds per MIP time unit.
    pub fn time_unit(&self) -> f64 {
        self.time_unit
    }

    /// The MIP objective (seconds) at a plan of configuration `k`, with `z_k = 1` and every
    /// other block at 0; `None` if there is no configuration `k`.
    pub fn objective_of(&self, k: usize, plan: &Plan, fabric: &Fabric) -> Option<f64> {
        self.blocks.get(k).map(|b| b.objective_of(plan, fabric))
    }

    /// Solves the MIP; `cutoff` (seconds) prunes plans no better than a known one.
    pub fn solve(
        self,
        opts: &SolverOptions,
        cutoff: Option<f64>,
    ) -> Result<MonolithicResult, Error> {
        let MonolithicMip {
            model,
            z,
            blocks,
            time_unit: unit,
        } = self;
        if blocks.is_empty() {
            return Ok(MonolithicResult {
                choice: None,
                plan: None,
                objective_s: f64::INFINITY,
                bound_s: f64::INFINITY,
                status: RawStatus::Infeasible,
                nodes: 0,
            });
        }
        // Blocks at z = 0 contribute 0: the sum is the chosen block's objective.
        let objective: Expression = blocks.iter().map(|b| b.objective()).sum();
        let solved = model.solve(objective, opts, cutoff.map(|c| c / unit), TUNING)?;
        let choice = solved.raw.columns.as_ref().and_then(|_| {
            z.iter()
                .enumerate()
                .map(|(k, v)| (k, solved.value(*v)))
                .filter(|(_, x)| *x > 0.5)
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(k, _)| k)
        });
        let plan = choice.map(|k| blocks[k].plan(&|v| solved.value(v)));
        Ok(MonolithicResult {
            choice,
            plan,
            objective_s: solved.raw.objective * unit,
            bound_s: solved.raw.dual_bound * unit,
            status: solved.raw.status,
            nodes: solved.raw.nodes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Config;

    /// `z_k = 0` forces every decision of block `k` to 0: with `z_k` fixed at 0 and the
    /// objective maximising the sum of block `k`'s variables, the optimum is 0.
    #[test]
    fn an_inactive_block_is_all_zeros() {
        let inst = Instance::load(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/instances/llama3-70b-wafer.toml"
        ))
        .unwrap();
        // A configuration known to fit carries `sum_k z_k = 1`.
        let anchor = ConfigCosts::new(
            &inst,
            Config {
                dp: 1,
                ep: 1,
                tp: 8,
                pp: 7,
                micro_batch: 1,
                sequence_parallel: true,
                interleave: 1,
                zero1: false,
                dp_overlap: false,
            },
        );
        let others: Vec<ConfigCosts> = [(1, 2), (1, 3), (2, 2), (2, 3)]
            .into_iter()
            .map(|(dp, pp)| Config {
                dp,
                ep: 1,
                tp: 8,
                pp,
                micro_batch: 1,
                sequence_parallel: false,
                interleave: 1,
                zero1: false,
                dp_overlap: false,
            })
            .map(|c| ConfigCosts::new(&inst, c))
            .collect();
        assert!(!others.is_empty());
        let opts = SolverOptions {
            gap: 0.0,
            node_limit: Some(1_000),
            ..SolverOptions::default()
        };
        for c in &others {
            let mut mip = MonolithicMip::ideal(&inst, &[&anchor, c]);
            let z = mip.z[1];
            mip.model.push(constraint!(z == 0.0));
            let vars = mip.blocks[1].decisions();
            assert!(!vars.is_empty());
            let objective: Expression = vars.iter().map(|v| -1.0 * *v).sum();
            let solved = mip.model.solve(objective, &opts, None, TUNING).unwrap();
            assert_eq!(solved.raw.status, RawStatus::Optimal, "{:?}", c.config);
            assert!(
                solved.raw.objective.abs() <= 1e-9,
                "{:?}: block at z = 0 holds {}",
                c.config,
                -solved.raw.objective
            );
        }
    }
}
