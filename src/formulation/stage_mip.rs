//! The per-configuration MIP: for a fixed (d, t, p, b, sequence parallelism, ZeRO-1), choose the
//! layers of every stage in every recomputation mode, which stages keep their weights in SRAM, and
//! how many bytes of activations and optimizer state each stage parks in each other stage's DRAM.
//!
//! Variables: integers `x[j][k][w][r]` (layers of kind k on stage j in mode r with weights from
//! source w; SRAM only where a layer could fit) and a binary `y[j]` (stage j's weights in SRAM);
//! with several blocks of layer kinds, cumulative counts and binaries that keep the layers in
//! order; continuous bytes parked from each stage on each other (activations and optimizer state,
//! in DRAM capacities); epigraph variables `tau_max` and `tail_max`. Everything is linear because
//! the configuration fixes every product's other factor: in-flight micro-batches per stage,
//! per-layer costs, micro-batch count. The rows are the stage model's (`cost::stage`) over these
//! variables.
//!
//! Objective: the evaluator's step time, `sum_j tau_j / v + (m - 1/v) tau_max + tail_max`, with
//! communication at the best any placement allows ([`IdealComm`]): the one relaxation,
//! named by [`relaxations`]. HiGHS's tolerances are absolute, so the MIP measures time in units of
//! one stage's time per micro-batch and memory in units of one device's DRAM: a toy model
//! and GPT-3 then look alike to the solver.
//!
//! One encoding serves two formulations. A `ConfigBlock` adds one configuration's variables and
//! rows to a shared `Model`, switched by an activation: always on (the stand-alone [`StageMip`])
//! or a binary `z_k` (the monolithic MIP over many configurations, `super::monolithic`). Under
//! `z_k` every constant of the block's rows and objective is multiplied by `z_k`, so `z_k = 0`
//! forces every variable of the block to 0 (see `ConfigBlock::add` for why no other row is
//! needed) and `z_k = 1` is exactly the stand-alone MIP.

use crate::cost::comm::UnitComm;
use crate::cost::{CommCosts, ConfigCosts, IdealComm};
use crate::error::Error;
use crate::hardware::{DeviceId, Fabric};
use crate::instance::Instance;
use crate::placement::Placement;
use crate::plan::{Plan, Recompute, WeightSource};

use super::block::ConfigBlock;
use super::model::Model;
use super::solver::{RawStatus, SolverOptions};

/// Terms the MIP under-estimates on a fabric, and why the bound stays valid: the MIP charges
/// communication at the best a placement of the stage's class allows (its groups inside one
/// node or wafer, or spanning several), the evaluator the real routes of the chosen placement.
///
/// ```
/// let hw = watos::Hardware::load(concat!(env!("CARGO_MANIFEST_DIR"), "/hardware/dgx-a100-80gb.toml")).unwrap();
/// let fabric = watos::hardware::Fabric::new(&hw).unwrap();
/// let r = watos::formulation::relaxations(&fabric);
/// assert!(r[0].contains("NVLink") && !r[0].contains("mesh"));
/// ```
pub fn relaxations(fabric: &Fabric) -> Vec<String> {
    let text = match fabric {
        Fabric::Cluster(_) => "placement: each collective at the best its group's size allows (inside a node at the NVLink rate, a group larger than a node across as few nodes as it must, at the network rate), pipeline sends and parking transfers over the fastest link a stage pair could share, and no two groups contending for a node's network links; the evaluator charges the real node-major placement, which can only be slower".to_string(),
        Fabric::Mesh(m) => {
            let mut t = "placement: tensor- and data-parallel rings at the best a mesh allows (a bidirectional ring on neighbour links, one hop per step), expert all-to-alls with their busiest link carrying the fewest messages any placement of the group allows (cut bounds on column-first routes), pipeline sends over one uncontended hop, parking transfers at the slower of DRAM and one link no other transfer shares".to_string();
            if m.wafers() > 1 {
                t.push_str(", and a group that spans wafers crossing as few wafer boundaries as its size forces, at the boundary's whole wafer-to-wafer bandwidth");
            }
            t.push_str("; the evaluator charges the real routes, hops and shared links of the chosen placement, which can only be slower");
            t
        }
    };
    vec![text]
}

/// The communication a MIP charges: per stage, and per pair of stages for parking.
#[derive(Debug, Clone)]
pub struct MipComm {
    pub stage: CommCosts,
    /// Costs per placement class on a fabric of units (bounds only; `None` on a fabric of one
    /// unit, or for a concrete placement's costs).
    pub units: Option<UnitComm>,
    /// Bytes/s of a parking transfer from stage `j` to stage `i`: the slower of the helper's DRAM
    /// and the path.
    pub park_bw: Vec<Vec<f64>>,
    /// Whether stages may park bytes on each other: off under the instance's `no_parking`
    /// framework rule, which bounds every parked-bytes variable at 0.
    pub allow_parking: bool,
}

impl MipComm {
    /// The best any placement allows: the MIP is then a relaxation of the evaluator, and its dual
    /// bound a lower bound over all placements.
    pub fn ideal(inst: &Instance, c: &ConfigCosts) -> Self {
        let p = c.config.pp as usize;
        let bw = IdealComm::of(c, inst.fabric()).park_bw;
        MipComm {
            stage: CommCosts::ideal(inst, c),
            units: UnitComm::of(c, inst.fabric()),
            park_bw: vec![vec![bw; p]; p],
            allow_parking: !inst.limits.no_parking,
        }
    }

    /// A concrete placement's costs (parking without contention between pairs): a primal
    /// heuristic that sees, say, the one stage whose group could not form a ring of neighbours.
    pub fn of_placement(inst: &Instance, c: &ConfigCosts, g: &Placement) -> Self {
        Self::placed(inst, c, g, false)
    }

    /// [`MipComm::of_placement`] with every pair of stages parking at once, as if each stage
    /// parked on every other: a pessimistic price of each pair's path, which no plan's parking
    /// can make slower (the evaluator runs only the pairs a plan uses).
    pub fn of_placement_shared(inst: &Instance, c: &ConfigCosts, g: &Placement) -> Self {
        Self::placed(inst, c, g, true)
    }

    fn placed(inst: &Instance, c: &ConfigCosts, g: &Placement, shared: bool) -> Self {
        let p = c.config.pp as usize;
        // Flows of each stage pair (matching devices of every replica), in sets that run at once:
        // one set per pair, or one set of all pairs.
        let mut sets: Vec<FlowSet> = Vec::new();
        for j in 0..p {
            for i in (0..p).filter(|i| *i != j) {
                let pairs: Vec<_> = (0..g.replicas())
                    .flat_map(|r| {
                        g.group(r, j)
                            .iter()
                            .copied()
                            .zip(g.group(r, i).iter().copied())
                    })
                    .collect();
                let owner = vec![(j, i); pairs.len()];
                match sets.last_mut() {
                    Some(all) if shared => {
                        all.0.extend(pairs);
                        all.1.extend(owner);
                    }
                    _ => sets.push((pairs, owner)),
                }
            }
        }
        let mut park_bw = vec![vec![f64::INFINITY; p]; p];
        for (pairs, owner) in &sets {
            for ((j, i), path) in owner.iter().zip(inst.fabric().flows(pairs)) {
                let bw = c.dram_bw_eff.min(path.bw_bytes_per_s * c.link_eff);
                park_bw[*j][*i] = park_bw[*j][*i].min(bw);
            }
        }
        MipComm {
            stage: CommCosts::of_placement(inst, c, g),
            units: None,
            park_bw,
            allow_parking: !inst.limits.no_parking,
        }
    }
}

/// Device pairs that transfer at once, and the stage pair `(from, to)` each belongs to.
type FlowSet = (Vec<(DeviceId, DeviceId)>, Vec<(usize, usize)>);

/// One per-configuration MIP, built and ready to solve or to score a plan: the one block of its
/// own model, always on.
pub struct StageMip<'a> {
    model: Model,
    block: ConfigBlock<'a>,
}

/// What one per-configuration solve found.
#[derive(Debug, Clone)]
pub struct StageMipResult {
    /// Best plan found (default placement), if any.
    pub plan: Option<Plan>,
    /// Its MIP objective (seconds).
    pub objective_s: f64,
    /// Proven lower bound on every plan of this configuration (seconds).
    pub bound_s: f64,
    pub status: RawStatus,
    pub nodes: u64,
}

impl<'a> StageMip<'a> {
    /// Builds the MIP of one configuration. `fixed`: if given, the layers, modes and weight
    /// sources of every stage are those of this plan (the exhaustive search solves only the
    /// parking LP).
    pub fn new(costs: &'a ConfigCosts, comm: MipComm, fixed: Option<&Plan>) -> Self {
        let mut model = Model::new();
        let unit = time_unit(costs, &comm);
        let block = ConfigBlock::add(&mut model, costs, comm, fixed, None, unit);
        StageMip { model, block }
    }

    /// Solves the MIP; `cutoff` prunes plans no better than a known one.
    pub fn solve(self, opts: &SolverOptions, cutoff: Option<f64>) -> Result<StageMipResult, Error> {
        let StageMip { model, block } = self;
        // The objective per micro-batch: of order 1 like the rows, where the step (m stage times)
        // would carry an (m - 1) coefficient of up to billions.
        let per_micro_batch = 1.0 / (block.costs.m as f64).max(1.0);
        let unit = block.time_unit / per_micro_batch;
        let objective = block.objective() * per_micro_batch;
        let solved = model.solve(objective, opts, cutoff.map(|c| c / unit), &[])?;
        let plan = solved
            .raw
            .columns
            .is_some()
            .then(|| block.plan(&|v| solved.value(v)));
        Ok(StageMipResult {
            plan,
            objective_s: solved.raw.objective * unit,
            bound_s: solved.raw.dual_bound * unit,
            status: solved.raw.status,
            nodes: solved.raw.nodes,
        })
    }

    /// The optimum of the LP relaxation: a lower bound on every plan of the configuration (under
    /// this MIP's communication), in milliseconds; `+inf` when even the LP is infeasible.
    pub fn lp_bound(self, opts: &SolverOptions) -> Result<f64, Error> {
        let o = SolverOptions {
            lp_relaxation: true,
            node_limit: None,
            ..*opts
        };
        self.solve(&o, None).map(|r| r.bound_s)
    }

    /// The MIP objective at a plan of this configuration (its layers, modes, tiers and parking),
    /// with the epigraph variables at their tightest values. Equals the evaluator's step time when
    /// the placement achieves the ideal communication; below it otherwise.
    pub fn objective_of(&self, plan: &Plan, fabric: &Fabric) -> f64 {
        self.block.objective_of(plan, fabric)
    }

    /// Rows (constraints) handed to HiGHS.
    pub fn rows(&self) -> usize {
        self.model.rows()
    }

    /// Columns (variables) handed to HiGHS.
    pub fn columns(&self) -> usize {
        self.model.cols()
    }
}

/// One stage's time per micro-batch with no recomputation: the MIP's time unit. The stage-time
/// rows (`tau_max >= tau_j`) are then of order 1 whatever the micro-batch count, which stays a
/// coefficient of the objective; a unit scaled to the whole step would push a four-billion
/// micro-batch run's stage coefficients below HiGHS's smallest matrix value.
pub(crate) fn time_unit(c: &ConfigCosts, comm: &MipComm) -> f64 {
    let tp = comm
        .stage
        .tp_allreduce_s
        .iter()
        .copied()
        .fold(0.0, f64::max);
    let a2a = comm.stage.all_to_all_s.iter().copied().fold(0.0, f64::max);
    let layer = c
        .kinds
        .iter()
        .map(|k| k.time_s(WeightSource::Dram, Recompute::None, tp, a2a))
        .fold(0.0, f64::max);
    let per_stage = c.model_layers as f64 * layer / c.config.pp as f64;
    per_stage.max(1e-12)
}
