//! The attention half of a layer, shared by every layer kind: its input norm, multi-head /
//! grouped-query or multi-head latent attention, output projection and residual add. Parameters,
//! FLOPs, stored activations and operators; the kinds add their feed-forward half.

use crate::cost::kernels::{Op, Rates};
use crate::cost::memory::{ActShape, AttnShape};
use crate::cost::work::LayerParams;
use crate::hardware::AttentionKernel;
use crate::plan::Recompute;
use crate::workload::{Model, Norm};

/// Parameters of one norm over `width` features: a scale, and a bias for LayerNorm.
///
/// ```
/// let m: watos::Model = toml::from_str("name='m'\nlayers=1\nhidden=8\nheads=2\nvocab=10\ntied_embeddings=true").unwrap();
/// assert_eq!(watos::cost::layers::attention::norm_params(&m, 8.0), 16.0);
/// ```
pub fn norm_params(m: &Model, width: f64) -> f64 {
    match m.norm {
        Norm::Layernorm => 2.0 * width,
        Norm::Rmsnorm => width,
    }
}

/// Parameters of the attention half of one layer.
///
/// Grouped-query attention (Ainslie et al. 2023): Q `h x heads d`, K and V `h x kv_heads d`, O
/// `heads d x h`. Multi-head latent attention (DeepSeek-V2, arXiv 2405.04434, eqs. 9-10, 12-13
/// and 37-38): down-projections `h x q_rank` and `h x (kv_rank + rope)` (the latents and the
/// rotary key shared by all heads), a norm on each latent, up-projections
/// `q_rank x heads (nope + rope)` and `kv_rank x heads (nope + v)`, O `heads v x h`; without a
/// query latent, queries are `h x heads (nope + rope)`. The down-projections are held whole by every tensor-parallel
/// rank (only heads are split). Biases: `bias` on every projection (O's is replicated), `qkv_bias`
/// on Q, K and V (the query/latent projections under latent attention).
///
/// ```
/// let m: watos::Model = toml::from_str("name='m'\nlayers=1\nhidden=8\nheads=2\nkv_heads=1\nvocab=10\ntied_embeddings=true\nbias=false\nnorm='rmsnorm'").unwrap();
/// let p = watos::cost::layers::attention::params(&m);
/// // Q 8x8, K and V 8x4 each, O 8x8; one RMSNorm of 8.
/// assert_eq!((p.matmul, p.replicated), (8.0 * 16.0 + 64.0, 8.0));
/// ```
pub fn params(m: &Model) -> LayerParams {
    let h = m.hidden as f64;
    let a = AttnShape::of(m);
    let proj_bias = m.bias || m.qkv_bias;
    let mut p = LayerParams {
        replicated: norm_params(m, h)
            + if m.bias { h } else { 0.0 }
            + if m.post_norms { norm_params(m, h) } else { 0.0 },
        ..LayerParams::default()
    };
    match a.mla {
        None => {
            p.matmul = h * (a.q + a.k + a.v) + a.o * h;
            if proj_bias {
                p.sharded_bias = a.q + a.k + a.v;
            }
        }
        Some(l) => {
            let heads = m.heads as f64;
            if l.q_rank > 0.0 {
                p.replicated_matmul += h * l.q_rank;
                p.matmul += l.q_rank * a.q;
                p.replicated += norm_params(m, l.q_rank) + if proj_bias { l.q_rank } else { 0.0 };
            } else {
                p.matmul += h * a.q;
                p.sharded_bias += if proj_bias { a.q } else { 0.0 };
            }
            // Keys without rotary part and values, per head, from the key/value latent.
            let kv_up = a.k - heads * l.rope + a.v;
            p.replicated_matmul += h * (l.kv_rank + l.rope);
            p.matmul += l.kv_rank * kv_up + a.o * h;
            p.replicated +=
                norm_params(m, l.kv_rank) + if proj_bias { l.kv_rank + l.rope } else { 0.0 };
        }
    }
    p
}

/// Forward FLOPs per token of the attention core (scores and weighted sum), as `kernel` computes
/// it, generalised to head sizes and windows: each query meets `pairs` keys, `2 pairs (heads
/// d_qk + heads d_v)`. An unfused kernel computes the full rectangle, `window` keys per query (`4 s h`
/// for GPT: Megatron-LM's count, arXiv 2104.04473 eq. 3); FlashAttention skips the masked blocks
/// and computes the causal band only ([`causal_pairs`]). Model FLOPs count the same, so MFU never
/// exceeds HFU nor 100%. A window at least the sequence length is the sequence.
///
/// ```
/// use watos::cost::layers::attention::core_flops_per_token as core;
/// use watos::hardware::AttentionKernel::{Flash, Unfused};
/// let m: watos::Model = toml::from_str("name='m'\nlayers=1\nhidden=8\nheads=2\nvocab=10\ntied_embeddings=true").unwrap();
/// assert_eq!(core(&m, 16, None, Unfused), 4.0 * 16.0 * 8.0);
/// assert_eq!(core(&m, 16, Some(4), Unfused), 4.0 * 4.0 * 8.0);
/// assert_eq!(core(&m, 16, None, Flash), 2.0 * 16.0 * 8.0);
/// ```
pub fn core_flops_per_token(
    m: &Model,
    seq_len: u32,
    window: Option<u32>,
    kernel: AttentionKernel,
) -> f64 {
    let a = AttnShape::of(m);
    let s = seq_len as f64;
    let keys = window.map_or(seq_len, |w| w.min(seq_len)) as f64;
    let pairs_per_query = match kernel {
        AttentionKernel::Unfused => keys,
        AttentionKernel::Flash => causal_pairs(s, keys) / s,
    };
    2.0 * pairs_per_query * (a.q + a.o)
}

/// Activation bytes of the attention half, by part (Korthikanti et al., arXiv 2205.05198,
/// section 4, generalised): the caller applies the sequence-parallel share to `replicated`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct AttnBytes {
    /// Before the share: norm input and attention input 4sbh, the output norm's input 2sbh
    /// (Gemma 2), the dropout mask sbh.
    pub replicated: f64,
    /// Latent attention's latents, computed whole on every TP rank: query latent and its normed
    /// copy `4 s b q_rank`, key/value latent with rotary key and its normed copy `2 s b (2 kv_rank
    /// + rope)`.
    pub latents: f64,
    /// Q, K and V: `2 s b (q + k + v) / t`.
    pub qkv: f64,
    /// Output projection input: `2 s b heads d_v / t`.
    pub proj: f64,
    /// Attention core: unfused `5 a s w b / t` (softmax 2, dropout mask 1, dropout output 2; 2
    /// without dropout) over the `s x w` band of scores, dropped by selective recomputation; flash
    /// attention keeps only its 4-byte log-sum-exp per row and head.
    pub core: f64,
}

/// See [`AttnBytes`]; `mode` is not `Full` (the layer keeps only its input then).
pub(crate) fn activation_bytes(s: &ActShape, mode: Recompute) -> AttnBytes {
    let e = s.sbh();
    let t = s.tp;
    let a = &s.attn;
    let tokens = s.seq * s.micro_batch;
    let post = if s.post_norms { 2.0 * e } else { 0.0 };
    let mask = if s.dropout { e } else { 0.0 };
    let latents = a.mla.map_or(0.0, |l| {
        4.0 * tokens * l.q_rank + 2.0 * tokens * (2.0 * l.kv_rank + l.rope)
    });
    let core = if s.flash {
        4.0 * s.heads * tokens / t
    } else if mode == Recompute::Selective {
        0.0
    } else {
        let per_score = if s.dropout { 5.0 } else { 2.0 };
        per_score * s.heads * s.seq * s.window * s.micro_batch / t
    };
    AttnBytes {
        replicated: 4.0 * e + post + mask,
        latents,
        qkv: 2.0 * tokens * (a.q + a.k + a.v) / t,
        proj: 2.0 * tokens * a.o / t,
        core,
    }
}

/// Query-key pairs of one causal sequence of `s` tokens whose queries each see at most `w` keys:
/// `s^2 / 2` without a window, `s w - w^2 / 2` with one (the continuous count, as FlashAttention
/// skips whole blocks outside the band).
pub fn causal_pairs(s: f64, w: f64) -> f64 {
    s * w - w * w / 2.0
}

/// The attention half's operators on one device of a tensor-parallel group, appended to `fwd`
/// and `bwd` in execution order: norm, projections, core, output projection, output norm,
/// residual add. Returns the core's forward operators (what selective recomputation re-runs).
/// `w(k, n)`: DRAM bytes of a `k x n` weight (0 when weights stay in SRAM).
pub(crate) fn ops(
    s: &ActShape,
    r: &Rates,
    w: &dyn Fn(f64, f64) -> Option<f64>,
    grad_bytes: f64,
    fwd: &mut Vec<Op>,
    bwd: &mut Vec<Op>,
) -> Vec<Op> {
    let (t, h, a) = (s.tp, s.hidden, &s.attn);
    let tokens = s.seq * s.micro_batch;
    let e = tokens * h;
    let rep = s.replicated_share();
    // A matrix `k x n` over `rows`: forward, then data gradient (dY W^T) and weight gradient
    // (X^T dY, accumulated into the gradient buffer) backward.
    let matrix = |rows: f64, k: f64, n: f64, fwd: &mut Vec<Op>, bwd: &mut Vec<Op>| {
        fwd.push(r.gemm(rows, n, k, 1.0, w(k, n)));
        bwd.push(r.gemm(rows, k, n, 1.0, w(k, n)));
        bwd.push(r.wgrad(rows, k, n, grad_bytes));
    };
    norm(r, e, rep, fwd, bwd);
    match a.mla {
        None => matrix(tokens, h, (a.q + a.k + a.v) / t, fwd, bwd),
        Some(l) => {
            // Down-projections are whole on every rank and run over all tokens of the group.
            if l.q_rank > 0.0 {
                matrix(tokens, h, l.q_rank, fwd, bwd);
                norm(r, tokens * l.q_rank, 1.0, fwd, bwd);
                matrix(tokens, l.q_rank, a.q / t, fwd, bwd);
            } else {
                matrix(tokens, h, a.q / t, fwd, bwd);
            }
            matrix(tokens, h, l.kv_rank + l.rope, fwd, bwd);
            norm(r, tokens * l.kv_rank, 1.0, fwd, bwd);
            let kv_up = a.k - s.heads * l.rope + a.v;
            matrix(tokens, l.kv_rank, kv_up / t, fwd, bwd);
        }
    }
    let core_fwd = core_ops(s, r, fwd, bwd);
    matrix(tokens, a.o / t, h, fwd, bwd);
    if s.post_norms {
        norm(r, e, rep, fwd, bwd);
    }
    residual_add(s, r, fwd, bwd);
    core_fwd
}

/// A norm over `elements` (times the share a device holds): read x, write y; backward reads x
/// and dy, writes dx.
pub(crate) fn norm(r: &Rates, elements: f64, share: f64, fwd: &mut Vec<Op>, bwd: &mut Vec<Op>) {
    fwd.push(r.elementwise(4.0 * elements * share));
    bwd.push(r.elementwise(6.0 * elements * share));
}

/// Bias-dropout-add into the residual; backward reads dy and the mask, writes dx.
pub(crate) fn residual_add(s: &ActShape, r: &Rates, fwd: &mut Vec<Op>, bwd: &mut Vec<Op>) {
    let (e, rep) = (s.sbh(), s.replicated_share());
    fwd.push(r.elementwise(if s.dropout { 7.0 } else { 6.0 } * e * rep));
    bwd.push(r.elementwise(if s.dropout { 5.0 } else { 4.0 } * e * rep));
}

/// The attention core on one device: FlashAttention (scores never reach DRAM; blocks outside the
/// causal band are skipped; the backward recomputes scores, 2.5x the forward FLOPs, Dao 2023) or
/// the unfused kernels of Megatron-LM over the `s x w` band of scores (a banded kernel; a dense
/// one with a mask would do the full square).
fn core_ops(s: &ActShape, r: &Rates, fwd: &mut Vec<Op>, bwd: &mut Vec<Op>) -> Vec<Op> {
    let (t, a) = (s.tp, &s.attn);
    let tokens = s.seq * s.micro_batch;
    if s.flash {
        let flops = 2.0 * s.micro_batch * causal_pairs(s.seq, s.window) * (a.q + a.o) / t;
        let io = 2.0 * tokens * (a.q + a.o + a.k + a.v) / t;
        let op = Op {
            flops,
            bytes: io,
            eff: r.eff.attention,
        };
        fwd.push(op);
        bwd.push(Op {
            flops: 2.5 * flops,
            bytes: 2.0 * io,
            eff: r.eff.attention,
        });
        return Vec::new();
    }
    let scores = s.heads * s.seq * s.window * s.micro_batch / t;
    let batch = s.micro_batch * s.heads / t;
    let qk = Op {
        bytes: 2.0 * tokens * (a.q + a.k) / t + 2.0 * scores,
        ..r.gemm(s.seq, s.window, a.qk_head, batch, Some(0.0))
    };
    let av = Op {
        bytes: 2.0 * scores + 2.0 * tokens * (a.v + a.o) / t,
        ..r.gemm(s.seq, a.v_head, s.window, batch, Some(0.0))
    };
    let mut core = vec![qk, r.elementwise(4.0 * scores)];
    if s.dropout {
        core.push(r.elementwise(5.0 * scores));
    }
    core.push(av);
    fwd.extend(core.iter().copied());
    // Backward: two multiplies per multiply; softmax reads y and dy, writes dx; dropout reads dy
    // and the mask, writes dx.
    bwd.extend([qk, qk, av, av]);
    bwd.push(r.elementwise(6.0 * scores));
    if s.dropout {
        bwd.push(r.elementwise(5.0 * scores));
    }
    core
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deepseek_v3() -> Model {
        toml::from_str(
            "name='v3'\nlayers=61\nhidden=7168\nheads=128\nvocab=129280\ntied_embeddings=false\nnorm='rmsnorm'\nbias=false\ndropout=false\n[mla]\nq_lora_rank=1536\nkv_lora_rank=512\nqk_nope_head_dim=128\nqk_rope_head_dim=64\nv_head_dim=128",
        )
        .unwrap()
    }

    #[test]
    fn deepseek_v3_latent_attention_by_hand() {
        // q_a 7168*1536 = 11,010,048; kv_a 7168*(512+64) = 4,128,768 (replicated);
        // q_b 1536*128*192 = 37,748,736; kv_b 512*128*(128+128) = 16,777,216;
        // o 128*128*7168 = 117,440,512 (split over t); norms 7168 + 1536 + 512 = 9,216.
        let p = params(&deepseek_v3());
        assert_eq!(p.replicated_matmul, 11_010_048.0 + 4_128_768.0);
        assert_eq!(p.matmul, 37_748_736.0 + 16_777_216.0 + 117_440_512.0);
        assert_eq!(p.replicated, 9_216.0);
        assert_eq!(p.total(), 187_114_496.0);
    }

    #[test]
    fn latent_core_flops_use_both_head_sizes() {
        // 2 s (heads 192 + heads 128) = 2 * 4096 * 128 * 320 per token.
        let f = core_flops_per_token(
            &deepseek_v3(),
            4096,
            None,
            crate::hardware::AttentionKernel::Unfused,
        );
        assert_eq!(f, 2.0 * 4096.0 * 128.0 * 320.0);
    }

    #[test]
    fn latent_activations_by_hand() {
        // V3's attention at s 2, b 1, t 2, flash, no dropout, no sequence parallelism: e = 2*7168.
        // Replicated 4e = 57,344. Latents: 4*2*1536 + 2*2*(2*512 + 64) = 12,288 + 4,352 = 16,640.
        // Q, K, V: 2*2*(24,576 + 24,576 + 16,384)/2 = 131,072. Projection input 2*2*16,384/2 =
        // 32,768. Log-sum-exp 4*128*2/2 = 512.
        let m = deepseek_v3();
        let tr: crate::instance::Training = toml::from_str("global_batch=1\nseq_len=2").unwrap();
        let s = ActShape::new(
            &m,
            &tr,
            1,
            2,
            false,
            crate::hardware::AttentionKernel::Flash,
        );
        let b = activation_bytes(&s, Recompute::None);
        assert_eq!(
            (b.replicated, b.latents, b.qkv, b.proj, b.core),
            (57_344.0, 16_640.0, 131_072.0, 32_768.0, 512.0)
        );
    }

    #[test]
    fn causal_band_by_hand() {
        // 8 tokens, no window: 32 pairs (continuous half square); window 2: 16 - 2 = 14.
        assert_eq!(causal_pairs(8.0, 8.0), 32.0);
        assert_eq!(causal_pairs(8.0, 2.0), 14.0);
    }
}
