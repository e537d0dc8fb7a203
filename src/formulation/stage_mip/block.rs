//! One configuration's variables and rows, added to a shared [`Model`], under an activation.

use std::collections::HashMap;

use good_lp::{constraint, variable, Expression, Solution, Variable};

use crate::cost::config::ConfigCosts;
use crate::cost::Recompute;
use crate::instance::Instance;
use crate::plan::{Park, ParkKind, Plan, RecomputeCounts, Stage, Tier};

use super::{MipComm, Model};

/// One configuration's variables and rows inside a `Model`, switched on by `on` (`None`: always).
pub(crate) struct ConfigBlock<'a> {
    pub(super) costs: &'a ConfigCosts,
    pub(super) comm: MipComm,
    /// The activation binary `z_k` (`None`: the constant 1).
    pub(super) on: Option<Variable>,
    /// Seconds per MIP time unit.
    pub(super) time_unit: f64,
    /// Bytes per MIP memory unit.
    pub(super) mem_unit: f64,
    pub(super) layers: u32,
    pub(super) n: Vec<[Variable; 3]>,
    pub(super) s: Vec<Option<([Variable; 3], Variable)>>,
    pub(super) act: Vec<Vec<Option<Variable>>>,
    pub(super) opt: Vec<Vec<Option<Variable>>>,
    pub(super) tau_max: Variable,
    pub(super) tail_max: Variable,
    pub(super) tau: Vec<Expression>,
    pub(super) tail: Vec<Expression>,
}

impl<'a> ConfigBlock<'a> {
    /// Adds configuration `costs` to `model`, active when `on` is 1 (always if `None`), with time
    /// in units of `time_unit` seconds and memory in units of one device's DRAM.
    ///
    /// Under `on = z_k` every constant term (layer total, one layer per stage, fixed stage time,
    /// embedding and head bytes, workspace, capacities, step-tail intercepts) is multiplied by
    /// `z_k`. With `z_k = 0` that forces the whole block to 0, also in the LP relaxation, without
    /// big-M rows: `sum n + sum s = L z_k` with every count non-negative bounds each count by
    /// `L z_k`; `n_r + L y <= L z_k` bounds `y` by `z_k`; `act_out_j <= act_gb_j` and
    /// `opt_out_j <= opt_gb_j`, whose right sides are built from counts and `z_k` only, bound the
    /// parked bytes by their own variable bounds times `z_k`; `tau` and `tail` are then 0 and the
    /// epigraph variables are minimised to 0. Only bounds below those implied ones (a fixed
    /// stage, for the exhaustive search) get rows `lo z_k <= v <= ub z_k`.
    pub fn add(
        model: &mut Model,
        inst: &Instance,
        costs: &'a ConfigCosts,
        comm: MipComm,
        fixed: Option<&[Stage]>,
        on: Option<Variable>,
        time_unit: f64,
    ) -> Self {
        let c = costs.config;
        let p = c.pp as usize;
        let layers = inst.model.layers;
        let big = layers as f64;
        let mem_unit = costs.dram_capacity_bytes.max(1.0);
        #[allow(non_snake_case)]
        let GB = mem_unit;
        // Only stages whose weights could sit in SRAM get the SRAM variables.
        let layer_weights_gb = costs.layer_params * costs.state.weights / GB;
        let sram_gb = costs.sram_weight_bytes / GB;
        let mut n = Vec::with_capacity(p);
        let mut s = Vec::with_capacity(p);
        let mut scaled_bounds = Vec::new();
        // Weight tiers fixed to SRAM (binaries whose lower bound is 1 when on).
        let mut fixed_on = Vec::new();
        let dominated = dominated_modes(costs, &comm);
        // An integer count in [lo, ub]: variable bounds when always on; under z_k, rows for the
        // bounds the layer total does not already imply.
        let mut count_var = |model: &mut Model, lo: f64, ub: f64| match on {
            None => model.add(variable().integer().min(lo).max(ub)),
            Some(_) => {
                let v = model.add(variable().integer().min(0.0).max(ub));
                if lo > 0.0 || (ub > 0.0 && ub < big) {
                    scaled_bounds.push((v, lo, ub));
                }
                v
            }
        };
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
            n.push(
                Recompute::ALL.map(|r| count_var(model, lo(r, Tier::Dram), bounds(r, Tier::Dram))),
            );
            let ends_gb = costs.ends(j as u32).iter().map(|f| f.params).sum::<f64>()
                * costs.state.weights
                / GB;
            let could_fit = layer_weights_gb + ends_gb <= sram_gb;
            s.push(could_fit.then(|| {
                let y_fixed = fixed.map(|st| f64::from(u8::from(st[j].weights == Tier::Sram)));
                let sv = Recompute::ALL
                    .map(|r| count_var(model, lo(r, Tier::Sram), bounds(r, Tier::Sram)));
                let y_lo = y_fixed.unwrap_or(0.0);
                let y = match on {
                    None => model.add(variable().binary().min(y_lo).max(y_fixed.unwrap_or(1.0))),
                    Some(_) => {
                        let y = model.add(variable().binary().min(0.0).max(y_fixed.unwrap_or(1.0)));
                        if y_lo > 0.0 {
                            fixed_on.push(y);
                        }
                        y
                    }
                };
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
                    act[j][i] = Some(model.add(variable().min(0.0).max(max_act_gb[j])));
                    opt[j][i] = Some(model.add(variable().min(0.0).max(max_opt_gb[j])));
                }
            }
        }
        let tau_max = model.add(variable().min(0.0));
        let tail_max = model.add(variable().min(0.0));
        if let Some(z) = on {
            for (v, lo, ub) in scaled_bounds {
                if lo > 0.0 {
                    model.push(constraint!(v >= lo * z));
                }
                if ub < big {
                    model.push(constraint!(v <= ub * z));
                }
            }
            for y in fixed_on {
                model.push(constraint!(y >= z));
            }
        }
        let mut block = ConfigBlock {
            costs,
            comm,
            on,
            time_unit,
            mem_unit,
            layers,
            n,
            s,
            act,
            opt,
            tau_max,
            tail_max,
            tau: Vec::new(),
            tail: Vec::new(),
        };
        block.build(model);
        block
    }

    /// A constant term of a row or of the objective: `c`, or `c z_k` under an activation.
    fn konst(&self, c: f64) -> Expression {
        match self.on {
            None => Expression::from(c),
            Some(z) => c * z,
        }
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

    fn build(&mut self, model: &mut Model) {
        let c = self.costs;
        let cfg = c.config;
        let p = cfg.pp as usize;
        let l = self.layers as f64;
        let comm = self.comm.clone();
        #[allow(non_snake_case)]
        let GB = self.mem_unit;
        let per_time = 1.0 / self.time_unit;
        let shards = if cfg.zero1 { cfg.dp as f64 } else { 1.0 };
        let total: Expression = (0..p).map(|j| self.layer_count(j)).sum();
        model.push(constraint!(total == self.konst(l)));
        for j in 0..p {
            let ju = j as u32;
            let count = self.layer_count(j);
            model.push(constraint!(count.clone() >= self.konst(1.0)));
            let inflight = c.inflight(ju);
            let ends_params = c.ends(ju).iter().map(|f| f.params).sum::<f64>();
            let params_gb: Expression =
                count.clone() * (c.layer_params / GB) + self.konst(ends_params / GB);
            // Stage time per micro-batch.
            let tp = comm.stage.tp_allreduce_s[j];
            let mut tau = self.konst(c.fixed_time_s(ju, tp) + comm.stage.p2p_s[j]);
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
            let mut act_gb = self.konst(inflight * c.ends_act_bytes(ju) / GB);
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
                    dram_weights += self.konst(ends_w) - *y * ends_w;
                    for (s_r, n_r) in sv.iter().zip(&self.n[j]) {
                        model.push(constraint!(*s_r <= l * *y));
                        model.push(constraint!(*n_r + l * *y <= self.konst(l)));
                    }
                    let sram: Expression = sv
                        .iter()
                        .map(|v| *v * (c.layer_params * c.state.weights / GB))
                        .sum::<Expression>()
                        + *y * ends_w;
                    model.push(constraint!(sram <= self.konst(c.sram_weight_bytes / GB)));
                }
                None => dram_weights += self.konst(ends_w),
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
                + self.konst(c.workspace_bytes / GB)
                + parked_in;
            model.push(constraint!(dram <= self.konst(c.dram_capacity_bytes / GB)));
            model.push(constraint!(act_out <= act_gb));
            model.push(constraint!(opt_out.clone() <= opt_gb));
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
                tail += self.konst(comm.stage.tied_s);
            }
            let mut tails = Vec::new();
            for path in comm.stage.dp_paths[j].iter() {
                let at = |params: f64| c.dp_sync_s(params, *path);
                let slope = at(2.0) - at(1.0);
                tails.push(
                    tail.clone() + params_gb.clone() * (slope * GB) + self.konst(at(1.0) - slope),
                );
            }
            if tails.is_empty() {
                tails.push(tail);
            }
            let tau = tau * per_time;
            let tails: Vec<Expression> = tails.into_iter().map(|t| t * per_time).collect();
            for t in &tails {
                model.push(constraint!(self.tail_max >= t.clone()));
            }
            model.push(constraint!(self.tau_max >= tau.clone()));
            self.tau.push(tau);
            self.tail.extend(tails);
        }
    }

    /// The block's decision variables (counts, tiers, parked bytes; not the epigraph variables,
    /// which only the objective holds down).
    #[cfg(test)]
    pub fn decisions(&self) -> Vec<Variable> {
        let mut v: Vec<Variable> = self.n.iter().flatten().copied().collect();
        for (sv, y) in self.s.iter().flatten() {
            v.extend(sv.iter().copied());
            v.push(*y);
        }
        v.extend(
            self.act
                .iter()
                .chain(&self.opt)
                .flatten()
                .flatten()
                .copied(),
        );
        v
    }

    /// The block's step time in MIP time units: `sum_j tau_j + (m - 1) tau_max + tail_max`.
    pub fn objective(&self) -> Expression {
        let m = self.costs.m as f64;
        self.tau.iter().cloned().sum::<Expression>() + (m - 1.0) * self.tau_max + self.tail_max
    }

    /// The block's objective (seconds) at a plan of its configuration, the block switched on and
    /// the epigraph variables at their tightest values.
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

    /// The plan the block's variables describe (default placement).
    pub fn plan(&self, val: &dyn Fn(Variable) -> f64) -> Plan {
        let c = self.costs.config;
        let stages = (0..c.pp as usize)
            .map(|j| {
                let sram = self.s[j].as_ref().is_some_and(|(_, y)| val(*y) > 0.5);
                let mut counts = RecomputeCounts::default();
                for r in Recompute::ALL {
                    let mut k = val(self.n[j][r.index()]);
                    if let Some((sv, _)) = &self.s[j] {
                        k += val(sv[r.index()]);
                    }
                    *counts.get_mut(r) = k.round().max(0.0) as u32;
                }
                let mut park = Vec::new();
                for (table, what) in [
                    (&self.act, ParkKind::Activations),
                    (&self.opt, ParkKind::Optimizer),
                ] {
                    for (i, var) in table[j].iter().enumerate() {
                        if let Some(var) = var {
                            let bytes = val(*var) * self.mem_unit;
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

/// Variable values read from a plan (for [`ConfigBlock::objective_of`]), the block switched on.
struct Assignment(HashMap<Variable, f64>);

impl Assignment {
    fn of_plan(mip: &ConfigBlock, plan: &Plan) -> Self {
        let mut v = HashMap::new();
        if let Some(z) = mip.on {
            v.insert(z, 1.0);
        }
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
