//! The mixture-of-experts layer: attention (`attention`), a router, routed experts and shared
//! experts. Parameters, FLOPs, stored activations, operators and collectives, as Megatron-core
//! runs it with tensor parallelism (each expert's FFN split over the group) and an expert-parallel
//! degree `ep` (each device holds `experts / ep` whole experts).
//!
//! Routing is balanced (every expert receives `tokens k / E` of the tokens routed to it) and each
//! expert's buffer holds `capacity_factor` times that share (GShard, arXiv 2006.16668, section
//! 2.2): a device's experts process `slots = tokens k C` token slots, whatever `ep` is, since with
//! `ep` devices each of its `E / ep` experts serves the tokens of `ep` devices.

use crate::cost::kernels::{LayerOps, Op, Rates};
use crate::cost::memory::ActShape;
use crate::cost::work::LayerParams;
use crate::plan::Recompute;
use crate::workload::{Model, MoeLayer};

use super::attention::{self, norm_params};
use super::dense;

/// Parameters of one MoE layer: the attention half, the FFN norm (and output norm), the router
/// `h x E`, the shared experts (one MLP of their total width), the shared-expert gate `h x 1`
/// (Qwen-MoE) and `E` routed experts, each an MLP of `expert_ffn_hidden` (DeepSeekMoE, arXiv
/// 2401.06066, eq. 3-5). The router and gate are held whole by every tensor-parallel rank (as in
/// Megatron-core); DeepSeek-V3's per-expert routing bias is not trained by the optimizer and is
/// not counted.
///
/// ```
/// let m: watos::Model = toml::from_str("name='m'\nlayers=1\nhidden=8\nheads=2\nvocab=10\ntied_embeddings=true\nbias=false\nnorm='rmsnorm'\nffn='swiglu'\n[moe]\nexperts=4\nexperts_per_token=2\nexpert_ffn_hidden=16").unwrap();
/// let l = m.layout();
/// let watos::workload::LayerKind::Moe { moe, .. } = l.kinds[0] else { panic!() };
/// let p = watos::cost::layers::moe::params(&m, &moe);
/// // 4 experts of 3 * 8 * 16; router 8 * 4.
/// assert_eq!((p.experts, p.replicated_matmul), (4.0 * 384.0, 32.0));
/// ```
pub fn params(m: &Model, moe: &MoeLayer) -> LayerParams {
    let h = m.hidden as f64;
    let expert = dense::mlp_params(m, moe.expert_ffn_hidden as f64).matmul;
    let shared = dense::mlp_params(m, moe.shared_ffn_hidden as f64).matmul;
    let ffn = LayerParams {
        matmul: shared,
        replicated_matmul: h * moe.experts as f64 + if moe.shared_expert_gate { h } else { 0.0 },
        replicated: norm_params(m, h) + if m.post_norms { norm_params(m, h) } else { 0.0 },
        experts: moe.experts as f64 * expert,
        ..LayerParams::default()
    };
    attention::params(m).plus(&ffn)
}

/// The share of routed-expert parameters a token uses: `k / E`.
///
/// ```
/// let moe = watos::workload::MoeLayer { experts: 256, experts_per_token: 8, expert_ffn_hidden: 2048, shared_ffn_hidden: 2048, shared_expert_gate: false };
/// assert_eq!(watos::cost::layers::moe::routed_share(&moe), 1.0 / 32.0);
/// ```
pub fn routed_share(moe: &MoeLayer) -> f64 {
    moe.experts_per_token as f64 / moe.experts as f64
}

/// Token slots of one micro-batch on one device's experts: `s b k C` (module doc).
fn slots(s: &ActShape, moe: &MoeLayer, capacity_factor: f64) -> f64 {
    s.seq * s.micro_batch * moe.experts_per_token as f64 * capacity_factor
}

/// Activation bytes one MoE layer stores for one micro-batch on one device.
///
/// Korthikanti et al. (arXiv 2205.05198, section 4) generalised to Megatron-core's MoE layer:
/// the attention half ([`attention::AttnBytes`]); replicated (or split by sequence parallelism):
/// the norm input and the routed/shared input 4sbh, the dropout mask sbh, with a shared-expert
/// gate its output 2sb and the shared output it scales 2sbh, the router's FP32 probabilities
/// `4 s b E`; on every rank of the group: the dispatched token slots `2 slots h` (the experts'
/// input, gathered over the group), their FP32 gate weights `4 slots` (multiplied into the
/// activation, as Megatron-core does, so the expert outputs need not be kept), the experts'
/// intermediates `6 slots f_e / t` (SwiGLU; GELU 4), and the shared experts' `6 s b f_s / t`.
/// Full recomputation keeps the layer input. None of this depends on `ep`; all of the slots scale
/// with the capacity factor.
pub fn activation_bytes(
    s: &ActShape,
    moe: &MoeLayer,
    capacity_factor: f64,
    mode: Recompute,
) -> f64 {
    let e = s.sbh();
    let rep = s.replicated_share();
    if mode == Recompute::Full {
        return 2.0 * e * rep;
    }
    let tokens = s.seq * s.micro_batch;
    let slots = slots(s, moe, capacity_factor);
    let a = attention::activation_bytes(s, mode);
    let post = if s.post_norms { 2.0 * e } else { 0.0 };
    let mask = if s.dropout { e } else { 0.0 };
    let gate = if moe.shared_expert_gate {
        2.0 * tokens + 2.0 * e
    } else {
        0.0
    };
    let router = 4.0 * tokens * moe.experts as f64;
    let replicated = (a.replicated + (4.0 * e + post + mask + gate + router)) * rep;
    let routed = 2.0 * slots * s.hidden
        + 4.0 * slots
        + dense::mlp_bytes(s, slots, moe.expert_ffn_hidden as f64);
    let shared = dense::mlp_bytes(s, tokens, moe.shared_ffn_hidden as f64);
    replicated + a.latents + a.qkv + a.proj + routed + shared + a.core
}

/// Tensor-parallel all-reduce equivalents per layer per micro-batch, by mode (forward +
/// backward, the same, and one more forward when recomputed). Each block gathers its input over
/// the group and reduce-scatters its output (an all-reduce's volume, Megatron-LM arXiv 2104.04473
/// section 2.3): attention, the routed experts, and the shared experts, which Megatron-core runs
/// as their own MLP with its own collectives. With `ep = 1` the all-gather dispatcher gathers the
/// `s b h` tokens before permuting them; with `ep > 1` the all-to-all dispatcher gathers the
/// received slots, `k C` times as many.
///
/// ```
/// let moe = watos::workload::MoeLayer { experts: 8, experts_per_token: 2, expert_ffn_hidden: 16, shared_ffn_hidden: 0, shared_expert_gate: false };
/// assert_eq!(watos::cost::layers::moe::tp_collectives(4, 1, &moe, 1.0), [4.0, 4.0, 6.0]);
/// assert_eq!(watos::cost::layers::moe::tp_collectives(4, 2, &moe, 1.0), [6.0, 6.0, 9.0]);
/// ```
pub fn tp_collectives(tp: u32, ep: u32, moe: &MoeLayer, capacity_factor: f64) -> [f64; 3] {
    if tp == 1 {
        return [0.0; 3];
    }
    let routed = if ep > 1 {
        moe.experts_per_token as f64 * capacity_factor
    } else {
        1.0
    };
    let shared = if moe.shared_ffn_hidden > 0 { 1.0 } else { 0.0 };
    let forward = 1.0 + routed + shared;
    [2.0 * forward, 2.0 * forward, 3.0 * forward]
}

/// Bytes one device sends in one token all-to-all (a dispatch or a combine): its `s b k C / t`
/// slots (its sequence-parallel share; `s b k C` without sequence parallelism) of `2 h` bytes, of
/// which `(ep - 1) / ep` leave the device under balanced routing. The buffers are sized by the
/// capacity factor, as GShard's dispatch tensors are. 0 for `ep = 1`.
///
/// ```
/// let moe = watos::workload::MoeLayer { experts: 8, experts_per_token: 2, expert_ffn_hidden: 16, shared_ffn_hidden: 0, shared_expert_gate: false };
/// assert_eq!(watos::cost::layers::moe::all_to_all_bytes(4.0, 8.0, 1.0, 1, &moe, 1.0), 0.0);
/// // 4 tokens x 2 slots x 16 bytes x 1/2 leaving = 64.
/// assert_eq!(watos::cost::layers::moe::all_to_all_bytes(4.0, 8.0, 1.0, 2, &moe, 1.0), 64.0);
/// ```
pub fn all_to_all_bytes(
    tokens: f64,
    hidden: f64,
    share: f64,
    ep: u32,
    moe: &MoeLayer,
    capacity_factor: f64,
) -> f64 {
    let ep = ep as f64;
    2.0 * tokens * share * moe.experts_per_token as f64 * capacity_factor * hidden * (ep - 1.0) / ep
}

/// Token all-to-alls of one layer per micro-batch, by mode: a dispatch and a combine forward, both
/// again backward (the gradients retrace the tokens' way), and with full recomputation the
/// recomputed forward's two more (GShard, arXiv 2006.16668, section 2.2: a dispatch and a combine
/// around the experts). None without expert parallelism.
///
/// ```
/// assert_eq!(watos::cost::layers::moe::all_to_alls(1), [0.0; 3]);
/// assert_eq!(watos::cost::layers::moe::all_to_alls(4), [4.0, 4.0, 6.0]);
/// ```
pub fn all_to_alls(ep: u32) -> [f64; 3] {
    if ep > 1 {
        [4.0, 4.0, 6.0]
    } else {
        [0.0; 3]
    }
}

/// An MoE layer's operators on one device: the attention half; the norm; the router (on the
/// device's share of tokens) and its FP32 softmax/top-k; the permutation of tokens into expert
/// order; the grouped GEMMs of the device's `E / ep` experts, each over its `s b ep k C / E`
/// tokens (the real shapes: many experts make thin GEMMs); the un-permutation and combine; the
/// shared experts over all tokens and their gate; the output norm and residual add.
#[allow(clippy::too_many_arguments)]
pub fn ops(
    s: &ActShape,
    r: &Rates,
    moe: &MoeLayer,
    capacity_factor: f64,
    ep: u32,
    weights_in_sram: bool,
    grad_bytes: f64,
) -> LayerOps {
    let w = |k: f64, n: f64| {
        if weights_in_sram {
            Some(0.0)
        } else {
            Some(2.0 * k * n)
        }
    };
    let h = s.hidden;
    let tokens = s.seq * s.micro_batch;
    let rep = s.replicated_share();
    let experts = moe.experts as f64;
    let slots = slots(s, moe, capacity_factor);
    let mut fwd = Vec::new();
    let mut bwd = Vec::new();
    let core_fwd = attention::ops(s, r, &w, grad_bytes, &mut fwd, &mut bwd);
    attention::norm(r, s.sbh(), rep, &mut fwd, &mut bwd);
    // Router over this rank's tokens; softmax and top-k read the FP32 logits and write the
    // probabilities, backward reads probabilities and their gradient and writes the logits'.
    let routed_tokens = tokens * rep;
    fwd.push(r.gemm(routed_tokens, experts, h, 1.0, w(h, experts)));
    bwd.push(r.gemm(routed_tokens, h, experts, 1.0, w(h, experts)));
    bwd.push(r.wgrad(routed_tokens, h, experts, grad_bytes));
    fwd.push(r.elementwise(8.0 * routed_tokens * experts));
    bwd.push(r.elementwise(12.0 * routed_tokens * experts));
    // Permute: read each token, write each slot (and the reverse for the gradients).
    let permute = r.elementwise(2.0 * tokens * h + 2.0 * slots * h);
    fwd.push(permute);
    bwd.push(permute);
    let local = experts / ep as f64;
    let per_expert = slots / local;
    grouped_mlp(
        s,
        r,
        weights_in_sram,
        grad_bytes,
        moe,
        local,
        per_expert,
        &mut fwd,
        &mut bwd,
    );
    // Un-permute and combine: read the slots, write the tokens; backward also writes the
    // slots' gradients and reads the outputs for the gate weights' gradient.
    fwd.push(permute);
    bwd.push(r.elementwise(2.0 * tokens * h + 4.0 * slots * h));
    if moe.shared_ffn_hidden > 0 {
        let f = moe.shared_ffn_hidden as f64;
        dense::mlp_ops(s, r, &w, grad_bytes, tokens, f, &mut fwd, &mut bwd);
    }
    if moe.shared_expert_gate {
        fwd.push(r.gemm(routed_tokens, 1.0, h, 1.0, w(h, 1.0)));
        bwd.push(r.gemm(routed_tokens, h, 1.0, 1.0, w(h, 1.0)));
        bwd.push(r.wgrad(routed_tokens, h, 1.0, grad_bytes));
    }
    if s.post_norms {
        attention::norm(r, s.sbh(), rep, &mut fwd, &mut bwd);
    }
    attention::residual_add(s, r, &mut fwd, &mut bwd);
    LayerOps { fwd, bwd, core_fwd }
}

/// The device's `local` experts as grouped GEMMs of `rows` tokens each: up (and gate)
/// projection, activation, down projection, every expert's weights read once.
#[allow(clippy::too_many_arguments)]
fn grouped_mlp(
    s: &ActShape,
    r: &Rates,
    weights_in_sram: bool,
    grad_bytes: f64,
    moe: &MoeLayer,
    local: f64,
    rows: f64,
    fwd: &mut Vec<Op>,
    bwd: &mut Vec<Op>,
) {
    let (t, h) = (s.tp, s.hidden);
    let f = moe.expert_ffn_hidden as f64;
    let up = if s.swiglu { 2.0 * f } else { f };
    let (act_fwd, act_bwd) = if s.swiglu { (6.0, 10.0) } else { (4.0, 6.0) };
    let weights = |k: f64, n: f64| {
        if weights_in_sram {
            Some(0.0)
        } else {
            Some(2.0 * k * n * local)
        }
    };
    for (i, (k, n)) in [(h, up / t), (f / t, h)].into_iter().enumerate() {
        fwd.push(r.gemm(rows, n, k, local, weights(k, n)));
        bwd.push(r.gemm(rows, k, n, local, weights(k, n)));
        let one = r.wgrad(rows, k, n, grad_bytes);
        bwd.push(Op {
            flops: one.flops * local,
            bytes: one.bytes * local,
            eff: one.eff,
        });
        if i == 0 {
            let elements = rows * local * f / t;
            fwd.push(r.elementwise(act_fwd * elements));
            bwd.push(r.elementwise(act_bwd * elements));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::kernels::EffParams;
    use crate::cost::layers;
    use crate::workload::LayerKind;

    /// h 8, 2 heads of 4, SwiGLU, RMSNorm; 4 experts of 16, top-2, one shared expert of 16,
    /// capacity factor 1.25; layer 0 dense (FFN 32), layers 1-2 MoE.
    fn model() -> Model {
        toml::from_str("name='m'\nlayers=3\nhidden=8\nheads=2\nvocab=10\ntied_embeddings=true\nbias=false\ndropout=false\nffn='swiglu'\nnorm='rmsnorm'\nffn_hidden=32\n[moe]\nexperts=4\nexperts_per_token=2\nexpert_ffn_hidden=16\nshared_experts=1\nfirst_dense_layers=1\ncapacity_factor=1.25").unwrap()
    }

    fn moe_layer(m: &Model) -> MoeLayer {
        match m.layout().kinds[1] {
            LayerKind::Moe { moe, .. } => moe,
            k => panic!("{k:?}"),
        }
    }

    #[test]
    fn parameters_total_and_active_by_hand() {
        // Attention 4 * 8*8 = 256, norm 8; router 8*4 = 32; shared 3*8*16 = 384; experts
        // 4 * 384 = 1536; FFN norm 8: 2224 in all. Active: 2224 - 1536 + 1536 * 2/4 = 1456.
        let m = model();
        let kind = m.layout().kinds[1];
        assert_eq!(layers::params(&m, &kind).total(), 2224.0);
        assert_eq!(layers::active_params(&m, &kind), 1456.0);
        // Per device over t = 2, ep = 2: (256 + 384) / 2 + 8 + 8 + 32 + 1536 / 2 / 2 = 752,
        // of which experts 384.
        let p = layers::params(&m, &kind);
        assert_eq!(
            (p.per_device_ep(2, 2), p.expert_per_device(2, 2)),
            (752.0, 384.0)
        );
    }

    #[test]
    fn forward_flops_count_k_experts_not_the_padding() {
        // 2 * (256 + 384 + 32 + 2 * 384) = 2880 for the matrices, core 2 * s (q + o) = 2 * 16 * 16
        // at s = 16: 512; the capacity factor does not enter.
        let m = model();
        let kind = m.layout().kinds[1];
        assert_eq!(
            layers::fwd_flops_per_token(&m, &kind, 16, crate::hardware::AttentionKernel::Unfused),
            2880.0 + 512.0
        );
    }

    fn shape(m: &Model) -> ActShape {
        let tr: crate::instance::Training = toml::from_str("global_batch=1\nseq_len=4").unwrap();
        ActShape::new(
            m,
            &tr,
            1,
            1,
            false,
            crate::hardware::AttentionKernel::Unfused,
        )
    }

    #[test]
    fn activations_by_hand() {
        // s 4, b 1, t 1, e = sbh = 32; slots = 4 * 2 * 1.25 = 10.
        // Attention: 4e = 128 replicated, QKV 2*4*24 = 192, proj 2*4*8 = 64, scores 2*2*4*4 = 64.
        // FFN: 4e = 128 and router probabilities 4*4*4 = 64 replicated; slots 2*10*8 = 160,
        // their gate weights 4*10 = 40, expert intermediates 6*10*16 = 960; shared 6*4*16 = 384.
        let m = model();
        let (s, e) = (shape(&m), moe_layer(&m));
        let none = 128.0 + 192.0 + 64.0 + 64.0 + 128.0 + 64.0 + 160.0 + 40.0 + 960.0 + 384.0;
        assert_eq!(activation_bytes(&s, &e, 1.25, Recompute::None), none);
        assert_eq!(
            activation_bytes(&s, &e, 1.25, Recompute::Selective),
            none - 64.0
        );
        assert_eq!(activation_bytes(&s, &e, 1.25, Recompute::Full), 64.0);
        // Dropless: 8 slots instead of 10, (160 + 40 + 960) * 0.8 = 928.
        assert_eq!(
            activation_bytes(&s, &e, 1.0, Recompute::None),
            none - 1160.0 + 928.0
        );
    }

    #[test]
    fn expert_gemms_take_their_tokens_per_expert() {
        // 10 slots over 4 experts: 2.5 rows each with ep 1; 2 experts of 5 rows with ep 2
        // (4 tokens x 2 devices x 2 x 1.25 / 4). Same FLOPs: 2 * 10 * 32 * 8 = 5120 for the up
        // projection; thicker GEMMs run closer to peak.
        let m = model();
        let (s, e) = (shape(&m), moe_layer(&m));
        let r = Rates {
            peak_flops: 1e12,
            dram_bw_bytes_per_s: 1e12,
            eff: EffParams {
                gemm: 1.0,
                gemm_half_dim: 8.0,
                attention: 1.0,
                dram: 1.0,
            },
        };
        let up = |ep| {
            let ops = ops(&s, &r, &e, 1.25, ep, false, 4.0);
            // After the attention half (norm, 4 matrices, 4 core operators, residual) come the
            // norm, router, softmax and permutation.
            *ops.fwd
                .iter()
                .find(|o| o.flops == 5120.0)
                .expect("the experts' up projection")
        };
        let (one, two) = (up(1), up(2));
        assert_eq!(
            (one.eff, two.eff),
            (r.gemm_eff(2.5, 32.0, 8.0), r.gemm_eff(5.0, 32.0, 8.0))
        );
        assert!(two.eff > one.eff);
        // Activations 2 (rows * 8 + rows * 32) per expert, weights 2 * 8 * 32 per expert:
        // ep 1: 2 * (20 + 80) * 4 + 512 * 4 = 2848; ep 2: 2 * (40 + 160) * 2 + 512 * 2 = 1824.
        assert_eq!((one.bytes, two.bytes), (2848.0, 1824.0));
    }

    #[test]
    fn shared_experts_add_their_own_collectives() {
        let e = moe_layer(&model());
        assert_eq!(tp_collectives(2, 1, &e, 1.25), [6.0, 6.0, 9.0]);
        assert_eq!(tp_collectives(1, 1, &e, 1.25), [0.0; 3]);
        // ep 2: the routed block gathers k C = 2.5 times the tokens.
        assert_eq!(tp_collectives(2, 2, &e, 1.25), [9.0, 9.0, 13.5]);
    }
}
