//! The dense transformer layer: attention (multi-head or grouped-query) and a GELU or SwiGLU MLP.
//! Its parameters, FLOPs, stored activations, operators and tensor-parallel collectives.

use crate::cost::kernels::{LayerOps, Op, Rates};
use crate::cost::memory::ActShape;
use crate::cost::work::LayerParams;
use crate::hardware::AttentionKernel;
use crate::plan::Recompute;
use crate::workload::{Ffn, Model, Norm};

/// Parameters of one dense layer with FFN inner size `ffn`.
///
/// Attention: Q and O are `h x h`, K and V are `h x h_kv` (grouped-query attention, Ainslie et al.
/// 2023); MLP: `2 h f` (GELU) or `3 h f` (SwiGLU, Shazeer 2020).
///
/// ```
/// let m = watos::Model::load(concat!(env!("CARGO_MANIFEST_DIR"), "/models/gpt3-175b.toml")).unwrap();
/// let p = watos::cost::layers::dense::params(&m, m.ffn_hidden());
/// assert_eq!(p.matmul, 12.0 * 12288.0 * 12288.0);
/// ```
pub fn params(m: &Model, ffn: u32) -> LayerParams {
    let h = m.hidden as f64;
    let hkv = (m.kv_heads() * m.head_dim()) as f64;
    let f = ffn as f64;
    let mlp_mats = match m.ffn {
        Ffn::Gelu => 2.0,
        Ffn::Swiglu => 3.0,
    };
    let up_width = match m.ffn {
        Ffn::Gelu => f,
        Ffn::Swiglu => 2.0 * f,
    };
    let norm = match m.norm {
        Norm::Layernorm => 2.0 * h,
        Norm::Rmsnorm => h,
    };
    let (sharded_bias, row_bias) = if m.bias {
        ((h + 2.0 * hkv) + up_width, 2.0 * h)
    } else {
        (0.0, 0.0)
    };
    LayerParams {
        matmul: h * (h + 2.0 * hkv) + h * h + mlp_mats * h * f,
        sharded_bias,
        replicated: 2.0 * norm + row_bias,
    }
}

/// Forward FLOPs of one dense layer per token: 2 per matrix parameter plus the attention core
/// ([`attention_fwd_flops_per_token`]); elementwise work is not counted.
pub fn fwd_flops_per_token(m: &Model, ffn: u32, seq_len: u32, kernel: AttentionKernel) -> f64 {
    2.0 * params(m, ffn).matmul
        + attention_fwd_flops_per_token(seq_len as f64, m.hidden as f64, kernel)
}

/// Forward FLOPs of attention scores and the weighted sum per token, as the kernel computes
/// them: the full `s x s` square for an unfused kernel, `2 * 2 * s * h` (Megatron-LM's count,
/// arXiv 2104.04473 eq. 3), and its causal half for FlashAttention, which skips the masked
/// blocks. Model FLOPs count the same, so that MFU never exceeds HFU nor 100%.
///
/// ```
/// use watos::cost::layers::dense::attention_fwd_flops_per_token as core;
/// use watos::hardware::AttentionKernel::{Flash, Unfused};
/// assert_eq!(core(2048.0, 12288.0, Unfused), 4.0 * 2048.0 * 12288.0);
/// assert_eq!(core(2048.0, 12288.0, Flash), 2.0 * 2048.0 * 12288.0);
/// ```
pub fn attention_fwd_flops_per_token(seq_len: f64, hidden: f64, kernel: AttentionKernel) -> f64 {
    let square = 4.0 * seq_len * hidden;
    match kernel {
        AttentionKernel::Unfused => square,
        AttentionKernel::Flash => 0.5 * square,
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

/// Activation bytes one layer stores for one micro-batch on one device.
///
/// Korthikanti et al. (arXiv 2205.05198, section 4) generalised to GQA, SwiGLU and no dropout:
/// replicated: two norm inputs 4sbh, QKV and MLP inputs 4sbh, two dropout masks 2sbh (10sbh
/// for GPT); sharded over t: Q, K, V 2sb(h + 2h_kv), projection input 2sbh, MLP 4sbf (GELU:
/// input and output) or 6sbf (SwiGLU: gate, up, product) (24sbh for GPT); attention core
/// 5as^2b/t (softmax 2, dropout mask 1, dropout output 2), dropped by selective recomputation
/// and by flash attention, which keeps only its 4-byte log-sum-exp per row. Full recomputation
/// keeps the layer input, 2sbh (divided by t with sequence parallelism).
pub fn activation_bytes(s: &ActShape, mode: Recompute) -> f64 {
    let e = s.sbh();
    let rep = s.replicated_share();
    let t = s.tp;
    let tokens = s.seq * s.micro_batch;
    if mode == Recompute::Full {
        return 2.0 * e * rep;
    }
    let masks = if s.dropout { 2.0 * e } else { 0.0 };
    let replicated = (8.0 * e + masks) * rep;
    let qkv = 2.0 * tokens * (s.hidden + 2.0 * s.kv_hidden) / t;
    let proj = 2.0 * e / t;
    let mlp = if s.swiglu { 6.0 } else { 4.0 } * tokens * s.ffn / t;
    let core = if s.flash {
        4.0 * s.heads * tokens / t
    } else if mode == Recompute::Selective {
        0.0
    } else {
        let per_score = if s.dropout { 5.0 } else { 2.0 };
        per_score * s.heads * s.seq * s.seq * s.micro_batch / t
    };
    replicated + qkv + proj + mlp + core
}

/// A dense layer's operators on one device of a tensor-parallel group: norms, QKV, attention core,
/// projection, MLP, residual adds. `weights_in_sram`: the weights do not stream from DRAM.
/// `grad_bytes`: bytes per gradient element.
pub fn ops(s: &ActShape, r: &Rates, weights_in_sram: bool, grad_bytes: f64) -> LayerOps {
    let (t, h, hkv, f) = (s.tp, s.hidden, s.kv_hidden, s.ffn);
    let tokens = s.seq * s.micro_batch;
    let e = tokens * h;
    let rep = s.replicated_share();
    let up = if s.swiglu { 2.0 * f } else { f };
    let scores = s.heads * s.seq * s.seq * s.micro_batch / t;
    let w = |k: f64, n: f64| {
        if weights_in_sram {
            Some(0.0)
        } else {
            Some(2.0 * k * n)
        }
    };
    // (input width, output width) of the four matrices on one device.
    let mats = [
        (h, (h + 2.0 * hkv) / t),
        (h / t, h),
        (h, up / t),
        (f / t, h),
    ];
    let mut fwd = Vec::new();
    let mut bwd = Vec::new();
    let mut core_fwd = Vec::new();
    let dropout_add = if s.dropout { 7.0 } else { 6.0 } * e * rep;
    let (act_fwd, act_bwd) = if s.swiglu { (6.0, 10.0) } else { (4.0, 6.0) };
    for (i, (k, n)) in mats.iter().copied().enumerate() {
        // Norm before QKV and before the MLP: read x, write y; backward reads x and dy, writes dx.
        if i == 0 || i == 2 {
            fwd.push(r.elementwise(4.0 * e * rep));
            bwd.push(r.elementwise(6.0 * e * rep));
        }
        fwd.push(r.gemm(tokens, n, k, 1.0, w(k, n)));
        // Data gradient (dY W^T) and weight gradient (X^T dY, accumulated into the gradient buffer).
        bwd.push(r.gemm(tokens, k, n, 1.0, w(k, n)));
        bwd.push(r.wgrad(tokens, k, n, grad_bytes));
        match i {
            0 => {
                // Attention core.
                if s.flash {
                    // FlashAttention: scores never reach DRAM; the causal half is skipped; the
                    // backward recomputes scores (2.5x the forward FLOPs, Dao 2023).
                    let flops = attention_fwd_flops_per_token(s.seq, h, AttentionKernel::Flash)
                        * tokens
                        / t;
                    let io = 2.0 * (2.0 * e + 2.0 * tokens * hkv) / t;
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
                } else {
                    let hd = h / s.heads;
                    let batch = s.micro_batch * s.heads / t;
                    let qk = Op {
                        bytes: 2.0 * tokens * (h + hkv) / t + 2.0 * scores,
                        ..r.gemm(s.seq, s.seq, hd, batch, Some(0.0))
                    };
                    let av = Op {
                        bytes: 2.0 * scores + 2.0 * tokens * (hkv + h) / t,
                        ..r.gemm(s.seq, hd, s.seq, batch, Some(0.0))
                    };
                    let softmax = r.elementwise(4.0 * scores);
                    let mut core = vec![qk, softmax];
                    if s.dropout {
                        core.push(r.elementwise(5.0 * scores));
                    }
                    core.push(av);
                    fwd.extend(core.iter().copied());
                    core_fwd = core;
                    // Backward: two multiplies per multiply; softmax reads y and dy, writes dx;
                    // dropout reads dy and the mask, writes dx.
                    bwd.extend([qk, qk, av, av]);
                    bwd.push(r.elementwise(6.0 * scores));
                    if s.dropout {
                        bwd.push(r.elementwise(5.0 * scores));
                    }
                }
            }
            1 | 3 => {
                // Bias-dropout-add into the residual; backward reads dy and the mask, writes dx.
                fwd.push(r.elementwise(dropout_add));
                bwd.push(r.elementwise(if s.dropout { 5.0 } else { 4.0 } * e * rep));
            }
            _ => {
                // Activation between the MLP matrices (bias-GELU, or SiLU gate times up).
                fwd.push(r.elementwise(act_fwd * tokens * f / t));
                bwd.push(r.elementwise(act_bwd * tokens * f / t));
            }
        }
    }
    LayerOps { fwd, bwd, core_fwd }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::GIB;
    use crate::workload::Position;

    fn gpt_shape(h: f64, a: f64, b: f64, t: f64, sp: bool) -> ActShape {
        ActShape {
            seq: 2048.0,
            micro_batch: b,
            hidden: h,
            kv_hidden: h,
            ffn: 4.0 * h,
            heads: a,
            tp: t,
            sequence_parallel: sp,
            dropout: true,
            swiglu: false,
            flash: false,
        }
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

    #[test]
    fn swiglu_gqa_without_dropout_by_hand() {
        // h 8, kv 2, f 16, a 4, s 4, b 1, t 1: replicated 8*32 = 256; qkv 2*4*(8+4) = 96;
        // proj 2*32 = 64; mlp 6*4*16 = 384; core 2*4*16 = 128 -> 928.
        let s = ActShape {
            seq: 4.0,
            micro_batch: 1.0,
            hidden: 8.0,
            kv_hidden: 2.0,
            ffn: 16.0,
            heads: 4.0,
            tp: 1.0,
            sequence_parallel: false,
            dropout: false,
            swiglu: true,
            flash: false,
        };
        assert_eq!(activation_bytes(&s, Recompute::None), 928.0);
        assert_eq!(activation_bytes(&s, Recompute::Selective), 800.0);
    }

    fn gpt(layers: u32, hidden: u32, heads: u32) -> Model {
        Model {
            name: "gpt".into(),
            source: None,
            layers,
            hidden,
            heads,
            kv_heads: None,
            ffn_hidden: None,
            ffn: Ffn::Gelu,
            vocab: 51200,
            tied_embeddings: true,
            position: Position::Learned,
            max_positions: Some(2048),
            norm: Norm::Layernorm,
            bias: true,
            dropout: true,
            blocks: Vec::new(),
        }
    }

    #[test]
    fn gpt_layer_is_12h2_plus_13h() {
        // 12h^2 matrices; biases 3h + 4h (column) + 2h (row); two LayerNorms 4h: 13h in all.
        let p = params(&gpt(1, 1024, 16), 4096);
        assert_eq!(p.matmul, 12.0 * 1024.0 * 1024.0);
        assert_eq!(p.sharded_bias + p.replicated, 13.0 * 1024.0);
        assert_eq!(
            p.per_device(8),
            (12.0 * 1024.0 * 1024.0 + 7.0 * 1024.0) / 8.0 + 6.0 * 1024.0
        );
    }

    #[test]
    fn llama3_70b_has_70_6_billion_parameters() {
        let m = Model {
            name: "l3".into(),
            source: None,
            layers: 80,
            hidden: 8192,
            heads: 64,
            kv_heads: Some(8),
            ffn_hidden: Some(28672),
            ffn: Ffn::Swiglu,
            vocab: 128256,
            tied_embeddings: false,
            position: Position::Rope,
            max_positions: None,
            norm: Norm::Rmsnorm,
            bias: false,
            dropout: false,
            blocks: Vec::new(),
        };
        // Per layer: 8192*(8192+2048) + 8192^2 + 3*8192*28672 + 2*8192 = 855,654,400.
        assert_eq!(params(&m, 28672).total(), 855_654_400.0);
    }
}
