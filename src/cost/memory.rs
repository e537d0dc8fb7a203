//! Memory: bytes of model state per parameter, the shape of one micro-batch through a layer, and
//! the activations the embedding and head store (each layer kind counts its own, `cost::layers`).

use crate::hardware::AttentionKernel;
use crate::instance::{GradDtype, Optimizer, Precision, Training};
use crate::workload::{Ffn, Model};

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
    /// 16 (Rajbhandari et al., ZeRO, arXiv 1910.02054, section 3.1).
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

/// Widths of the attention's tensors on the whole layer (before tensor parallelism splits heads).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttnShape {
    /// Queries: heads x query/key head size.
    pub q: f64,
    /// Keys: key/value heads (all heads with latent attention) x query/key head size.
    pub k: f64,
    /// Values: key/value heads x value head size.
    pub v: f64,
    /// Attention output, the output projection's input: heads x value head size.
    pub o: f64,
    pub qk_head: f64,
    pub v_head: f64,
    /// Multi-head latent attention's latents, if the model uses it.
    pub mla: Option<MlaShape>,
}

/// Latent widths of multi-head latent attention.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MlaShape {
    /// Query latent rank (0: queries are projected from the hidden state).
    pub q_rank: f64,
    pub kv_rank: f64,
    /// The rotary key shared by all heads.
    pub rope: f64,
}

impl AttnShape {
    /// The attention of model `m`: grouped-query (`heads x head_dim` queries, `kv_heads x
    /// head_dim` keys and values) or latent (DeepSeek-V2: every head has its own key and value,
    /// up-projected from the latent).
    pub fn of(m: &Model) -> Self {
        let heads = m.heads as f64;
        match &m.mla {
            Some(mla) => {
                let (qk, v) = (mla.qk_head_dim() as f64, mla.v_head_dim as f64);
                AttnShape {
                    q: heads * qk,
                    k: heads * qk,
                    v: heads * v,
                    o: heads * v,
                    qk_head: qk,
                    v_head: v,
                    mla: Some(MlaShape {
                        q_rank: mla.q_lora_rank.unwrap_or(0) as f64,
                        kv_rank: mla.kv_lora_rank as f64,
                        rope: mla.qk_rope_head_dim as f64,
                    }),
                }
            }
            None => {
                let d = m.head_dim() as f64;
                let kv = (m.kv_heads() * m.head_dim()) as f64;
                AttnShape {
                    q: heads * d,
                    k: kv,
                    v: kv,
                    o: heads * d,
                    qk_head: d,
                    v_head: d,
                    mla: None,
                }
            }
        }
    }
}

/// Shape of one micro-batch through one layer on one device.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ActShape {
    pub seq: f64,
    pub micro_batch: f64,
    pub hidden: f64,
    pub attn: AttnShape,
    /// Keys each query attends to: the layer's attention window, or the whole sequence.
    pub window: f64,
    pub ffn: f64,
    pub heads: f64,
    pub tp: f64,
    pub sequence_parallel: bool,
    pub dropout: bool,
    pub swiglu: bool,
    pub flash: bool,
    /// Norms on the attention and FFN outputs as well (Gemma 2).
    pub post_norms: bool,
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
            attn: AttnShape::of(m),
            window: tr.seq_len as f64,
            ffn: m.ffn_hidden() as f64,
            heads: m.heads as f64,
            tp: tp as f64,
            sequence_parallel,
            dropout: m.dropout,
            swiglu: m.ffn == Ffn::Swiglu,
            flash: attention == AttentionKernel::Flash,
            post_norms: m.post_norms,
        }
    }

    /// The same shape through a layer whose FFN inner size is `ffn`.
    pub fn with_ffn(mut self, ffn: u32) -> Self {
        self.ffn = ffn as f64;
        self
    }

    /// The same shape through a layer attending through `window` keys (none: the sequence). A
    /// window longer than the sequence is the sequence.
    pub fn with_window(mut self, window: Option<u32>) -> Self {
        if let Some(w) = window {
            self.window = self.seq.min(w as f64);
        }
        self
    }

    /// Tokens of the micro-batch: `s b`.
    pub fn tokens(&self) -> f64 {
        self.seq * self.micro_batch
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
