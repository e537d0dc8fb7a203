//! Time of one layer's passes on one device: a roofline per operator.
//!
//! Each operator costs `max(FLOPs / (peak * eff), DRAM bytes / (DRAM bw * eff_dram))` (the roofline
//! of Williams et al., CACM 2009). Matrix multiplies reach `eff = gemm * prod over M, N, K of d / (d + half)`: large
//! multiplies approach `gemm`, thin ones (a 128-wide head) lose a third. Under `Kernels` execution
//! (GPUs) every operator reads its inputs from and writes its outputs to DRAM, with Megatron-LM's
//! fused kernels (scale-mask-softmax, bias-GELU, bias-dropout-add). Under `Dataflow` execution
//! (the wafer) a layer's operators are fused: while one micro-batch's activations of a layer fit in
//! half the SRAM, only weights, gradients and stored activations touch DRAM, and a pass costs
//! `max(sum of compute times, DRAM bytes / bw)`; otherwise it falls back to per-operator traffic.

use crate::hardware::{Efficiency, Execution};

use super::memory::ActShape;
use crate::plan::Recompute;

/// Share of SRAM for streaming buffers and fused intermediates; the rest may hold weights.
pub const SRAM_STREAM_FRACTION: f64 = 0.5;

/// One operator: FLOPs, DRAM bytes (kernel-by-kernel), and the fraction of peak its math reaches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Op {
    pub flops: f64,
    pub bytes: f64,
    pub eff: f64,
}

/// A device's rates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    pub peak_flops: f64,
    pub dram_bw_bytes_per_s: f64,
    pub eff: EffParams,
}

/// The efficiency parameters copied out of [`Efficiency`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EffParams {
    pub gemm: f64,
    pub gemm_half_dim: f64,
    pub attention: f64,
    pub dram: f64,
}

impl From<&Efficiency> for EffParams {
    fn from(e: &Efficiency) -> Self {
        EffParams {
            gemm: e.gemm,
            gemm_half_dim: e.gemm_half_dim,
            attention: e.attention,
            dram: e.dram,
        }
    }
}

impl Rates {
    /// Fraction of peak an `m x k` by `k x n` multiply reaches.
    pub fn gemm_eff(&self, m: f64, n: f64, k: f64) -> f64 {
        let h = self.eff.gemm_half_dim;
        self.eff.gemm * (m / (m + h)) * (n / (n + h)) * (k / (k + h))
    }

    /// A multiply `m x k` by `k x n` (batched `batch` times), reading both operands and writing the
    /// output in 16-bit; `weight_bytes` replaces the second operand's traffic (0 when it stays in SRAM).
    pub fn gemm(&self, m: f64, n: f64, k: f64, batch: f64, weight_bytes: Option<f64>) -> Op {
        let b_bytes = weight_bytes.unwrap_or(2.0 * k * n * batch);
        Op {
            flops: 2.0 * m * n * k * batch,
            bytes: 2.0 * (m * k + m * n) * batch + b_bytes,
            eff: self.gemm_eff(m, n, k),
        }
    }

    /// Weight gradient `X^T dY` of a `k x n` matrix over `tokens` rows: reads X and dY in 16-bit,
    /// reads and writes the accumulated gradient (`grad_bytes` per element).
    pub fn wgrad(&self, tokens: f64, k: f64, n: f64, grad_bytes: f64) -> Op {
        Op {
            flops: 2.0 * tokens * k * n,
            bytes: 2.0 * tokens * (k + n) + 2.0 * grad_bytes * k * n,
            eff: self.gemm_eff(k, n, tokens),
        }
    }

    /// An elementwise operator moving `bytes` through DRAM.
    pub fn elementwise(&self, bytes: f64) -> Op {
        Op {
            flops: 0.0,
            bytes,
            eff: 1.0,
        }
    }

    fn compute_s(&self, op: &Op) -> f64 {
        if op.flops == 0.0 {
            0.0
        } else {
            op.flops / (self.peak_flops * op.eff)
        }
    }

    fn memory_s(&self, bytes: f64) -> f64 {
        bytes / (self.dram_bw_bytes_per_s * self.eff.dram)
    }

    /// Kernel-by-kernel: each operator is its own roofline.
    pub fn kernels(&self, ops: &[Op]) -> Pass {
        let mut p = Pass::default();
        for op in ops {
            let c = self.compute_s(op);
            p.compute_s += c;
            p.time_s += c.max(self.memory_s(op.bytes));
            p.flops += op.flops;
        }
        p
    }

    /// Fused dataflow: compute of all operators against the pass's DRAM bytes.
    pub fn fused(&self, ops: &[Op], dram_bytes: f64) -> Pass {
        let compute_s: f64 = ops.iter().map(|op| self.compute_s(op)).sum();
        Pass {
            compute_s,
            time_s: compute_s.max(self.memory_s(dram_bytes)),
            flops: ops.iter().map(|o| o.flops).sum(),
        }
    }
}

/// Cost of running some operators once.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pass {
    /// Time the math alone takes.
    pub compute_s: f64,
    /// Time with memory traffic (at least `compute_s`).
    pub time_s: f64,
    /// FLOPs executed.
    pub flops: f64,
}

impl std::ops::Add for Pass {
    type Output = Pass;
    fn add(self, o: Pass) -> Pass {
        Pass {
            compute_s: self.compute_s + o.compute_s,
            time_s: self.time_s + o.time_s,
            flops: self.flops + o.flops,
        }
    }
}

/// What one layer costs per micro-batch on one device in one recomputation mode (without tensor-
/// parallel communication, which depends on placement).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ModeCost {
    /// Forward + backward + recomputation.
    pub total: Pass,
    /// The forward pass alone.
    pub forward: Pass,
    /// The recomputation part alone.
    pub recompute: Pass,
}

/// Operators of one layer on one device: forward, backward, and the part `Selective`
/// recomputation re-runs (the attention core). Each layer kind builds its own (`cost::layers`).
#[derive(Debug, Clone, Default)]
pub struct LayerOps {
    pub fwd: Vec<Op>,
    pub bwd: Vec<Op>,
    pub core_fwd: Vec<Op>,
}

/// Per-mode cost of one layer for one micro-batch on one device.
///
/// `act_bytes[r]`: stored activations in mode `r` (written forward, read backward under dataflow);
/// `params`: parameters on the device; `sram_bytes`: the device's SRAM.
#[allow(clippy::too_many_arguments)]
pub fn layer_costs(
    ops: &LayerOps,
    r: &Rates,
    execution: Execution,
    weights_in_sram: bool,
    grad_bytes: f64,
    params: f64,
    act_bytes: [f64; 3],
    sram_bytes: f64,
) -> [ModeCost; 3] {
    let fits = act_bytes[Recompute::None.index()] <= SRAM_STREAM_FRACTION * sram_bytes;
    let fused = execution == Execution::Dataflow && fits;
    let weight_read = if weights_in_sram { 0.0 } else { 2.0 * params };
    Recompute::ALL.map(|mode| {
        let stored = act_bytes[mode.index()];
        let (fwd, bwd, full, sel) = if fused {
            (
                r.fused(&ops.fwd, weight_read + stored),
                r.fused(&ops.bwd, weight_read + 2.0 * grad_bytes * params + stored),
                r.fused(&ops.fwd, weight_read),
                r.fused(&ops.core_fwd, 0.0),
            )
        } else {
            (
                r.kernels(&ops.fwd),
                r.kernels(&ops.bwd),
                r.kernels(&ops.fwd),
                r.kernels(&ops.core_fwd),
            )
        };
        let recompute = match mode {
            Recompute::None => Pass::default(),
            Recompute::Selective => sel,
            Recompute::Full => full,
        };
        ModeCost {
            total: fwd + bwd + recompute,
            forward: fwd,
            recompute,
        }
    })
}

/// Forward and backward of the first stage's embedding (vocabulary-parallel lookup, learned
/// positions, dropout) and the last stage's head (final norm, `V/t` logits, fused cross-entropy).
pub fn embedding_pass(s: &ActShape, r: &Rates, learned_positions: bool, grad_bytes: f64) -> Pass {
    let e = s.sbh();
    let rep = s.replicated_share();
    let mut bytes = 2.0 * e; // gathered rows written
    if learned_positions {
        bytes += 6.0 * e * rep;
    }
    if s.dropout {
        bytes += 5.0 * e * rep;
    }
    // Backward: read dy, scatter-add into the gradient rows.
    let bwd = 2.0 * e + 2.0 * grad_bytes * e / s.tp;
    r.kernels(&[r.elementwise(bytes), r.elementwise(bwd)])
}

/// See [`embedding_pass`].
pub fn head_pass(s: &ActShape, r: &Rates, vocab: f64, grad_bytes: f64) -> Pass {
    let e = s.sbh();
    let rep = s.replicated_share();
    let tokens = s.seq * s.micro_batch;
    let (k, n) = (s.hidden, vocab / s.tp);
    let wgrad = r.wgrad(tokens, k, n, grad_bytes);
    let ops = [
        r.elementwise(4.0 * e * rep),
        r.gemm(tokens, n, k, 1.0, None),
        // Cross-entropy: read 16-bit logits, write FP32 softmax; backward reads it, writes dlogits.
        r.elementwise(6.0 * tokens * n),
        r.elementwise(6.0 * tokens * n),
        r.gemm(tokens, k, n, 1.0, None),
        wgrad,
        r.elementwise(6.0 * e * rep),
    ];
    r.kernels(&ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rates() -> Rates {
        Rates {
            peak_flops: 100e12,
            dram_bw_bytes_per_s: 1e12,
            eff: EffParams {
                gemm: 0.8,
                gemm_half_dim: 0.0,
                attention: 0.5,
                dram: 1.0,
            },
        }
    }

    #[test]
    fn gemm_roofline_by_hand() {
        let r = rates();
        // 1024^3 multiply: 2.147e9 FLOP at 80 TFLOP/s = 26.8 us; 6 MiB at 1 TB/s = 6.29 us.
        let op = r.gemm(1024.0, 1024.0, 1024.0, 1.0, None);
        assert_eq!(op.flops, 2.0 * 1024f64.powi(3));
        assert_eq!(op.bytes, 6.0 * 1024.0 * 1024.0);
        let p = r.kernels(&[op]);
        assert!((p.time_s - 2.0 * 1024f64.powi(3) / 80e12).abs() < 1e-15);
        // A thin multiply is memory-bound: 8 x 1024 x 1024 moves ~2 MiB, 16.8 MFLOP.
        let thin = r.kernels(&[r.gemm(8.0, 1024.0, 1024.0, 1.0, None)]);
        assert!(
            (thin.time_s - 2.0 * (8.0 * 1024.0 + 8.0 * 1024.0 + 1024.0 * 1024.0) / 1e12).abs()
                < 1e-15
        );
        assert!(thin.compute_s < thin.time_s);
    }

    #[test]
    fn size_dependent_efficiency() {
        let mut r = rates();
        r.eff.gemm_half_dim = 64.0;
        // 64 halves one factor: 0.8 * (64/128) * (1024/1088)^2.
        let e = r.gemm_eff(64.0, 1024.0, 1024.0);
        assert!((e - 0.8 * 0.5 * (1024.0f64 / 1088.0).powi(2)).abs() < 1e-12);
    }

    #[test]
    fn fused_pass_is_a_single_roofline() {
        let r = rates();
        let ops = [
            r.gemm(1024.0, 1024.0, 1024.0, 1.0, None),
            r.elementwise(1e9),
        ];
        let p = r.fused(&ops, 1e6);
        assert!((p.time_s - 2.0 * 1024f64.powi(3) / 80e12).abs() < 1e-15);
        let p = r.fused(&ops, 1e9);
        assert!((p.time_s - 1e-3).abs() < 1e-15);
    }
}
