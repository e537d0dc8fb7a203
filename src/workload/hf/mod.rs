//! Hugging Face `config.json` -> [`Model`]. Every key of a config is accounted for: read by its
//! architecture's reader (`families`), known not to change the shape (token ids, rotary scaling,
//! initialisation ...), a shape key of another architecture (an error: a `mistral` config with
//! `num_local_experts` is a Mixtral, and reading it as dense would be silently wrong), or unknown
//! (a warning). What a reader knows it does not model is a warning too. Errors name the config's
//! own key at its line.

mod decoder;
mod deepseek;
mod families;

use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::Model;
use crate::error::{Error, FieldError};
use crate::input::SourceFile;

#[derive(Deserialize)]
struct Probe {
    model_type: Option<String>,
    #[serde(rename = "_name_or_path")]
    name_or_path: Option<String>,
    #[serde(default)]
    architectures: Vec<String>,
}

/// Keys that do not change a model's shape: token ids, numerics, rotary scaling, routing losses
/// and generation defaults (the `PretrainedConfig` attributes `transformers` writes out).
const NO_SHAPE: &[&str] = &[
    "_name_or_path",
    "architectures",
    "auto_map",
    "model_type",
    "transformers_version",
    "torch_dtype",
    "dtype",
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
    "sep_token_id",
    "decoder_start_token_id",
    "use_cache",
    "initializer_range",
    "rms_norm_eps",
    "layer_norm_eps",
    "layer_norm_epsilon",
    "rope_theta",
    "rope_scaling",
    "rope_parameters",
    "partial_rotary_factor",
    "original_max_position_embeddings",
    "use_mrope",
    "pretraining_tp",
    "hidden_act",
    "hidden_activation",
    "activation_function",
    "query_pre_attn_scalar",
    "cache_implementation",
    "output_router_logits",
    "router_aux_loss_coef",
    "router_jitter_noise",
    "aux_loss_alpha",
    "seq_aux",
    "norm_topk_prob",
    "scoring_func",
    "routed_scaling_factor",
    "topk_method",
    "ep_size",
    "scale_attn_weights",
    "scale_attn_by_inverse_layer_idx",
    "reorder_and_upcast_attn",
    "summary_type",
    "summary_use_proj",
    "summary_activation",
    "summary_proj_to_labels",
    "summary_first_dropout",
    "return_dict",
    "output_hidden_states",
    "output_attentions",
    "torchscript",
    "use_bfloat16",
    "tf_legacy_loss",
    "pruned_heads",
    "chunk_size_feed_forward",
    "is_encoder_decoder",
    "is_decoder",
    "cross_attention_hidden_size",
    "add_cross_attention",
    "tie_encoder_decoder",
    "max_length",
    "min_length",
    "do_sample",
    "early_stopping",
    "num_beams",
    "num_beam_groups",
    "diversity_penalty",
    "temperature",
    "top_k",
    "top_p",
    "typical_p",
    "repetition_penalty",
    "length_penalty",
    "no_repeat_ngram_size",
    "encoder_no_repeat_ngram_size",
    "bad_words_ids",
    "num_return_sequences",
    "output_scores",
    "return_dict_in_generate",
    "forced_bos_token_id",
    "forced_eos_token_id",
    "remove_invalid_values",
    "exponential_decay_length_penalty",
    "suppress_tokens",
    "begin_suppress_tokens",
    "finetuning_task",
    "id2label",
    "label2id",
    "tokenizer_class",
    "prefix",
    "task_specific_params",
    "problem_type",
];

/// Keys that change a model's shape in the architectures that have them. One present (with a
/// value that is not null, false, 0 or empty) in a config whose reader does not read it means
/// the config is not what its `model_type` says.
const SHAPE: &[&str] = &[
    "num_local_experts",
    "num_experts",
    "n_routed_experts",
    "n_shared_experts",
    "moe_intermediate_size",
    "shared_expert_intermediate_size",
    "num_experts_per_tok",
    "first_k_dense_replace",
    "moe_layer_freq",
    "decoder_sparse_step",
    "mlp_only_layers",
    "q_lora_rank",
    "kv_lora_rank",
    "qk_nope_head_dim",
    "qk_rope_head_dim",
    "v_head_dim",
    "head_dim",
    "sliding_window",
    "use_sliding_window",
    "layer_types",
    "attention_bias",
    "mlp_bias",
    "n_inner",
    "intermediate_size",
    "num_key_value_heads",
    "num_nextn_predict_layers",
    "attn_logit_softcapping",
    "final_logit_softcapping",
];

/// Reads a `config.json` and validates the model; errors name the config's key and its line.
pub(super) fn from_config_json(src: &SourceFile) -> Result<Model, Error> {
    let probe: Probe = src.parse_json()?;
    let keys: Map<String, Value> = src.parse_json()?;
    let model_type = probe.model_type.as_deref().ok_or_else(|| {
        src.field_error(FieldError::new(
            "model_type",
            "the config has no model_type",
            format!("supported model_type values: {}", families::SUPPORTED),
        ))
    })?;
    let read = families::read(src, model_type).ok_or_else(|| {
        src.field_error(FieldError::new(
            "model_type",
            format!("model_type \"{model_type}\" is not one watos models"),
            format!("supported model_type values: {}", families::SUPPORTED),
        ))
    })??;
    let mut model = read.model;
    let mut warnings = read.warnings;
    let mut foreign = Vec::new();
    for (key, value) in &keys {
        if read.reads.contains(&key.as_str()) {
            continue;
        }
        if key == "quantization_config" {
            warnings.push(
                "quantization_config: the checkpoint stores quantized weights; watos plans training at the instance's precision".into(),
            );
        } else if SHAPE.contains(&key.as_str()) {
            if meaningful(value) {
                foreign.push(key.as_str());
            }
        } else if !NO_SHAPE.contains(&key.as_str()) {
            warnings.push(format!(
                "`{key}` is not a key watos knows for model_type \"{model_type}\"; it is not read, so if it changes the shape the figures are wrong"
            ));
        }
    }
    if !foreign.is_empty() {
        return Err(src.field_error(misplaced(&foreign, model_type)));
    }
    for key in read.dropout_keys {
        if let Some(v) = keys.get(*key) {
            check_probability(src, key, v)?;
        }
    }
    model
        .validate()
        .map_err(|e| src.field_error(renamed(e, &read.renames)))?;
    model.name = name(&probe, &src.path, &model);
    model.source = Some(format!("Hugging Face config {}", src.path.display()));
    model.warnings = warnings;
    Ok(model)
}

/// Whether a value says anything: not null, false, zero or empty.
fn meaningful(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|x| x != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Shape keys the config's `model_type` does not have; the error points at the one that says
/// best what the config really is.
fn misplaced(keys: &[&str], model_type: &str) -> FieldError {
    let hint = |key: &str| match (key, model_type) {
        ("num_local_experts", "mistral" | "llama") => {
            Some("this is a Mixtral config: set \"model_type\": \"mixtral\"")
        }
        ("num_experts" | "shared_expert_intermediate_size", "qwen2") => {
            Some("this is a Qwen-MoE config: set \"model_type\": \"qwen2_moe\"")
        }
        ("kv_lora_rank" | "n_routed_experts", _) => {
            Some("this is a DeepSeek config: set \"model_type\": \"deepseek_v3\" (or deepseek_v2)")
        }
        _ => None,
    };
    let key = keys
        .iter()
        .copied()
        .find(|k| hint(k).is_some())
        .unwrap_or(keys[0]);
    let help = hint(key).map_or_else(
        || {
            format!(
                "check model_type; the types whose shape watos reads: {}",
                families::SUPPORTED
            )
        },
        str::to_string,
    );
    FieldError::new(
        key,
        format!(
            "changes the model's shape, but a model_type \"{model_type}\" config has no {}: reading it as {model_type} would misread the model",
            keys.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
        ),
        help,
    )
}

/// Dropout probabilities lie in [0, 1].
fn check_probability(src: &SourceFile, key: &str, v: &Value) -> Result<(), Error> {
    match v.as_f64() {
        Some(p) if (0.0..=1.0).contains(&p) => Ok(()),
        Some(p) => Err(src.field_error(FieldError::new(
            key,
            format!("dropout probability {p} is not between 0 and 1"),
            "a probability from 0 (no dropout) to 1",
        ))),
        None if v.is_null() => Ok(()),
        None => Err(src.field_error(FieldError::new(
            key,
            format!("dropout probability {v} is not a number"),
            "a probability from 0 (no dropout) to 1",
        ))),
    }
}

/// A validation error in the config's key names.
fn renamed(mut e: FieldError, renames: &[(&str, &str)]) -> FieldError {
    let (head, tail) = match e.field.find('[') {
        Some(i) => (e.field[..i].to_string(), e.field[i..].to_string()),
        None => (e.field.clone(), String::new()),
    };
    if let Some((_, key)) = renames.iter().find(|(ours, _)| *ours == head) {
        e.field = format!("{key}{tail}");
    }
    e
}

/// A name for the model: `_name_or_path`; the repository of a Hugging Face cache path
/// (`models--org--name/snapshots/<hash>/config.json`); the config's folder, unless that is a
/// revision hash; else the architecture and its size.
fn name(probe: &Probe, path: &Path, m: &Model) -> String {
    if let Some(n) = probe.name_or_path.as_deref().filter(|s| !s.is_empty()) {
        return n.to_string();
    }
    let cached = path.ancestors().find_map(|p| {
        let dir = p.file_name()?.to_str()?;
        let repo = dir.strip_prefix("models--")?;
        Some(repo.replacen("--", "/", 1))
    });
    if let Some(repo) = cached {
        return repo;
    }
    let folder = path
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|f| f.to_str())
        .filter(|f| !is_hash(f));
    if let Some(folder) = folder {
        return folder.to_string();
    }
    let arch = probe
        .architectures
        .first()
        .cloned()
        .or_else(|| probe.model_type.clone())
        .unwrap_or_else(|| "model".into());
    let experts = m.moe.as_ref().map_or(String::new(), |e| {
        format!(", {} experts top-{}", e.experts, e.experts_per_token)
    });
    format!("{arch} ({} layers, hidden {}{experts})", m.layers, m.hidden)
}

/// A revision hash (a Hub snapshot folder): seven or more hexadecimal digits.
fn is_hash(s: &str) -> bool {
    s.len() >= 7 && s.chars().all(|c| c.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(path: &str, text: &str) -> Result<Model, Error> {
        from_config_json(&SourceFile::from_text(path, text))
    }

    #[test]
    fn gpt2_keys_map_to_gpt_shape() {
        let m = load(
            "gpt/config.json",
            r#"{"model_type":"gpt2","n_embd":2304,"n_layer":24,"n_head":24,"vocab_size":51200,"n_positions":2048}"#,
        )
        .unwrap();
        assert_eq!(
            (m.layers, m.hidden, m.heads, m.ffn_hidden()),
            (24, 2304, 24, 9216)
        );
        assert!(m.tied_embeddings && m.dropout && m.bias);
        assert_eq!(m.name, "gpt");
        // No name in the file, in a folder named by a revision hash: the architecture and size.
        let m = load(
            "x/0a1b2c3d4e5f/config.json",
            r#"{"model_type":"gpt2","n_embd":2304,"n_layer":24,"n_head":24,"vocab_size":51200}"#,
        )
        .unwrap();
        assert_eq!(m.name, "gpt2 (24 layers, hidden 2304)");
    }

    #[test]
    fn hub_cache_path_names_the_repository() {
        let m = load(
            "/root/.cache/huggingface/hub/models--meta-llama--Llama-3.1-8B/snapshots/d04e592/config.json",
            r#"{"model_type":"llama","hidden_size":64,"num_hidden_layers":2,"num_attention_heads":4,"intermediate_size":128,"vocab_size":100}"#,
        )
        .unwrap();
        assert_eq!(m.name, "meta-llama/Llama-3.1-8B");
    }

    #[test]
    fn unsupported_type_is_named() {
        let e = load("c.json", "{\n\"model_type\": \"t5\"\n}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("t5") && e.contains("c.json:2"), "{e}");
    }

    #[test]
    fn missing_key_is_named() {
        let e = load("c.json", r#"{"model_type":"gpt2","n_embd":64}"#).unwrap_err();
        let Error::Input(e) = e else { panic!("{e}") };
        assert_eq!(e.field, "n_layer");
        assert!(e.help.is_some_and(|h| h.contains("n_head")));
    }

    #[test]
    fn validation_names_the_config_key() {
        let e = load(
            "c.json",
            "{\"model_type\":\"gpt2\",\n\"n_embd\":100,\n\"n_layer\":2,\n\"n_head\":7,\n\"vocab_size\":10}",
        )
        .unwrap_err();
        let Error::Input(e) = e else { panic!("{e}") };
        assert_eq!((e.field.as_str(), e.line), ("n_head", 4));
    }

    #[test]
    fn dropout_outside_zero_one_is_refused() {
        for bad in ["-0.1", "1.5"] {
            let text = format!(
                "{{\"model_type\":\"gpt2\",\"n_embd\":64,\"n_layer\":2,\"n_head\":4,\"vocab_size\":10,\n\"attn_pdrop\": {bad}}}"
            );
            let Error::Input(e) = load("c.json", &text).unwrap_err() else {
                panic!()
            };
            assert_eq!((e.field.as_str(), e.line), ("attn_pdrop", 2), "{bad}");
        }
    }

    #[test]
    fn unknown_key_is_a_warning() {
        let m = load(
            "c.json",
            r#"{"model_type":"llama","hidden_size":64,"num_hidden_layers":2,"num_attention_heads":4,"intermediate_size":128,"vocab_size":100,"frobnicate":3}"#,
        )
        .unwrap();
        assert_eq!(m.warnings.len(), 1);
        assert!(m.warnings[0].contains("frobnicate"), "{:?}", m.warnings);
    }
}
