//! The per-configuration MIP: for a fixed (d, t, p, b, sequence parallelism, ZeRO-1), choose the
//! layers of every stage in every recomputation mode, which stages keep their weights in SRAM, and
//! how many bytes of activations and optimizer state each stage parks in each other stage's DRAM.
//!
//! Variables: integers `n[j][r]` (layers of stage j in mode r with weights in DRAM) and, where a
//! layer's weights could fit in SRAM, `s[j][r]` and a binary `y[j]` (stage j's weights in SRAM);
//! continuous `act[j][i]`, `opt[j][i]` (bytes parked from j on i, in DRAM capacities); epigraph variables `tau_max` and
//! `tail_max`. Everything is linear because the configuration fixes every product's other factor:
//! in-flight micro-batches per stage, per-layer costs, micro-batch count (context/formulation.md).
//!
//! Objective: the evaluator's step time, `sum_j tau_j + (m - 1) tau_max + tail_max`, with
//! communication at the best any placement allows (`ConfigCosts::ideal_comm`): the one relaxation,
//! named in [`RELAXATIONS`]. HiGHS's tolerances are absolute, so the MIP measures time in units of
//! the configuration's own step-time estimate and memory in units of one device's DRAM: a toy model
//! and GPT-3 then look alike to the solver.

use good_lp::{
    constraint, variable, Expression, IntoAffineExpression, ProblemVariables, Solution,
    SolverModel, Variable,
};

use crate::cost::config::ConfigCosts;
use crate::cost::CommCosts;
use crate::cost::Recompute;
use crate::error::Error;
use crate::instance::Instance;
use crate::plan::Placement;
use crate::plan::{Park, ParkKind, Plan, RecomputeCounts, Stage, Tier};

use super::solver::{solve, RawResult, RawStatus, SolverOptions};

/// Terms the MIP under-estimates (and why the bound stays valid).
pub const RELAXATIONS: &[&str] = &[
    "placement: tensor-parallel rings at the best a mesh allows (a bidirectional ring on neighbour links, one hop per step), pipeline sends over one uncontended hop, parking transfers at the slower of DRAM and one link no other transfer shares, data-parallel rings likewise; the evaluator charges the real routes, hops and shared links of the chosen placement, which can only be slower",
];

/// The communication a MIP charges: per stage, and per pair of stages for parking.
#[derive(Debug, Clone)]
pub struct MipComm {
    pub stage: CommCosts,
    /// Bytes/s of a parking transfer from stage `j` to stage `i`: the slower of the helper's DRAM
    /// and the path.
    pub park_bw: Vec<Vec<f64>>,
}

impl MipComm {
    /// The best any placement allows: the MIP is then a relaxation of the evaluator, and its dual
    /// bound a lower bound over all placements.
    pub fn ideal(inst: &Instance, c: &ConfigCosts) -> Self {
        let p = c.config.pp as usize;
        let bw = c.ideal_comm(inst.fabric()).park_bw;
        MipComm {
            stage: CommCosts::ideal(inst, c),
            park_bw: vec![vec![bw; p]; p],
        }
    }

    /// A concrete placement's costs (parking without contention between pairs): a primal
    /// heuristic that sees, say, the one stage whose group could not form a ring of neighbours.
    pub fn of_placement(inst: &Instance, c: &ConfigCosts, g: &Placement) -> Self {
        let p = c.config.pp as usize;
        let mut park_bw = vec![vec![f64::INFINITY; p]; p];
        for (j, row) in park_bw.iter_mut().enumerate() {
            for (i, bw) in row.iter_mut().enumerate() {
                if i == j {
                    continue;
                }
                let pairs: Vec<_> = g
                    .iter()
                    .flat_map(|rep| rep[j].iter().copied().zip(rep[i].iter().copied()))
                    .collect();
                *bw = inst
                    .fabric()
                    .flows(&pairs)
                    .iter()
                    .map(|path| c.dram_bw_eff.min(path.bw_bytes_per_s * c.link_eff))
                    .fold(f64::INFINITY, f64::min);
            }
        }
        MipComm {
            stage: CommCosts::of_placement(inst, c, g),
            park_bw,
        }
    }
}

/// One per-configuration MIP, built and ready to solve or to score a plan.
pub struct StageMip<'a> {
    costs: &'a ConfigCosts,
    comm: MipComm,
    /// Seconds per MIP time unit.
    time_unit: f64,
    /// Bytes per MIP memory unit.
    mem_unit: f64,
    /// Column of every variable (HiGHS numbers columns in the order variables are added; good_lp
    /// keeps that number private).
    columns: std::collections::HashMap<Variable, usize>,
    layers: u32,
    vars: ProblemVariables,
    n: Vec<[Variable; 3]>,
    s: Vec<Option<([Variable; 3], Variable)>>,
    act: Vec<Vec<Option<Variable>>>,
    opt: Vec<Vec<Option<Variable>>>,
    tau_max: Variable,
    tail_max: Variable,
    tau: Vec<Expression>,
    tail: Vec<Expression>,
    constraints: Vec<good_lp::Constraint>,
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
    /// Builds the MIP of one configuration. `fixed`: if given, the layers, modes and weight tiers
    /// of every stage are fixed (the exhaustive search solves only the parking LP).
    pub fn new(
        inst: &Instance,
        costs: &'a ConfigCosts,
        comm: MipComm,
        fixed: Option<&[Stage]>,
    ) -> Self {
        let c = costs.config;
        let p = c.pp as usize;
        let layers = inst.model.layers;
        let mut vars = ProblemVariables::new();
        let mut columns = std::collections::HashMap::new();
        let big = layers as f64;
        let time_unit = time_unit(costs, &comm);
        let mem_unit = costs.dram_capacity_bytes.max(1.0);
        #[allow(non_snake_case)]
        let GB = mem_unit;
        // Only stages whose weights could sit in SRAM get the SRAM variables.
        let layer_weights_gb = costs.layer_params * costs.state.weights / GB;
        let sram_gb = costs.sram_weight_bytes / GB;
        let mut n = Vec::with_capacity(p);
        let mut s = Vec::with_capacity(p);
        let dominated = dominated_modes(costs, &comm);
        for j in 0..p {
            let bounds = |r: Recompute, tier: Tier| match fixed {
                Some(st) if st[j].weights == tier => st[j].recompute.get(r) as f64,
                Some(_) => 0.0,
                None if dominated[r.index()] => 0.0,
                None => big,
            };
            let lo = |r: Recompute, tier: Tier| {
                if fixed.is_some() {
                    bounds(r, tier)
                } else {
                    0.0
                }
            };
            n.push(Recompute::ALL.map(|r| {
                add(
                    &mut vars,
                    &mut columns,
                    variable()
                        .integer()
                        .min(lo(r, Tier::Dram))
                        .max(bounds(r, Tier::Dram)),
                )
            }));
            let ends_gb = costs.ends(j as u32).iter().map(|f| f.params).sum::<f64>()
                * costs.state.weights
                / GB;
            let could_fit = layer_weights_gb + ends_gb <= sram_gb;
            s.push(could_fit.then(|| {
                let y_fixed = fixed.map(|st| f64::from(u8::from(st[j].weights == Tier::Sram)));
                let sv = Recompute::ALL.map(|r| {
                    add(
                        &mut vars,
                        &mut columns,
                        variable()
                            .integer()
                            .min(lo(r, Tier::Sram))
                            .max(bounds(r, Tier::Sram)),
                    )
                });
                let y = add(
                    &mut vars,
                    &mut columns,
                    variable()
                        .binary()
                        .min(y_fixed.unwrap_or(0.0))
                        .max(y_fixed.unwrap_or(1.0)),
                );
                (sv, y)
            }));
        }
        // Parking bounds: a stage cannot park more than it holds.
        let max_act_gb: Vec<f64> = (0..p as u32)
            .map(|j| costs.inflight(j) * (big * costs.act_bytes[0] + costs.ends_act_bytes(j)) / GB)
            .collect();
        let max_opt_gb: Vec<f64> = (0..p as u32)
            .map(|j| costs.optimizer_bytes(costs.stage_params(j, layers)) / GB)
            .collect();
        let mut act = vec![vec![None; p]; p];
        let mut opt = vec![vec![None; p]; p];
        for j in 0..p {
            for i in 0..p {
                if i != j {
                    act[j][i] = Some(add(
                        &mut vars,
                        &mut columns,
                        variable().min(0.0).max(max_act_gb[j]),
                    ));
                    opt[j][i] = Some(add(
                        &mut vars,
                        &mut columns,
                        variable().min(0.0).max(max_opt_gb[j]),
                    ));
                }
            }
        }
        let tau_max = add(&mut vars, &mut columns, variable().min(0.0));
        let tail_max = add(&mut vars, &mut columns, variable().min(0.0));
        let mut mip = StageMip {
            costs,
            columns,
            comm,
            time_unit,
            mem_unit,
            layers,
            vars,
            n,
            s,
            act,
            opt,
            tau_max,
            tail_max,
            tau: Vec::new(),
            tail: Vec::new(),
            constraints: Vec::new(),
        };
        mip.build();
        mip
    }

    fn layer_count(&self, j: usize) -> Expression {
        let mut e: Expression = self.n[j].iter().copied().sum();
        if let Some((sv, _)) = &self.s[j] {
            e += sv.iter().copied().sum::<Expression>();
        }
        e
    }

    fn mode_count(&self, j: usize, r: Recompute) -> Expression {
        let mut e = Expression::from(self.n[j][r.index()]);
        if let Some((sv, _)) = &self.s[j] {
            e += sv[r.index()];
        }
        e
    }

    fn out(&self, table: &[Vec<Option<Variable>>], j: usize) -> Expression {
        table[j].iter().flatten().copied().sum()
    }

    fn build(&mut self) {
        let c = self.costs;
        let cfg = c.config;
        let p = cfg.pp as usize;
        let l = self.layers as f64;
        let comm = self.comm.clone();
        #[allow(non_snake_case)]
        let GB = self.mem_unit;
        let per_time = 1.0 / self.time_unit;
        let shards = if cfg.zero1 { cfg.dp as f64 } else { 1.0 };
        let mut cons = Vec::new();
        let total: Expression = (0..p).map(|j| self.layer_count(j)).sum();
        cons.push(constraint!(total == l));
        for j in 0..p {
            let ju = j as u32;
            let count = self.layer_count(j);
            cons.push(constraint!(count.clone() >= 1.0));
            let inflight = c.inflight(ju);
            let ends_params = c.ends(ju).iter().map(|f| f.params).sum::<f64>();
            let params_gb: Expression = count.clone() * (c.layer_params / GB) + ends_params / GB;
            // Stage time per micro-batch.
            let tp = comm.stage.tp_allreduce_s[j];
            let mut tau = Expression::from(c.fixed_time_s(ju, tp) + comm.stage.p2p_s[j]);
            for r in Recompute::ALL {
                tau.add_mul(c.layer_time_s(Tier::Dram, r, tp), self.n[j][r.index()]);
                if let Some((sv, _)) = &self.s[j] {
                    tau.add_mul(c.layer_time_s(Tier::Sram, r, tp), sv[r.index()]);
                }
            }
            for i in 0..p {
                if let Some(a) = self.act[j][i] {
                    tau.add_mul(2.0 * GB / inflight / comm.park_bw[j][i], a);
                }
                if let Some(a) = self.act[i][j] {
                    tau.add_mul(2.0 * GB / c.inflight(i as u32) / c.dram_bw_eff, a);
                }
            }
            // Memory per device (GB).
            let mut act_gb = Expression::from(inflight * c.ends_act_bytes(ju) / GB);
            for r in Recompute::ALL {
                act_gb += self.mode_count(j, r) * (inflight * c.act_bytes[r.index()] / GB);
            }
            let opt_gb = params_gb.clone() * (c.state.optimizer / shards);
            let mut dram_weights: Expression = self.n[j]
                .iter()
                .map(|v| *v * (c.layer_params * c.state.weights / GB))
                .sum();
            let ends_w = ends_params * c.state.weights / GB;
            match &self.s[j] {
                Some((sv, y)) => {
                    dram_weights += ends_w - *y * ends_w;
                    for (s_r, n_r) in sv.iter().zip(&self.n[j]) {
                        cons.push(constraint!(*s_r <= l * *y));
                        cons.push(constraint!(*n_r + l * *y <= l));
                    }
                    let sram: Expression = sv
                        .iter()
                        .map(|v| *v * (c.layer_params * c.state.weights / GB))
                        .sum::<Expression>()
                        + *y * ends_w;
                    cons.push(constraint!(sram <= c.sram_weight_bytes / GB));
                }
                None => dram_weights += ends_w,
            }
            let act_out = self.out(&self.act, j);
            let opt_out = self.out(&self.opt, j);
            let parked_in: Expression = (0..p)
                .flat_map(|i| [self.act[i][j], self.opt[i][j]])
                .flatten()
                .sum();
            let dram = dram_weights + params_gb.clone() * c.state.grads + opt_gb.clone()
                - opt_out.clone()
                + act_gb.clone()
                - act_out.clone()
                + c.workspace_bytes / GB
                + parked_in;
            cons.push(constraint!(dram <= c.dram_capacity_bytes / GB));
            cons.push(constraint!(act_out <= act_gb));
            cons.push(constraint!(opt_out.clone() <= opt_gb));
            // Step tail: the optimizer (local DRAM, parked state over the link, guests' state on
            // this stage's DRAM), after the data-parallel sync of the slowest ring; each ring's
            // sync is affine in the stage's parameters (slope and intercept read off the
            // evaluator's own formula), so the maximum over rings is one constraint per ring.
            let mut tail =
                params_gb.clone() * (GB / shards * c.state.optimizer_traffic() / c.dram_bw_eff);
            for i in 0..p {
                if let Some(o) = self.opt[j][i] {
                    tail.add_mul(GB * (2.0 / comm.park_bw[j][i] - 2.0 / c.dram_bw_eff), o);
                }
                if let Some(o) = self.opt[i][j] {
                    tail.add_mul(2.0 * GB / c.dram_bw_eff, o);
                }
            }
            if j == 0 || j + 1 == p {
                tail += comm.stage.tied_s;
            }
            let mut tails = Vec::new();
            for path in comm.stage.dp_paths[j].iter() {
                let at = |params: f64| c.dp_sync_s(params, *path);
                let slope = at(2.0) - at(1.0);
                tails.push(tail.clone() + params_gb.clone() * (slope * GB) + (at(1.0) - slope));
            }
            if tails.is_empty() {
                tails.push(tail);
            }
            let tau = tau * per_time;
            let tails: Vec<Expression> = tails.into_iter().map(|t| t * per_time).collect();
            for t in &tails {
                cons.push(constraint!(self.tail_max >= t.clone()));
            }
            cons.push(constraint!(self.tau_max >= tau.clone()));
            self.tau.push(tau);
            self.tail.extend(tails);
        }
        self.constraints = cons;
    }

    fn objective(&self) -> Expression {
        let m = self.costs.m as f64;
        self.tau.iter().cloned().sum::<Expression>() + (m - 1.0) * self.tau_max + self.tail_max
    }

    /// Solves the MIP; `cutoff` prunes plans no better than a known one.
    pub fn solve(self, opts: &SolverOptions, cutoff: Option<f64>) -> Result<StageMipResult, Error> {
        let objective = self.objective();
        // good_lp hands HiGHS the coefficients, not the constant: add it back to what HiGHS reports.
        let offset = objective.constant();
        let StageMip {
            costs,
            columns,
            vars,
            n,
            s,
            act,
            opt,
            constraints,
            time_unit,
            mem_unit,
            ..
        } = self;
        let mut problem = vars
            .minimise(objective)
            .using(good_lp::solvers::highs::highs);
        for c in constraints {
            problem = problem.with(c);
        }
        let raw: RawResult = solve(problem, opts, cutoff.map(|c| c / time_unit - offset))?;
        let plan = raw.columns.as_ref().map(|cols| {
            to_plan(
                costs,
                mem_unit,
                &|v| {
                    columns
                        .get(&v)
                        .and_then(|i| cols.get(*i))
                        .copied()
                        .unwrap_or(0.0)
                },
                &n,
                &s,
                &act,
                &opt,
            )
        });
        Ok(StageMipResult {
            plan,
            objective_s: (raw.objective + offset) * time_unit,
            bound_s: (raw.dual_bound + offset) * time_unit,
            status: raw.status,
            nodes: raw.nodes,
        })
    }

    /// The MIP objective at a plan of this configuration (its layers, modes, tiers and parking),
    /// with the epigraph variables at their tightest values. Equals the evaluator's step time when
    /// the placement achieves the ideal communication; below it otherwise.
    pub fn objective_of(&self, plan: &Plan) -> f64 {
        let values = Assignment::of_plan(self, plan);
        let tau: Vec<f64> = self.tau.iter().map(|e| e.eval_with(&values)).collect();
        let tail = self
            .tail
            .iter()
            .map(|e| e.eval_with(&values))
            .fold(0.0, f64::max);
        let max = tau.iter().copied().fold(0.0, f64::max);
        (tau.iter().sum::<f64>() + (self.costs.m as f64 - 1.0) * max + tail) * self.time_unit
    }
}

/// The configuration's step time if every layer ran with no recomputation at the stage's
/// communication cost: the scale of the MIP's time unit.
fn time_unit(c: &ConfigCosts, comm: &MipComm) -> f64 {
    let tp = comm
        .stage
        .tp_allreduce_s
        .iter()
        .copied()
        .fold(0.0, f64::max);
    let layer = c.layer_time_s(Tier::Dram, Recompute::None, tp);
    let per_stage = c.model_layers as f64 * layer / c.config.pp as f64;
    (per_stage * (c.m as f64 + c.config.pp as f64 - 1.0)).max(1e-12)
}

/// Modes another mode matches or beats in time (every stage's communication, both weight tiers)
/// and in stored bytes: any plan using them has an equal or better twin without them (with flash
/// attention, `Selective` is `None`). Ties keep the lower mode.
fn dominated_modes(c: &ConfigCosts, comm: &MipComm) -> [bool; 3] {
    let time = |r: Recompute| -> Vec<f64> {
        comm.stage
            .tp_allreduce_s
            .iter()
            .flat_map(|tp| [Tier::Dram, Tier::Sram].map(|t| c.layer_time_s(t, r, *tp)))
            .collect()
    };
    Recompute::ALL.map(|r| {
        Recompute::ALL.iter().any(|o| {
            *o != r
                && c.act_bytes[o.index()] <= c.act_bytes[r.index()]
                && time(*o).iter().zip(time(r)).all(|(a, b)| *a <= b)
                && (o.index() < r.index()
                    || c.act_bytes[o.index()] < c.act_bytes[r.index()]
                    || time(*o).iter().zip(time(r)).any(|(a, b)| *a < b))
        })
    })
}

fn add(
    vars: &mut ProblemVariables,
    columns: &mut std::collections::HashMap<Variable, usize>,
    def: good_lp::VariableDefinition,
) -> Variable {
    let v = vars.add(def);
    columns.insert(v, columns.len());
    v
}

/// Variable values read from a plan (for [`StageMip::objective_of`]).
struct Assignment(std::collections::HashMap<Variable, f64>);

impl Assignment {
    fn of_plan(mip: &StageMip, plan: &Plan) -> Self {
        let mut v = std::collections::HashMap::new();
        for (j, stage) in plan.stages.iter().enumerate() {
            let sram = stage.weights == Tier::Sram;
            for r in Recompute::ALL {
                let k = stage.recompute.get(r) as f64;
                v.insert(mip.n[j][r.index()], if sram { 0.0 } else { k });
                if let Some((sv, y)) = &mip.s[j] {
                    v.insert(sv[r.index()], if sram { k } else { 0.0 });
                    v.insert(*y, f64::from(u8::from(sram)));
                }
            }
            for park in &stage.park {
                let table = match park.what {
                    ParkKind::Activations => &mip.act,
                    ParkKind::Optimizer => &mip.opt,
                };
                if let Some(var) = table[j][park.to as usize] {
                    *v.entry(var).or_insert(0.0) += park.bytes as f64 / mip.mem_unit;
                }
            }
        }
        Assignment(v)
    }
}

impl Solution for Assignment {
    fn status(&self) -> good_lp::SolutionStatus {
        good_lp::SolutionStatus::Optimal
    }
    fn value(&self, variable: Variable) -> f64 {
        self.0.get(&variable).copied().unwrap_or(0.0)
    }
}

/// Parked amounts below this are solver noise, not a decision.
const MIN_PARK_BYTES: f64 = 1024.0;

fn to_plan(
    costs: &ConfigCosts,
    mem_unit: f64,
    val: &dyn Fn(Variable) -> f64,
    n: &[[Variable; 3]],
    s: &[Option<([Variable; 3], Variable)>],
    act: &[Vec<Option<Variable>>],
    opt: &[Vec<Option<Variable>>],
) -> Plan {
    let c = costs.config;
    let stages = (0..c.pp as usize)
        .map(|j| {
            let sram = s[j].as_ref().is_some_and(|(_, y)| val(*y) > 0.5);
            let mut counts = RecomputeCounts::default();
            for r in Recompute::ALL {
                let mut k = val(n[j][r.index()]);
                if let Some((sv, _)) = &s[j] {
                    k += val(sv[r.index()]);
                }
                *counts.get_mut(r) = k.round().max(0.0) as u32;
            }
            let mut park = Vec::new();
            for (table, what) in [(act, ParkKind::Activations), (opt, ParkKind::Optimizer)] {
                for (i, var) in table[j].iter().enumerate() {
                    if let Some(var) = var {
                        let bytes = val(*var) * mem_unit;
                        if bytes >= MIN_PARK_BYTES {
                            park.push(Park {
                                to: i as u32,
                                what,
                                bytes: bytes.round() as u64,
                            });
                        }
                    }
                }
            }
            Stage {
                layers: counts.total(),
                recompute: counts,
                weights: if sram { Tier::Sram } else { Tier::Dram },
                park,
                dies: None,
            }
        })
        .collect();
    Plan {
        dp: c.dp,
        tp: c.tp,
        pp: c.pp,
        micro_batch: c.micro_batch,
        sequence_parallel: c.sequence_parallel,
        interleave: 1,
        zero1: c.zero1,
        dp_overlap: false,
        stages,
    }
}
