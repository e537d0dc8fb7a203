//! Layer kinds: each kind owns its parameters, FLOPs, stored activations, operators and
//! collectives (one file per kind; the attention half they share is `attention`). Everything
//! above this module sees a kind only through [`KindCosts`], so a new kind is a new file and a new
//! match arm here.

pub mod attention;
pub mod dense;
pub mod moe;

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
        LayerKind::Dense { ffn_hidden, .. } => dense::params(m, *ffn_hidden),
        LayerKind::Moe { moe: e, .. } => moe::params(m, e),
    }
}

/// The share of the routed experts' parameters one token passes through (0 for dense kinds).
fn routed_share(kind: &LayerKind) -> f64 {
    match kind {
        LayerKind::Dense { .. } => 0.0,
        LayerKind::Moe { moe: e, .. } => moe::routed_share(e),
    }
}

/// Parameters one token passes through in a layer of `kind`: all of a dense layer; the routed
/// experts' `k / E` share of an MoE layer (the rest: attention, norms, router, shared experts).
///
/// ```
/// let m: watos::Model = toml::from_str("name='m'\nlayers=1\nhidden=8\nheads=2\nvocab=10\ntied_embeddings=true\nbias=false\n[moe]\nexperts=4\nexperts_per_token=1\nexpert_ffn_hidden=16").unwrap();
/// let kind = m.layout().kinds[0];
/// let (all, active) = (watos::cost::layers::params(&m, &kind), watos::cost::layers::active_params(&m, &kind));
/// assert_eq!(all.total() - active, 0.75 * all.experts);
/// ```
pub fn active_params(m: &Model, kind: &LayerKind) -> f64 {
    let p = params(m, kind);
    p.total() - p.experts + p.experts * routed_share(kind)
}

/// Forward FLOPs of one layer of `kind` per token, Megatron-LM's count (arXiv 2104.04473, eq. 3):
/// 2 per matrix parameter the token passes through (an MoE layer's router, shared experts and
/// `k` routed experts: the capacity factor's padding is not model work) and the attention core
/// ([`attention::core_flops_per_token`], as `kernel` computes it); elementwise work is not counted.
pub fn fwd_flops_per_token(
    m: &Model,
    kind: &LayerKind,
    seq_len: u32,
    kernel: AttentionKernel,
) -> f64 {
    let p = params(m, kind);
    2.0 * (p.matmul + p.replicated_matmul + p.experts * routed_share(kind))
        + attention::core_flops_per_token(m, seq_len, kind.window(), kernel)
}

/// What one layer of a kind costs under one configuration, on one device, per micro-batch.
#[derive(Debug, Clone)]
pub struct KindCosts {
    pub kind: LayerKind,
    /// Parameters of one layer on one device (with its routed experts).
    pub params: f64,
    /// Parameters of the routed experts on one device (part of `params`): their gradients are
    /// reduced over the replicas holding the same experts only (expert data parallelism); 0 for
    /// dense kinds.
    pub expert_params: f64,
    /// Stored activation bytes of one layer for one micro-batch, by mode.
    pub act_bytes: [f64; 3],
    /// One layer, one micro-batch, by `[weight source][mode]` (without tensor-parallel comm).
    pub modes: [[ModeCost; 3]; WeightSource::COUNT],
    /// Tensor-parallel all-reduce equivalents per layer per micro-batch, by mode.
    pub tp_collectives: [f64; 3],
    /// Bytes one device sends in one token all-to-all (a dispatch or a combine); 0 without
    /// expert parallelism and for dense kinds.
    pub all_to_all_bytes: f64,
    /// Token all-to-alls per layer per micro-batch, by mode, counted in all-to-alls of the
    /// configuration's size ([`ConfigCosts::a2a_bytes`](super::ConfigCosts::a2a_bytes)).
    pub all_to_alls: [f64; 3],
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
        let ep = c.ep.max(1);
        let (m, hw) = (&inst.model, &inst.hardware);
        let execution: Execution = inst.execution();
        let shape = ActShape::new(
            m,
            &inst.training,
            c.micro_batch,
            c.tp,
            c.sequence_parallel,
            inst.attention(),
        )
        .with_window(kind.window());
        let p = params(m, &kind);
        let (params, expert_params) = (p.per_device_ep(c.tp, ep), p.expert_per_device(c.tp, ep));
        let cf = m.moe.as_ref().map_or(1.0, |x| x.capacity_factor);
        let ops = |sram: bool| match kind {
            LayerKind::Dense { ffn_hidden, .. } => {
                dense::ops(&shape.with_ffn(ffn_hidden), rates, sram, state.grads)
            }
            LayerKind::Moe { moe: e, .. } => moe::ops(&shape, rates, &e, cf, ep, sram, state.grads),
        };
        let (act_bytes, tp_collectives, all_to_all_bytes, all_to_alls) = match kind {
            LayerKind::Dense { ffn_hidden, .. } => {
                let shape = shape.with_ffn(ffn_hidden);
                (
                    Recompute::ALL.map(|r| dense::activation_bytes(&shape, r)),
                    dense::tp_collectives(c.tp),
                    0.0,
                    [0.0; 3],
                )
            }
            LayerKind::Moe { moe: e, .. } => (
                Recompute::ALL.map(|r| moe::activation_bytes(&shape, &e, cf, r)),
                moe::tp_collectives(c.tp, ep, &e, cf),
                moe::all_to_all_bytes(
                    shape.tokens(),
                    shape.hidden,
                    shape.replicated_share(),
                    ep,
                    &e,
                    cf,
                ),
                moe::all_to_alls(ep),
            ),
        };
        let modes = WeightSource::ALL.map(|w| {
            let sram = w == WeightSource::Sram;
            layer_costs(
                &ops(sram),
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
            expert_params,
            act_bytes,
            modes,
            tp_collectives,
            all_to_all_bytes,
            all_to_alls,
        }
    }

    /// One layer's cost in `mode` with weights from `source`.
    pub fn mode_cost(&self, source: WeightSource, mode: Recompute) -> &ModeCost {
        &self.modes[source.index()][mode.index()]
    }

    /// One layer for one micro-batch: compute, memory, tensor-parallel and expert-parallel
    /// communication, given the time of one all-reduce and of one all-to-all on the stage's groups.
    pub fn time_s(
        &self,
        source: WeightSource,
        mode: Recompute,
        tp_allreduce_s: f64,
        all_to_all_s: f64,
    ) -> f64 {
        self.mode_cost(source, mode).total.time_s
            + self.tp_collectives[mode.index()] * tp_allreduce_s
            + self.all_to_alls[mode.index()] * all_to_all_s
    }
}
