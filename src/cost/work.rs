//! Work: parameters and FLOPs of a transformer (the only place these are counted).

use crate::workload::{Ffn, Model, Norm, Position};

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

/// Parameters of one transformer layer.
///
/// Attention: Q and O are `h x h`, K and V are `h x h_kv` (grouped-query attention);
/// MLP: `2 h f` (GELU) or `3 h f` (SwiGLU) (physics.md, "Work").
///
/// ```
/// let m = watos::Model::load(concat!(env!("CARGO_MANIFEST_DIR"), "/models/gpt3-175b.toml")).unwrap();
/// let p = watos::cost::work::layer_params(&m);
/// assert_eq!(p.matmul, 12.0 * 12288.0 * 12288.0);
/// ```
pub fn layer_params(m: &Model) -> LayerParams {
    let h = m.hidden as f64;
    let hkv = (m.kv_heads() * m.head_dim()) as f64;
    let f = m.ffn_hidden() as f64;
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

/// All distinct parameters of the model.
pub fn total_params(m: &Model, seq_len: u32) -> f64 {
    m.layers as f64 * layer_params(m).total() + embedding_params(m, seq_len) + head_params(m)
}

/// Forward FLOPs of one layer per token: 2 per matrix parameter plus attention scores and the
/// weighted sum, `2 * 2 * s * h` (Megatron-LM's count, arXiv 2104.04473 eq. 3: the full `s x s`
/// square, no causal halving; elementwise work is not counted).
pub fn layer_fwd_flops_per_token(m: &Model, seq_len: u32) -> f64 {
    2.0 * layer_params(m).matmul + 4.0 * seq_len as f64 * m.hidden as f64
}

/// Forward FLOPs of the output head per token: `2 h V`.
pub fn head_fwd_flops_per_token(m: &Model) -> f64 {
    2.0 * m.hidden as f64 * m.vocab as f64
}

/// Model FLOPs of one training step, without recomputation: forward + backward (2x forward),
/// over all layers and the head. For a GPT this is Megatron's `72 B s L h^2 (1 + s/6h + V/12Lh)`.
pub fn model_flops_per_step(m: &Model, seq_len: u32, global_batch: u32) -> f64 {
    let tokens = seq_len as f64 * global_batch as f64;
    3.0 * tokens
        * (m.layers as f64 * layer_fwd_flops_per_token(m, seq_len) + head_fwd_flops_per_token(m))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        }
    }

    #[test]
    fn gpt_layer_is_12h2_plus_13h() {
        // 12h^2 matrices; biases 3h + 4h (column) + 2h (row); two LayerNorms 4h: 13h in all.
        let p = layer_params(&gpt(1, 1024, 16));
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
        };
        // Per layer: 8192*(8192+2048) + 8192^2 + 3*8192*28672 + 2*8192 = 855,654,400.
        assert_eq!(layer_params(&m).total(), 855_654_400.0);
        let total = total_params(&m, 8192);
        assert!((total - 70.55e9).abs() < 0.01e9, "{total}");
    }

    #[test]
    fn step_flops_match_megatron_closed_form() {
        // 72 B s L h^2 (1 + s/(6h) + V/(12 L h)) for the 1.7B row of Megatron's Table 1.
        let m = gpt(24, 2304, 24);
        let (b, s, l, h, v) = (512.0, 2048.0, 24.0, 2304.0, 51200.0);
        let closed = 72.0 * b * s * l * h * h * (1.0 + s / (6.0 * h) + v / (12.0 * l * h));
        let ours = model_flops_per_step(&m, 2048, 512);
        assert!((ours / closed - 1.0).abs() < 1e-12, "{ours} vs {closed}");
    }

    #[test]
    fn tied_head_copy_only_with_pipelining() {
        let m = gpt(2, 64, 4);
        assert_eq!(head_params_held(&m, 1), 128.0);
        assert_eq!(head_params_held(&m, 2), 128.0 + 51200.0 * 64.0);
    }
}
