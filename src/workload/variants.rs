//! The parts of a model beyond a dense GPT/LLaMA: multi-head latent attention, mixture-of-experts
//! layers and sliding-window attention, as a model file writes them.

use serde::{Deserialize, Serialize};

use crate::error::{ensure, FieldError};

/// Multi-head latent attention (DeepSeek-V2, arXiv 2405.04434, section 2.1): keys and values, and
/// optionally queries, pass through a low-rank latent; each head's query and key are a
/// position-free part and a rotary part shared by all heads' keys.
///
/// ```
/// let m: watos::workload::Mla = toml::from_str(
///     "kv_lora_rank = 512\nqk_nope_head_dim = 128\nqk_rope_head_dim = 64\nv_head_dim = 128",
/// ).unwrap();
/// assert_eq!(m.qk_head_dim(), 192);
/// assert!(m.q_lora_rank.is_none());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mla {
    /// Rank of the query latent; absent: queries are projected from the hidden state directly
    /// (DeepSeek-V2-Lite).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q_lora_rank: Option<u32>,
    /// Rank of the key/value latent (what inference caches).
    pub kv_lora_rank: u32,
    /// Per-head query/key width without rotary embedding.
    pub qk_nope_head_dim: u32,
    /// Per-head query/key width with rotary embedding (one rotary key shared by all heads).
    pub qk_rope_head_dim: u32,
    /// Per-head value width.
    pub v_head_dim: u32,
}

impl Mla {
    /// Query/key width of one head.
    pub fn qk_head_dim(&self) -> u32 {
        self.qk_nope_head_dim + self.qk_rope_head_dim
    }

    pub(super) fn validate(&self) -> Result<(), FieldError> {
        for (field, v) in [
            ("mla.kv_lora_rank", Some(self.kv_lora_rank)),
            ("mla.q_lora_rank", self.q_lora_rank),
            ("mla.v_head_dim", Some(self.v_head_dim)),
        ] {
            ensure(v != Some(0), || {
                FieldError::new(field, "must be at least 1", "a positive integer")
            })?;
        }
        ensure(self.qk_head_dim() > 0, || {
            FieldError::new(
                "mla.qk_nope_head_dim",
                "queries and keys have no width: qk_nope_head_dim + qk_rope_head_dim is 0",
                "e.g. qk_nope_head_dim = 128, qk_rope_head_dim = 64 (DeepSeek-V2/V3)",
            )
        })
    }
}

fn one() -> f64 {
    1.0
}

/// Mixture-of-experts feed-forward layers (`[moe]`): every layer but the dense ones routes each
/// token to `experts_per_token` of `experts` routed experts, plus the shared experts every token
/// passes through (DeepSeekMoE, arXiv 2401.06066).
///
/// Routing is assumed balanced: every expert receives `tokens x experts_per_token / experts`
/// tokens. `capacity_factor` sizes each expert's buffer as that many times its balanced share
/// (GShard, arXiv 2006.16668, section 2.2): above 1 the padding is computed, stored and sent;
/// below 1 the excess tokens are dropped. 1 is dropless training under balanced routing.
///
/// ```
/// let m: watos::workload::Moe = toml::from_str(
///     "experts = 8\nexperts_per_token = 2\nexpert_ffn_hidden = 14336",
/// ).unwrap();
/// assert_eq!((m.shared_ffn_hidden(), m.capacity_factor), (0, 1.0));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Moe {
    /// Routed experts per MoE layer.
    pub experts: u32,
    /// Routed experts each token goes to (top-k).
    pub experts_per_token: u32,
    /// Inner width of one routed expert's FFN (same kind as the model's `ffn`).
    pub expert_ffn_hidden: u32,
    /// Shared experts every token passes through.
    #[serde(default)]
    pub shared_experts: u32,
    /// Inner width of the shared experts together; defaults to `shared_experts x
    /// expert_ffn_hidden` (DeepSeek); Qwen-MoE gives its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_ffn_hidden: Option<u32>,
    /// A sigmoid gate (`hidden x 1`) scales the shared experts' output (Qwen-MoE).
    #[serde(default)]
    pub shared_expert_gate: bool,
    /// The first layers keep a dense FFN of the model's `ffn_hidden` (DeepSeek's
    /// `first_k_dense_replace`).
    #[serde(default)]
    pub first_dense_layers: u32,
    /// Further dense layers by index (0-based; Qwen-MoE's `mlp_only_layers`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dense_layers: Vec<u32>,
    /// Expert buffer size over the balanced share of tokens (see above).
    #[serde(default = "one")]
    pub capacity_factor: f64,
}

impl Moe {
    /// Inner width of all shared experts together.
    pub fn shared_ffn_hidden(&self) -> u32 {
        self.shared_ffn_hidden
            .unwrap_or(self.shared_experts * self.expert_ffn_hidden)
    }

    /// Whether layer `i` (0-based) keeps a dense FFN.
    pub fn is_dense(&self, i: u32) -> bool {
        i < self.first_dense_layers || self.dense_layers.contains(&i)
    }

    pub(super) fn validate(&self, layers: u32) -> Result<(), FieldError> {
        for (field, v) in [
            ("moe.experts", self.experts),
            ("moe.experts_per_token", self.experts_per_token),
            ("moe.expert_ffn_hidden", self.expert_ffn_hidden),
        ] {
            ensure(v > 0, || {
                FieldError::new(field, "must be at least 1", "a positive integer")
            })?;
        }
        ensure(self.experts_per_token <= self.experts, || {
            FieldError::new(
                "moe.experts_per_token",
                format!(
                    "{} experts per token, but only {} experts",
                    self.experts_per_token, self.experts
                ),
                format!("at most experts = {}", self.experts),
            )
        })?;
        ensure(self.shared_ffn_hidden != Some(0), || {
            FieldError::new(
                "moe.shared_ffn_hidden",
                "must be at least 1",
                "omit it for shared_experts x expert_ffn_hidden",
            )
        })?;
        ensure(
            self.shared_experts > 0 || self.shared_ffn_hidden.is_none(),
            || {
                FieldError::new(
                    "moe.shared_ffn_hidden",
                    "a shared-expert width without shared experts",
                    "set shared_experts (e.g. 1), or remove shared_ffn_hidden",
                )
            },
        )?;
        ensure(!self.shared_expert_gate || self.shared_experts > 0, || {
            FieldError::new(
                "moe.shared_expert_gate",
                "gates shared experts, but the model has none",
                "set shared_experts, or shared_expert_gate = false",
            )
        })?;
        ensure(self.first_dense_layers <= layers, || {
            FieldError::new(
                "moe.first_dense_layers",
                format!(
                    "{} dense layers, but the model has {layers}",
                    self.first_dense_layers
                ),
                format!("0 to {layers}"),
            )
        })?;
        if let Some((i, l)) = self
            .dense_layers
            .iter()
            .enumerate()
            .find(|(_, l)| **l >= layers)
        {
            return Err(FieldError::new(
                format!("moe.dense_layers[{i}]"),
                format!("layer {l} does not exist"),
                format!("layer indices count from 0 to {}", layers.saturating_sub(1)),
            ));
        }
        ensure(
            self.capacity_factor.is_finite() && self.capacity_factor > 0.0,
            || {
                FieldError::new(
                    "moe.capacity_factor",
                    format!("is {}, must be a positive number", self.capacity_factor),
                    "1.0 for dropless balanced routing; 1.25 pads each expert's buffer by 25%",
                )
            },
        )
    }
}

/// Which layers use sliding-window attention: `"all"`, `"even"` (0, 2, 4 ...: Gemma 2), `"odd"`,
/// or a list of layer indices from 0.
///
/// ```
/// let w: watos::workload::WindowLayers = serde_json::from_str("\"even\"").unwrap();
/// assert!(w.contains(0) && !w.contains(1));
/// let w: watos::workload::WindowLayers = serde_json::from_str("[3, 5]").unwrap();
/// assert!(w.contains(5) && !w.contains(4));
/// assert!(serde_json::from_str::<watos::workload::WindowLayers>("\"some\"").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowLayers {
    All,
    Even,
    Odd,
    Layers(Vec<u32>),
}

const WINDOW_LAYERS_HELP: &str = "\"all\", \"even\", \"odd\" or a list of layer indices";

impl Serialize for WindowLayers {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            WindowLayers::All => s.serialize_str("all"),
            WindowLayers::Even => s.serialize_str("even"),
            WindowLayers::Odd => s.serialize_str("odd"),
            WindowLayers::Layers(v) => v.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for WindowLayers {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = WindowLayers;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(WINDOW_LAYERS_HELP)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<WindowLayers, E> {
                match v {
                    "all" => Ok(WindowLayers::All),
                    "even" => Ok(WindowLayers::Even),
                    "odd" => Ok(WindowLayers::Odd),
                    other => Err(E::invalid_value(serde::de::Unexpected::Str(other), &self)),
                }
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<WindowLayers, A::Error> {
                let mut v = Vec::new();
                while let Some(i) = seq.next_element::<u32>()? {
                    v.push(i);
                }
                Ok(WindowLayers::Layers(v))
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl WindowLayers {
    /// Whether layer `i` (0-based) attends through the window.
    pub fn contains(&self, i: u32) -> bool {
        match self {
            WindowLayers::All => true,
            WindowLayers::Even => i % 2 == 0,
            WindowLayers::Odd => i % 2 == 1,
            WindowLayers::Layers(v) => v.contains(&i),
        }
    }

    pub(super) fn validate(&self, layers: u32) -> Result<(), FieldError> {
        if let WindowLayers::Layers(v) = self {
            if let Some((i, l)) = v.iter().enumerate().find(|(_, l)| **l >= layers) {
                return Err(FieldError::new(
                    format!("sliding_window_layers[{i}]"),
                    format!("layer {l} does not exist"),
                    format!("layer indices count from 0 to {}", layers.saturating_sub(1)),
                ));
            }
        }
        Ok(())
    }
}
