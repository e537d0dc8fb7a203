//! Everything a configuration (d, ep, t, p, b, sequence parallelism, interleave, ZeRO-1) fixes before
//! any per-stage decision: per-layer costs of every layer kind, the embedding and head, state bytes,
//! rates. The stage model (`cost::stage`) reads its coefficients from here.

use crate::hardware::fabric::PathCost;
use crate::instance::Instance;
use crate::plan::{Config, Recompute};
use crate::workload::{LayerLayout, Position};

use super::comm::{ring_allreduce_s, ring_half_affine};
use super::kernels::{embedding_pass, head_pass, EffParams, Pass, Rates, SRAM_STREAM_FRACTION};
use super::layers::KindCosts;
use super::memory::{ActShape, StateBytes};
use super::schedule::Schedule;
use super::work::{
    active_params, embedding_params, head_params, head_params_held, model_flops_per_step,
    model_flops_per_token, total_params,
};

/// Cost of the embedding (first stage) or head (last stage) for one micro-batch on one device.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Fixed {
    pub pass: Pass,
    /// Parameters per device.
    pub params: f64,
    /// Stored activations per micro-batch.
    pub act_bytes: f64,
    /// Tensor-parallel all-reduce equivalents per micro-batch.
    pub tp_collectives: f64,
}

/// Per-configuration coefficients.
#[derive(Debug, Clone)]
pub struct ConfigCosts {
    pub config: Config,
    pub schedule: Schedule,
    /// Micro-batches per step.
    pub m: u32,
    /// The model's layer kinds and their order.
    pub layout: LayerLayout,
    /// Costs of one layer of each kind, indexed like `layout.kinds`.
    pub kinds: Vec<KindCosts>,
    pub state: StateBytes,
    /// Bytes of one tensor-parallel all-reduce: the `s b h` activation in 16-bit.
    pub tp_bytes: f64,
    pub first: Fixed,
    pub last: Fixed,
    /// Bytes one device sends in one token all-to-all of an MoE layer (0 without expert
    /// parallelism): the unit of [`KindCosts::all_to_alls`].
    pub a2a_bytes: f64,
    /// Bytes one device sends to the next stage per micro-batch: `2 s b h / t` (its shard, with
    /// sequence parallelism or Megatron's scatter/gather optimisation).
    pub p2p_bytes: f64,
    /// Transient bytes per device: one layer's full activations for one micro-batch (the largest
    /// kind's), needed to run the backward pass of a recomputed layer.
    pub workspace_bytes: f64,
    /// SRAM that may hold resident weights.
    pub sram_weight_bytes: f64,
    pub dram_capacity_bytes: f64,
    /// DRAM bandwidth a streaming kernel reaches.
    pub dram_bw_eff: f64,
    pub link_eff: f64,
    pub model_flops_step: f64,
    /// Model FLOPs of training one token (forward and backward).
    pub model_flops_per_token: f64,
    /// All parameters of the model, and those one token passes through.
    pub params_total: f64,
    pub params_active: f64,
    /// Bytes the first and last stage all-reduce per step for a tied embedding split across them
    /// (Megatron-LM's embedding-gradient all-reduce), 0 otherwise.
    pub tied_sync_bytes: f64,
    /// Transformer layers of the model.
    pub model_layers: u32,
    /// Recomputation modes plans may use (`[limits] recompute`), by [`Recompute::index`].
    pub recompute_allowed: [bool; 3],
}

impl ConfigCosts {
    /// Coefficients of a configuration on an instance.
    pub fn new(inst: &Instance, c: Config) -> Self {
        let (m, hw, tr) = (&inst.model, &inst.hardware, &inst.training);
        let shape = ActShape::new(
            m,
            tr,
            c.micro_batch,
            c.tp,
            c.sequence_parallel,
            inst.attention(),
        );
        let state = StateBytes::of(tr);
        let rates = Rates {
            peak_flops: hw.peak_flops(),
            dram_bw_bytes_per_s: hw.dram_bw_bytes_per_s(),
            eff: EffParams::from(&hw.efficiency),
        };
        let layout = m.layout();
        let mut kinds: Vec<KindCosts> = layout
            .kinds
            .iter()
            .map(|k| KindCosts::new(inst, *k, &c, &rates, &state))
            .collect();
        // Every MoE kind moves the same tokens (one `[moe]` table); should two ever differ, each
        // counts its all-to-alls in units of the largest.
        let a2a_bytes = kinds.iter().map(|k| k.all_to_all_bytes).fold(0.0, f64::max);
        for k in &mut kinds {
            let scale = if a2a_bytes > 0.0 {
                k.all_to_all_bytes / a2a_bytes
            } else {
                0.0
            };
            k.all_to_alls = k.all_to_alls.map(|n| n * scale);
        }
        let t = c.tp as f64;
        let vocab = m.vocab as f64;
        let first = Fixed {
            pass: embedding_pass(&shape, &rates, m.position == Position::Learned, state.grads),
            params: embedding_params(m, tr.seq_len) / t,
            act_bytes: shape.embedding_bytes(),
            // Vocabulary-parallel lookup ends in an all-reduce.
            tp_collectives: if c.tp > 1 { 1.0 } else { 0.0 },
        };
        let mut last = Fixed {
            pass: head_pass(&shape, &rates, vocab, state.grads),
            params: head_params_held(m, c.pp) / t,
            act_bytes: shape.head_bytes(vocab),
            // The head's input gradient is all-reduced (or reduce-scattered) over the group.
            tp_collectives: if c.tp > 1 { 1.0 } else { 0.0 },
        };
        if c.pp == 1 {
            // One stage holds both ends, and a tied head shares the embedding's parameters.
            last.params = head_params(m) / t;
        }
        let workspace_bytes = kinds
            .iter()
            .map(|k| k.act_bytes[Recompute::None.index()])
            .fold(0.0, f64::max);
        ConfigCosts {
            config: c,
            schedule: Schedule::of(c.interleave),
            m: tr.global_batch / (c.dp * c.micro_batch).max(1),
            layout,
            kinds,
            state,
            tp_bytes: 2.0 * shape.sbh(),
            a2a_bytes,
            first,
            last,
            p2p_bytes: 2.0 * shape.sbh() / t,
            workspace_bytes,
            sram_weight_bytes: (1.0 - SRAM_STREAM_FRACTION) * hw.sram_bytes(),
            dram_capacity_bytes: hw.dram_bytes(),
            dram_bw_eff: hw.dram_bw_bytes_per_s() * hw.efficiency.dram,
            link_eff: hw.efficiency.link,
            model_flops_step: model_flops_per_step(
                m,
                tr.seq_len,
                tr.global_batch,
                inst.attention(),
            ),
            model_flops_per_token: model_flops_per_token(m, tr.seq_len, inst.attention()),
            params_total: total_params(m, tr.seq_len),
            params_active: active_params(m),
            model_layers: m.layers,
            recompute_allowed: Recompute::ALL.map(|r| {
                inst.limits
                    .recompute
                    .as_ref()
                    .is_none_or(|modes| modes.contains(&r))
            }),
            tied_sync_bytes: if m.tied_embeddings && c.pp > 1 {
                m.vocab as f64 * m.hidden as f64 / t * state.grads
            } else {
                0.0
            },
        }
    }

    /// The embedding and/or head stage `j` carries.
    pub fn ends(&self, j: u32) -> impl Iterator<Item = &Fixed> {
        let first = (j == 0).then_some(&self.first);
        let last = (j + 1 == self.config.pp).then_some(&self.last);
        first.into_iter().chain(last)
    }

    /// Parameters of the embedding and head on one device of stage `j`.
    pub fn ends_params(&self, j: u32) -> f64 {
        self.ends(j).map(|f| f.params).sum()
    }

    /// Stored activation bytes of the embedding/head on stage `j` per micro-batch.
    pub fn ends_act_bytes(&self, j: u32) -> f64 {
        self.ends(j).map(|f| f.act_bytes).sum()
    }

    /// Whether stage `j` could keep its weights in SRAM: one layer of the lightest kind with the
    /// stage's embedding/head fits the SRAM left for weights. Stages that cannot are never given
    /// SRAM-resident weights (by any search); the evaluator checks the real fit.
    pub fn sram_could_hold(&self, j: u32) -> bool {
        let lightest = self
            .kinds
            .iter()
            .map(|k| k.params)
            .fold(f64::INFINITY, f64::min);
        (lightest + self.ends_params(j)) * self.state.weights <= self.sram_weight_bytes
    }

    /// Micro-batches' worth of activations stage `j` holds.
    pub fn inflight(&self, j: u32) -> f64 {
        self.schedule.inflight(self.config.pp, j, self.m)
    }

    /// Pipeline sends per micro-batch out of stage `j`, forward and backward.
    pub fn p2p_sends(&self, j: u32) -> (f64, f64) {
        self.schedule.p2p_sends(self.config.pp, j)
    }

    /// Optimizer state shards: the data-parallel degree under ZeRO-1, else 1.
    pub fn optimizer_shards(&self) -> f64 {
        if self.config.zero1 {
            self.config.dp as f64
        } else {
            1.0
        }
    }

    /// Optimizer state shards of the routed experts: under ZeRO-1 the `dp / ep` replicas that hold
    /// the same experts share them (Megatron-core's distributed optimizer over the expert
    /// data-parallel group), else 1.
    pub fn expert_optimizer_shards(&self) -> f64 {
        if self.config.zero1 {
            self.config.expert_dp() as f64
        } else {
            1.0
        }
    }

    /// Data-parallel gradient synchronisation of the parameters one device holds, over a ring of
    /// `dp` devices on `path`, as `(seconds per parameter, seconds)`: an all-reduce of the
    /// gradients, or with ZeRO-1 a reduce-scatter of gradients and an all-gather of 16-bit weights
    /// (Rajbhandari et al., arXiv 1910.02054). Affine in the parameters, so the MIP states it
    /// exactly.
    pub fn dp_sync_affine(&self, path: PathCost) -> (f64, f64) {
        self.sync_affine(self.config.dp, path)
    }

    /// [`ConfigCosts::dp_sync_affine`] of the routed experts' parameters with expert parallelism:
    /// over a ring of the `dp / ep` replicas that hold the same experts (`(0, 0)` when there is
    /// one). Only meaningful for `ep > 1`; with `ep = 1` the experts are reduced with the rest.
    pub fn expert_sync_affine(&self, path: PathCost) -> (f64, f64) {
        self.sync_affine(self.config.expert_dp(), path)
    }

    fn sync_affine(&self, replicas: u32, path: PathCost) -> (f64, f64) {
        let (per_byte, fixed) = ring_half_affine(replicas, path, self.link_eff);
        let s = &self.state;
        if self.config.zero1 {
            (per_byte * (s.grads + s.weights), 2.0 * fixed)
        } else {
            (2.0 * per_byte * s.grads, 2.0 * fixed)
        }
    }

    /// Tied-embedding gradient all-reduce between the first and last stage over `path`.
    pub fn tied_sync_s(&self, path: PathCost) -> f64 {
        ring_allreduce_s(2, self.tied_sync_bytes, path, self.link_eff)
    }
}
