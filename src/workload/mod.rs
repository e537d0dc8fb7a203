//! Workloads: decoder-only transformer shapes, read from watos TOML or Hugging Face `config.json`.
//!
//! A model here is only its shape; what it costs (parameters, FLOPs, bytes) is computed once, in
//! [`crate::cost`].

mod hf;
mod layout;
mod variants;

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{ensure, Error, FieldError};
use crate::input::ranges;
use crate::input::SourceFile;

pub use layout::{Block, LayerKind, LayerLayout, MoeLayer};
pub use variants::{Mla, Moe, WindowLayers};

/// Feed-forward block kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ffn {
    /// Two matrices with a GELU between them (GPT).
    #[default]
    Gelu,
    /// Gate, up and down matrices with SiLU gating (LLaMA); any gated unit (GeGLU: Gemma) has
    /// the same shape and cost.
    Swiglu,
}

/// Position encoding kind: learned positions add a `max_positions x hidden` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Position {
    #[default]
    Learned,
    Rope,
}

/// Normalisation kind: LayerNorm has a bias, RMSNorm does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Norm {
    #[default]
    Layernorm,
    Rmsnorm,
}

fn yes() -> bool {
    true
}

/// A decoder-only transformer.
///
/// Defaults describe a GPT-2/3-style model (GELU MLP of 4h, learned positions, LayerNorm, biases,
/// dropout); LLaMA-style files say `ffn = "swiglu"`, `position = "rope"` and so on.
///
/// ```
/// let m: watos::Model = toml::from_str(r#"
///     name = "tiny"
///     layers = 2
///     hidden = 64
///     heads = 4
///     vocab = 1000
///     tied_embeddings = true
/// "#).unwrap();
/// assert_eq!(m.ffn_hidden(), 256);
/// assert_eq!(m.kv_heads(), 4);
/// m.validate().unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    pub name: String,
    /// Where the shape comes from (paper, model card).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub layers: u32,
    pub hidden: u32,
    pub heads: u32,
    /// Key/value heads (grouped-query attention); defaults to `heads`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_heads: Option<u32>,
    /// Width of one attention head; defaults to `hidden / heads` (Mistral-Small and Gemma 2 set
    /// their own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_dim: Option<u32>,
    /// FFN inner size; defaults to 4 x hidden.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ffn_hidden: Option<u32>,
    #[serde(default)]
    pub ffn: Ffn,
    pub vocab: u32,
    /// Whether the output head shares the input embedding matrix.
    pub tied_embeddings: bool,
    #[serde(default)]
    pub position: Position,
    /// Rows of the learned position table; defaults to the training sequence length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_positions: Option<u32>,
    #[serde(default)]
    pub norm: Norm,
    /// Linear layers and norms carry biases.
    #[serde(default = "yes")]
    pub bias: bool,
    /// The query, key and value projections carry biases even when `bias` is false (Qwen2).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub qkv_bias: bool,
    /// Norms also on the attention and FFN outputs, four per layer (Gemma 2).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub post_norms: bool,
    /// Dropout after attention probabilities, attention output and MLP output (stores masks).
    #[serde(default = "yes")]
    pub dropout: bool,
    /// Sliding-window attention: each query of a windowed layer attends to this many keys (itself
    /// and the ones before it). A window at least the sequence length changes nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sliding_window: Option<u32>,
    /// Which layers use the window; defaults to all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sliding_window_layers: Option<WindowLayers>,
    /// Multi-head latent attention instead of multi-head/grouped-query attention (`[mla]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mla: Option<Mla>,
    /// Mixture-of-experts FFN layers (`[moe]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moe: Option<Moe>,
    /// Runs of consecutive layers that differ from the base layer, in layer order (`[[block]]`);
    /// omitted: every layer is the base layer.
    #[serde(default, rename = "block", skip_serializing_if = "Vec::is_empty")]
    pub blocks: Vec<BlockSpec>,
    /// What an imported config holds that watos does not model (a Hugging Face config's
    /// soft-capping, multi-token prediction, unknown keys); printed when the model is loaded.
    #[serde(default, skip_deserializing, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// A run of consecutive layers, as a model file gives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockSpec {
    pub layers: u32,
    /// FFN inner size of these layers; defaults to the model's `ffn_hidden`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ffn_hidden: Option<u32>,
}

impl Model {
    /// Key/value heads (equal to `heads` without grouped-query attention).
    pub fn kv_heads(&self) -> u32 {
        self.kv_heads.unwrap_or(self.heads)
    }

    /// FFN inner size (saturating: a `hidden` too large for 4x to fit is refused by
    /// [`Model::validate`] as `hidden`).
    pub fn ffn_hidden(&self) -> u32 {
        self.ffn_hidden.unwrap_or(self.hidden.saturating_mul(4))
    }

    /// Width of one attention head (`head_dim`, or `hidden / heads`).
    pub fn head_dim(&self) -> u32 {
        self.head_dim.unwrap_or(self.hidden / self.heads.max(1))
    }

    /// Checks the shape is self-consistent; the error names the field and what would be valid.
    pub fn validate(&self) -> Result<(), FieldError> {
        ranges::LAYERS.check_count("layers", self.layers, "transformer layers, e.g. 96")?;
        ranges::HIDDEN.check_count("hidden", self.hidden, "model width, e.g. 12288")?;
        ranges::HEADS.check_count("heads", self.heads, "attention heads, e.g. 96")?;
        ranges::VOCAB.check_count("vocab", self.vocab, "vocabulary size, e.g. 50257")?;
        if let Some(kv) = self.kv_heads {
            ranges::HEADS.check_count("kv_heads", kv, "key/value heads, e.g. 8")?;
        }
        if let Some(f) = self.ffn_hidden {
            ranges::FFN_HIDDEN.check_count("ffn_hidden", f, "e.g. 4 x hidden")?;
        }
        self.validate_attention()?;
        ensure(self.ffn_hidden() > 0, || {
            FieldError::new("ffn_hidden", "must be at least 1", "e.g. 4 x hidden")
        })?;
        self.validate_blocks()?;
        if let Some(p) = self.max_positions {
            ranges::MAX_POSITIONS.check_count(
                "max_positions",
                p,
                "the longest sequence the model takes, e.g. 2048",
            )?;
        }
        if let Some(moe) = &self.moe {
            moe.validate(self.layers)?;
            // Megatron-core's grouped experts have no biases, and neither has any MoE model watos
            // knows of; a biased expert would need its own TP split.
            ensure(!self.bias, || {
                FieldError::new(
                    "bias",
                    "mixture-of-experts layers are modelled without linear biases",
                    "set bias = false (norm parameters are counted by `norm`)",
                )
            })?;
        }
        Ok(())
    }

    /// Heads, head size, key/value heads, latent attention and the window.
    fn validate_attention(&self) -> Result<(), FieldError> {
        if let Some(mla) = &self.mla {
            mla.validate()?;
            ensure(self.head_dim.is_none(), || {
                FieldError::new(
                    "head_dim",
                    "multi-head latent attention sets its own head sizes",
                    "remove head_dim; [mla] gives qk_nope_head_dim, qk_rope_head_dim and v_head_dim",
                )
            })?;
            ensure(self.kv_heads.is_none_or(|kv| kv == self.heads), || {
                FieldError::new(
                    "kv_heads",
                    "multi-head latent attention has a key and a value per head",
                    format!("remove kv_heads, or set it to heads = {}", self.heads),
                )
            })?;
        } else if let Some(d) = self.head_dim {
            ensure(d > 0, || {
                FieldError::new("head_dim", "must be at least 1", "e.g. 128")
            })?;
        } else {
            self.validate_heads_divide_hidden()?;
        }
        if let Some(w) = self.sliding_window {
            ensure(w > 0, || {
                FieldError::new(
                    "sliding_window",
                    "must be at least 1",
                    "the keys each query attends to, e.g. 4096",
                )
            })?;
        }
        if let Some(l) = &self.sliding_window_layers {
            ensure(self.sliding_window.is_some(), || {
                FieldError::new(
                    "sliding_window_layers",
                    "names windowed layers, but the model has no sliding_window",
                    "add sliding_window = <keys per query>, or remove sliding_window_layers",
                )
            })?;
            l.validate(self.layers)?;
        }
        let kv = self.kv_heads();
        ensure(kv > 0 && self.heads % kv == 0, || {
            FieldError::new(
                "kv_heads",
                format!(
                    "{kv} key/value heads do not divide the {} attention heads",
                    self.heads
                ),
                format!(
                    "valid: {}",
                    divisors(self.heads)
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })
    }

    /// Without `head_dim`, heads split the hidden size.
    fn validate_heads_divide_hidden(&self) -> Result<(), FieldError> {
        ensure(self.hidden % self.heads == 0, || {
            FieldError::new(
                "heads",
                format!(
                    "{} heads do not divide hidden size {}",
                    self.heads, self.hidden
                ),
                format!(
                    "valid head counts: {}",
                    divisors(self.hidden)
                        .take_while(|d| *d <= 256)
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })
    }

    /// `[[block]]` runs add up to the model's layers.
    fn validate_blocks(&self) -> Result<(), FieldError> {
        if !self.blocks.is_empty() {
            let mut sum = 0u64;
            for (i, b) in self.blocks.iter().enumerate() {
                ranges::LAYERS.check_count(&format!("block[{i}].layers"), b.layers, "e.g. 2")?;
                if let Some(f) = b.ffn_hidden {
                    ranges::FFN_HIDDEN.check_count(
                        &format!("block[{i}].ffn_hidden"),
                        f,
                        "e.g. 4 x hidden",
                    )?;
                }
                sum += u64::from(b.layers);
            }
            ensure(sum == u64::from(self.layers), || {
                FieldError::new(
                    "block",
                    format!(
                        "the [[block]] tables hold {sum} layers, the model has {}",
                        self.layers
                    ),
                    format!("block layers must sum to layers = {}", self.layers),
                )
            })?;
        }
        Ok(())
    }

    /// Reads a model from a watos TOML file or a Hugging Face `config.json` (by extension).
    ///
    /// ```
    /// let m = watos::Model::load(concat!(env!("CARGO_MANIFEST_DIR"), "/models/gpt3-175b.toml")).unwrap();
    /// assert_eq!(m.layers, 96);
    /// ```
    pub fn load(path: impl AsRef<Path>) -> Result<Self, Error> {
        let src = SourceFile::read(path.as_ref())?;
        Self::from_source(&src)
    }

    /// Parses and validates a model from text already read.
    pub fn from_source(src: &SourceFile) -> Result<Self, Error> {
        let is_json = src
            .path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        if is_json {
            // The importer validates in the config's own key names.
            return hf::from_config_json(src);
        }
        let model = src.parse_toml::<Model>()?;
        model.validate().map_err(|e| src.field_error(e))?;
        Ok(model)
    }
}

/// Divisors of `n` in increasing order.
///
/// Pairs `d`, `n / d` up to the square root, so a batch of four billion costs microseconds.
///
/// ```
/// assert_eq!(watos::workload::divisors(12).collect::<Vec<_>>(), vec![1, 2, 3, 4, 6, 12]);
/// ```
pub fn divisors(n: u32) -> impl Iterator<Item = u32> {
    let n = u64::from(n);
    let mut small = Vec::new();
    let mut large = Vec::new();
    let mut d = 1u64;
    while d * d <= n {
        if n % d == 0 {
            small.push(d as u32);
            if d * d != n {
                large.push((n / d) as u32);
            }
        }
        d += 1;
    }
    small.into_iter().chain(large.into_iter().rev())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Model {
        toml::from_str("name='t'\nlayers=2\nhidden=64\nheads=4\nvocab=100\ntied_embeddings=true")
            .unwrap()
    }

    #[test]
    fn heads_must_divide_hidden() {
        let mut m = tiny();
        m.heads = 5;
        let e = m.validate().unwrap_err();
        assert_eq!(e.field, "heads");
        assert!(e.help.contains("4"), "{}", e.help);
    }

    #[test]
    fn kv_heads_must_divide_heads() {
        let mut m = tiny();
        m.kv_heads = Some(3);
        assert_eq!(m.validate().unwrap_err().field, "kv_heads");
    }

    #[test]
    fn zero_layers_rejected() {
        let mut m = tiny();
        m.layers = 0;
        assert_eq!(m.validate().unwrap_err().field, "layers");
    }

    fn moe(extra: &str) -> Result<Model, toml::de::Error> {
        toml::from_str(&format!(
            "name='m'\nlayers=4\nhidden=8\nheads=2\nvocab=10\ntied_embeddings=true\nbias=false\n{extra}\n[moe]\nexperts=4\nexperts_per_token=2\nexpert_ffn_hidden=16\nfirst_dense_layers=1\ndense_layers=[3]"
        ))
    }

    #[test]
    fn dense_prefix_and_listed_layers_stay_dense() {
        // Layers 0 and 3 dense, 1-2 MoE: blocks dense 1, MoE 2, dense 1 of two kinds.
        let l = moe("").unwrap().layout();
        assert_eq!(l.kinds.len(), 2);
        assert_eq!(
            l.blocks
                .iter()
                .map(|b| (b.kind, b.layers))
                .collect::<Vec<_>>(),
            vec![(0, 1), (1, 2), (0, 1)]
        );
        assert!(matches!(l.kinds[1], LayerKind::Moe { .. }));
    }

    #[test]
    fn alternating_window_makes_runs_of_one_layer() {
        // Gemma 2: even layers windowed; four kinds (dense/MoE x windowed or not).
        let l = moe("sliding_window=2\nsliding_window_layers='even'")
            .unwrap()
            .layout();
        assert_eq!(l.blocks.len(), 4);
        assert_eq!(l.kinds[0].window(), Some(2));
        assert_eq!(l.kinds[1].window(), None);
        assert_eq!(l.kinds.len(), 4);
    }

    #[test]
    fn moe_fields_are_checked() {
        let mut m = moe("").unwrap();
        m.moe.as_mut().unwrap().experts_per_token = 5;
        assert_eq!(m.validate().unwrap_err().field, "moe.experts_per_token");
        let mut m = moe("").unwrap();
        m.moe.as_mut().unwrap().dense_layers = vec![9];
        assert_eq!(m.validate().unwrap_err().field, "moe.dense_layers[0]");
        let mut m = moe("").unwrap();
        m.moe.as_mut().unwrap().capacity_factor = 0.0;
        assert_eq!(m.validate().unwrap_err().field, "moe.capacity_factor");
        let mut m = moe("").unwrap();
        m.bias = true;
        assert_eq!(m.validate().unwrap_err().field, "bias");
        assert!(moe("").unwrap().validate().is_ok());
    }

    #[test]
    fn window_layers_need_a_window_and_real_layers() {
        let mut m = tiny();
        m.sliding_window_layers = Some(WindowLayers::Even);
        assert_eq!(m.validate().unwrap_err().field, "sliding_window_layers");
        m.sliding_window = Some(4);
        m.sliding_window_layers = Some(WindowLayers::Layers(vec![0, 2]));
        assert_eq!(m.validate().unwrap_err().field, "sliding_window_layers[1]");
        let e = toml::from_str::<Model>(
            "name='t'\nlayers=2\nhidden=64\nheads=4\nvocab=100\ntied_embeddings=true\nsliding_window=4\nsliding_window_layers='some'",
        )
        .unwrap_err();
        assert!(e.to_string().contains("\"even\""), "{e}");
    }

    #[test]
    fn head_dim_frees_heads_from_dividing_hidden() {
        let mut m = tiny();
        m.heads = 5;
        m.head_dim = Some(16);
        assert!(m.validate().is_ok());
        m.mla = Some(Mla {
            q_lora_rank: None,
            kv_lora_rank: 8,
            qk_nope_head_dim: 8,
            qk_rope_head_dim: 4,
            v_head_dim: 8,
        });
        assert_eq!(m.validate().unwrap_err().field, "head_dim");
        m.head_dim = None;
        assert!(m.validate().is_ok());
    }

    #[test]
    fn warnings_are_data_not_input() {
        let e = toml::from_str::<Model>(
            "name='t'\nlayers=2\nhidden=64\nheads=4\nvocab=100\ntied_embeddings=true\nwarnings=['x']",
        );
        assert!(e.is_err());
    }
}
