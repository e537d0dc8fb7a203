//! One configuration's variables and rows, added to a shared [`Model`] under an activation.
//!
//! The rows are the stage model's (`cost::stage`) with linear expressions for numbers: stage
//! time, memory and tail are not written here, only which variables stand for which decision,
//! and the rules a plan must follow (layers in order, one weight source per stage, capacities).

mod rows;

use std::collections::HashMap;

use good_lp::{constraint, variable, Expression, Solution, Variable};

use crate::cost::comm::{Classes, UnitClass};

use crate::cost::{stage_counts, ConfigCosts, Scalar};
use crate::hardware::Fabric;
use crate::plan::{Park, ParkKind, Plan, Recompute, RecomputeCounts, Stage, WeightSource};

use super::{MipComm, Model};

/// Variables of one stage's layers: `[kind][source][mode]`, `None` where the decision cannot be
/// made (SRAM that could not hold a layer).
pub(super) type LayerVars = Vec<[[Option<Variable>; 3]; WeightSource::COUNT]>;

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
    /// `x[stage]`: layer counts (of the aligned class where a stage's class is a decision).
    x: Vec<LayerVars>,
    /// The straddling class's layer counts, where a stage's class is a decision.
    x_across: Vec<Option<LayerVars>>,
    /// `y[stage]`: the stage's weights in SRAM.
    y: Vec<Option<Variable>>,
    /// Layers of each block in stages `0..=j` and whether stage `j` reaches into block `b`
    /// (`cumulative[j][b]`, `reach[j][b]`), for models of several blocks.
    cumulative: Vec<Vec<Variable>>,
    reach: Vec<Vec<Option<Variable>>>,
    /// Most bytes one stage can park on any one other stage, by kind (activations, optimizer).
    park_cap: Vec<[f64; 2]>,
    /// Bytes parked from `j` on `i`, in memory units: `park[kind][j][i]`.
    park: [Vec<Vec<Option<Variable>>>; 2],
    /// Placement classes on a fabric of units: `straddle[j]` (stage `j` has a group spanning
    /// units), `cross[j]` (the send `j -> j + 1` crosses units).
    straddle: Vec<Straddle>,
    cross: Vec<Variable>,
    /// With interleaving, whether the send from the last stage back to the first crosses units.
    wrap: Option<Variable>,
    /// `partner[j]`: an aligned stage shares units with a pipeline neighbour or a parking partner
    /// (where that is possible at all: two groups fit a unit).
    partner: Vec<Option<Variable>>,
    tau_max: Variable,
    tail_max: Variable,
    /// Each stage's time per micro-batch, in time units.
    tau: Vec<Expression>,
    /// Lower bounds of the step's tail, in time units.
    tail: Vec<Expression>,
}

/// Whether a stage's groups straddle units: known either way, or a binary.
#[derive(Debug, Clone, Copy)]
pub(super) enum Straddle {
    No,
    Yes,
    Maybe(Variable),
}

pub(super) fn kind_index(what: ParkKind) -> usize {
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
        // Placement classes on a fabric of units: a binary per stage where the class is open.
        let straddle: Vec<Straddle> = match &comm.units {
            None => Vec::new(),
            Some(u) => (0..p)
                .map(|_| match u.class {
                    _ if u.must_straddle => Straddle::Yes,
                    UnitClass::Aligned => Straddle::No,
                    UnitClass::Any | UnitClass::Straddled => {
                        Straddle::Maybe(model.add(variable().binary()))
                    }
                })
                .collect(),
        };
        let mut x = Vec::with_capacity(p);
        let mut x_across = Vec::with_capacity(p);
        let mut y = Vec::with_capacity(p);
        for j in 0..p {
            // Only stages whose weights could sit in SRAM get SRAM variables.
            let sram_ok = costs.sram_could_hold(j as u32);
            let fixed_source = fixed.map(|plan| plan.stages[j].weights);
            let mut counts = |model: &mut Model, free: bool| -> LayerVars {
                let mut vars: LayerVars = vec![[[None; 3]; WeightSource::COUNT]; kinds];
                for (k, by_source) in vars.iter_mut().enumerate() {
                    for w in WeightSource::ALL {
                        if w == WeightSource::Sram && !sram_ok {
                            continue;
                        }
                        for r in Recompute::ALL {
                            let (lo, ub) = match (&fixed_counts, fixed_source) {
                                // A fixed plan is fixed in the aligned class; its class is free.
                                (Some(_), _) if free => (0.0, big),
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
                vars
            };
            x.push(counts(model, false));
            let open = matches!(straddle.get(j), Some(Straddle::Maybe(_)));
            x_across.push((open && fixed.is_none()).then(|| counts(model, true)));
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
        let mut park_cap = Vec::with_capacity(p);
        for j in 0..p {
            let ju = j as u32;
            let most = [
                costs.inflight(ju) * (big * max_act + costs.ends_act_bytes(ju)) / mem_unit,
                (big * max_params + costs.ends_params(ju)) * costs.state.optimizer
                    / costs.optimizer_shards()
                    / mem_unit,
            ];
            // The `no_parking` framework rule: every parked amount bounded at 0.
            let allowed = f64::from(u8::from(comm.allow_parking));
            for i in (0..p).filter(|i| *i != j) {
                for (table, ub) in park.iter_mut().zip(most) {
                    table[j][i] = Some(model.add(variable().min(0.0).max(allowed * ub)));
                }
            }
            park_cap.push(most.map(|ub| ub * mem_unit));
        }
        let cross: Vec<Variable> = match &comm.units {
            Some(_) => (1..p).map(|_| model.add(variable().binary())).collect(),
            None => Vec::new(),
        };
        let wrap = (comm.units.is_some() && p > 1 && c.interleave > 1)
            .then(|| model.add(variable().binary()));
        let partner: Vec<Option<Variable>> = (0..p)
            .map(|j| {
                let aligned = matches!(straddle.get(j), Some(Straddle::No));
                let room = comm
                    .units
                    .as_ref()
                    .is_some_and(|u| u.dp_packed[1].is_some());
                (aligned && room && p > 1 && fixed.is_none())
                    .then(|| model.add(variable().binary()))
            })
            .collect();
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
            x_across,
            y,
            cumulative,
            reach,
            park_cap,
            park,
            straddle,
            cross,
            wrap,
            partner,
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

    /// The block's decision variables (counts, sources, parked bytes; not the epigraph variables,
    /// which only the objective holds down).
    #[cfg(test)]
    pub fn decisions(&self) -> Vec<Variable> {
        let mut v: Vec<Variable> = self
            .x
            .iter()
            .chain(self.x_across.iter().flatten())
            .flatten()
            .flat_map(|by| by.iter().flatten().flatten().copied())
            .collect();
        v.extend(self.y.iter().flatten().copied());
        v.extend(self.park.iter().flatten().flatten().flatten().copied());
        v
    }

    /// The block's step time in MIP time units.
    pub fn objective(&self) -> Expression {
        let sum = <Expression as Scalar>::sum(self.tau.iter());
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
        let tau: Vec<f64> = self.tau.iter().map(|e| e.eval_with(&values)).collect();
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
                let classes = || std::iter::once(&self.x[j]).chain(self.x_across[j].as_ref());
                let mut counts: Vec<RecomputeCounts> = (0..c.kinds.len())
                    .map(|k| {
                        let mut rc = RecomputeCounts::default();
                        for r in Recompute::ALL {
                            let n: f64 = classes()
                                .flat_map(|vars| vars[k].iter().filter_map(|m| m[r.index()]))
                                .map(val)
                                .sum();
                            *rc.get_mut(r) = n.round().max(0.0) as u32;
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
            ep: cfg.ep,
            tp: cfg.tp,
            pp: cfg.pp,
            micro_batch: cfg.micro_batch,
            sequence_parallel: cfg.sequence_parallel,
            interleave: cfg.interleave,
            zero1: cfg.zero1,
            dp_overlap: cfg.dp_overlap,
            weight_streaming: false,
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
            // Every (all-reduce, all-to-all) time pair a stage can see: each stage's, and on a
            // fabric of units each class's all-reduce with the stage's all-to-all.
            let mut pairs: Vec<(f64, f64)> = Vec::new();
            for (tp, a2a) in comm
                .stage
                .tp_allreduce_s
                .iter()
                .zip(&comm.stage.all_to_all_s)
            {
                pairs.push((*tp, *a2a));
                if let Some(u) = &comm.units {
                    pairs.extend([(u.tp_inside_s, *a2a), (u.tp_across_s, *a2a)]);
                }
            }
            let time = |r: Recompute| -> Vec<f64> {
                pairs
                    .iter()
                    .flat_map(|(tp, a2a)| WeightSource::ALL.map(|w| kc.time_s(w, r, *tp, *a2a)))
                    .collect()
            };
            // A mode the instance forbids is out, and dominates nothing.
            let allowed = c.recompute_allowed;
            Recompute::ALL.map(|r| {
                !allowed[r.index()]
                    || Recompute::ALL.iter().any(|o| {
                        *o != r
                            && allowed[o.index()]
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
        let mut straddling = vec![false; plan.stages.len()];
        if mip.comm.units.is_some() {
            if let Ok(g) = plan.placement(fabric) {
                let classes = Classes::of(fabric, &g);
                straddling.clone_from(&classes.straddles);
                for (var, x) in mip.straddle.iter().zip(&classes.straddles) {
                    if let Straddle::Maybe(var) = var {
                        v.insert(*var, f64::from(u8::from(*x)));
                    }
                }
                for (var, x) in mip.cross.iter().zip(&classes.crosses) {
                    v.insert(*var, f64::from(u8::from(*x)));
                }
                if let Some(w) = mip.wrap {
                    v.insert(w, f64::from(u8::from(classes.wraps)));
                }
            }
        }
        let counts = stage_counts(plan, mip.costs);
        let blocks = &mip.costs.layout.blocks;
        let mut start = 0u64;
        for (j, stage) in plan.stages.iter().enumerate() {
            // The counts go to the class the placement puts the stage in.
            let across = straddling.get(j).copied().unwrap_or(false);
            let classes = std::iter::once((&mip.x[j], !across || mip.x_across[j].is_none()))
                .chain(mip.x_across[j].as_ref().map(|x| (x, across)));
            for (vars, holds) in classes {
                for (k, by) in vars.iter().enumerate() {
                    for w in WeightSource::ALL {
                        for r in Recompute::ALL {
                            if let Some(var) = by[w.index()][r.index()] {
                                let n = if holds && stage.weights == w {
                                    counts[j][k][r.index()] as f64
                                } else {
                                    0.0
                                };
                                v.insert(var, n);
                            }
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
