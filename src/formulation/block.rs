//! One configuration's variables and rows, added to a shared [`Model`] under an activation.
//!
//! The rows are the stage model's (`cost::stage`) with linear expressions for numbers: stage
//! time, memory and tail are not written here, only which variables stand for which decision,
//! and the rules a plan must follow (layers in order, one weight source per stage, capacities).

use std::collections::HashMap;

use good_lp::{constraint, variable, Expression, Solution, Variable};

use crate::cost::comm::Classes;
use crate::cost::stage::{self, ParkFlow, StageComm, StageVars};
use crate::cost::{stage_counts, ConfigCosts, Scalar};
use crate::hardware::Fabric;
use crate::plan::{Park, ParkKind, Plan, Recompute, RecomputeCounts, Stage, WeightSource};

use super::{MipComm, Model};

/// Variables of one stage's layers: `[kind][source][mode]`, `None` where the decision cannot be
/// made (SRAM that could not hold a layer).
type LayerVars = Vec<[[Option<Variable>; 3]; WeightSource::COUNT]>;

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
    /// `x[stage]`: layer counts.
    x: Vec<LayerVars>,
    /// `y[stage]`: the stage's weights in SRAM.
    y: Vec<Option<Variable>>,
    /// Layers of each block in stages `0..=j` and whether stage `j` reaches into block `b`
    /// (`cumulative[j][b]`, `reach[j][b]`), for models of several blocks.
    cumulative: Vec<Vec<Variable>>,
    reach: Vec<Vec<Option<Variable>>>,
    /// Bytes parked from `j` on `i`, in memory units: `park[kind][j][i]`.
    park: [Vec<Vec<Option<Variable>>>; 2],
    /// Placement classes on a fabric of units: `straddle[j]` (stage `j` has a group spanning
    /// units; `None`: it must), `cross[j]` (the send `j -> j + 1` crosses units), and the stage
    /// time `stage_time[j]` bounded below by each class's expression.
    straddle: Vec<Option<Variable>>,
    cross: Vec<Variable>,
    stage_time: Vec<Option<Variable>>,
    tau_max: Variable,
    tail_max: Variable,
    /// Lower bounds of each stage's time per micro-batch (one: the time itself), in time units.
    tau: Vec<Vec<Expression>>,
    /// Lower bounds of the step's tail, in time units.
    tail: Vec<Expression>,
}

fn kind_index(what: ParkKind) -> usize {
    match what {
        ParkKind::Activations => 0,
        ParkKind::Optimizer => 1,
    }
}

impl<'a> ConfigBlock<'a> {
    /// Adds configuration `costs` to `model`, active when `on` is 1 (always if `None`), with time
    /// in units of `time_unit` seconds and memory in units of one device's DRAM. `fixed`: the
    /// layers, modes and weight sources of every stage are fixed (the exhaustive search solves only
    /// the parking LP).
    ///
    /// Under `on = z_k` every constant of the rows and objective is a multiple of `z_k` (the stage
    /// model's `one`). With `z_k = 0` that forces the whole block to 0, also in the LP relaxation,
    /// without big-M rows: the layer totals are `L z_k` with every count non-negative; `n + L y <=
    /// L z_k` bounds `y` by `z_k`; parked bytes are bounded by what their stage holds, built from
    /// counts and `z_k`; `tau` and `tail` are then 0 and the epigraph variables are minimised to 0.
    /// Only bounds below those implied ones (a fixed stage) get rows `lo z_k <= v <= ub z_k`.
    pub fn add(
        model: &mut Model,
        costs: &'a ConfigCosts,
        comm: MipComm,
        fixed: Option<&Plan>,
        on: Option<Variable>,
        time_unit: f64,
    ) -> Self {
        let c = costs.config;
        let p = c.pp as usize;
        let kinds = costs.kinds.len();
        let big = costs.model_layers as f64;
        let mem_unit = costs.dram_capacity_bytes.max(1.0);
        let fixed_counts = fixed.map(|plan| stage_counts(plan, costs));
        let dominated = dominated_modes(costs, &comm);
        let mut scaled_bounds = Vec::new();
        let mut fixed_on = Vec::new();
        // An integer count in [lo, ub]: variable bounds when always on; under z_k, rows for the
        // bounds the layer totals do not already imply.
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
        let mut x = Vec::with_capacity(p);
        let mut y = Vec::with_capacity(p);
        for j in 0..p {
            // Only stages whose weights could sit in SRAM get SRAM variables.
            let sram_ok = costs.sram_could_hold(j as u32);
            let fixed_source = fixed.map(|plan| plan.stages[j].weights);
            let mut stage_vars: LayerVars = vec![[[None; 3]; WeightSource::COUNT]; kinds];
            for (k, by_source) in stage_vars.iter_mut().enumerate() {
                for w in WeightSource::ALL {
                    if w == WeightSource::Sram && !sram_ok {
                        continue;
                    }
                    for r in Recompute::ALL {
                        let (lo, ub) = match (&fixed_counts, fixed_source) {
                            (Some(fc), Some(src)) if src == w => {
                                let n = fc[j][k][r.index()] as f64;
                                (n, n)
                            }
                            (Some(_), _) => (0.0, 0.0),
                            (None, _) if dominated[k][r.index()] => (0.0, 0.0),
                            (None, _) => (0.0, big),
                        };
                        by_source[w.index()][r.index()] = Some(count_var(model, lo, ub));
                    }
                }
            }
            x.push(stage_vars);
            y.push(sram_ok.then(|| {
                let y_fixed = fixed_source.map(|s| f64::from(u8::from(s == WeightSource::Sram)));
                let lo = y_fixed.unwrap_or(0.0);
                let hi = y_fixed.unwrap_or(1.0);
                match on {
                    None => model.add(variable().binary().min(lo).max(hi)),
                    Some(_) => {
                        let v = model.add(variable().binary().min(0.0).max(hi));
                        if lo > 0.0 {
                            fixed_on.push(v);
                        }
                        v
                    }
                }
            }));
        }
        // Layer order across stages: cumulative counts per block, and binaries for where each
        // stage ends, when the model has more than one block.
        let blocks = &costs.layout.blocks;
        let (mut cumulative, mut reach) = (Vec::new(), Vec::new());
        if blocks.len() > 1 {
            for _ in 0..p {
                cumulative.push(
                    blocks
                        .iter()
                        .map(|b| model.add(variable().integer().min(0.0).max(b.layers as f64)))
                        .collect(),
                );
                reach.push(
                    (0..blocks.len())
                        .map(|b| (b > 0).then(|| model.add(variable().binary())))
                        .collect(),
                );
            }
        }
        // Parking bounds: a stage cannot park more than it could ever hold.
        let largest = |f: &dyn Fn(&crate::cost::layers::KindCosts) -> f64| {
            costs.kinds.iter().map(f).fold(0.0, f64::max)
        };
        let max_act = largest(&|k| k.act_bytes[Recompute::None.index()]);
        let max_params = largest(&|k| k.params);
        let mut park: [Vec<Vec<Option<Variable>>>; 2] =
            [vec![vec![None; p]; p], vec![vec![None; p]; p]];
        for j in 0..p {
            let ju = j as u32;
            let most = [
                costs.inflight(ju) * (big * max_act + costs.ends_act_bytes(ju)) / mem_unit,
                (big * max_params + costs.ends_params(ju)) * costs.state.optimizer
                    / costs.optimizer_shards()
                    / mem_unit,
            ];
            for i in (0..p).filter(|i| *i != j) {
                for (table, ub) in park.iter_mut().zip(most) {
                    table[j][i] = Some(model.add(variable().min(0.0).max(ub)));
                }
            }
        }
        let (mut straddle, mut cross, mut stage_time) = (Vec::new(), Vec::new(), Vec::new());
        if let Some(u) = &comm.units {
            for _ in 0..p {
                straddle.push((!u.must_straddle).then(|| model.add(variable().binary())));
                stage_time.push(Some(model.add(variable().min(0.0))));
            }
            for _ in 1..p {
                cross.push(model.add(variable().binary()));
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
            for v in fixed_on {
                model.push(constraint!(v >= z));
            }
        }
        let mut block = ConfigBlock {
            costs,
            comm,
            on,
            time_unit,
            mem_unit,
            x,
            y,
            cumulative,
            reach,
            park,
            straddle,
            cross,
            stage_time,
            tau_max,
            tail_max,
            tau: Vec::new(),
            tail: Vec::new(),
        };
        block.build(model);
        block
    }

    /// The constant 1 of the block's rows: `1`, or `z_k` under an activation.
    fn one(&self) -> Expression {
        match self.on {
            None => Expression::from(1.0),
            Some(z) => Expression::from(z),
        }
    }

    fn layers_of(&self, j: usize, k: usize) -> Expression {
        let mut e = Expression::default();
        for by_mode in &self.x[j][k] {
            for v in by_mode.iter().flatten() {
                e += *v;
            }
        }
        e
    }

    /// The stage model's decisions of stage `j`, as expressions over the block's variables.
    fn stage_vars(&self, j: usize) -> StageVars<Expression> {
        let c = self.costs;
        let p = c.config.pp as usize;
        let at = |v: Option<Variable>| v.map_or_else(Expression::default, Expression::from);
        let bytes = |v: Variable| Expression::from(v) * self.mem_unit;
        let mut park_out = Vec::new();
        let mut park_in = Vec::new();
        for what in ParkKind::ALL {
            let table = &self.park[kind_index(what)];
            for i in (0..p).filter(|i| *i != j) {
                if let Some(v) = table[j][i] {
                    park_out.push(ParkFlow {
                        what,
                        bytes: bytes(v),
                        bw: self.comm.park_bw[j][i],
                        sender_inflight: c.inflight(j as u32),
                    });
                }
                if let Some(v) = table[i][j] {
                    park_in.push(ParkFlow {
                        what,
                        bytes: bytes(v),
                        bw: self.comm.park_bw[i][j],
                        sender_inflight: c.inflight(i as u32),
                    });
                }
            }
        }
        StageVars {
            layers: self.x[j]
                .iter()
                .map(|by| by.map(|modes| modes.map(at)))
                .collect(),
            ends_in_sram: at(self.y[j]),
            park_out,
            park_in,
        }
    }

    fn build(&mut self, model: &mut Model) {
        let c = self.costs;
        let cfg = c.config;
        let p = cfg.pp as usize;
        let big = c.model_layers as f64;
        let one = self.one();
        let per_mem = 1.0 / self.mem_unit;
        self.order_rows(model);
        for j in 0..p {
            let ju = j as u32;
            let count: Expression = (0..c.kinds.len()).map(|k| self.layers_of(j, k)).sum();
            // Each interleaved chunk holds at least one layer.
            model.push(constraint!(count >= one.clone() * cfg.interleave as f64));
            // One weight source per stage: with y = 1 no DRAM layers, with y = 0 no SRAM layers.
            if let Some(y) = self.y[j] {
                for by in &self.x[j] {
                    for (dram, sram) in by[0].iter().zip(&by[1]) {
                        if let (Some(n), Some(s)) = (dram, sram) {
                            model.push(constraint!(*s <= big * y));
                            model.push(constraint!(*n + big * y <= one.clone() * big));
                        }
                    }
                }
            }
            let v = self.stage_vars(j);
            let mem = stage::memory(c, ju, &v, &one);
            if self.y[j].is_some() {
                let sram_cap = one.clone() * c.sram_weight_bytes;
                model.push(constraint!(
                    (mem.weights_sram.clone() - sram_cap) * per_mem <= 0.0
                ));
            }
            let cap = one.clone() * c.dram_capacity_bytes;
            model.push(constraint!((mem.dram_used() - cap) * per_mem <= 0.0));
            let act = mem.parked_out_activations.clone() - mem.activations.clone();
            model.push(constraint!(act * per_mem <= 0.0));
            let opt = mem.parked_out_optimizer.clone() - mem.optimizer.clone();
            model.push(constraint!(opt * per_mem <= 0.0));
            self.time_rows(model, j, &v);
        }
        self.class_rows(model);
    }

    /// Stage `j`'s time and tail rows: with the communication at the best any placement allows,
    /// or on a fabric of units, per placement class (the class binaries switch big-M rows).
    fn time_rows(&mut self, model: &mut Model, j: usize, v: &StageVars<Expression>) {
        let c = self.costs;
        let cfg = c.config;
        let ju = j as u32;
        let one = self.one();
        let per_time = 1.0 / self.time_unit;
        let any = self.comm.stage.stage(c, ju, cfg.dp_overlap);
        let mut tails = vec![(stage::tail(c, ju, v, &any, &one), None)];
        let mut taus = Vec::new();
        match self.comm.units.clone() {
            None => taus.push(stage::time_total(c, ju, v, &any, &one)),
            Some(u) => {
                let (nf, nb) = c.p2p_sends(ju);
                let aligned_dp = [u.dp_aligned];
                let class = |tp: f64| StageComm {
                    tp_allreduce_s: tp,
                    p2p_s: (nf + nb) * u.send_inside_s,
                    dp_paths: if cfg.dp > 1 { &aligned_dp } else { &[] },
                    ..any
                };
                // Chain sends out of the stage cost more when they cross units.
                let chunks = cfg.interleave as f64;
                let delta = u.send_across_s - u.send_inside_s;
                let mut extra = Expression::default();
                if j + 1 < self.x.len() {
                    extra.add_mul(delta * chunks, &Expression::from(self.cross[j]));
                }
                if j > 0 {
                    extra.add_mul(delta * chunks, &Expression::from(self.cross[j - 1]));
                }
                let across =
                    stage::time_total(c, ju, v, &class(u.tp_across_s), &one) + extra.clone();
                match self.straddle[j] {
                    None => taus.push(across),
                    Some(a) => {
                        taus.push(stage::time_total(c, ju, v, &class(u.tp_inside_s), &one) + extra);
                        // Switched off (a = 0) by more than the extra TP time can ever be.
                        let collectives = c
                            .kinds
                            .iter()
                            .flat_map(|k| k.tp_collectives)
                            .fold(0.0, f64::max);
                        let ends: f64 = c.ends(ju).map(|f| f.tp_collectives).sum();
                        let big = (u.tp_across_s - u.tp_inside_s)
                            * (c.model_layers as f64 * collectives + ends);
                        taus.push(across - (one.clone() - a) * big);
                        if cfg.dp > 1 {
                            // An aligned stage's data-parallel rings span units.
                            let aligned = stage::tail(c, ju, v, &class(u.tp_inside_s), &one);
                            tails.push((aligned, Some(a)));
                        }
                    }
                }
            }
        }
        for (tail, switch) in tails {
            for dp in &tail.dp {
                let mut t = tail.optimizer.clone().plus(dp);
                if let (Some(a), Some(u)) = (switch, &self.comm.units) {
                    // Switched off (a = 1) by more than the aligned rings can ever take.
                    let (per_param, fixed) = c.dp_sync_affine(u.dp_aligned);
                    let most_params = c.kinds.iter().map(|k| k.params).fold(0.0, f64::max)
                        * c.model_layers as f64
                        + c.ends_params(ju);
                    t -= a * (per_param * most_params + fixed + any.tied_s);
                }
                let t = t * per_time;
                model.push(constraint!(self.tail_max >= t.clone()));
                self.tail.push(t);
            }
        }
        let taus: Vec<Expression> = taus.into_iter().map(|t| t * per_time).collect();
        match self.stage_time.get(j).copied().flatten() {
            Some(time) => {
                for t in &taus {
                    model.push(constraint!(time >= t.clone()));
                }
                model.push(constraint!(self.tau_max >= time));
            }
            None => {
                for t in &taus {
                    model.push(constraint!(self.tau_max >= t.clone()));
                }
            }
        }
        self.tau.push(taus);
    }

    /// The rules that tie placement classes together: a send out of or into an aligned stage
    /// crosses units when two groups cannot share one, and one replica's pipeline, spanning at
    /// least `min_units` units, moves between them by crossing sends or straddling groups.
    fn class_rows(&self, model: &mut Model) {
        let Some(u) = &self.comm.units else { return };
        let one = self.one();
        let p = self.straddle.len();
        let straddles = |j: usize| self.straddle[j].map_or_else(|| one.clone(), Expression::from);
        if u.aligned_sends_cross {
            for j in 0..p.saturating_sub(1) {
                let c = self.cross[j];
                model.push(constraint!(c + straddles(j) >= one.clone()));
                model.push(constraint!(c + straddles(j + 1) >= one.clone()));
            }
        }
        let mut moves: Expression = self.cross.iter().copied().sum();
        for j in 0..p {
            moves.add_mul(u.straddle_weight as f64, &straddles(j));
        }
        model.push(constraint!(
            moves >= one * (u.min_units.saturating_sub(1) as f64)
        ));
    }

    /// Rows that keep each stage's layers the next ones of the model: the layer totals of each
    /// kind, and with several blocks, cumulative counts per block with binaries for where each
    /// stage ends (`reach[j][b]`: stage `j` ends past the start of block `b`).
    fn order_rows(&self, model: &mut Model) {
        let c = self.costs;
        let p = c.config.pp as usize;
        let one = self.one();
        let blocks = &c.layout.blocks;
        if blocks.len() <= 1 {
            for (k, total) in c.layout.totals().iter().enumerate() {
                let sum: Expression = (0..p).map(|j| self.layers_of(j, k)).sum();
                model.push(constraint!(sum == one.clone() * *total as f64));
            }
            return;
        }
        for j in 0..p {
            let cum = &self.cumulative[j];
            for (b, block) in blocks.iter().enumerate() {
                let size = block.layers as f64;
                if let Some(u) = self.reach[j][b] {
                    model.push(constraint!(cum[b] <= size * u));
                }
                if let Some(Some(next)) = self.reach[j].get(b + 1) {
                    model.push(constraint!(cum[b] >= size * *next));
                    if let Some(u) = self.reach[j][b] {
                        model.push(constraint!(*next <= u));
                    }
                }
                if j > 0 {
                    model.push(constraint!(cum[b] >= self.cumulative[j - 1][b]));
                }
                if j + 1 == p {
                    model.push(constraint!(cum[b] == one.clone() * size));
                }
            }
            for k in 0..c.kinds.len() {
                let mut here = Expression::default();
                for (b, block) in blocks.iter().enumerate().filter(|(_, b)| b.kind == k) {
                    let _ = block;
                    here += cum[b];
                    if j > 0 {
                        here -= self.cumulative[j - 1][b];
                    }
                }
                let layers = self.layers_of(j, k);
                model.push(constraint!(layers == here));
            }
        }
    }

    /// The block's decision variables (counts, sources, parked bytes; not the epigraph variables,
    /// which only the objective holds down).
    #[cfg(test)]
    pub fn decisions(&self) -> Vec<Variable> {
        let mut v: Vec<Variable> = self
            .x
            .iter()
            .flatten()
            .flat_map(|by| by.iter().flatten().flatten().copied())
            .collect();
        v.extend(self.y.iter().flatten().copied());
        v.extend(self.park.iter().flatten().flatten().flatten().copied());
        v
    }

    /// The block's step time in MIP time units.
    pub fn objective(&self) -> Expression {
        let times: Vec<Expression> = self
            .tau
            .iter()
            .enumerate()
            .map(|(j, t)| match self.stage_time.get(j).copied().flatten() {
                Some(v) => Expression::from(v),
                None => t[0].clone(),
            })
            .collect();
        let sum = <Expression as Scalar>::sum(times.iter());
        let mut out =
            self.costs
                .schedule
                .step_time(&sum, &Expression::from(self.tau_max), self.costs.m);
        out += self.tail_max;
        out
    }

    /// The block's objective (seconds) at a plan of its configuration, the block switched on and
    /// the epigraph variables at their tightest values.
    pub fn objective_of(&self, plan: &Plan, fabric: &Fabric) -> f64 {
        let values = Assignment::of_plan(self, plan, fabric);
        let tau: Vec<f64> = self
            .tau
            .iter()
            .map(|alts| {
                alts.iter()
                    .map(|e| e.eval_with(&values))
                    .fold(f64::NEG_INFINITY, f64::max)
            })
            .collect();
        let tail = self
            .tail
            .iter()
            .map(|e| e.eval_with(&values))
            .fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = tau.iter().sum();
        let max = tau.iter().copied().fold(0.0, f64::max);
        (self.costs.schedule.step_time(&sum, &max, self.costs.m) + tail.max(0.0)) * self.time_unit
    }

    /// The plan the block's variables describe (default placement).
    pub fn plan(&self, val: &dyn Fn(Variable) -> f64) -> Plan {
        let c = self.costs;
        let cfg = c.config;
        let mut start = 0u32;
        let stages = (0..cfg.pp as usize)
            .map(|j| {
                let sram = self.y[j].is_some_and(|y| val(y) > 0.5);
                // Layers per kind and mode, summed over sources.
                let mut counts: Vec<RecomputeCounts> = self.x[j]
                    .iter()
                    .map(|by| {
                        let mut rc = RecomputeCounts::default();
                        for r in Recompute::ALL {
                            let k: f64 = by.iter().filter_map(|m| m[r.index()]).map(val).sum();
                            *rc.get_mut(r) = k.round().max(0.0) as u32;
                        }
                        rc
                    })
                    .collect();
                let layers: u32 = counts.iter().map(|r| r.total() as u32).sum();
                let recompute = runs(&c.layout, start, layers, &mut counts);
                start += layers;
                let mut park = Vec::new();
                for what in ParkKind::ALL {
                    for (i, var) in self.park[kind_index(what)][j].iter().enumerate() {
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
                    layers,
                    recompute,
                    weights: if sram {
                        WeightSource::Sram
                    } else {
                        WeightSource::Dram
                    },
                    park,
                    dies: None,
                }
            })
            .collect();
        Plan {
            dp: cfg.dp,
            tp: cfg.tp,
            pp: cfg.pp,
            micro_batch: cfg.micro_batch,
            sequence_parallel: cfg.sequence_parallel,
            interleave: cfg.interleave,
            zero1: cfg.zero1,
            dp_overlap: false,
            stages,
        }
    }
}

/// The recomputation runs of a stage of `layers` layers from `start`, one per run of one kind, each
/// taking its kind's counts in mode order.
fn runs(
    layout: &crate::workload::LayerLayout,
    start: u32,
    layers: u32,
    counts: &mut [RecomputeCounts],
) -> Vec<RecomputeCounts> {
    let mut out: Vec<RecomputeCounts> = Vec::new();
    let mut segment: Option<(usize, u32)> = None;
    let mut segments = Vec::new();
    for k in layout.kinds_in(start, layers) {
        match &mut segment {
            Some((kind, n)) if *kind == k => *n += 1,
            _ => {
                segments.extend(segment.take());
                segment = Some((k, 1));
            }
        }
    }
    segments.extend(segment);
    for (k, mut n) in segments {
        let mut run = RecomputeCounts::default();
        for r in Recompute::ALL {
            let take = n.min(counts[k].get(r));
            *run.get_mut(r) += take;
            *counts[k].get_mut(r) -= take;
            n -= take;
        }
        out.push(run);
    }
    if out.is_empty() {
        out.push(RecomputeCounts::default());
    }
    out
}

/// Modes of each kind another mode matches or beats in time (every stage's communication, both
/// weight sources) and in stored bytes: any plan using them has an equal or better twin without
/// them (with flash attention, `Selective` is `None`). Ties keep the lower mode.
fn dominated_modes(c: &ConfigCosts, comm: &MipComm) -> Vec<[bool; 3]> {
    c.kinds
        .iter()
        .map(|kc| {
            // Time is affine in the all-reduce time: checking the extremes checks every value
            // between them.
            let mut tps = comm.stage.tp_allreduce_s.clone();
            if let Some(u) = &comm.units {
                tps.extend([u.tp_inside_s, u.tp_across_s]);
            }
            let time = |r: Recompute| -> Vec<f64> {
                tps.iter()
                    .flat_map(|tp| WeightSource::ALL.map(|w| kc.time_s(w, r, *tp)))
                    .collect()
            };
            Recompute::ALL.map(|r| {
                Recompute::ALL.iter().any(|o| {
                    *o != r
                        && kc.act_bytes[o.index()] <= kc.act_bytes[r.index()]
                        && time(*o).iter().zip(time(r)).all(|(a, b)| *a <= b)
                        && (o.index() < r.index()
                            || kc.act_bytes[o.index()] < kc.act_bytes[r.index()]
                            || time(*o).iter().zip(time(r)).any(|(a, b)| *a < b))
                })
            })
        })
        .collect()
}

/// Variable values read from a plan (for [`ConfigBlock::objective_of`]), the block switched on.
struct Assignment(HashMap<Variable, f64>);

impl Assignment {
    fn of_plan(mip: &ConfigBlock, plan: &Plan, fabric: &Fabric) -> Self {
        let mut v = HashMap::new();
        if let Some(z) = mip.on {
            v.insert(z, 1.0);
        }
        if mip.comm.units.is_some() {
            if let Ok(g) = plan.placement(fabric) {
                let classes = Classes::of(fabric, &g);
                for (var, x) in mip.straddle.iter().zip(&classes.straddles) {
                    if let Some(var) = var {
                        v.insert(*var, f64::from(u8::from(*x)));
                    }
                }
                for (var, x) in mip.cross.iter().zip(&classes.crosses) {
                    v.insert(*var, f64::from(u8::from(*x)));
                }
            }
        }
        let counts = stage_counts(plan, mip.costs);
        let blocks = &mip.costs.layout.blocks;
        let mut start = 0u64;
        for (j, stage) in plan.stages.iter().enumerate() {
            for (k, by) in mip.x[j].iter().enumerate() {
                for w in WeightSource::ALL {
                    for r in Recompute::ALL {
                        if let Some(var) = by[w.index()][r.index()] {
                            let n = if stage.weights == w {
                                counts[j][k][r.index()] as f64
                            } else {
                                0.0
                            };
                            v.insert(var, n);
                        }
                    }
                }
            }
            if let Some(y) = mip.y[j] {
                v.insert(y, f64::from(u8::from(stage.weights == WeightSource::Sram)));
            }
            start += u64::from(stage.layers);
            if let (Some(cum), Some(reach)) = (mip.cumulative.get(j), mip.reach.get(j)) {
                let mut at = 0u64;
                for (b, block) in blocks.iter().enumerate() {
                    let size = u64::from(block.layers);
                    v.insert(cum[b], start.saturating_sub(at).min(size) as f64);
                    if let Some(u) = reach[b] {
                        v.insert(u, f64::from(u8::from(start > at)));
                    }
                    at += size;
                }
            }
            for park in &stage.park {
                if let Some(var) = mip.park[kind_index(park.what)][j][park.to as usize] {
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
