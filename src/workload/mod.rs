//! Workloads: decoder-only transformer shapes, read from watos TOML or Hugging Face `config.json`.
//!
//! A model here is only its shape; what it costs (parameters, FLOPs, bytes) is computed once, in
//! [`crate::cost`].

mod hf;

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{ensure, Error, FieldError};
use crate::input::ranges;
use crate::input::SourceFile;

/// Feed-forward block kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ffn {
    /// Two matrices with a GELU between them (GPT).
    #[default]
    Gelu,
    /// Gate, up and down matrices with SiLU gating (LLaMA).
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
    /// Dropout after attention probabilities, attention output and MLP output (stores masks).
    #[serde(default = "yes")]
    pub dropout: bool,
    /// Runs of consecutive layers that differ from the base layer, in layer order (`[[block]]`);
    /// omitted: every layer is the base layer.
    #[serde(default, rename = "block", skip_serializing_if = "Vec::is_empty")]
    pub blocks: Vec<BlockSpec>,
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

/// A kind of transformer layer: it decides the layer's operators, parameters, activations and
/// collectives (`cost::layers`). Attention, norms and the rest of the shape are the model's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerKind {
    /// Attention and a dense feed-forward block of this inner size.
    Dense { ffn_hidden: u32 },
}

/// A run of consecutive layers of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Block {
    /// Index into [`LayerLayout::kinds`].
    pub kind: usize,
    pub layers: u32,
}

/// The model as a sequence of layer kinds: the distinct kinds, and the runs in layer order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerLayout {
    pub kinds: Vec<LayerKind>,
    pub blocks: Vec<Block>,
}

impl LayerLayout {
    /// Layers of each kind in the layer range `[start, start + len)`.
    ///
    /// ```
    /// let m: watos::Model = toml::from_str("name='m'\nlayers=5\nhidden=8\nheads=2\nvocab=10\ntied_embeddings=true\n[[block]]\nlayers=2\nffn_hidden=64\n[[block]]\nlayers=3").unwrap();
    /// let l = m.layout();
    /// assert_eq!(l.kinds.len(), 2);
    /// assert_eq!(l.counts_in(1, 3), vec![1, 2]);
    /// ```
    pub fn counts_in(&self, start: u32, len: u32) -> Vec<u32> {
        let mut out = vec![0u32; self.kinds.len()];
        let (lo, hi) = (u64::from(start), u64::from(start) + u64::from(len));
        let mut at = 0u64;
        for b in &self.blocks {
            let end = at + u64::from(b.layers);
            let overlap = end.min(hi).saturating_sub(at.max(lo));
            out[b.kind] += overlap as u32;
            at = end;
        }
        out
    }

    /// The kind of every layer in `[start, start + len)`, in order.
    pub fn kinds_in(&self, start: u32, len: u32) -> impl Iterator<Item = usize> + '_ {
        self.blocks
            .iter()
            .flat_map(|b| std::iter::repeat_n(b.kind, b.layers as usize))
            .skip(start as usize)
            .take(len as usize)
    }

    /// Layers of each kind in the whole model.
    pub fn totals(&self) -> Vec<u32> {
        let mut out = vec![0u32; self.kinds.len()];
        for b in &self.blocks {
            out[b.kind] += b.layers;
        }
        out
    }
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

    /// Size of one attention head.
    pub fn head_dim(&self) -> u32 {
        self.hidden / self.heads.max(1)
    }

    /// The model's layers as kinds and runs (`[[block]]` tables, or all alike).
    pub fn layout(&self) -> LayerLayout {
        let base = LayerKind::Dense {
            ffn_hidden: self.ffn_hidden(),
        };
        let specs: Vec<(LayerKind, u32)> = if self.blocks.is_empty() {
            vec![(base, self.layers)]
        } else {
            self.blocks
                .iter()
                .map(|b| {
                    let kind = LayerKind::Dense {
                        ffn_hidden: b.ffn_hidden.unwrap_or(self.ffn_hidden()),
                    };
                    (kind, b.layers)
                })
                .collect()
        };
        let mut kinds: Vec<LayerKind> = Vec::new();
        let mut blocks: Vec<Block> = Vec::new();
        for (kind, layers) in specs {
            let k = match kinds.iter().position(|x| *x == kind) {
                Some(k) => k,
                None => {
                    kinds.push(kind);
                    kinds.len() - 1
                }
            };
            match blocks.last_mut() {
                Some(last) if last.kind == k => last.layers += layers,
                _ => blocks.push(Block { kind: k, layers }),
            }
        }
        LayerLayout { kinds, blocks }
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
        })?;
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
        })?;
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
        if let Some(p) = self.max_positions {
            ranges::MAX_POSITIONS.check_count(
                "max_positions",
                p,
                "the longest sequence the model takes, e.g. 2048",
            )?;
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
        let model = if is_json {
            hf::from_config_json(src)?
        } else {
            src.parse_toml::<Model>()?
        };
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
}
