//! The wafer's area budget: compute, DRAM and D2D links all take area from one wafer.
//!
//! A die site is a compute die with DRAM stacks on its edges and D2D PHYs on its four sides:
//! `site_mm2 = a_C * TFLOP/s + stack_mm2 * stacks + a_phy * DRAM TB/s + a_B * 4 * D2D TB/s`, with
//! `stacks = max(GB / stack_gb, TB/s / stack_tb_per_s)` (a stack brings both capacity and bandwidth,
//! so whichever is scarcer sets the count; fractional stacks stand for a mix of stack heights).
//! The paper does not publish its constants (`a_C`, `a_M`, `a_B`); the defaults below say where each
//! comes from.

use serde::{Deserialize, Serialize};

use crate::error::FieldError;
use crate::input::ranges::AREA_CONSTANT;

/// Area constants of one technology generation.
///
/// ```
/// let a = watos::hardware::AreaModel::default();
/// // The paper's config 3 die: 708 TFLOP/s, 70 GB at 2 TB/s DRAM, 4 TB/s D2D per edge.
/// let site = a.site_mm2(708.0, 70.0, 2.0, 4.0);
/// assert!(site <= 25.5 * 25.2, "{site}");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AreaModel {
    /// Compute logic with its core-local SRAM, mm^2 per TFLOP/s. Default 0.5: the paper's config-3
    /// die (354 Dojo-like cores, 1.25 MB SRAM each, 708 TFLOP/s) in its 25.5 x 25.2 mm site once the
    /// DRAM stacks and D2D PHYs below are taken out (7 nm).
    pub compute_mm2_per_tflops: f64,
    /// Capacity of one DRAM stack. Default 36 GB: a 12-high HBM3E stack (24 Gb dies).
    pub dram_stack_gb: f64,
    /// Bandwidth of one DRAM stack. Default 1.2 TB/s: HBM3E, 1024 bits at 9.6 Gb/s.
    pub dram_stack_tb_per_s: f64,
    /// Footprint of one stack. Default 121 mm^2: JEDEC HBM3 package, 11 x 11 mm.
    pub dram_stack_mm2: f64,
    /// DRAM PHY on the compute die, mm^2 per TB/s. Default 10: an HBM3 PHY is about 12 mm^2 per stack.
    pub dram_phy_mm2_per_tb_per_s: f64,
    /// D2D PHY, mm^2 per TB/s of one edge's per-direction bandwidth. Default 2: UCIe-advanced class
    /// PHYs deliver about 0.5 TB/s per mm^2 of bump area.
    pub d2d_mm2_per_tb_per_s: f64,
}

impl Default for AreaModel {
    fn default() -> Self {
        AreaModel {
            compute_mm2_per_tflops: 0.5,
            dram_stack_gb: 36.0,
            dram_stack_tb_per_s: 1.2,
            dram_stack_mm2: 121.0,
            dram_phy_mm2_per_tb_per_s: 10.0,
            d2d_mm2_per_tb_per_s: 2.0,
        }
    }
}

/// One die site's area by part, mm^2.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SiteArea {
    pub compute_mm2: f64,
    pub dram_mm2: f64,
    pub d2d_mm2: f64,
}

impl SiteArea {
    /// Whole site.
    pub fn total_mm2(&self) -> f64 {
        self.compute_mm2 + self.dram_mm2 + self.d2d_mm2
    }
}

impl AreaModel {
    /// Area of one die site by part (see the module comment for the formula).
    pub fn site(
        &self,
        tflops: f64,
        dram_gb: f64,
        dram_tb_per_s: f64,
        d2d_tb_per_s: f64,
    ) -> SiteArea {
        let stacks = (dram_gb / self.dram_stack_gb).max(dram_tb_per_s / self.dram_stack_tb_per_s);
        SiteArea {
            compute_mm2: self.compute_mm2_per_tflops * tflops,
            dram_mm2: self.dram_stack_mm2 * stacks + self.dram_phy_mm2_per_tb_per_s * dram_tb_per_s,
            // Four edges, each with its own PHY.
            d2d_mm2: self.d2d_mm2_per_tb_per_s * 4.0 * d2d_tb_per_s,
        }
    }

    /// Total area of one die site, mm^2.
    pub fn site_mm2(
        &self,
        tflops: f64,
        dram_gb: f64,
        dram_tb_per_s: f64,
        d2d_tb_per_s: f64,
    ) -> f64 {
        self.site(tflops, dram_gb, dram_tb_per_s, d2d_tb_per_s)
            .total_mm2()
    }

    pub(crate) fn validate(&self) -> Result<(), FieldError> {
        for (field, v, example) in [
            (
                "compute_mm2_per_tflops",
                self.compute_mm2_per_tflops,
                "e.g. 0.5",
            ),
            ("dram_stack_gb", self.dram_stack_gb, "e.g. 36"),
            ("dram_stack_tb_per_s", self.dram_stack_tb_per_s, "e.g. 1.2"),
            ("dram_stack_mm2", self.dram_stack_mm2, "e.g. 121"),
            (
                "dram_phy_mm2_per_tb_per_s",
                self.dram_phy_mm2_per_tb_per_s,
                "e.g. 10",
            ),
            ("d2d_mm2_per_tb_per_s", self.d2d_mm2_per_tb_per_s, "e.g. 2"),
        ] {
            AREA_CONSTANT.check(field, v, example)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config3_site_by_hand() {
        // 0.5*708 = 354; stacks = max(70/36, 2/1.2) = 1.9444 -> 235.28 + 20 = 255.28; 2*4*4 = 32.
        let s = AreaModel::default().site(708.0, 70.0, 2.0, 4.0);
        assert!((s.compute_mm2 - 354.0).abs() < 1e-9);
        assert!((s.dram_mm2 - (121.0 * 70.0 / 36.0 + 20.0)).abs() < 1e-9);
        assert!((s.d2d_mm2 - 32.0).abs() < 1e-9);
        assert!((s.total_mm2() - 641.2778).abs() < 1e-3);
    }

    #[test]
    fn bandwidth_can_set_the_stack_count() {
        // 10 GB at 2.4 TB/s needs two stacks for bandwidth, not 0.28 for capacity.
        let s = AreaModel::default().site(0.0, 10.0, 2.4, 0.0);
        assert!((s.dram_mm2 - (242.0 + 24.0)).abs() < 1e-9);
    }
}
