//! The megatron strategy: Megatron-LM's rules as its users run it, with its own best configuration
//! found by enumeration and every plan scored by the evaluator.
//!
//! Rules (Narayanan et al., arXiv 2104.04473; Korthikanti et al., arXiv 2205.05198; the flags of
//! NVIDIA/Megatron-LM): tensor parallelism over at most [`MAX_TP`] devices, never across a node of
//! a cluster, dividing the attention heads and the key/value heads; pipeline stages of equal
//! layers, except that `--decoder-first-pipeline-num-layers` and
//! `--decoder-last-pipeline-num-layers` may give the first and last stage other counts (the middle
//! stages still equal); with interleaving every stage's layers divide into the virtual stages;
//! one recomputation mode for every layer (none, selective or full); weights in DRAM and nothing
//! parked on another device; DRAM kept free for the framework ([`DEFAULT_RESERVE_GB`] unless the
//! instance sets `reserve_gb`); devices in Megatron's rank order (tensor ranks fastest, then
//! data-parallel, then pipeline): on a cluster the default placement, on a wafer laid along the
//! rows of the mesh ([`snake_dies`]).
//!
//! The configurations are watos's own ([`space::configs`]) under these limits, so every plan of
//! this strategy is a plan of watos's space too. Sequence parallelism where `t > 1`, the
//! distributed optimizer where `d > 1` and gradient reduction overlapped with the backward pass
//! are on unless pinned off: they never make a plan slower or larger ([`space::SPACE_NOTES`]).
//!
//! The search visits configurations in order of [`space::compute_bound`] and, within one, stage
//! splits in order of a bound that also counts the largest stage; it stops where a bound reaches
//! the best step time so far. Nothing it skips could be faster, so the best plan is the best of
//! the space and the lower bound it reports is that plan's step time.

pub mod args;
mod splits;

use std::time::Instant;

use crate::cost::bound::memory_need;
use crate::cost::{evaluate_with, layers, plan_error, ConfigCosts, Evaluation, Schedule};
use crate::error::{Error, InfeasibleReason};
use crate::hardware::Fabric;
use crate::instance::Instance;
use crate::plan::{Config, Plan, Recompute, Stage};
use crate::solution::{ConfigStats, Found, Method, Solution};
use crate::units::GB;

use super::space::{self, ModelFigures};
use super::{infeasible, Observer, SearchOptions};

pub use splits::splits;

/// Most devices in one tensor-parallel group: the 8 GPUs of an NVLink node (DGX A100 and H100),
/// the largest degree the Megatron-LM papers run ("tensor model parallelism up to the number of
/// GPUs in a server", arXiv 2104.04473 section 3.3).
pub const MAX_TP: u32 = 8;

/// DRAM per device the framework keeps by default, in GB.
pub const DEFAULT_RESERVE_GB: f64 = 3.0;

/// Where [`DEFAULT_RESERVE_GB`] comes from.
pub const DEFAULT_RESERVE_SOURCE: &str = "3 GB per device: the CUDA context and kernel images (781 MB after PyTorch initialises CUDA, pytorch/pytorch issue 34323); NCCL's buffers, NCCL_BUFFSIZE = 4 MiB per channel and ring neighbour by default (NCCL documentation, environment variables), which over tens of channels and the tensor, pipeline and data-parallel communicators come to about 1 GB; and about 1 GB of headroom for the caching allocator's fragmentation, which ZeRO (arXiv 1910.02054, section 3.2) reports leaving memory unusable";

/// Settings a user fixes (a published run's), each `None` left to the search.
///
/// ```
/// use watos::strategy::megatron::{Megatron, Pins};
/// let pinned = Megatron { pins: Pins { tp: Some(8), even_stages: true, ..Default::default() } };
/// assert_eq!(pinned.pins.pp, None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pins {
    pub dp: Option<u32>,
    pub tp: Option<u32>,
    pub pp: Option<u32>,
    pub micro_batch: Option<u32>,
    pub interleave: Option<u32>,
    pub recompute: Option<Recompute>,
    pub sequence_parallel: Option<bool>,
    /// The distributed optimizer (ZeRO-1).
    pub zero1: Option<bool>,
    pub dp_overlap: Option<bool>,
    /// Equal stages only (Megatron-LM before the first/last-stage flags).
    pub even_stages: bool,
}

impl Pins {
    /// The configuration with the pinned switches, or `None` if a pinned degree rules it out.
    fn apply(&self, c: Config) -> Option<Config> {
        let keep = |pin: Option<u32>, v: u32| pin.is_none_or(|p| p == v);
        (keep(self.dp, c.dp)
            && keep(self.tp, c.tp)
            && keep(self.pp, c.pp)
            && keep(self.micro_batch, c.micro_batch)
            && keep(self.interleave, c.interleave))
        .then(|| Config {
            sequence_parallel: self.sequence_parallel.unwrap_or(c.sequence_parallel),
            zero1: self.zero1.unwrap_or(c.zero1),
            dp_overlap: self.dp_overlap.unwrap_or(c.dp_overlap),
            ..c
        })
    }
}

/// Megatron-LM's rules (see the module documentation).
#[derive(Debug, Clone, Default)]
pub struct Megatron {
    pub pins: Pins,
}

impl super::Strategy for Megatron {
    fn name(&self) -> &'static str {
        "megatron"
    }

    fn space(&self) -> &'static str {
        "Megatron-LM's rules: tensor groups of at most 8 inside a node dividing the key/value heads, equal stages with an uneven first and last stage allowed, one recomputation mode, no parking, a memory reserve; best over degrees, micro-batch and interleaving"
    }

    fn instance(&self, inst: &Instance) -> Result<Instance, Error> {
        Ok(rules(inst))
    }

    fn solve(
        &self,
        inst: &Instance,
        opts: &SearchOptions,
        observer: &dyn Observer,
    ) -> Result<Solution, Error> {
        search(&rules(inst), &self.pins, self.space(), opts, observer)
    }
}

/// The instance under Megatron's rules: its limits with the framework rules on, tensor degree at
/// most [`MAX_TP`], and the reserve (the instance's `reserve_gb`, else [`DEFAULT_RESERVE_GB`]) taken
/// off every device's DRAM. Applying it twice changes nothing.
///
/// ```
/// let inst = watos::Instance::load(concat!(env!("CARGO_MANIFEST_DIR"), "/instances/gpt3-175b-wafer.toml")).unwrap();
/// let m = watos::strategy::megatron::rules(&inst);
/// assert!(m.limits.no_parking && m.limits.max_tp == Some(8));
/// assert_eq!(m.hardware.dram_bytes(), 67e9);
/// ```
pub fn rules(inst: &Instance) -> Instance {
    let reserve = inst.limits.reserve_gb.unwrap_or(DEFAULT_RESERVE_GB) * GB;
    let mut out = inst.with_reserve(reserve);
    let lim = &mut out.limits;
    lim.no_parking = true;
    lim.tp_divides_kv_heads = true;
    lim.tp_within_node = true;
    lim.max_tp = Some(lim.max_tp.map_or(MAX_TP, |t| t.min(MAX_TP)));
    lim.reserve_gb = Some(out.reserved_bytes / GB);
    out
}

/// Megatron-LM's devices on a wafer: its ranks in its own order (tensor ranks fastest, then
/// data-parallel, then pipeline) laid on the healthy dies row by row, each row in the opposite
/// direction of the one before (a snake). Megatron-LM knows nothing of the mesh, so a group is
/// whatever dies come next in the wafer's numbering: a tensor group of 8 on 8 columns is one row,
/// a line whose ring closes over 7 hops, where watos's own placement packs it into a 2 x 4 block.
/// The snake rather than plain row-major order keeps consecutive groups adjacent at the row ends.
/// `None` on a cluster, whose default placement is already Megatron's rank order; the devices of
/// each stage (replica by replica) otherwise.
///
/// ```
/// let inst = watos::Instance::load(concat!(env!("CARGO_MANIFEST_DIR"), "/instances/gpt3-175b-wafer.toml")).unwrap();
/// let c = watos::plan::Config::of(&watos::Plan::uniform(96, 1, 4, 14, 1, watos::plan::Recompute::Full));
/// let dies = watos::strategy::megatron::snake_dies(&c, inst.fabric()).unwrap();
/// assert_eq!(dies[0], vec![[0, 0], [0, 1], [0, 2], [0, 3]]);
/// assert_eq!(dies[2], vec![[1, 7], [1, 6], [1, 5], [1, 4]]);
/// ```
pub fn snake_dies(c: &Config, fabric: &Fabric) -> Option<Vec<Vec<[u32; 2]>>> {
    let Fabric::Mesh(m) = fabric else {
        return None;
    };
    let order: Vec<[u32; 2]> = (0..m.rows)
        .flat_map(|r| {
            let cols: Vec<u32> = if r % 2 == 0 {
                (0..m.cols).collect()
            } else {
                (0..m.cols).rev().collect()
            };
            cols.into_iter().map(move |col| [r, col])
        })
        .filter(|rc| fabric.id_of(*rc).is_some_and(|id| fabric.is_healthy(id)))
        .collect();
    let (d, t) = (c.dp as usize, c.tp as usize);
    let stages = (0..c.pp as usize)
        .map(|j| {
            (0..d * t)
                .filter_map(|k| order.get(k + d * t * j).copied())
                .collect()
        })
        .collect();
    Some(stages)
}

/// The plan of a configuration with `split` layers per stage, all in `mode`, on `dies`.
fn plan_of(c: &Config, split: &[u32], mode: Recompute, dies: Option<&[Vec<[u32; 2]>]>) -> Plan {
    let mut plan = Plan {
        dp: c.dp,
        ep: c.ep,
        tp: c.tp,
        pp: c.pp,
        micro_batch: c.micro_batch,
        sequence_parallel: c.sequence_parallel,
        interleave: c.interleave,
        zero1: c.zero1,
        dp_overlap: c.dp_overlap,
        weight_streaming: false,
        stages: split.iter().map(|n| Stage::new(*n, mode)).collect(),
    };
    if let Some(dies) = dies {
        for (stage, d) in plan.stages.iter_mut().zip(dies) {
            stage.dies = Some(d.clone());
        }
    }
    plan
}

/// The least matrix-multiply FLOPs of one token through any one layer, forward and backward (3 x
/// the forward's 2 per matrix parameter): what each layer of a stage costs at least, before the
/// tensor-parallel split.
fn layer_flops_per_token(inst: &Instance) -> f64 {
    let m = &inst.model;
    m.layout()
        .kinds
        .iter()
        .map(|k| 3.0 * 2.0 * layers::params(m, k).matmul)
        .fold(f64::INFINITY, f64::min)
}

/// A lower bound on the step time of every plan of `c` whose largest stage holds `most` layers:
/// [`space::compute_bound`] with the slowest stage at least the largest one's matrix multiplies.
fn split_bound(inst: &Instance, f: &ModelFigures, c: &Config, per_layer: f64, most: u32) -> f64 {
    let tr = &inst.training;
    let m = (tr.global_batch / (c.dp * c.micro_batch).max(1)).max(1);
    let rate = inst.hardware.peak_flops() * f.best_efficiency * c.tp as f64;
    let tokens = c.micro_batch as f64 * tr.seq_len as f64;
    let sum = 3.0 * f.gemm_flops_per_token * tokens / rate;
    let max = (sum / c.pp as f64).max(most as f64 * per_layer * tokens / rate);
    Schedule::of(c.interleave).step_time(&sum, &max, m)
}

/// The best plan so far and the one that came closest to fitting.
#[derive(Default)]
struct Best {
    found: Option<(Plan, Evaluation)>,
    /// Least DRAM overflow ratio of an infeasible plan, with its configuration and the violation.
    closest: Option<(f64, Config, String)>,
}

impl Best {
    fn step(&self) -> f64 {
        self.found
            .as_ref()
            .map_or(f64::INFINITY, |(_, e)| e.step_time_s)
    }

    fn offer(&mut self, c: &Config, plan: Plan, e: Evaluation) {
        if e.feasible {
            if e.step_time_s < self.step() {
                self.found = Some((plan, e));
            }
            return;
        }
        let over = e
            .memory
            .stages
            .iter()
            .map(|s| s.dram_used_bytes / s.dram_capacity_bytes)
            .fold(0.0, f64::max);
        if self.closest.as_ref().is_none_or(|(o, _, _)| over < *o) {
            let why = e.violations.first().map(|v| v.to_string());
            self.closest = Some((
                over,
                *c,
                format!("closest: {plan}, {}", why.unwrap_or_default()),
            ));
        }
    }
}

/// Megatron's best plan on an instance already under its [`rules`], with `pins` fixed.
pub fn search(
    inst: &Instance,
    pins: &Pins,
    space: &str,
    opts: &SearchOptions,
    observer: &dyn Observer,
) -> Result<Solution, Error> {
    let start = Instant::now();
    // Ctrl-C stops it too, as every strategy.
    let deadline = crate::formulation::Deadline::of(start, &opts.solver);
    let figures = ModelFigures::of(inst);
    let mut configs: Vec<Config> = space::configs(inst)
        .into_iter()
        .filter_map(|c| pins.apply(c))
        .collect();
    configs.sort();
    configs.dedup();
    let total = configs.len();
    let mut aggregate_closest: Option<(f64, Config)> = None;
    configs.retain(|c| {
        let ratio = space::state_ratio(inst, &figures, c);
        if ratio > 1.0 && aggregate_closest.is_none_or(|(r, _)| ratio < r) {
            aggregate_closest = Some((ratio, *c));
        }
        ratio <= 1.0
    });
    let mut memory_infeasible = total - configs.len();
    let mut order: Vec<(f64, Config)> = configs
        .into_iter()
        .map(|c| (space::compute_bound(inst, &figures, &c), c))
        .collect();
    order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    observer.start(total as u64, "configurations");
    observer.advance(memory_infeasible as u64);
    let per_layer = layer_flops_per_token(inst);
    let modes: Vec<Recompute> = match pins.recompute {
        Some(r) => vec![r],
        None => Recompute::ALL.to_vec(),
    };
    let mut best = Best::default();
    let (mut scored, mut any_fit, mut stopped) = (0usize, false, false);
    let mut open_bound = f64::INFINITY;
    for (bound, c) in &order {
        if *bound >= best.step() {
            open_bound = *bound;
            break;
        }
        if deadline.passed() {
            (stopped, open_bound) = (true, *bound);
            break;
        }
        let costs = ConfigCosts::new(inst, *c);
        if !memory_need(&costs).fits() {
            memory_infeasible += 1;
            observer.advance(1);
            continue;
        }
        any_fit = true;
        scored += 1;
        let mut candidates: Vec<(f64, Vec<u32>)> =
            splits(inst.model.layers, c.pp, c.interleave, pins.even_stages)
                .into_iter()
                .map(|s| {
                    let most = s.iter().copied().max().unwrap_or(0);
                    (split_bound(inst, &figures, c, per_layer, most), s)
                })
                .collect();
        candidates.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        // Every split of a configuration has the same placement.
        let dies = snake_dies(c, inst.fabric());
        let placement = match candidates.first() {
            Some((_, s)) => plan_of(c, s, Recompute::None, dies.as_deref())
                .placement(inst.fabric())
                .map_err(plan_error)?,
            None => continue,
        };
        for (split_bound, split) in &candidates {
            if *split_bound >= best.step() {
                break;
            }
            for mode in &modes {
                let plan = plan_of(c, split, *mode, dies.as_deref());
                let e = evaluate_with(inst, &plan, &costs, &placement);
                best.offer(c, plan, e);
            }
        }
        observer.advance(1);
        observer.status(best.step(), bound.min(best.step()));
    }
    observer.finish();
    let Some((plan, evaluation)) = best.found else {
        if stopped {
            return Err(Error::Limit(format!(
                "the limit ran out after {scored} of {total} configurations, before any feasible plan was found"
            )));
        }
        return Err(no_fit(inst, any_fit, aggregate_closest, best.closest));
    };
    let step = evaluation.step_time_s;
    Ok(Solution::conclude(
        inst,
        Found {
            plan,
            evaluation,
            bound_s: open_bound.min(step),
            mip_objective_s: f64::NAN,
            mip_plan_step_time_s: step,
            configs: ConfigStats {
                total,
                memory_infeasible,
                solved: scored,
                pruned: total.saturating_sub(memory_infeasible + scored),
            },
            nodes: 0,
            out_of_time: stopped,
            limited: false,
            first_plan_s: None,
        },
        &opts.solver,
        start,
        Method::Enumeration,
        space,
    ))
}

/// Why no plan of the rules fits: nothing fits in aggregate, or every plan overflows a device
/// (with the plan that came closest).
fn no_fit(
    inst: &Instance,
    any_fit: bool,
    aggregate_closest: Option<(f64, Config)>,
    closest_plan: Option<(f64, Config, String)>,
) -> Error {
    let need = |c: Config| (c, memory_need(&ConfigCosts::new(inst, c)));
    let mut err = if any_fit {
        infeasible(inst, None, InfeasibleReason::Rules)
    } else {
        infeasible(
            inst,
            aggregate_closest.map(|(_, c)| need(c)),
            InfeasibleReason::Aggregate,
        )
    };
    if let (Error::Infeasible(i), Some((_, _, why))) = (&mut err, closest_plan) {
        i.detail = Some(why);
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(name: &str) -> Instance {
        Instance::load(format!("{}/instances/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[test]
    fn pins_fix_degrees_and_switches() {
        let c = Config {
            dp: 2,
            ep: 1,
            tp: 4,
            pp: 7,
            micro_batch: 1,
            sequence_parallel: true,
            interleave: 1,
            zero1: true,
            dp_overlap: true,
        };
        let pins = Pins {
            tp: Some(4),
            zero1: Some(false),
            ..Default::default()
        };
        assert_eq!(pins.apply(c).map(|c| c.zero1), Some(false));
        let other = Pins {
            tp: Some(8),
            ..Default::default()
        };
        assert_eq!(other.apply(c), None);
    }

    #[test]
    fn the_split_bound_counts_the_largest_stage() {
        // Hand-worked: LLaMA-30B (60 layers, h 6656, FFN 17920), D1 T8 P7, micro-batch 1,
        // sequence 2048, 512 micro-batches. One layer's matrix parameters: attention 4 h^2 =
        // 177,209,344 and SwiGLU 3 h f = 357,826,560, 535,035,904 in all; x 6 FLOPs per token =
        // 3.2102e9. A stage of 10 layers: 10 x 3.2102e9 x 2048 / (708e12 x 0.8 x 8) = 14.509 ms.
        let i = inst("llama-30b-wafer.toml");
        let f = ModelFigures::of(&i);
        let c = Config {
            dp: 1,
            ep: 1,
            tp: 8,
            pp: 7,
            micro_batch: 1,
            sequence_parallel: true,
            interleave: 1,
            zero1: false,
            dp_overlap: true,
        };
        let per_layer = layer_flops_per_token(&i);
        assert!((per_layer - 6.0 * 535_035_904.0).abs() < 1.0, "{per_layer}");
        let even = split_bound(&i, &f, &c, per_layer, 9);
        let uneven = split_bound(&i, &f, &c, per_layer, 10);
        let tau = 10.0 * per_layer * 2048.0 / (708e12 * 0.8 * 8.0);
        assert!((tau - 14.509e-3).abs() < 1e-6, "{tau}");
        // The sum term is the same; the largest stage's term is 511 tau more.
        let sum = 3.0 * f.gemm_flops_per_token * 2048.0 / (708e12 * 0.8 * 8.0);
        assert!((uneven - (sum + 511.0 * tau)).abs() < 1e-9 * uneven);
        assert!(even <= uneven && space::compute_bound(&i, &f, &c) <= even);
    }

    #[test]
    fn the_rules_take_the_reserve_once() {
        let i = inst("gpt3-175b-wafer.toml");
        let twice = rules(&rules(&i));
        assert_eq!(twice.hardware.dram_bytes(), 67e9);
        assert_eq!(twice.limits.reserve_gb, Some(3.0));
        let mut own = i.clone();
        own.limits.reserve_gb = Some(0.5);
        own.limits.max_tp = Some(4);
        let r = rules(&own);
        assert_eq!(
            (r.hardware.dram_bytes(), r.limits.max_tp),
            (69.5e9, Some(4))
        );
    }
}
