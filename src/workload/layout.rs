//! A model as a sequence of layer kinds: which layers are dense or mixture-of-experts, their FFN
//! widths and attention windows, in runs of equal layers.

use serde::Serialize;

use super::Model;

/// The routed and shared experts of one mixture-of-experts layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct MoeLayer {
    pub experts: u32,
    pub experts_per_token: u32,
    pub expert_ffn_hidden: u32,
    /// Inner width of all shared experts together (0: none).
    pub shared_ffn_hidden: u32,
    pub shared_expert_gate: bool,
}

/// A kind of transformer layer: it decides the layer's operators, parameters, activations and
/// collectives (`cost::layers`). Attention, norms, the capacity factor and the rest of the shape
/// are the model's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerKind {
    /// Attention and a dense feed-forward block of this inner size.
    Dense {
        ffn_hidden: u32,
        /// Keys each query attends to when the layer uses sliding-window attention.
        #[serde(skip_serializing_if = "Option::is_none")]
        window: Option<u32>,
    },
    /// Attention and a mixture-of-experts feed-forward block.
    Moe {
        moe: MoeLayer,
        #[serde(skip_serializing_if = "Option::is_none")]
        window: Option<u32>,
    },
}

impl LayerKind {
    /// The attention window of the layer, if it has one.
    pub fn window(&self) -> Option<u32> {
        match self {
            LayerKind::Dense { window, .. } | LayerKind::Moe { window, .. } => *window,
        }
    }
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
    /// The model's layers as kinds and runs: each layer's FFN (its `[[block]]`'s width, or the
    /// model's; mixture-of-experts unless `[moe]` keeps it dense) and attention window.
    ///
    /// ```
    /// let m: watos::Model = toml::from_str("name='m'\nlayers=4\nhidden=8\nheads=2\nvocab=10\ntied_embeddings=true\nbias=false\n[moe]\nexperts=4\nexperts_per_token=2\nexpert_ffn_hidden=16\nfirst_dense_layers=1").unwrap();
    /// let l = m.layout();
    /// assert_eq!(l.kinds.len(), 2);
    /// assert_eq!(l.counts_in(0, 4), vec![1, 3]);
    /// ```
    pub fn layout(&self) -> LayerLayout {
        let mut kinds: Vec<LayerKind> = Vec::new();
        let mut blocks: Vec<Block> = Vec::new();
        for i in 0..self.layers {
            let kind = self.layer_kind(i);
            let k = match kinds.iter().position(|x| *x == kind) {
                Some(k) => k,
                None => {
                    kinds.push(kind);
                    kinds.len() - 1
                }
            };
            match blocks.last_mut() {
                Some(last) if last.kind == k => last.layers += 1,
                _ => blocks.push(Block { kind: k, layers: 1 }),
            }
        }
        LayerLayout { kinds, blocks }
    }

    /// The kind of layer `i` (0-based).
    fn layer_kind(&self, i: u32) -> LayerKind {
        let window = self.sliding_window.filter(|_| {
            self.sliding_window_layers
                .as_ref()
                .is_none_or(|l| l.contains(i))
        });
        match &self.moe {
            Some(moe) if !moe.is_dense(i) => LayerKind::Moe {
                moe: MoeLayer {
                    experts: moe.experts,
                    experts_per_token: moe.experts_per_token,
                    expert_ffn_hidden: moe.expert_ffn_hidden,
                    shared_ffn_hidden: moe.shared_ffn_hidden(),
                    shared_expert_gate: moe.shared_expert_gate,
                },
                window,
            },
            _ => LayerKind::Dense {
                ffn_hidden: self.block_ffn_hidden(i),
                window,
            },
        }
    }

    /// FFN width of a dense layer `i`: its `[[block]]`'s, or the model's.
    fn block_ffn_hidden(&self, i: u32) -> u32 {
        let mut at = 0u32;
        for b in &self.blocks {
            at = at.saturating_add(b.layers);
            if i < at {
                return b.ffn_hidden.unwrap_or(self.ffn_hidden());
            }
        }
        self.ffn_hidden()
    }
}
