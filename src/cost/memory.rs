//! Memory: bytes of model state per parameter and of stored activations per layer.

use serde::{Deserialize, Serialize};

use crate::hardware::AttentionKernel;
use crate::instance::{GradDtype, Optimizer, Precision, Training};
use crate::workload::{Ffn, Model};

/// Recomputation mode of a layer (Korthikanti et al., arXiv 2205.05198).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Recompute {
    /// Keep every activation the backward pass needs.
    None,
    /// Recompute the attention core (scores, softmax, dropout, weighted sum).
    Selective,
    /// Keep only the layer input; recompute the whole forward pass.
    Full,
}

impl Recompute {
    /// All modes, cheapest memory last.
    pub const ALL: [Recompute; 3] = [Recompute::None, Recompute::Selective, Recompute::Full];

    /// Position in [`Recompute::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Bytes per parameter of model state in mixed precision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StateBytes {
    /// 16-bit weights.
    pub weights: f64,
    /// Gradient buffer (FP32 main gradients in Megatron-LM, or 16-bit).
    pub grads: f64,
    /// FP32 master weights plus optimizer moments (12 for Adam, 8 for SGD with momentum).
    pub optimizer: f64,
    /// FP16 training checks gradients for overflow before the update (loss scaling); BF16 does not.
    pub loss_scaling: bool,
}

impl StateBytes {
    /// Model state bytes per parameter for a training setup. Adam with FP32 gradients gives
    /// 2 + 4 + 12 = 18 (the figure behind Korthikanti et al.'s Figure 1); with 16-bit gradients
    /// 16 (physics.md).
    pub fn of(training: &Training) -> Self {
        StateBytes {
            weights: 2.0,
            grads: match training.grad_dtype {
                GradDtype::Fp32 => 4.0,
                GradDtype::Bf16 | GradDtype::Fp16 => 2.0,
            },
            optimizer: match training.optimizer {
                Optimizer::Adam => 12.0,
                Optimizer::Sgd => 8.0,
            },
            loss_scaling: training.precision == Precision::Fp16,
        }
    }

    /// Bytes the optimizer step reads and writes per parameter (Megatron-LM's step, memory-bound):
    /// the update reads gradient, master weights and moments and writes master weights, moments
    /// and 16-bit weights (30 for Adam with FP32 gradients); around it, the gradient-norm for
    /// clipping reads the gradients, zeroing them for the next step writes them, and FP16 loss
    /// scaling reads them once more to look for overflow (38 for BF16, 42 for FP16).
    pub fn optimizer_traffic(&self) -> f64 {
        let checks = if self.loss_scaling { 3.0 } else { 2.0 };
        self.grads + 2.0 * self.optimizer + self.weights + checks * self.grads
    }
}

/// Shape of one micro-batch through one layer on one device.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ActShape {
    pub seq: f64,
    pub micro_batch: f64,
    pub hidden: f64,
    pub kv_hidden: f64,
    pub ffn: f64,
    pub heads: f64,
    pub tp: f64,
    pub sequence_parallel: bool,
    pub dropout: bool,
    pub swiglu: bool,
    pub flash: bool,
}

impl ActShape {
    /// The shape for a model, training setup, micro-batch and tensor-parallel layout.
    pub fn new(
        m: &Model,
        tr: &Training,
        micro_batch: u32,
        tp: u32,
        sequence_parallel: bool,
        attention: AttentionKernel,
    ) -> Self {
        ActShape {
            seq: tr.seq_len as f64,
            micro_batch: micro_batch as f64,
            hidden: m.hidden as f64,
            kv_hidden: (m.kv_heads() * m.head_dim()) as f64,
            ffn: m.ffn_hidden() as f64,
            heads: m.heads as f64,
            tp: tp as f64,
            sequence_parallel,
            dropout: m.dropout,
            swiglu: m.ffn == Ffn::Swiglu,
            flash: attention == AttentionKernel::Flash,
        }
    }

    /// Elements of one `s x b x h` activation.
    pub fn sbh(&self) -> f64 {
        self.seq * self.micro_batch * self.hidden
    }

    /// Share of a replicated tensor one device holds: all of it, or `1/t` with sequence parallelism.
    pub fn replicated_share(&self) -> f64 {
        if self.sequence_parallel {
            1.0 / self.tp
        } else {
            1.0
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
    pub fn layer_bytes(&self, mode: Recompute) -> f64 {
        let e = self.sbh();
        let rep = self.replicated_share();
        let t = self.tp;
        let tokens = self.seq * self.micro_batch;
        if mode == Recompute::Full {
            return 2.0 * e * rep;
        }
        let masks = if self.dropout { 2.0 * e } else { 0.0 };
        let replicated = (8.0 * e + masks) * rep;
        let qkv = 2.0 * tokens * (self.hidden + 2.0 * self.kv_hidden) / t;
        let proj = 2.0 * e / t;
        let mlp = if self.swiglu { 6.0 } else { 4.0 } * tokens * self.ffn / t;
        let core = if self.flash {
            4.0 * self.heads * tokens / t
        } else if mode == Recompute::Selective {
            0.0
        } else {
            let per_score = if self.dropout { 5.0 } else { 2.0 };
            per_score * self.heads * self.seq * self.seq * self.micro_batch / t
        };
        replicated + qkv + proj + mlp + core
    }

    /// Activations the first stage stores for the embedding per micro-batch: its dropout mask.
    pub fn embedding_bytes(&self) -> f64 {
        if self.dropout {
            self.sbh() * self.replicated_share()
        } else {
            0.0
        }
    }

    /// Activations the last stage stores for the head per micro-batch: final-norm input and the
    /// FP32 logits kept for the cross-entropy backward (`4 s b V / t`).
    pub fn head_bytes(&self, vocab: f64) -> f64 {
        2.0 * self.sbh() * self.replicated_share()
            + 4.0 * self.seq * self.micro_batch * vocab / self.tp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::GIB;

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
            s.layer_bytes(Recompute::None),
            sbh * (34.0 + 5.0 * 16.0 * 2048.0 / 1024.0)
        );
        assert_eq!(s.layer_bytes(Recompute::Selective), sbh * 34.0);
        assert_eq!(s.layer_bytes(Recompute::Full), 2.0 * sbh);
    }

    #[test]
    fn korthikanti_figure1_22b_by_hand() {
        // 22B: h 6144, a 64, b 4, t 8, 48 layers. None: sbh(10 + 24/8 + 5*64*2048/(6144*8)) per layer.
        let s = gpt_shape(6144.0, 64.0, 4.0, 8.0, false);
        let none = 48.0 * s.layer_bytes(Recompute::None) / GIB;
        assert!((none - 59.25).abs() < 0.01, "{none}");
        let sp = gpt_shape(6144.0, 64.0, 4.0, 8.0, true);
        let sel = 48.0 * sp.layer_bytes(Recompute::Selective) / GIB;
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
        assert_eq!(s.layer_bytes(Recompute::None), 928.0);
        assert_eq!(s.layer_bytes(Recompute::Selective), 800.0);
    }

    #[test]
    fn adam_fp32_grads_is_18_bytes_and_38_of_traffic() {
        let tr: Training = toml::from_str("global_batch=1\nseq_len=1").unwrap();
        let b = StateBytes::of(&tr);
        assert_eq!(b.weights + b.grads + b.optimizer, 18.0);
        // 4 + 24 + 2 for the update, 4 + 4 for norm and zeroing.
        assert_eq!(b.optimizer_traffic(), 38.0);
        let fp16: Training =
            toml::from_str("global_batch=1\nseq_len=1\nprecision='fp16'\ngrad_dtype='fp16'")
                .unwrap();
        let b = StateBytes::of(&fp16);
        assert_eq!(b.weights + b.grads + b.optimizer, 16.0);
        assert_eq!(b.optimizer_traffic(), 2.0 + 24.0 + 2.0 + 3.0 * 2.0);
    }
}
