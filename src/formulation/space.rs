//! The configurations the solver considers, a cheap valid lower bound for each, and the aggregate
//! memory test that rules configurations out (and explains an infeasible instance).

use crate::cost::config::{Config, ConfigCosts};
use crate::cost::Recompute;
use crate::instance::Instance;
use crate::plan::Tier;
use crate::units::GB;
use crate::workload::divisors;

/// Largest micro-batch tried unless the instance says otherwise.
pub const DEFAULT_MAX_MICRO_BATCH: u32 = 8;

/// Every configuration of the search space: `t` dividing the heads (and compatible with the
/// key/value heads), `t p d` at most the healthy devices (idle devices allowed), `b d` dividing the
/// global batch, sequence parallelism when `t > 1`, ZeRO-1 when `d > 1`; plain 1F1B.
///
/// ```
/// let inst = watos::Instance::load(concat!(env!("CARGO_MANIFEST_DIR"), "/instances/gpt3-175b-wafer.toml")).unwrap();
/// let configs = watos::formulation::space::configs(&inst);
/// assert!(configs.iter().all(|c| c.dp * c.tp * c.pp <= 56 && 96 % c.tp == 0));
/// ```
pub fn configs(inst: &Instance) -> Vec<Config> {
    let m = &inst.model;
    let healthy = inst.fabric().healthy_count();
    let batch = inst.training.global_batch;
    let lim = &inst.limits;
    let max_b = lim.max_micro_batch.unwrap_or(DEFAULT_MAX_MICRO_BATCH);
    let kv = m.kv_heads();
    let mut out = Vec::new();
    for t in divisors(m.heads).filter(|t| {
        (kv % t == 0 || t % kv == 0) && *t <= healthy && lim.max_tp.is_none_or(|x| *t <= x)
    }) {
        let max_p = (healthy / t)
            .min(m.layers)
            .min(lim.max_pp.unwrap_or(u32::MAX));
        for p in 1..=max_p {
            for d in 1..=healthy / (t * p) {
                if batch % d != 0 {
                    continue;
                }
                for b in (1..=max_b.min(batch / d)).filter(|b| (batch / d) % b == 0) {
                    for sp in [false, true] {
                        if sp && t == 1 {
                            continue;
                        }
                        for zero1 in [false, true] {
                            if zero1 && d == 1 {
                                continue;
                            }
                            out.push(Config {
                                dp: d,
                                tp: t,
                                pp: p,
                                micro_batch: b,
                                sequence_parallel: sp,
                                interleave: 1,
                                zero1,
                            });
                        }
                    }
                }
            }
        }
    }
    out
}

/// The least DRAM a configuration needs summed over one replica's devices, against what they have.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemoryNeed {
    pub weights_bytes: f64,
    pub grads_bytes: f64,
    pub optimizer_bytes: f64,
    pub activations_bytes: f64,
    pub workspace_bytes: f64,
    /// DRAM of the replica's devices, plus the SRAM that could hold weights.
    pub available_bytes: f64,
}

impl MemoryNeed {
    /// Everything needed.
    pub fn total_bytes(&self) -> f64 {
        self.weights_bytes
            + self.grads_bytes
            + self.optimizer_bytes
            + self.activations_bytes
            + self.workspace_bytes
    }

    /// Whether the aggregate fits (a necessary condition: parking moves bytes between stages but
    /// cannot create room).
    pub fn fits(&self) -> bool {
        self.total_bytes() <= self.available_bytes
    }

    /// A sentence: what is needed, by category, against what there is.
    pub fn explain(&self, c: &Config) -> String {
        format!(
            "the most frugal plan with D{} T{} P{} micro-batch {} (full recomputation, activations on the stages that hold the fewest micro-batches{}) needs {:.1} GB per tensor-parallel rank across its {}: weights {:.1}, gradients {:.1}, optimizer {:.1}, activations {:.1}, workspace {:.1}; its devices have {:.1} GB of DRAM (and SRAM for weights): short by {:.1} GB ({:.0}%)",
            c.dp,
            c.tp,
            c.pp,
            c.micro_batch,
            if c.zero1 { ", ZeRO-1" } else { "" },
            self.total_bytes() / GB,
            if c.pp == 1 { "one stage".to_string() } else { format!("{} stages", c.pp) },
            self.weights_bytes / GB,
            self.grads_bytes / GB,
            self.optimizer_bytes / GB,
            self.activations_bytes / GB,
            self.workspace_bytes / GB,
            self.available_bytes / GB,
            (self.total_bytes() - self.available_bytes) / GB,
            100.0 * (self.total_bytes() / self.available_bytes - 1.0),
        )
    }
}

/// The least memory a configuration needs across one pipeline (one tensor-parallel rank of one
/// replica): every layer fully recomputed, extra layers on the stages with the fewest micro-batches
/// in flight, and all SRAM holding weights.
pub fn memory_need(c: &ConfigCosts) -> MemoryNeed {
    let p = c.config.pp;
    let layers = layers_of(c);
    let params: f64 =
        (0..p).map(|j| c.stage_params(j, 0)).sum::<f64>() + layers as f64 * c.layer_params;
    let a = c.act_bytes[Recompute::Full.index()];
    let min_inflight = (0..p).map(|j| c.inflight(j)).fold(f64::INFINITY, f64::min);
    let acts: f64 = (0..p)
        .map(|j| c.inflight(j) * (a + c.ends_act_bytes(j)))
        .sum::<f64>()
        + (layers - p) as f64 * min_inflight * a;
    MemoryNeed {
        weights_bytes: params * c.state.weights,
        grads_bytes: params * c.state.grads,
        optimizer_bytes: c.optimizer_bytes(params),
        activations_bytes: acts,
        workspace_bytes: p as f64 * c.workspace_bytes,
        available_bytes: p as f64 * (c.dram_capacity_bytes + c.sram_weight_bytes),
    }
}

fn layers_of(c: &ConfigCosts) -> u32 {
    (c.model_layers).max(c.config.pp)
}

/// A lower bound on the step time of every plan of a configuration, without a solver:
/// `sum_j tau_j >= L * (cheapest layer) + embedding, head and pipeline sends`, `tau_max` at least
/// the average stage, and the step tail at least the average stage's data-parallel sync and
/// optimizer step (parking only adds time). All communication is ideal.
pub fn quick_bound(inst: &Instance, c: &ConfigCosts) -> f64 {
    let comm = c.ideal_comm(inst.fabric());
    let p = c.config.pp;
    let layers = layers_of(c) as f64;
    let cheapest = Recompute::ALL
        .iter()
        .flat_map(|r| [Tier::Dram, Tier::Sram].map(|t| c.layer_time_s(t, *r, comm.tp_allreduce_s)))
        .fold(f64::INFINITY, f64::min);
    let mut sum = layers * cheapest;
    for j in 0..p {
        let (nf, nb) = c.p2p_sends(j);
        sum += c.fixed_time_s(j, comm.tp_allreduce_s) + (nf + nb) * comm.p2p_s;
    }
    let pipeline = sum + (c.m as f64 - 1.0) * sum / p as f64;
    let params: f64 = (0..p).map(|j| c.stage_params(j, 0)).sum::<f64>() + layers * c.layer_params;
    let per_stage = params / p as f64;
    let dp = if c.config.dp > 1 {
        c.dp_sync_s(per_stage, comm.dp_path)
    } else {
        0.0
    };
    let tied = if p > 1 {
        2.0 * c.tied_sync_s(comm.tied_path) / p as f64
    } else {
        0.0
    };
    pipeline + dp + tied + c.optimizer_local_s(per_stage, 0.0)
}
