//! Hugging Face `config.json` -> [`Model`], for the architectures whose shape watos models exactly.

use serde::Deserialize;

use super::{Ffn, Model, Norm, Position};
use crate::error::Error;
use crate::input::SourceFile;

const SUPPORTED: &str = "supported model_type values: gpt2, llama, mistral";

#[derive(Deserialize)]
struct Probe {
    model_type: Option<String>,
    #[serde(rename = "_name_or_path")]
    name_or_path: Option<String>,
}

/// GPT-2 style keys (also used by Megatron GPT exports).
#[derive(Deserialize)]
struct Gpt2 {
    n_embd: u32,
    n_layer: u32,
    n_head: u32,
    vocab_size: u32,
    n_positions: Option<u32>,
    n_ctx: Option<u32>,
    n_inner: Option<u32>,
    #[serde(default = "default_true")]
    tie_word_embeddings: bool,
    #[serde(default = "default_dropout")]
    resid_pdrop: f64,
    #[serde(default = "default_dropout")]
    attn_pdrop: f64,
}

/// LLaMA / Mistral keys.
#[derive(Deserialize)]
struct Llama {
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
    #[serde(default)]
    attention_dropout: f64,
}

const GPT2_KEYS: &str = "n_embd, n_layer, n_head, vocab_size";
const LLAMA_KEYS: &str =
    "hidden_size, num_hidden_layers, num_attention_heads, intermediate_size, vocab_size";

/// A missing key of a config: name every key the architecture needs, so that one run finds all
/// the gaps instead of one per run.
fn required_keys(err: Error, model_type: &str, keys: &str) -> Error {
    match err {
        Error::Input(mut e) if e.message.starts_with("missing field") => {
            e.help = Some(format!("a model_type \"{model_type}\" config needs {keys}"));
            Error::Input(e)
        }
        other => other,
    }
}

fn default_true() -> bool {
    true
}

fn default_dropout() -> f64 {
    0.1
}

/// Reads a `config.json`; the error names the missing or mistyped key and its line.
pub(super) fn from_config_json(src: &SourceFile) -> Result<Model, Error> {
    let probe: Probe = src.parse_json()?;
    let name = probe
        .name_or_path
        .filter(|s| !s.is_empty())
        .or_else(|| {
            src.path
                .parent()
                .and_then(|p| p.file_name())
                .map(|s| s.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "huggingface model".into());
    let source = Some(format!("Hugging Face config {}", src.path.display()));
    match probe.model_type.as_deref() {
        Some("gpt2") => {
            let c: Gpt2 = src
                .parse_json()
                .map_err(|e| required_keys(e, "gpt2", GPT2_KEYS))?;
            Ok(Model {
                name,
                source,
                layers: c.n_layer,
                hidden: c.n_embd,
                heads: c.n_head,
                kv_heads: None,
                ffn_hidden: c.n_inner,
                ffn: Ffn::Gelu,
                vocab: c.vocab_size,
                tied_embeddings: c.tie_word_embeddings,
                position: Position::Learned,
                max_positions: c.n_positions.or(c.n_ctx),
                norm: Norm::Layernorm,
                bias: true,
                dropout: c.resid_pdrop > 0.0 || c.attn_pdrop > 0.0,
                blocks: Vec::new(),
            })
        }
        Some(kind @ ("llama" | "mistral")) => {
            let c: Llama = src
                .parse_json()
                .map_err(|e| required_keys(e, kind, LLAMA_KEYS))?;
            Ok(Model {
                name,
                source,
                layers: c.num_hidden_layers,
                hidden: c.hidden_size,
                heads: c.num_attention_heads,
                kv_heads: c.num_key_value_heads,
                ffn_hidden: Some(c.intermediate_size),
                ffn: Ffn::Swiglu,
                vocab: c.vocab_size,
                tied_embeddings: c.tie_word_embeddings,
                position: Position::Rope,
                max_positions: c.max_position_embeddings,
                norm: Norm::Rmsnorm,
                bias: c.attention_bias || c.mlp_bias,
                dropout: c.attention_dropout > 0.0,
                blocks: Vec::new(),
            })
        }
        Some(other) => Err(src.field_error(crate::error::FieldError::new(
            "model_type",
            format!("model_type \"{other}\" is not one watos models"),
            SUPPORTED,
        ))),
        None => Err(src.field_error(crate::error::FieldError::new(
            "model_type",
            "the config has no model_type",
            SUPPORTED,
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpt2_keys_map_to_gpt_shape() {
        let src = SourceFile::from_text(
            "gpt/config.json",
            r#"{"model_type":"gpt2","n_embd":2304,"n_layer":24,"n_head":24,"vocab_size":51200,"n_positions":2048}"#,
        );
        let m = from_config_json(&src).unwrap();
        assert_eq!(
            (m.layers, m.hidden, m.heads, m.ffn_hidden()),
            (24, 2304, 24, 9216)
        );
        assert!(m.tied_embeddings && m.dropout && m.bias);
        assert_eq!(m.name, "gpt");
    }

    #[test]
    fn llama_keys_map_to_gqa_swiglu() {
        let src = SourceFile::from_text(
            "config.json",
            r#"{"model_type":"llama","hidden_size":8192,"num_hidden_layers":80,"num_attention_heads":64,
                "num_key_value_heads":8,"intermediate_size":28672,"vocab_size":128256}"#,
        );
        let m = from_config_json(&src).unwrap();
        assert_eq!(
            (m.kv_heads(), m.ffn, m.norm, m.tied_embeddings),
            (8, Ffn::Swiglu, Norm::Rmsnorm, false)
        );
    }

    #[test]
    fn unsupported_type_is_named() {
        let src = SourceFile::from_text("c.json", "{\n\"model_type\": \"t5\"\n}");
        let e = from_config_json(&src).unwrap_err().to_string();
        assert!(e.contains("t5") && e.contains("c.json:2"), "{e}");
    }

    #[test]
    fn missing_key_is_named() {
        let src = SourceFile::from_text("c.json", r#"{"model_type":"gpt2","n_embd":64}"#);
        let e = from_config_json(&src).unwrap_err();
        let Error::Input(e) = e else { panic!("{e}") };
        assert_eq!(e.field, "n_layer");
        assert!(e.help.is_some_and(|h| h.contains("n_head")));
    }
}
