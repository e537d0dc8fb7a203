//! One reader per `model_type` (GPT-2 here; `decoder` and `deepseek` for the others): which keys
//! it reads, what they mean in watos's terms, and what it knows it does not model (warnings).

use serde::Deserialize;

use super::{decoder, deepseek};
use crate::error::Error;
use crate::input::SourceFile;
use crate::workload::{Ffn, Model, Moe, Norm, Position};

/// A config read by one family: the model, the keys the family reads (the rest are checked by
/// the caller), how its fields map back to the config's keys, and what it does not model.
pub(super) struct Read {
    pub model: Model,
    pub reads: Vec<&'static str>,
    /// watos field -> config key, for errors found when validating the model.
    pub renames: Vec<(&'static str, &'static str)>,
    pub dropout_keys: &'static [&'static str],
    pub warnings: Vec<String>,
}

/// GPT-2 keys (also Megatron GPT exports).
#[derive(Deserialize)]
struct Gpt2 {
    n_embd: u32,
    n_layer: u32,
    n_head: u32,
    vocab_size: u32,
    n_positions: Option<u32>,
    n_ctx: Option<u32>,
    n_inner: Option<u32>,
    #[serde(default = "yes")]
    tie_word_embeddings: bool,
    resid_pdrop: Option<f64>,
    attn_pdrop: Option<f64>,
    embd_pdrop: Option<f64>,
}

fn yes() -> bool {
    true
}

const GPT2_NEEDS: &str = "n_embd, n_layer, n_head, vocab_size";

/// Reads a config of `model_type`; `None` for a type watos does not read.
pub(super) fn read(src: &SourceFile, model_type: &str) -> Option<Result<Read, Error>> {
    Some(match model_type {
        "gpt2" => gpt2(src),
        "llama" | "mistral" | "mixtral" | "qwen2" | "qwen2_moe" | "phi3" | "gemma2" => {
            decoder::read(src, model_type)
        }
        "deepseek_v2" | "deepseek_v3" => deepseek::read(src, model_type),
        _ => return None,
    })
}

/// The `model_type` values [`read`] accepts.
pub(super) const SUPPORTED: &str =
    "gpt2, llama, mistral, mixtral, qwen2, qwen2_moe, phi3, gemma2, deepseek_v2, deepseek_v3";

/// A missing key names every key the architecture needs, so one run finds all the gaps.
pub(super) fn needs(err: Error, model_type: &str, keys: &str) -> Error {
    match err {
        Error::Input(mut e) if e.message.starts_with("missing field") => {
            e.help = Some(format!("a model_type \"{model_type}\" config needs {keys}"));
            Error::Input(e)
        }
        other => other,
    }
}

/// A model with the fields every family sets; the caller names it.
pub(super) fn base(layers: u32, hidden: u32, heads: u32, vocab: u32, tied: bool) -> Model {
    Model {
        name: String::new(),
        source: None,
        layers,
        hidden,
        heads,
        kv_heads: None,
        head_dim: None,
        ffn_hidden: None,
        ffn: Ffn::Swiglu,
        vocab,
        tied_embeddings: tied,
        position: Position::Rope,
        max_positions: None,
        norm: Norm::Rmsnorm,
        bias: false,
        qkv_bias: false,
        post_norms: false,
        dropout: false,
        sliding_window: None,
        sliding_window_layers: None,
        mla: None,
        moe: None,
        blocks: Vec::new(),
        warnings: Vec::new(),
    }
}

pub(super) fn any_dropout(p: &[Option<f64>]) -> bool {
    p.iter().any(|x| x.is_some_and(|v| v > 0.0))
}

/// An `[moe]` with no shared experts, no dense layers and dropless routing.
pub(super) fn dense_moe() -> Moe {
    Moe {
        experts: 0,
        experts_per_token: 0,
        expert_ffn_hidden: 0,
        shared_experts: 0,
        shared_ffn_hidden: None,
        shared_expert_gate: false,
        first_dense_layers: 0,
        dense_layers: Vec::new(),
        capacity_factor: 1.0,
    }
}

fn gpt2(src: &SourceFile) -> Result<Read, Error> {
    let c: Gpt2 = src.parse_json().map_err(|e| needs(e, "gpt2", GPT2_NEEDS))?;
    let mut m = base(
        c.n_layer,
        c.n_embd,
        c.n_head,
        c.vocab_size,
        c.tie_word_embeddings,
    );
    m.ffn_hidden = c.n_inner;
    m.ffn = Ffn::Gelu;
    m.position = Position::Learned;
    m.max_positions = c.n_positions.or(c.n_ctx);
    m.norm = Norm::Layernorm;
    m.bias = true;
    // GPT-2's defaults are 0.1.
    m.dropout = any_dropout(&[
        Some(c.resid_pdrop.unwrap_or(0.1)),
        Some(c.attn_pdrop.unwrap_or(0.1)),
        Some(c.embd_pdrop.unwrap_or(0.1)),
    ]);
    Ok(Read {
        model: m,
        reads: vec![
            "n_embd",
            "n_layer",
            "n_head",
            "vocab_size",
            "n_positions",
            "n_ctx",
            "n_inner",
            "tie_word_embeddings",
            "resid_pdrop",
            "attn_pdrop",
            "embd_pdrop",
        ],
        renames: vec![
            ("layers", "n_layer"),
            ("hidden", "n_embd"),
            ("heads", "n_head"),
            ("ffn_hidden", "n_inner"),
            ("vocab", "vocab_size"),
            ("max_positions", "n_positions"),
        ],
        dropout_keys: &["resid_pdrop", "attn_pdrop", "embd_pdrop"],
        warnings: Vec::new(),
    })
}
