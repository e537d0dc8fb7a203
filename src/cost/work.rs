//! Work: parameters and FLOPs of a whole model, from its layer kinds (`cost::layers`), embedding
//! and head (the only place these are counted).

use super::layers;
use crate::hardware::AttentionKernel;
use crate::workload::{Model, Norm, Position};

/// Parameters of one layer, split by how tensor parallelism treats them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerParams {
    /// Matrix parameters (QKV, output projection, MLP): sharded over `t`.
    pub matmul: f64,
    /// Biases of column-parallel matrices: sharded over `t`.
    pub sharded_bias: f64,
    /// Norm parameters and biases of row-parallel matrices: replicated on every TP rank.
    pub replicated: f64,
}

impl LayerParams {
    /// All parameters of the layer.
    pub fn total(&self) -> f64 {
        self.matmul + self.sharded_bias + self.replicated
    }

    /// Parameters held by one device of a tensor-parallel group of `t`.
    pub fn per_device(&self, t: u32) -> f64 {
        (self.matmul + self.sharded_bias) / t as f64 + self.replicated
    }
}

/// Input embedding (`V x h`) plus learned positions (`positions x h`); vocabulary-parallel over `t`.
pub fn embedding_params(m: &Model, seq_len: u32) -> f64 {
    let h = m.hidden as f64;
    let positions = match m.position {
        Position::Learned => m.max_positions.unwrap_or(seq_len) as f64 * h,
        Position::Rope => 0.0,
    };
    m.vocab as f64 * h + positions
}

/// Output head: the final norm, and a `V x h` matrix unless tied to the embedding.
///
/// With tied embeddings and more than one pipeline stage the last stage still holds a copy of the
/// embedding (Megatron-LM); [`head_params_held`] counts it.
pub fn head_params(m: &Model) -> f64 {
    let h = m.hidden as f64;
    let norm = match m.norm {
        Norm::Layernorm => 2.0 * h,
        Norm::Rmsnorm => h,
    };
    norm + if m.tied_embeddings {
        0.0
    } else {
        m.vocab as f64 * h
    }
}

/// Head parameters the last stage holds: its own head, or a copy of a tied embedding when the
/// first stage is elsewhere.
pub fn head_params_held(m: &Model, pipeline_stages: u32) -> f64 {
    let copy = if m.tied_embeddings && pipeline_stages > 1 {
        m.vocab as f64 * m.hidden as f64
    } else {
        0.0
    };
    head_params(m) + copy
}

/// All distinct parameters of the model: every layer of every kind, the embedding and the head.
pub fn total_params(m: &Model, seq_len: u32) -> f64 {
    let layout = m.layout();
    let layers: f64 = layout
        .blocks
        .iter()
        .map(|b| b.layers as f64 * layers::params(m, &layout.kinds[b.kind]).total())
        .sum();
    layers + embedding_params(m, seq_len) + head_params(m)
}

/// Forward FLOPs of the output head per token: `2 h V`.
pub fn head_fwd_flops_per_token(m: &Model) -> f64 {
    2.0 * m.hidden as f64 * m.vocab as f64
}

/// Model FLOPs of one training step, without recomputation: forward + backward (2x forward),
/// over all layers and the head, attention as `kernel` computes it. For a GPT with an unfused
/// kernel this is Megatron's `72 B s L h^2 (1 + s/6h + V/12Lh)`; a causal flash kernel halves the
/// `s/6h` term.
pub fn model_flops_per_step(
    m: &Model,
    seq_len: u32,
    global_batch: u32,
    kernel: AttentionKernel,
) -> f64 {
    let tokens = seq_len as f64 * global_batch as f64;
    let layout = m.layout();
    let layers: f64 = layout
        .blocks
        .iter()
        .map(|b| {
            b.layers as f64 * layers::fwd_flops_per_token(m, &layout.kinds[b.kind], seq_len, kernel)
        })
        .sum();
    3.0 * tokens * (layers + head_fwd_flops_per_token(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpt(layers: u32, hidden: u32, heads: u32) -> Model {
        toml::from_str(&format!("name='gpt'\nlayers={layers}\nhidden={hidden}\nheads={heads}\nvocab=51200\ntied_embeddings=true\nmax_positions=2048")).unwrap()
    }

    #[test]
    fn step_flops_match_megatron_closed_form() {
        // 72 B s L h^2 (1 + s/(6h) + V/(12 L h)) for the 1.7B row of Megatron's Table 1.
        let m = gpt(24, 2304, 24);
        let (b, s, l, h, v) = (512.0, 2048.0, 24.0, 2304.0, 51200.0);
        let closed = 72.0 * b * s * l * h * h * (1.0 + s / (6.0 * h) + v / (12.0 * l * h));
        let ours = model_flops_per_step(&m, 2048, 512, AttentionKernel::Unfused);
        assert!((ours / closed - 1.0).abs() < 1e-12, "{ours} vs {closed}");
        // The causal half under FlashAttention: s/(6h) becomes s/(12h).
        let causal = 72.0 * b * s * l * h * h * (1.0 + s / (12.0 * h) + v / (12.0 * l * h));
        let flash = model_flops_per_step(&m, 2048, 512, AttentionKernel::Flash);
        assert!((flash / causal - 1.0).abs() < 1e-12, "{flash} vs {causal}");
    }

    #[test]
    fn tied_head_copy_only_with_pipelining() {
        let m = gpt(2, 64, 4);
        assert_eq!(head_params_held(&m, 1), 128.0);
        assert_eq!(head_params_held(&m, 2), 128.0 + 51200.0 * 64.0);
    }

    #[test]
    fn llama3_70b_has_70_6_billion_parameters() {
        let m = Model::load(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/models/llama3-70b.toml"
        ))
        .unwrap();
        let total = total_params(&m, 8192);
        assert!((total - 70.55e9).abs() < 0.01e9, "{total}");
    }

    #[test]
    fn kinds_add_up_by_hand() {
        // Two layers with FFN 64 and one with FFN 32 at h 8, GELU, biases, tied: per layer
        // 4h^2 + 2hf + (3h + f) + 2h + 4h = 256 + 16f + 72 + f: 1416 and 872; embedding
        // 10 * 8 + 4 * 8 positions = 112; head norm 16.
        let m: Model = toml::from_str("name='m'\nlayers=3\nhidden=8\nheads=2\nvocab=10\ntied_embeddings=true\nmax_positions=4\n[[block]]\nlayers=2\nffn_hidden=64\n[[block]]\nlayers=1\nffn_hidden=32").unwrap();
        assert_eq!(total_params(&m, 4), 2.0 * 1416.0 + 872.0 + 112.0 + 16.0);
    }
}
