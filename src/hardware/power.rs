//! A die's power at full rate: compute, DRAM traffic and D2D traffic, for an optional power budget
//! in design spaces (`watos explore`). `W = w_C * TFLOP/s + e_M * 8 * DRAM B/s + e_B * 8 * 4 *
//! D2D B/s`: every TFLOP/s busy, the DRAM streaming at its peak, and the die sending at line rate
//! on its four edges (a link's energy per bit covers both ends, so each die pays for what it sends).

use serde::{Deserialize, Serialize};

use crate::error::FieldError;
use crate::input::ranges::POWER_CONSTANT;
use crate::units::TB;

/// Power constants of one technology generation.
///
/// ```
/// let p = watos::hardware::power::PowerModel::default();
/// // The paper's config 3 die: 708 TFLOP/s, 2 TB/s DRAM, 4 TB/s D2D per edge.
/// let w = p.die(708.0, 2.0, 4.0);
/// assert!(w.total_w() > 700.0 && w.total_w() < 1000.0);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerModel {
    /// Compute with its SRAM, W per TFLOP/s. Default 1.08: an A100 (7 nm) draws 400 W at 312
    /// TFLOP/s; less 64 W for its 2.04 TB/s of HBM at the energy below, 336 W / 312.
    pub compute_w_per_tflops: f64,
    /// DRAM access energy, pJ per bit. Default 3.9: HBM2 (O'Connor et al., "Fine-Grained DRAM",
    /// MICRO 2017).
    pub dram_pj_per_bit: f64,
    /// D2D link energy, pJ per bit. Default 0.3: UCIe on an advanced package above 16 GT/s
    /// (Das Sharma et al., arXiv 2510.06513).
    pub d2d_pj_per_bit: f64,
}

impl Default for PowerModel {
    fn default() -> Self {
        PowerModel {
            compute_w_per_tflops: 1.08,
            dram_pj_per_bit: 3.9,
            d2d_pj_per_bit: 0.3,
        }
    }
}

/// One die's power at full rate by part, W.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DiePower {
    pub compute_w: f64,
    pub dram_w: f64,
    pub d2d_w: f64,
}

impl DiePower {
    /// The whole die.
    pub fn total_w(&self) -> f64 {
        self.compute_w + self.dram_w + self.d2d_w
    }
}

impl PowerModel {
    /// A die's power at full rate (see the module comment for the formula).
    pub fn die(&self, tflops: f64, dram_tb_per_s: f64, d2d_tb_per_s: f64) -> DiePower {
        let joules_per_bit = |pj: f64| pj * 1e-12 * 8.0;
        DiePower {
            compute_w: self.compute_w_per_tflops * tflops,
            dram_w: joules_per_bit(self.dram_pj_per_bit) * dram_tb_per_s * TB,
            d2d_w: joules_per_bit(self.d2d_pj_per_bit) * 4.0 * d2d_tb_per_s * TB,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), FieldError> {
        for (field, v, example) in [
            (
                "compute_w_per_tflops",
                self.compute_w_per_tflops,
                "e.g. 1.08",
            ),
            ("dram_pj_per_bit", self.dram_pj_per_bit, "e.g. 3.9"),
            ("d2d_pj_per_bit", self.d2d_pj_per_bit, "e.g. 0.3"),
        ] {
            POWER_CONSTANT.check(field, v, example)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config3_die_by_hand() {
        // 1.08 * 708 = 764.64 W; 3.9 pJ * 8 bits * 2e12 B/s = 62.4 W; 0.3 pJ * 8 * 4 edges * 4e12
        // = 38.4 W; 865.44 W in all.
        let w = PowerModel::default().die(708.0, 2.0, 4.0);
        assert!((w.compute_w - 764.64).abs() < 1e-9);
        assert!((w.dram_w - 62.4).abs() < 1e-9);
        assert!((w.d2d_w - 38.4).abs() < 1e-9);
        assert!((w.total_w() - 865.44).abs() < 1e-9);
    }

    #[test]
    fn the_a100_figure_the_default_comes_from() {
        // 312 TFLOP/s and 2.039 TB/s of HBM, no D2D: about the A100's 400 W.
        let w = PowerModel::default().die(312.0, 2.039, 0.0);
        assert!((w.total_w() - 400.0).abs() < 1.0, "{w:?}");
    }
}
