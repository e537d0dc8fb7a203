//! The configurations watos's strategies search (the top level of the plan space), each with a
//! bound that needs no per-configuration costs, and a frontier that hands them out in order of
//! their best bound, refining bounds only when a configuration comes up.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use crate::cost::bound::{memory_need, quick_bound};
use crate::cost::comm::{UnitClass, UnitComm};
use crate::cost::{layers, CommCosts, ConfigCosts};
use crate::error::MemoryNeed;
use crate::instance::Instance;
use crate::plan::Config;
use crate::workload::divisors;

/// What the configuration space leaves out, and why no plan is lost by it.
pub const SPACE_NOTES: &[&str] = &[
    "sequence parallelism is on wherever t > 1: it never makes a plan slower or larger (the same collective volume, replicated activations and elementwise work divided by t)",
    "ZeRO-1 is on wherever d > 1: sharding optimizer state never makes a plan slower or larger (reduce-scatter plus all-gather move less than an all-reduce of FP32 gradients, and the optimizer step runs on a shard)",
    "data-parallel overlap is on: reducing gradients under the last backward pass never makes a plan slower",
    "weight-streaming plans (one stage over every die, each layer split whatever the heads) are not in this space: the watos strategy takes the weight-streaming strategy's best plan as an incumbent instead",
];

/// Every configuration of the search space: `t` dividing the heads (and compatible with the
/// key/value heads), `t p d` at most the healthy devices (idle devices allowed), `b d` dividing the
/// global batch (every micro-batch size), expert parallelism `ep` dividing `d` and the routed
/// experts ([`expert_degrees`]), interleaving `v` from 1 to the layers per stage (with `m`
/// a multiple of `p` when `v > 1`, as Megatron-LM's schedule needs), and the switches of
/// [`SPACE_NOTES`]. An instance's `[limits]` narrow it, its framework rules included.
///
/// ```
/// let inst = watos::Instance::load(concat!(env!("CARGO_MANIFEST_DIR"), "/instances/gpt3-175b-wafer.toml")).unwrap();
/// let configs = watos::strategy::space::configs(&inst);
/// assert!(configs.iter().all(|c| c.dp * c.tp * c.pp <= 56 && 96 % c.tp == 0));
/// assert!(configs.iter().any(|c| c.micro_batch > 8) && configs.iter().any(|c| c.interleave > 1));
/// ```
pub fn configs(inst: &Instance) -> Vec<Config> {
    let m = &inst.model;
    let healthy = inst.fabric().healthy_count();
    let batch = inst.training.global_batch;
    let lim = &inst.limits;
    let kv = m.kv_heads();
    let mut out = Vec::new();
    for t in divisors(m.heads).filter(|t| {
        (kv % t == 0 || t % kv == 0) && *t <= healthy && lim.max_tp.is_none_or(|x| *t <= x)
            // The instance's framework rules on the tensor degree (`Limits::admits_tp`).
            && lim.admits_tp(*t, kv, &inst.hardware)
    }) {
        let max_p = (healthy / t)
            .min(m.layers)
            .min(lim.max_pp.unwrap_or(u32::MAX));
        for p in 1..=max_p {
            for d in divisors(batch)
                .take_while(|d| u64::from(*d) * u64::from(t * p) <= u64::from(healthy))
            {
                let per_replica = batch / d;
                for b in divisors(per_replica)
                    .take_while(|b| lim.max_micro_batch.is_none_or(|x| *b <= x))
                {
                    let micro_batches = per_replica / b;
                    let max_v = if p > 1 && micro_batches % p == 0 {
                        m.layers / p
                    } else {
                        1
                    };
                    for v in 1..=max_v.max(1) {
                        for ep in expert_degrees(m, d) {
                            out.push(Config {
                                dp: d,
                                ep,
                                tp: t,
                                pp: p,
                                micro_batch: b,
                                sequence_parallel: t > 1,
                                interleave: v,
                                zero1: d > 1,
                                dp_overlap: true,
                            });
                        }
                    }
                }
            }
        }
    }
    out
}

/// Expert-parallel degrees of `d` data-parallel replicas: every `ep` dividing both `d` and the
/// routed experts; 1 alone for a dense model.
///
/// ```
/// let m = watos::Model::load(concat!(env!("CARGO_MANIFEST_DIR"), "/models/gshard-137b.toml")).unwrap();
/// assert_eq!(watos::strategy::space::expert_degrees(&m, 12).collect::<Vec<_>>(), vec![1, 2, 4]);
/// ```
pub fn expert_degrees(m: &crate::Model, d: u32) -> impl Iterator<Item = u32> {
    let experts = m.moe.as_ref().map_or(1, |moe| moe.experts);
    divisors(experts).filter(move |e| d % e == 0)
}

/// Model-wide figures the configuration-free bounds use.
#[derive(Debug, Clone, Copy)]
pub struct ModelFigures {
    /// FLOPs of the matrix multiplies of one token's forward pass (layers and head), the work no
    /// kernel skips: attention scores are left out.
    pub gemm_flops_per_token: f64,
    /// All parameters of the model.
    pub params: f64,
    /// The routed experts' parameters (part of `params`).
    pub expert_params: f64,
    /// Fastest fraction of peak any kernel reaches.
    pub best_efficiency: f64,
}

impl ModelFigures {
    /// The figures of an instance.
    pub fn of(inst: &Instance) -> Self {
        let m = &inst.model;
        let layout = m.layout();
        let layer_gemm: f64 = layout
            .blocks
            .iter()
            .map(|b| b.layers as f64 * 2.0 * layers::params(m, &layout.kinds[b.kind]).matmul)
            .sum();
        let eff = &inst.hardware.efficiency;
        ModelFigures {
            gemm_flops_per_token: layer_gemm + crate::cost::work::head_fwd_flops_per_token(m),
            params: crate::cost::work::total_params(m, inst.training.seq_len),
            expert_params: layout
                .blocks
                .iter()
                .map(|b| b.layers as f64 * layers::params(m, &layout.kinds[b.kind]).experts)
                .sum(),
            best_efficiency: eff.gemm.max(eff.attention).min(1.0),
        }
    }
}

/// A lower bound on the step time of every plan of `c` that needs no per-configuration costs:
/// the forward and backward matrix multiplies of one micro-batch (3 x the forward) on one tensor
/// rank at the best efficiency any kernel reaches, through the pipeline schedule.
pub fn compute_bound(inst: &Instance, f: &ModelFigures, c: &Config) -> f64 {
    let tr = &inst.training;
    let m = (tr.global_batch / (c.dp * c.micro_batch).max(1)).max(1);
    let tokens = c.micro_batch as f64 * tr.seq_len as f64;
    let peak = inst.hardware.peak_flops() * f.best_efficiency;
    let sum = 3.0 * f.gemm_flops_per_token * tokens / c.tp as f64 / peak;
    crate::cost::Schedule::of(c.interleave).step_time(&sum, &(sum / c.pp as f64), m)
}

/// How much of one pipeline's devices the model state alone needs (above 1: it cannot fit, a
/// necessary condition): at least `params / t` parameters per rank (the routed experts' split over
/// `ep` too) with weights, gradients and (sharded) optimizer state, against their DRAM and the
/// SRAM that could hold weights.
pub fn state_ratio(inst: &Instance, f: &ModelFigures, c: &Config) -> f64 {
    let s = crate::cost::memory::StateBytes::of(&inst.training);
    let (shards, expert_shards) = if c.zero1 {
        (c.dp as f64, c.expert_dp() as f64)
    } else {
        (1.0, 1.0)
    };
    let dense = f.params - f.expert_params;
    let experts = f.expert_params / c.ep.max(1) as f64;
    let per_rank = (dense * (s.weights + s.grads + s.optimizer / shards)
        + experts * (s.weights + s.grads + s.optimizer / expert_shards))
        / c.tp as f64;
    let hw = &inst.hardware;
    let room = c.pp as f64
        * (hw.dram_bytes() + (1.0 - crate::cost::kernels::SRAM_STREAM_FRACTION) * hw.sram_bytes());
    per_rank / room
}

/// How far a configuration's bound has been refined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Refinement {
    /// [`compute_bound`] only.
    Compute,
    /// The stage model's cheap bound ([`quick_bound`]).
    Quick,
    /// The MIP's LP relaxation was solved (milliseconds), or its MIP stopped at a time slice:
    /// the MIP comes next.
    Lp,
    /// A MIP was solved; the bound is its dual bound.
    Solved,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Key(f64, Refinement, u32);

impl Eq for Key {}

impl PartialOrd for Key {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

impl Ord for Key {
    fn cmp(&self, o: &Self) -> Ordering {
        self.0
            .total_cmp(&o.0)
            .then(o.1.cmp(&self.1))
            .then(self.2.cmp(&o.2))
    }
}

/// The configurations in order of their best bound, the least first; bounds are refined lazily.
pub struct Frontier {
    configs: Vec<Config>,
    heap: BinaryHeap<Reverse<Key>>,
    /// Configurations ruled out by memory (cheap test or the stage model's floor).
    pub memory_infeasible: usize,
    /// The one that came closest to fitting, for the explanation.
    pub closest: Option<(Config, MemoryNeed)>,
    /// Configurations in the space, before the memory tests.
    pub total: usize,
    figures: ModelFigures,
}

/// A configuration handed out by the frontier, with the placements its bound covers.
#[derive(Debug, Clone)]
pub struct Entry {
    pub index: u32,
    pub config: Config,
    pub class: UnitClass,
    pub bound_s: f64,
    pub refinement: Refinement,
}

const CLASSES: [UnitClass; 3] = [UnitClass::Any, UnitClass::Aligned, UnitClass::Straddled];

fn class_code(class: UnitClass) -> u32 {
    match class {
        UnitClass::Any => 0,
        UnitClass::Aligned => 1,
        UnitClass::Straddled => 2,
    }
}

impl Frontier {
    /// Every configuration of [`configs`] whose model state could fit, at its compute bound.
    pub fn new(inst: &Instance) -> Self {
        let figures = ModelFigures::of(inst);
        let mut configs = configs(inst);
        let total = configs.len();
        // The configuration closest to fitting among those ruled out here, to explain.
        let mut cheap_closest: Option<(Config, f64)> = None;
        configs.retain(|c| {
            let ratio = state_ratio(inst, &figures, c);
            if ratio > 1.0 && cheap_closest.is_none_or(|(_, r)| ratio < r) {
                cheap_closest = Some((*c, ratio));
            }
            ratio <= 1.0
        });
        let closest = cheap_closest.map(|(c, _)| (c, memory_need(&ConfigCosts::new(inst, c))));
        let heap = configs
            .iter()
            .enumerate()
            .map(|(i, c)| {
                Reverse(Key(
                    compute_bound(inst, &figures, c),
                    Refinement::Compute,
                    3 * i as u32,
                ))
            })
            .collect();
        Frontier {
            memory_infeasible: total - configs.len(),
            total,
            configs,
            heap,
            closest,
            figures,
        }
    }

    /// The least bound of any configuration still open (infinite when none is).
    pub fn least_bound(&self) -> f64 {
        self.heap.peek().map_or(f64::INFINITY, |Reverse(k)| k.0)
    }

    /// Configurations still open.
    pub fn open(&self) -> usize {
        self.heap.len()
    }

    /// Configurations with some placement class still open below `goal`: those the search may
    /// still have to look at (every other one is settled).
    pub fn open_below(&self, goal: f64) -> usize {
        let open: std::collections::HashSet<u32> = self
            .heap
            .iter()
            .filter(|Reverse(k)| k.0 < goal)
            .map(|Reverse(k)| k.2 / 3)
            .collect();
        open.len()
    }

    /// The figures the compute bounds use.
    pub fn figures(&self) -> &ModelFigures {
        &self.figures
    }

    /// Takes the open configuration of least bound out of the frontier.
    pub fn pop(&mut self) -> Option<Entry> {
        let Reverse(Key(bound_s, refinement, index)) = self.heap.pop()?;
        Some(Entry {
            index,
            config: self.configs[(index / 3) as usize],
            class: CLASSES[(index % 3) as usize],
            bound_s,
            refinement,
        })
    }

    /// Puts a configuration back with a refined bound.
    pub fn push(&mut self, e: &Entry, bound_s: f64, refinement: Refinement) {
        self.heap
            .push(Reverse(Key(bound_s.max(e.bound_s), refinement, e.index)));
    }

    /// Puts a configuration back as its placement classes, each with its own bound.
    pub fn push_classes(&mut self, e: &Entry, bounds: &[(UnitClass, f64)]) {
        for (class, bound) in bounds {
            let index = e.index - e.index % 3 + class_code(*class);
            self.heap
                .push(Reverse(Key(bound.max(e.bound_s), Refinement::Quick, index)));
        }
    }

    /// Refines a configuration's compute bound to the stage model's: its costs and quick bound for
    /// each placement class (on a fabric of units: aligned and straddling groups; elsewhere one
    /// class, any placement), or `None` when its memory floor does not fit (counted, and kept if
    /// it comes closest).
    pub fn refine(
        &mut self,
        inst: &Instance,
        e: &Entry,
    ) -> Option<(ConfigCosts, Vec<(UnitClass, f64)>)> {
        let costs = ConfigCosts::new(inst, e.config);
        let need = memory_need(&costs);
        if !need.fits() {
            self.memory_infeasible += 1;
            let ratio = need.total_bytes() / need.available_bytes;
            if self
                .closest
                .as_ref()
                .is_none_or(|(_, n)| ratio < n.total_bytes() / n.available_bytes || n.fits())
            {
                self.closest = Some((e.config, need));
            }
            return None;
        }
        let comm = CommCosts::ideal(inst, &costs);
        let overlap = e.config.dp_overlap;
        let bounds = match UnitComm::of(&costs, inst.fabric()) {
            None => vec![(UnitClass::Any, quick_bound(&costs, &comm, None, overlap))],
            Some(u) => [UnitClass::Aligned, UnitClass::Straddled]
                .into_iter()
                .map(|class| {
                    let u = u.clone().covering(class);
                    (class, quick_bound(&costs, &comm, Some(&u), overlap))
                })
                .collect(),
        };
        Some((costs, bounds))
    }
}
