//! The LLaMA-like decoders: llama, mistral, mixtral, qwen2, qwen2_moe, phi3, gemma2. Semantics
//! follow each architecture's model in Hugging Face `transformers`
//! (https://github.com/huggingface/transformers/tree/main/src/transformers/models).

use serde::Deserialize;

use super::families::{any_dropout, base, dense_moe, needs, Read};
use crate::error::{Error, FieldError};
use crate::input::SourceFile;
use crate::workload::{Moe, WindowLayers};

/// Keys of the LLaMA-like decoders (llama, mistral, mixtral, qwen2, qwen2_moe, phi3, gemma2).
#[derive(Deserialize)]
struct Decoder {
    hidden_size: u32,
    num_hidden_layers: u32,
    num_attention_heads: u32,
    num_key_value_heads: Option<u32>,
    head_dim: Option<u32>,
    intermediate_size: u32,
    vocab_size: u32,
    max_position_embeddings: Option<u32>,
    tie_word_embeddings: Option<bool>,
    #[serde(default)]
    attention_bias: bool,
    #[serde(default)]
    mlp_bias: bool,
    attention_dropout: Option<f64>,
    resid_pdrop: Option<f64>,
    embd_pdrop: Option<f64>,
    sliding_window: Option<u32>,
    #[serde(default)]
    use_sliding_window: bool,
    max_window_layers: Option<u32>,
    layer_types: Option<Vec<String>>,
    // Mixture of experts: Mixtral, Qwen-MoE.
    num_local_experts: Option<u32>,
    num_experts: Option<u32>,
    num_experts_per_tok: Option<u32>,
    moe_intermediate_size: Option<u32>,
    shared_expert_intermediate_size: Option<u32>,
    decoder_sparse_step: Option<u32>,
    #[serde(default)]
    mlp_only_layers: Vec<u32>,
    // Gemma 2.
    attn_logit_softcapping: Option<f64>,
    final_logit_softcapping: Option<f64>,
}

const DECODER_NEEDS: &str =
    "hidden_size, num_hidden_layers, num_attention_heads, intermediate_size, vocab_size";

const DECODER_RENAMES: &[(&str, &str)] = &[
    ("layers", "num_hidden_layers"),
    ("hidden", "hidden_size"),
    ("heads", "num_attention_heads"),
    ("kv_heads", "num_key_value_heads"),
    ("head_dim", "head_dim"),
    ("ffn_hidden", "intermediate_size"),
    ("vocab", "vocab_size"),
    ("max_positions", "max_position_embeddings"),
    ("bias", "attention_bias"),
    ("sliding_window_layers", "layer_types"),
    ("moe.experts_per_token", "num_experts_per_tok"),
    ("moe.shared_ffn_hidden", "shared_expert_intermediate_size"),
    ("moe.dense_layers", "mlp_only_layers"),
];

/// The keys each LLaMA-like family reads.
fn decoder_reads(model_type: &str) -> Vec<&'static str> {
    let mut keys = vec![
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "head_dim",
        "intermediate_size",
        "vocab_size",
        "max_position_embeddings",
        "tie_word_embeddings",
        "attention_bias",
        "mlp_bias",
        "attention_dropout",
    ];
    let qwen_window = [
        "sliding_window",
        "use_sliding_window",
        "max_window_layers",
        "layer_types",
    ];
    keys.extend_from_slice(match model_type {
        "mistral" => &["sliding_window"][..],
        "mixtral" => &["sliding_window", "num_local_experts", "num_experts_per_tok"],
        "qwen2" => &qwen_window,
        "qwen2_moe" => &[
            "num_experts",
            "num_experts_per_tok",
            "moe_intermediate_size",
            "shared_expert_intermediate_size",
            "decoder_sparse_step",
            "mlp_only_layers",
        ],
        "phi3" => &["sliding_window", "resid_pdrop", "embd_pdrop"],
        "gemma2" => &[
            "sliding_window",
            // A legacy copy of sliding_window; transformers reads sliding_window.
            "sliding_window_size",
            "layer_types",
            "attn_logit_softcapping",
            "final_logit_softcapping",
        ],
        _ => &[],
    });
    if model_type == "qwen2_moe" {
        keys.extend_from_slice(&qwen_window);
    }
    keys
}

/// Reads a config of one of the LLaMA-like types.
pub(super) fn read(src: &SourceFile, model_type: &str) -> Result<Read, Error> {
    let c: Decoder = src
        .parse_json()
        .map_err(|e| needs(e, model_type, DECODER_NEEDS))?;
    // Gemma 2 ties its head to the embedding by default; the others do not.
    let tied = c.tie_word_embeddings.unwrap_or(model_type == "gemma2");
    let mut m = base(
        c.num_hidden_layers,
        c.hidden_size,
        c.num_attention_heads,
        c.vocab_size,
        tied,
    );
    m.kv_heads = c.num_key_value_heads;
    m.head_dim = c.head_dim;
    m.ffn_hidden = Some(c.intermediate_size);
    m.max_positions = c.max_position_embeddings;
    m.bias = c.attention_bias || c.mlp_bias;
    // Qwen2's Q, K and V projections always carry biases (transformers' `Qwen2Attention`), O does
    // not.
    m.qkv_bias = matches!(model_type, "qwen2" | "qwen2_moe");
    m.post_norms = model_type == "gemma2";
    m.dropout = any_dropout(&[c.attention_dropout, c.resid_pdrop, c.embd_pdrop]);
    let mut warnings = Vec::new();
    let (window, layers) = window(src, &c, model_type)?;
    m.sliding_window = window;
    m.sliding_window_layers = layers;
    let mut renames: Vec<(&'static str, &'static str)> = Vec::new();
    match model_type {
        "mixtral" => {
            // Every layer's MLP is a sparse block of experts of the MLP's width.
            m.moe = c.num_local_experts.filter(|e| *e > 0).map(|experts| Moe {
                experts,
                experts_per_token: c.num_experts_per_tok.unwrap_or(2),
                expert_ffn_hidden: c.intermediate_size,
                ..dense_moe()
            });
            renames = vec![
                ("moe.experts", "num_local_experts"),
                ("moe.expert_ffn_hidden", "intermediate_size"),
            ];
        }
        "qwen2_moe" => {
            m.moe = qwen2_moe(src, &c)?;
            renames = vec![
                ("moe.experts", "num_experts"),
                ("moe.expert_ffn_hidden", "moe_intermediate_size"),
            ];
        }
        "gemma2" => {
            for (key, v) in [
                ("attn_logit_softcapping", c.attn_logit_softcapping),
                ("final_logit_softcapping", c.final_logit_softcapping),
            ] {
                if let Some(v) = v {
                    warnings.push(format!(
                        "{key} = {v}: tanh soft-capping of the {} is not modelled (no parameters; not counted in model FLOPs; its elementwise time is not charged)",
                        if key.starts_with("attn") { "attention scores" } else { "output logits" }
                    ));
                }
            }
        }
        _ => {}
    }
    // Family renames first, then the common ones.
    renames.extend_from_slice(DECODER_RENAMES);
    Ok(Read {
        model: m,
        reads: decoder_reads(model_type),
        renames,
        dropout_keys: &["attention_dropout", "resid_pdrop", "embd_pdrop"],
        warnings,
    })
}

/// Qwen-MoE (transformers' `Qwen2MoeDecoderLayer`): layer `i` is sparse unless it is in `mlp_only_layers` or
/// `(i + 1)` is not a multiple of `decoder_sparse_step`; one shared expert of
/// `shared_expert_intermediate_size` with a sigmoid gate.
fn qwen2_moe(src: &SourceFile, c: &Decoder) -> Result<Option<Moe>, Error> {
    let Some(experts) = c.num_experts.filter(|e| *e > 0) else {
        return Ok(None);
    };
    let step = c.decoder_sparse_step.unwrap_or(1);
    if step == 0 {
        return Err(src.field_error(FieldError::new(
            "decoder_sparse_step",
            "must be at least 1",
            "1: every layer is sparse; 2: every second layer",
        )));
    }
    let expert_ffn = c.moe_intermediate_size.ok_or_else(|| {
        src.field_error(FieldError::new(
            "num_experts",
            "a qwen2_moe config with experts needs moe_intermediate_size",
            "add \"moe_intermediate_size\": <width of one expert>",
        ))
    })?;
    let shared = c.shared_expert_intermediate_size.filter(|w| *w > 0);
    let mut dense_layers: Vec<u32> = (0..c.num_hidden_layers)
        .filter(|i| (i + 1) % step != 0)
        .collect();
    dense_layers.extend(c.mlp_only_layers.iter().copied());
    dense_layers.sort_unstable();
    dense_layers.dedup();
    Ok(Some(Moe {
        experts,
        experts_per_token: c.num_experts_per_tok.unwrap_or(1),
        expert_ffn_hidden: expert_ffn,
        shared_experts: u32::from(shared.is_some()),
        shared_ffn_hidden: shared,
        shared_expert_gate: shared.is_some(),
        dense_layers,
        ..dense_moe()
    }))
}

/// The sliding window and its layers. Mistral, Mixtral and Phi-3 window every layer; Qwen2 the
/// layers from `max_window_layers` on, and only with `use_sliding_window`; Gemma 2 the even ones
/// (transformers' `Gemma2DecoderLayer`: `is_sliding = not bool(layer_idx % 2)`); `layer_types`, where given,
/// names each layer's attention.
fn window(
    src: &SourceFile,
    c: &Decoder,
    model_type: &str,
) -> Result<(Option<u32>, Option<WindowLayers>), Error> {
    let Some(w) = c.sliding_window else {
        return Ok((None, None));
    };
    if let Some(types) = &c.layer_types {
        if types.len() != c.num_hidden_layers as usize {
            return Err(src.field_error(FieldError::new(
                "layer_types",
                format!("{} entries for {} layers", types.len(), c.num_hidden_layers),
                "one \"sliding_attention\" or \"full_attention\" per layer",
            )));
        }
        let mut sliding = Vec::new();
        for (i, t) in types.iter().enumerate() {
            match t.as_str() {
                "sliding_attention" => sliding.push(i as u32),
                "full_attention" => {}
                other => {
                    return Err(src.field_error(FieldError::new(
                        "layer_types",
                        format!("layer {i} has attention \"{other}\", which watos does not model"),
                        "\"sliding_attention\" or \"full_attention\"",
                    )))
                }
            }
        }
        if model_type != "qwen2" && model_type != "qwen2_moe" || c.use_sliding_window {
            return Ok((Some(w), Some(WindowLayers::Layers(sliding))));
        }
        return Ok((None, None));
    }
    Ok(match model_type {
        "qwen2" | "qwen2_moe" if c.use_sliding_window => {
            // Qwen2Config's default max_window_layers is 28.
            let from = c.max_window_layers.unwrap_or(28);
            let layers: Vec<u32> = (from..c.num_hidden_layers).collect();
            if layers.is_empty() {
                (None, None)
            } else {
                (Some(w), Some(WindowLayers::Layers(layers)))
            }
        }
        "qwen2" | "qwen2_moe" => (None, None),
        "gemma2" => (Some(w), Some(WindowLayers::Even)),
        _ => (Some(w), None),
    })
}
