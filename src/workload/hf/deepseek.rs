//! DeepSeek-V2 and V3: multi-head latent attention and DeepSeekMoE layers, as DeepSeek's own
//! model code defines them (https://huggingface.co/deepseek-ai/DeepSeek-V3/blob/main/modeling_deepseek.py).

use serde::Deserialize;

use super::families::{any_dropout, base, dense_moe, needs, Read};
use crate::error::{Error, FieldError};
use crate::input::SourceFile;
use crate::workload::{Mla, Moe};

/// DeepSeek-V2/V3 keys.
#[derive(Deserialize)]
struct DeepSeek {
    hidden_size: u32,
    num_hidden_layers: u32,
    num_attention_heads: u32,
    num_key_value_heads: Option<u32>,
    intermediate_size: u32,
    vocab_size: u32,
    max_position_embeddings: Option<u32>,
    #[serde(default)]
    tie_word_embeddings: bool,
    #[serde(default)]
    attention_bias: bool,
    #[serde(default)]
    mlp_bias: bool,
    attention_dropout: Option<f64>,
    q_lora_rank: Option<u32>,
    kv_lora_rank: u32,
    qk_nope_head_dim: u32,
    qk_rope_head_dim: u32,
    v_head_dim: u32,
    n_routed_experts: Option<u32>,
    n_shared_experts: Option<u32>,
    num_experts_per_tok: Option<u32>,
    moe_intermediate_size: Option<u32>,
    #[serde(default)]
    first_k_dense_replace: u32,
    moe_layer_freq: Option<u32>,
    num_nextn_predict_layers: Option<u32>,
    n_group: Option<u32>,
    topk_group: Option<u32>,
}

const DEEPSEEK_NEEDS: &str = "hidden_size, num_hidden_layers, num_attention_heads, intermediate_size, vocab_size, kv_lora_rank, qk_nope_head_dim, qk_rope_head_dim, v_head_dim";

/// DeepSeek-V2/V3: multi-head latent attention in every layer; layer `i`
/// is MoE when `n_routed_experts` is set, `i >= first_k_dense_replace` and `i % moe_layer_freq
/// == 0`; `n_shared_experts` shared experts of `moe_intermediate_size` each.
pub(super) fn read(src: &SourceFile, model_type: &str) -> Result<Read, Error> {
    let c: DeepSeek = src
        .parse_json()
        .map_err(|e| needs(e, model_type, DEEPSEEK_NEEDS))?;
    let mut m = base(
        c.num_hidden_layers,
        c.hidden_size,
        c.num_attention_heads,
        c.vocab_size,
        c.tie_word_embeddings,
    );
    m.kv_heads = c.num_key_value_heads;
    m.ffn_hidden = Some(c.intermediate_size);
    m.max_positions = c.max_position_embeddings;
    m.bias = c.attention_bias || c.mlp_bias;
    m.dropout = any_dropout(&[c.attention_dropout]);
    m.mla = Some(Mla {
        q_lora_rank: c.q_lora_rank.filter(|r| *r > 0),
        kv_lora_rank: c.kv_lora_rank,
        qk_nope_head_dim: c.qk_nope_head_dim,
        qk_rope_head_dim: c.qk_rope_head_dim,
        v_head_dim: c.v_head_dim,
    });
    let mut warnings = Vec::new();
    if let Some(experts) = c.n_routed_experts.filter(|e| *e > 0) {
        let freq = c.moe_layer_freq.unwrap_or(1);
        if freq == 0 {
            return Err(src.field_error(FieldError::new(
                "moe_layer_freq",
                "must be at least 1",
                "1: every layer after first_k_dense_replace is MoE",
            )));
        }
        let expert_ffn = c.moe_intermediate_size.ok_or_else(|| {
            src.field_error(FieldError::new(
                "n_routed_experts",
                "a config with routed experts needs moe_intermediate_size",
                "add \"moe_intermediate_size\": <width of one expert>",
            ))
        })?;
        m.moe = Some(Moe {
            experts,
            experts_per_token: c.num_experts_per_tok.unwrap_or(1),
            expert_ffn_hidden: expert_ffn,
            shared_experts: c.n_shared_experts.unwrap_or(0),
            first_dense_layers: c.first_k_dense_replace.min(c.num_hidden_layers),
            dense_layers: (c.first_k_dense_replace..c.num_hidden_layers)
                .filter(|i| i % freq != 0)
                .collect(),
            ..dense_moe()
        });
        if let (Some(groups), Some(top)) = (c.n_group, c.topk_group) {
            if groups > 1 && top < groups {
                warnings.push(format!(
                    "n_group = {groups}, topk_group = {top}: group-limited routing (each token's experts in at most {top} of {groups} groups) is not modelled; all-to-all volumes assume routing over all experts"
                ));
            }
        }
    }
    if let Some(n) = c.num_nextn_predict_layers.filter(|n| *n > 0) {
        warnings.push(format!(
            "num_nextn_predict_layers = {n}: the multi-token-prediction module ({n} extra layer(s) with a 2h x h projection each, sharing embedding and head) is not modelled; watos plans the main model"
        ));
    }
    Ok(Read {
        model: m,
        reads: vec![
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "num_key_value_heads",
            "intermediate_size",
            "vocab_size",
            "max_position_embeddings",
            "tie_word_embeddings",
            "attention_bias",
            "mlp_bias",
            "attention_dropout",
            "q_lora_rank",
            "kv_lora_rank",
            "qk_nope_head_dim",
            "qk_rope_head_dim",
            "v_head_dim",
            "n_routed_experts",
            "n_shared_experts",
            "num_experts_per_tok",
            "moe_intermediate_size",
            "first_k_dense_replace",
            "moe_layer_freq",
            "num_nextn_predict_layers",
            "n_group",
            "topk_group",
            // Newer transformers exports repeat the rotary width here; MLA's sizes are above.
            "head_dim",
        ],
        renames: vec![
            ("layers", "num_hidden_layers"),
            ("hidden", "hidden_size"),
            ("heads", "num_attention_heads"),
            ("kv_heads", "num_key_value_heads"),
            ("ffn_hidden", "intermediate_size"),
            ("vocab", "vocab_size"),
            ("max_positions", "max_position_embeddings"),
            ("bias", "attention_bias"),
            ("mla.q_lora_rank", "q_lora_rank"),
            ("mla.kv_lora_rank", "kv_lora_rank"),
            ("mla.qk_nope_head_dim", "qk_nope_head_dim"),
            ("mla.v_head_dim", "v_head_dim"),
            ("moe.experts", "n_routed_experts"),
            ("moe.experts_per_token", "num_experts_per_tok"),
            ("moe.expert_ffn_hidden", "moe_intermediate_size"),
            ("moe.first_dense_layers", "first_k_dense_replace"),
        ],
        dropout_keys: &["attention_dropout"],
        warnings,
    })
}
