//! Everything a configuration (d, t, p, b, sequence parallelism, interleave, ZeRO-1) fixes before
//! any per-stage decision: per-layer costs by recomputation mode and weight tier, bytes per layer,
//! the embedding and head. The evaluator and the MIP read their coefficients from here, so every
//! formula is written once.

use crate::hardware::{Execution, Fabric};
use crate::instance::Instance;
use crate::plan::{Plan, Tier};
use crate::workload::Position;

use super::comm::{p2p_s, ring_allreduce_s, ring_half_s};
use super::kernels::{
    embedding_pass, head_pass, layer_costs, EffParams, ModeCost, Pass, Rates, SRAM_STREAM_FRACTION,
};
use super::memory::{ActShape, Recompute, StateBytes};
use super::schedule::inflight;
use super::work::{embedding_params, head_params_held, layer_params, model_flops_per_step};

/// The top-level choices of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Config {
    pub dp: u32,
    pub tp: u32,
    pub pp: u32,
    pub micro_batch: u32,
    pub sequence_parallel: bool,
    pub interleave: u32,
    pub zero1: bool,
}

impl Config {
    /// The configuration of a plan.
    pub fn of(plan: &Plan) -> Self {
        Config {
            dp: plan.dp,
            tp: plan.tp,
            pp: plan.pp,
            micro_batch: plan.micro_batch,
            sequence_parallel: plan.sequence_parallel,
            interleave: plan.interleave,
            zero1: plan.zero1,
        }
    }
}

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
    /// Micro-batches per step.
    pub m: u32,
    pub shape: ActShape,
    pub state: StateBytes,
    /// Parameters of one layer on one device.
    pub layer_params: f64,
    /// Stored activation bytes of one layer for one micro-batch, by mode.
    pub act_bytes: [f64; 3],
    /// One layer, one micro-batch, by `[weights in SRAM][mode]` (without tensor-parallel comm).
    pub layer: [[ModeCost; 3]; 2],
    /// Tensor-parallel all-reduce equivalents per layer per micro-batch, by mode: 2 forward,
    /// 2 backward, 2 more when the forward is recomputed (Megatron-LM; with sequence parallelism
    /// reduce-scatter/all-gather pairs of the same volume).
    pub tp_collectives: [f64; 3],
    /// Bytes of one tensor-parallel all-reduce: the `s b h` activation in 16-bit.
    pub tp_bytes: f64,
    pub first: Fixed,
    pub last: Fixed,
    /// Bytes one device sends to the next stage per micro-batch: `2 s b h / t` (its shard, with
    /// sequence parallelism or Megatron's scatter/gather optimisation).
    pub p2p_bytes: f64,
    /// Transient bytes per device: one layer's full activations for one micro-batch, needed to run
    /// the backward pass of a recomputed layer.
    pub workspace_bytes: f64,
    /// SRAM that may hold resident weights.
    pub sram_weight_bytes: f64,
    pub dram_capacity_bytes: f64,
    /// DRAM bandwidth a streaming kernel reaches.
    pub dram_bw_eff: f64,
    pub link_eff: f64,
    pub model_flops_step: f64,
    /// Bytes the first and last stage all-reduce per step for a tied embedding split across them
    /// (Megatron-LM's embedding-gradient all-reduce), 0 otherwise.
    pub tied_sync_bytes: f64,
    /// Transformer layers of the model.
    pub model_layers: u32,
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
        let layer_params = layer_params(m).per_device(c.tp);
        let act_bytes = Recompute::ALL.map(|r| shape.layer_bytes(r));
        let execution: Execution = inst.execution();
        let layer = [false, true].map(|sram| {
            layer_costs(
                &shape,
                &rates,
                execution,
                sram,
                state.grads,
                layer_params,
                act_bytes,
                hw.sram_bytes(),
            )
        });
        let t = c.tp as f64;
        let tp_collectives = if c.tp > 1 { [4.0, 4.0, 6.0] } else { [0.0; 3] };
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
            last.params = super::work::head_params(m) / t;
        }
        ConfigCosts {
            config: c,
            m: tr.global_batch / (c.dp * c.micro_batch).max(1),
            shape,
            state,
            layer_params,
            act_bytes,
            layer,
            tp_collectives,
            tp_bytes: 2.0 * shape.sbh(),
            first,
            last,
            p2p_bytes: 2.0 * shape.sbh() / t,
            workspace_bytes: act_bytes[Recompute::None.index()],
            sram_weight_bytes: (1.0 - SRAM_STREAM_FRACTION) * hw.sram_bytes(),
            dram_capacity_bytes: hw.dram_bytes(),
            dram_bw_eff: hw.dram_bw_bytes_per_s() * hw.efficiency.dram,
            link_eff: hw.efficiency.link,
            model_flops_step: model_flops_per_step(m, tr.seq_len, tr.global_batch),
            model_layers: m.layers,
            tied_sync_bytes: if m.tied_embeddings && c.pp > 1 {
                m.vocab as f64 * m.hidden as f64 / t * state.grads
            } else {
                0.0
            },
        }
    }

    /// One layer's cost in `mode` with weights in `tier`.
    pub fn mode_cost(&self, tier: Tier, mode: Recompute) -> &ModeCost {
        &self.layer[usize::from(tier == Tier::Sram)][mode.index()]
    }

    /// One layer for one micro-batch: compute, memory and tensor-parallel communication, given the
    /// time of one all-reduce on this stage's groups.
    pub fn layer_time_s(&self, tier: Tier, mode: Recompute, tp_allreduce_s: f64) -> f64 {
        self.mode_cost(tier, mode).total.time_s + self.tp_collectives[mode.index()] * tp_allreduce_s
    }

    /// Embedding and head work of stage `j` for one micro-batch.
    pub fn fixed_time_s(&self, j: u32, tp_allreduce_s: f64) -> f64 {
        self.ends(j)
            .iter()
            .map(|f| f.pass.time_s + f.tp_collectives * tp_allreduce_s)
            .sum()
    }

    /// The embedding and/or head stage `j` carries.
    pub fn ends(&self, j: u32) -> Vec<&Fixed> {
        let mut v = Vec::new();
        if j == 0 {
            v.push(&self.first);
        }
        if j + 1 == self.config.pp {
            v.push(&self.last);
        }
        v
    }

    /// Micro-batches' worth of activations stage `j` holds.
    pub fn inflight(&self, j: u32) -> f64 {
        inflight(self.config.pp, j, self.m, self.config.interleave)
    }

    /// Parameters on one device of stage `j` with `layers` layers.
    pub fn stage_params(&self, j: u32, layers: u32) -> f64 {
        layers as f64 * self.layer_params + self.ends(j).iter().map(|f| f.params).sum::<f64>()
    }

    /// Optimizer-state bytes per device for `params` parameters (sharded over replicas by ZeRO-1).
    pub fn optimizer_bytes(&self, params: f64) -> f64 {
        let shards = if self.config.zero1 {
            self.config.dp as f64
        } else {
            1.0
        };
        params * self.state.optimizer / shards
    }

    /// Stored activation bytes of the embedding/head on stage `j` per micro-batch.
    pub fn ends_act_bytes(&self, j: u32) -> f64 {
        self.ends(j).iter().map(|f| f.act_bytes).sum()
    }

    /// Pipeline sends per micro-batch out of stage `j`, forward and backward: one per chunk
    /// boundary; with interleaving the last device feeds the first one's next chunk.
    pub fn p2p_sends(&self, j: u32) -> (f64, f64) {
        let (p, v) = (self.config.pp, self.config.interleave as f64);
        if p == 1 {
            return (0.0, 0.0);
        }
        let fwd = if j + 1 < p { v } else { v - 1.0 };
        let bwd = if j > 0 { v } else { v - 1.0 };
        (fwd, bwd)
    }

    /// Data-parallel gradient synchronisation of `params` parameters per device over rings of
    /// `dp` devices: an all-reduce of the gradients, or with ZeRO-1 a reduce-scatter of gradients
    /// and an all-gather of 16-bit weights.
    pub fn dp_sync_s(&self, params: f64, path: crate::hardware::fabric::PathCost) -> f64 {
        let d = self.config.dp;
        let grads = params * self.state.grads;
        if self.config.zero1 {
            ring_half_s(d, grads, path, self.link_eff)
                + ring_half_s(d, params * self.state.weights, path, self.link_eff)
        } else {
            ring_allreduce_s(d, grads, path, self.link_eff)
        }
    }

    /// Local DRAM time of the optimizer step of `params` parameters on one device, memory-bound at
    /// [`StateBytes::optimizer_traffic`] bytes per parameter, less the `parked_bytes` of optimizer
    /// state that sit in another device's DRAM (read and written once each, over the link instead).
    pub fn optimizer_local_s(&self, params: f64, parked_bytes: f64) -> f64 {
        let shards = if self.config.zero1 {
            self.config.dp as f64
        } else {
            1.0
        };
        (params / shards * self.state.optimizer_traffic() - 2.0 * parked_bytes).max(0.0)
            / self.dram_bw_eff
    }

    /// Tied-embedding gradient all-reduce between the first and last stage over `path`.
    pub fn tied_sync_s(&self, path: crate::hardware::fabric::PathCost) -> f64 {
        ring_allreduce_s(2, self.tied_sync_bytes, path, self.link_eff)
    }

    /// Ideal (placement-free) communication: the lower bounds the MIP uses.
    pub fn ideal_comm(&self, fabric: &Fabric) -> IdealComm {
        let c = self.config;
        let flow = fabric.ideal_flow();
        IdealComm {
            tp_allreduce_s: ring_allreduce_s(
                c.tp,
                self.tp_bytes,
                fabric.ideal_ring(c.tp),
                self.link_eff,
            ),
            p2p_s: p2p_s(self.p2p_bytes, flow, self.link_eff),
            park_bw: self.dram_bw_eff.min(flow.bw_bytes_per_s * self.link_eff),
            dp_path: fabric.ideal_ring(c.dp),
            tied_path: fabric.ideal_ring(2),
        }
    }
}

/// Communication at the best any placement allows.
#[derive(Debug, Clone, Copy)]
pub struct IdealComm {
    pub tp_allreduce_s: f64,
    pub p2p_s: f64,
    /// Bandwidth of a parking transfer: the slower of DRAM and one uncontended link.
    pub park_bw: f64,
    pub dp_path: crate::hardware::fabric::PathCost,
    pub tied_path: crate::hardware::fabric::PathCost,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::fabric::PathCost;

    fn costs(dp: u32, pp: u32, interleave: u32, zero1: bool) -> ConfigCosts {
        let inst = Instance::load(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/instances/llama-30b-wafer.toml"
        ))
        .unwrap();
        ConfigCosts::new(
            &inst,
            Config {
                dp,
                tp: 4,
                pp,
                micro_batch: 1,
                sequence_parallel: true,
                interleave,
                zero1,
            },
        )
    }

    const PATH: PathCost = PathCost {
        bw_bytes_per_s: 1e12,
        latency_s: 0.0,
        hops: 1,
    };

    #[test]
    fn zero1_swaps_the_all_reduce_for_reduce_scatter_plus_all_gather() {
        // 1e9 parameters over 4 replicas at 1 TB/s: FP32 gradients all-reduced move
        // 2 * 3/4 * 4 GB = 6 GB (6 ms); ZeRO-1 reduce-scatters them (3 ms) and all-gathers 16-bit
        // weights, 3/4 * 2 GB (1.5 ms). The wafer's links reach 85% of line rate.
        let (plain, zero1) = (costs(4, 2, 1, false), costs(4, 2, 1, true));
        assert_eq!(plain.link_eff, 0.85);
        assert!((plain.dp_sync_s(1e9, PATH) - 6e-3 / 0.85).abs() < 1e-12);
        assert!((zero1.dp_sync_s(1e9, PATH) - 4.5e-3 / 0.85).abs() < 1e-12);
    }

    #[test]
    fn zero1_shards_optimizer_memory_and_time() {
        let c = costs(4, 2, 1, true);
        assert_eq!(c.optimizer_bytes(1e9), 12e9 / 4.0);
        // 38 bytes per parameter over 4 shards at the wafer's effective DRAM bandwidth.
        assert!((c.optimizer_local_s(1e9, 0.0) - 1e9 / 4.0 * 38.0 / c.dram_bw_eff).abs() < 1e-15);
        // Parked state leaves local DRAM: 2 bytes of traffic per byte parked.
        assert!((c.optimizer_local_s(1e9, 1e9) - (9.5e9 - 2e9) / c.dram_bw_eff).abs() < 1e-15);
    }

    #[test]
    fn pipeline_sends_per_micro_batch() {
        // Plain 1F1B: the ends send one way, the middle both. Interleaved (v = 3): a send per chunk
        // boundary; the last device feeds the first one's next chunk.
        let c = costs(1, 4, 1, false);
        assert_eq!(
            (0..4).map(|j| c.p2p_sends(j)).collect::<Vec<_>>(),
            vec![(1.0, 0.0), (1.0, 1.0), (1.0, 1.0), (0.0, 1.0)]
        );
        let c = costs(1, 4, 3, false);
        assert_eq!(c.p2p_sends(0), (3.0, 2.0));
        assert_eq!(c.p2p_sends(3), (2.0, 3.0));
        assert_eq!(costs(1, 1, 1, false).p2p_sends(0), (0.0, 0.0));
    }
}
