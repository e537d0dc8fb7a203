//! Layer kinds: each kind owns its parameters, FLOPs, stored activations, operators and
//! collectives (one file per kind). Everything above this module sees a kind only through
//! [`KindCosts`], so a new kind is a new file and a new match arm here.

pub mod dense;

use crate::hardware::{AttentionKernel, Execution};
use crate::instance::Instance;
use crate::plan::{Config, Recompute, WeightSource};
use crate::workload::{LayerKind, Model};

use super::kernels::{layer_costs, ModeCost, Rates};
use super::memory::{ActShape, StateBytes};
use super::work::LayerParams;

/// Parameters of one layer of `kind`.
pub fn params(m: &Model, kind: &LayerKind) -> LayerParams {
    match kind {
        LayerKind::Dense { ffn_hidden } => dense::params(m, *ffn_hidden),
    }
}

/// Forward FLOPs of one layer of `kind` per token, attention as `kernel` computes it.
pub fn fwd_flops_per_token(
    m: &Model,
    kind: &LayerKind,
    seq_len: u32,
    kernel: AttentionKernel,
) -> f64 {
    match kind {
        LayerKind::Dense { ffn_hidden } => {
            dense::fwd_flops_per_token(m, *ffn_hidden, seq_len, kernel)
        }
    }
}

/// What one layer of a kind costs under one configuration, on one device, per micro-batch.
#[derive(Debug, Clone)]
pub struct KindCosts {
    pub kind: LayerKind,
    /// Parameters of one layer on one device.
    pub params: f64,
    /// Stored activation bytes of one layer for one micro-batch, by mode.
    pub act_bytes: [f64; 3],
    /// One layer, one micro-batch, by `[weight source][mode]` (without tensor-parallel comm).
    pub modes: [[ModeCost; 3]; WeightSource::COUNT],
    /// Tensor-parallel all-reduce equivalents per layer per micro-batch, by mode.
    pub tp_collectives: [f64; 3],
}

impl KindCosts {
    /// The costs of `kind` under configuration `c`.
    pub fn new(
        inst: &Instance,
        kind: LayerKind,
        c: &Config,
        rates: &Rates,
        state: &StateBytes,
    ) -> Self {
        let (m, hw) = (&inst.model, &inst.hardware);
        let execution: Execution = inst.execution();
        match kind {
            LayerKind::Dense { ffn_hidden } => {
                let shape = ActShape::new(
                    m,
                    &inst.training,
                    c.micro_batch,
                    c.tp,
                    c.sequence_parallel,
                    inst.attention(),
                )
                .with_ffn(ffn_hidden);
                let params = dense::params(m, ffn_hidden).per_device(c.tp);
                let act_bytes = Recompute::ALL.map(|r| dense::activation_bytes(&shape, r));
                let modes = WeightSource::ALL.map(|w| {
                    let sram = w == WeightSource::Sram;
                    let ops = dense::ops(&shape, rates, sram, state.grads);
                    layer_costs(
                        &ops,
                        rates,
                        execution,
                        sram,
                        state.grads,
                        params,
                        act_bytes,
                        hw.sram_bytes(),
                    )
                });
                KindCosts {
                    kind,
                    params,
                    act_bytes,
                    modes,
                    tp_collectives: dense::tp_collectives(c.tp),
                }
            }
        }
    }

    /// One layer's cost in `mode` with weights from `source`.
    pub fn mode_cost(&self, source: WeightSource, mode: Recompute) -> &ModeCost {
        &self.modes[source.index()][mode.index()]
    }

    /// One layer for one micro-batch: compute, memory and tensor-parallel communication, given
    /// the time of one all-reduce on the stage's groups.
    pub fn time_s(&self, source: WeightSource, mode: Recompute, tp_allreduce_s: f64) -> f64 {
        self.mode_cost(source, mode).total.time_s
            + self.tp_collectives[mode.index()] * tp_allreduce_s
    }
}
