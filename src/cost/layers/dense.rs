//! The dense transformer layer: attention (`attention`) and a GELU or SwiGLU MLP. Its
//! parameters, FLOPs, stored activations, operators and tensor-parallel collectives.

use crate::cost::kernels::{LayerOps, Op, Rates};
use crate::cost::memory::ActShape;
use crate::cost::work::LayerParams;
use crate::plan::Recompute;
use crate::workload::{Ffn, Model};

use super::attention::{self, norm_params};

/// Parameters of one dense layer with FFN inner size `ffn`: the attention half
/// ([`attention::params`]) and the MLP.
///
/// MLP: `2 h f` (GELU) or `3 h f` (SwiGLU, Shazeer 2020), its norm, with `bias` the up
/// projection's (column-parallel) and the down projection's (row-parallel) biases.
///
/// ```
/// let m = watos::Model::load(concat!(env!("CARGO_MANIFEST_DIR"), "/models/gpt3-175b.toml")).unwrap();
/// let p = watos::cost::layers::dense::params(&m, m.ffn_hidden());
/// assert_eq!(p.matmul, 12.0 * 12288.0 * 12288.0);
/// ```
pub fn params(m: &Model, ffn: u32) -> LayerParams {
    attention::params(m).plus(&mlp_params(m, ffn as f64))
}

/// The MLP half of a dense layer (also a mixture-of-experts layer's shared experts, without the
/// norm: see `moe`).
///
/// ```
/// let m: watos::Model = toml::from_str("name='m'\nlayers=1\nhidden=8\nheads=2\nvocab=10\ntied_embeddings=true\nffn='swiglu'\nbias=false\nnorm='rmsnorm'").unwrap();
/// let p = watos::cost::layers::dense::mlp_params(&m, 16.0);
/// // Gate, up and down 3 * 8 * 16; one RMSNorm of 8.
/// assert_eq!((p.matmul, p.replicated), (384.0, 8.0));
/// ```
pub fn mlp_params(m: &Model, f: f64) -> LayerParams {
    let h = m.hidden as f64;
    let (mats, up_width) = match m.ffn {
        Ffn::Gelu => (2.0, f),
        Ffn::Swiglu => (3.0, 2.0 * f),
    };
    LayerParams {
        matmul: mats * h * f,
        sharded_bias: if m.bias { up_width } else { 0.0 },
        replicated: norm_params(m, h)
            + if m.bias { h } else { 0.0 }
            + if m.post_norms { norm_params(m, h) } else { 0.0 },
        ..LayerParams::default()
    }
}

/// Tensor-parallel all-reduce equivalents per layer per micro-batch, by mode: 2 forward, 2
/// backward, 2 more when the forward is recomputed (Megatron-LM, arXiv 2104.04473 section 2.3;
/// with sequence parallelism reduce-scatter/all-gather pairs of the same volume).
pub fn tp_collectives(tp: u32) -> [f64; 3] {
    if tp > 1 {
        [4.0, 4.0, 6.0]
    } else {
        [0.0; 3]
    }
}

/// Stored bytes of an MLP of inner width `ffn` over `tokens` on one device: GELU keeps its input
/// and output `4 tokens f / t`, SwiGLU gate, up and product `6 tokens f / t`.
pub(crate) fn mlp_bytes(s: &ActShape, tokens: f64, ffn: f64) -> f64 {
    (if s.swiglu { 6.0 } else { 4.0 }) * tokens * ffn / s.tp
}

/// Activation bytes one layer stores for one micro-batch on one device.
///
/// Korthikanti et al. (arXiv 2205.05198, section 4) generalised to GQA, SwiGLU, head sizes,
/// windows and no dropout: the attention half ([`attention::AttnBytes`]); the MLP's norm input
/// and input 4sbh and dropout mask sbh (replicated, or split by sequence parallelism), and
/// [`mlp_bytes`]. For GPT: `sbh(10 + 24/t + 5as/(ht))`. Full recomputation keeps the layer input,
/// 2sbh (divided by t with sequence parallelism).
pub fn activation_bytes(s: &ActShape, mode: Recompute) -> f64 {
    let e = s.sbh();
    let rep = s.replicated_share();
    if mode == Recompute::Full {
        return 2.0 * e * rep;
    }
    let a = attention::activation_bytes(s, mode);
    let post = if s.post_norms { 2.0 * e } else { 0.0 };
    let mask = if s.dropout { e } else { 0.0 };
    let replicated = (a.replicated + (4.0 * e + post + mask)) * rep;
    let mlp = mlp_bytes(s, s.seq * s.micro_batch, s.ffn);
    replicated + a.latents + a.qkv + a.proj + mlp + a.core
}

/// A dense layer's operators on one device of a tensor-parallel group: the attention half, then
/// norm, MLP, output norm and residual add. `weights_in_sram`: the weights do not stream from
/// DRAM. `grad_bytes`: bytes per gradient element.
pub fn ops(s: &ActShape, r: &Rates, weights_in_sram: bool, grad_bytes: f64) -> LayerOps {
    let w = |k: f64, n: f64| {
        if weights_in_sram {
            Some(0.0)
        } else {
            Some(2.0 * k * n)
        }
    };
    let mut fwd = Vec::new();
    let mut bwd = Vec::new();
    let core_fwd = attention::ops(s, r, &w, grad_bytes, &mut fwd, &mut bwd);
    attention::norm(r, s.sbh(), s.replicated_share(), &mut fwd, &mut bwd);
    mlp_ops(
        s,
        r,
        &w,
        grad_bytes,
        s.seq * s.micro_batch,
        s.ffn,
        &mut fwd,
        &mut bwd,
    );
    if s.post_norms {
        attention::norm(r, s.sbh(), s.replicated_share(), &mut fwd, &mut bwd);
    }
    attention::residual_add(s, r, &mut fwd, &mut bwd);
    LayerOps { fwd, bwd, core_fwd }
}

/// An MLP of inner width `ffn` over `tokens` on one device: up (and gate) projection, activation
/// (bias-GELU, or SiLU gate times up), down projection.
#[allow(clippy::too_many_arguments)]
pub(crate) fn mlp_ops(
    s: &ActShape,
    r: &Rates,
    w: &dyn Fn(f64, f64) -> Option<f64>,
    grad_bytes: f64,
    tokens: f64,
    ffn: f64,
    fwd: &mut Vec<Op>,
    bwd: &mut Vec<Op>,
) {
    let (t, h) = (s.tp, s.hidden);
    let up = if s.swiglu { 2.0 * ffn } else { ffn };
    let (act_fwd, act_bwd) = if s.swiglu { (6.0, 10.0) } else { (4.0, 6.0) };
    for (i, (k, n)) in [(h, up / t), (ffn / t, h)].into_iter().enumerate() {
        fwd.push(r.gemm(tokens, n, k, 1.0, w(k, n)));
        bwd.push(r.gemm(tokens, k, n, 1.0, w(k, n)));
        bwd.push(r.wgrad(tokens, k, n, grad_bytes));
        if i == 0 {
            fwd.push(r.elementwise(act_fwd * tokens * ffn / t));
            bwd.push(r.elementwise(act_bwd * tokens * ffn / t));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::memory::AttnShape;
    use crate::units::GIB;

    /// A micro-batch of `s` tokens through a layer of hidden `h`, `a` heads of `h / a`, `kv`
    /// key/value width, FFN `f`.
    #[allow(clippy::too_many_arguments)]
    fn shape(h: f64, kv: f64, f: f64, a: f64, s: f64, b: f64, t: f64, sp: bool) -> ActShape {
        ActShape {
            seq: s,
            micro_batch: b,
            hidden: h,
            attn: AttnShape {
                q: h,
                k: kv,
                v: kv,
                o: h,
                qk_head: h / a,
                v_head: h / a,
                mla: None,
            },
            window: s,
            ffn: f,
            heads: a,
            tp: t,
            sequence_parallel: sp,
            dropout: true,
            swiglu: false,
            flash: false,
            post_norms: false,
        }
    }

    fn gpt_shape(h: f64, a: f64, b: f64, t: f64, sp: bool) -> ActShape {
        shape(h, h, 4.0 * h, a, 2048.0, b, t, sp)
    }

    #[test]
    fn no_parallelism_is_34sbh_plus_5as2b() {
        let s = gpt_shape(1024.0, 16.0, 1.0, 1.0, false);
        let sbh = 2048.0 * 1024.0;
        assert_eq!(
            activation_bytes(&s, Recompute::None),
            sbh * (34.0 + 5.0 * 16.0 * 2048.0 / 1024.0)
        );
        assert_eq!(activation_bytes(&s, Recompute::Selective), sbh * 34.0);
        assert_eq!(activation_bytes(&s, Recompute::Full), 2.0 * sbh);
    }

    #[test]
    fn korthikanti_figure1_22b_by_hand() {
        // 22B: h 6144, a 64, b 4, t 8, 48 layers. None: sbh(10 + 24/8 + 5*64*2048/(6144*8)) per layer.
        let s = gpt_shape(6144.0, 64.0, 4.0, 8.0, false);
        let none = 48.0 * activation_bytes(&s, Recompute::None) / GIB;
        assert!((none - 59.25).abs() < 0.01, "{none}");
        let sp = gpt_shape(6144.0, 64.0, 4.0, 8.0, true);
        let sel = 48.0 * activation_bytes(&sp, Recompute::Selective) / GIB;
        assert!((sel - 9.56).abs() < 0.01, "{sel}");
    }

    fn small_swiglu() -> ActShape {
        let mut s = shape(8.0, 2.0, 16.0, 4.0, 4.0, 1.0, 1.0, false);
        s.dropout = false;
        s.swiglu = true;
        s
    }

    #[test]
    fn swiglu_gqa_without_dropout_by_hand() {
        // h 8, kv 2, f 16, a 4, s 4, b 1, t 1: replicated 8*32 = 256; qkv 2*4*(8+4) = 96;
        // proj 2*32 = 64; mlp 6*4*16 = 384; core 2*4*16 = 128 -> 928.
        let s = small_swiglu();
        assert_eq!(activation_bytes(&s, Recompute::None), 928.0);
        assert_eq!(activation_bytes(&s, Recompute::Selective), 800.0);
    }

    #[test]
    fn window_shrinks_the_stored_scores_and_a_long_one_changes_nothing() {
        // Window 2 of 4 tokens: core 2 bytes * 4 heads * 4 queries * 2 keys = 64 instead of 128.
        let s = small_swiglu();
        assert_eq!(
            activation_bytes(&s.with_window(Some(2)), Recompute::None),
            864.0
        );
        assert_eq!(
            activation_bytes(&s.with_window(Some(4096)), Recompute::None),
            928.0
        );
        assert_eq!(s.with_window(Some(4096)), s);
    }

    #[test]
    fn output_norms_store_two_more_inputs() {
        // Gemma 2's two output norms keep their inputs: 2 * 2sbh = 4 * 32 = 128 more.
        let mut s = small_swiglu();
        s.post_norms = true;
        assert_eq!(activation_bytes(&s, Recompute::None), 928.0 + 128.0);
    }

    #[test]
    fn window_cuts_flash_attention_flops() {
        // Flash core over s = 4, window 2: pairs 4*2 - 2 = 6 instead of 8; forward FLOPs
        // 2 b pairs (q + o) = 2 * 6 * 16 = 192 instead of 256.
        let r = crate::cost::kernels::Rates {
            peak_flops: 1e12,
            dram_bw_bytes_per_s: 1e12,
            eff: crate::cost::kernels::EffParams {
                gemm: 1.0,
                gemm_half_dim: 0.0,
                attention: 1.0,
                dram: 1.0,
            },
        };
        let mut s = small_swiglu();
        s.flash = true;
        let core = |s: &ActShape| {
            let (mut f, mut b) = (Vec::new(), Vec::new());
            attention::ops(s, &r, &|_, _| Some(0.0), 4.0, &mut f, &mut b);
            f[2].flops
        };
        assert_eq!(core(&s), 256.0);
        assert_eq!(core(&s.with_window(Some(2))), 192.0);
    }

    fn model(extra: &str) -> Model {
        toml::from_str(&format!(
            "name='m'\nlayers=1\nvocab=10\ntied_embeddings=true\n{extra}"
        ))
        .unwrap()
    }

    #[test]
    fn gpt_layer_is_12h2_plus_13h() {
        // 12h^2 matrices; biases 3h + 4h (column) + 2h (row); two LayerNorms 4h: 13h in all.
        let p = params(&model("hidden=1024\nheads=16"), 4096);
        assert_eq!(p.matmul, 12.0 * 1024.0 * 1024.0);
        assert_eq!(p.sharded_bias + p.replicated, 13.0 * 1024.0);
        assert_eq!(
            p.per_device(8),
            (12.0 * 1024.0 * 1024.0 + 7.0 * 1024.0) / 8.0 + 6.0 * 1024.0
        );
    }

    const LLAMA: &str = "hidden=8192\nheads=64\nkv_heads=8\nffn='swiglu'\nnorm='rmsnorm'\nbias=false\ndropout=false";

    #[test]
    fn llama3_70b_has_70_6_billion_parameters() {
        // Per layer: 8192*(8192+2048) + 8192^2 + 3*8192*28672 + 2*8192 = 855,654,400.
        assert_eq!(params(&model(LLAMA), 28672).total(), 855_654_400.0);
    }

    #[test]
    fn explicit_head_dim_sizes_the_attention() {
        // Mistral-Small-24B: hidden 5120, 32 heads of 128 (not 160), 8 KV heads, FFN 32768.
        // Attention 5120*(4096 + 2*1024) + 4096*5120 = 52,428,800; MLP 3*5120*32768 =
        // 503,316,480; norms 10,240 -> 555,755,520 (with 160-wide heads: 597,698,560).
        let m = model("hidden=5120\nheads=32\nkv_heads=8\nhead_dim=128\nffn='swiglu'\nnorm='rmsnorm'\nbias=false");
        assert_eq!(params(&m, 32768).total(), 555_755_520.0);
    }

    #[test]
    fn qkv_bias_adds_q_k_v_widths() {
        // Qwen2.5-7B: hidden 3584, 28 heads, 4 KV heads of 128: biases 3584 + 2*512 = 4608.
        let m = model("hidden=3584\nheads=28\nkv_heads=4\nffn='swiglu'\nnorm='rmsnorm'\nbias=false\nqkv_bias=true");
        assert_eq!(params(&m, 18944).sharded_bias, 4608.0);
    }
}
