//! The wafer's area budget: compute, SRAM, DRAM and D2D links all take area from one wafer, and
//! the DRAM stacks and D2D PHYs also take room on each die's edge.
//!
//! A die site is a compute die with DRAM stacks beside it and D2D PHYs on its four sides:
//! `site_mm2 = a_C * TFLOP/s + a_S * (SRAM MB - s_C * TFLOP/s) + stack_mm2 * stacks +
//! a_phy * DRAM TB/s + a_B * 4 * D2D TB/s`, with `stacks = max(GB / stack_gb, TB/s /
//! stack_tb_per_s)` (a stack brings both capacity and bandwidth, so whichever is scarcer sets the
//! count; fractional stacks stand for a mix of stack heights). The compute constant `a_C` includes
//! `s_C` MB of SRAM per TFLOP/s; SRAM beyond it (or short of it) costs `a_S` per MB.
//!
//! The compute die itself (everything but the stacks) must fit one lithography reticle, and its
//! edge must hold the PHYs that face the stacks and the neighbours: `ceil(stacks) * w_stack +
//! 4 * D2D TB/s / rho_B <= 4 * sqrt(die_mm2)` (a square die; a stack's PHY lines the edge the
//! stack sits against). The paper does not publish its constants (`a_C`, `a_M`, `a_B`); the
//! defaults below say where each comes from.

use serde::{Deserialize, Serialize};

use crate::error::FieldError;
use crate::input::ranges::AREA_CONSTANT;

/// Area and shoreline constants of one technology generation.
///
/// ```
/// let a = watos::hardware::AreaModel::default();
/// // The paper's config 3 die: 708 TFLOP/s with 442.5 MB SRAM, 70 GB at 2 TB/s DRAM, 4 TB/s D2D.
/// let site = a.site(708.0, 442.5, 70.0, 2.0, 4.0);
/// assert!(site.total_mm2() <= 25.5 * 25.2, "{site:?}");
/// assert!(a.shoreline(&site, 4.0).fits());
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
    /// SRAM the compute constant includes, MB per TFLOP/s. Default 0.625: the Dojo-like core's
    /// 1.25 MB per 2 TFLOP/s.
    #[serde(default = "default_sram_mb_per_tflops")]
    pub sram_mb_per_tflops: f64,
    /// SRAM beyond (or short of) that, mm^2 per MB. Default 0.3: a 7 nm high-density bit cell of
    /// 0.027 um^2 (TSMC N7) is 0.23 mm^2 per MB, about 0.3 with the array's periphery.
    #[serde(default = "default_sram_mm2_per_mb")]
    pub sram_mm2_per_mb: f64,
    /// Die edge one DRAM stack's PHY takes, mm. Default 11: stacks sit side by side along the
    /// compute die, each as wide as its JEDEC 11 x 11 mm package.
    #[serde(default = "default_stack_shoreline_mm")]
    pub dram_shoreline_mm_per_stack: f64,
    /// D2D bandwidth per mm of die edge, TB/s per direction. Default 0.65: UCIe on an advanced
    /// package reaches 1.3 TB/s per mm of shoreline at 32 GT/s counting both directions
    /// (Das Sharma et al., arXiv 2510.06513).
    #[serde(default = "default_d2d_tb_per_s_per_mm")]
    pub d2d_tb_per_s_per_mm: f64,
    /// Largest compute die, mm^2. Default 858: one lithography reticle, 26 x 33 mm.
    #[serde(default = "default_reticle_mm2")]
    pub reticle_mm2: f64,
}

fn default_sram_mb_per_tflops() -> f64 {
    0.625
}
fn default_sram_mm2_per_mb() -> f64 {
    0.3
}
fn default_stack_shoreline_mm() -> f64 {
    11.0
}
fn default_d2d_tb_per_s_per_mm() -> f64 {
    0.65
}
fn default_reticle_mm2() -> f64 {
    858.0
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
            sram_mb_per_tflops: default_sram_mb_per_tflops(),
            sram_mm2_per_mb: default_sram_mm2_per_mb(),
            dram_shoreline_mm_per_stack: default_stack_shoreline_mm(),
            d2d_tb_per_s_per_mm: default_d2d_tb_per_s_per_mm(),
            reticle_mm2: default_reticle_mm2(),
        }
    }
}

/// One die site's area by part, mm^2.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SiteArea {
    /// Compute logic with its SRAM.
    pub compute_mm2: f64,
    /// DRAM stacks and their PHYs on the compute die.
    pub dram_mm2: f64,
    /// The DRAM PHYs alone (on the compute die, inside `dram_mm2`).
    pub dram_phy_mm2: f64,
    /// D2D PHYs on the four edges.
    pub d2d_mm2: f64,
    /// DRAM stacks (fractional: a mix of stack heights).
    pub stacks: f64,
}

impl SiteArea {
    /// Whole site.
    pub fn total_mm2(&self) -> f64 {
        self.compute_mm2 + self.dram_mm2 + self.d2d_mm2
    }

    /// The compute die: the site without its DRAM stacks (the reticle-limited part).
    pub fn die_mm2(&self) -> f64 {
        self.compute_mm2 + self.dram_phy_mm2 + self.d2d_mm2
    }
}

/// A die's edge: what its PHYs need against what a square die of its area has, mm.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Shoreline {
    pub needed_mm: f64,
    pub available_mm: f64,
}

impl Shoreline {
    /// Whether the PHYs fit the edge.
    pub fn fits(&self) -> bool {
        self.needed_mm <= self.available_mm * (1.0 + 1e-12)
    }
}

impl AreaModel {
    /// Area of one die site by part (see the module comment for the formula).
    pub fn site(
        &self,
        tflops: f64,
        sram_mb: f64,
        dram_gb: f64,
        dram_tb_per_s: f64,
        d2d_tb_per_s: f64,
    ) -> SiteArea {
        let stacks = (dram_gb / self.dram_stack_gb).max(dram_tb_per_s / self.dram_stack_tb_per_s);
        let extra_sram_mb = sram_mb - self.sram_mb_per_tflops * tflops;
        let dram_phy_mm2 = self.dram_phy_mm2_per_tb_per_s * dram_tb_per_s;
        SiteArea {
            // Never below nothing, whatever constants a file gives.
            compute_mm2: (self.compute_mm2_per_tflops * tflops
                + self.sram_mm2_per_mb * extra_sram_mb)
                .max(0.0),
            dram_mm2: self.dram_stack_mm2 * stacks + dram_phy_mm2,
            dram_phy_mm2,
            // Four edges, each with its own PHY.
            d2d_mm2: self.d2d_mm2_per_tb_per_s * 4.0 * d2d_tb_per_s,
            stacks,
        }
    }

    /// The die edge a site's PHYs need and have (see the module comment for the formula). A
    /// fractional stack count is a mix of heights: every started stack takes its width of edge.
    pub fn shoreline(&self, site: &SiteArea, d2d_tb_per_s: f64) -> Shoreline {
        // A hair below an integer is that integer (5 * 7.2 GB / 36 GB is 1.0000000000000002).
        let stacks = (site.stacks - 1e-9).ceil().max(0.0);
        Shoreline {
            needed_mm: stacks * self.dram_shoreline_mm_per_stack
                + 4.0 * d2d_tb_per_s / self.d2d_tb_per_s_per_mm,
            available_mm: 4.0 * site.die_mm2().max(0.0).sqrt(),
        }
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
            ("sram_mb_per_tflops", self.sram_mb_per_tflops, "e.g. 0.625"),
            ("sram_mm2_per_mb", self.sram_mm2_per_mb, "e.g. 0.3"),
            (
                "dram_shoreline_mm_per_stack",
                self.dram_shoreline_mm_per_stack,
                "e.g. 11",
            ),
            ("d2d_tb_per_s_per_mm", self.d2d_tb_per_s_per_mm, "e.g. 0.65"),
            ("reticle_mm2", self.reticle_mm2, "e.g. 858"),
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
        // 0.5*708 = 354 (442.5 MB is the included 0.625 MB per TFLOP/s); stacks = max(70/36, 2/1.2)
        // = 1.9444 -> 235.28 + 20 = 255.28; 2*4*4 = 32.
        let s = AreaModel::default().site(708.0, 442.5, 70.0, 2.0, 4.0);
        assert!((s.compute_mm2 - 354.0).abs() < 1e-9);
        assert!((s.dram_mm2 - (121.0 * 70.0 / 36.0 + 20.0)).abs() < 1e-9);
        assert!((s.d2d_mm2 - 32.0).abs() < 1e-9);
        assert!((s.total_mm2() - 641.2778).abs() < 1e-3);
        // The compute die: 354 + 20 + 32 = 406 mm^2.
        assert!((s.die_mm2() - 406.0).abs() < 1e-9);
    }

    #[test]
    fn bandwidth_can_set_the_stack_count() {
        // 10 GB at 2.4 TB/s needs two stacks for bandwidth, not 0.28 for capacity.
        let s = AreaModel::default().site(0.0, 0.0, 10.0, 2.4, 0.0);
        assert!((s.dram_mm2 - (242.0 + 24.0)).abs() < 1e-9);
    }

    #[test]
    fn sram_beyond_the_included_share_costs_area() {
        // 100 TFLOP/s include 62.5 MB; 162.5 MB is 100 MB more: 0.3 * 100 = 30 mm^2 on top of 50.
        let a = AreaModel::default();
        let s = a.site(100.0, 162.5, 0.0, 0.0, 0.0);
        assert!((s.compute_mm2 - 80.0).abs() < 1e-9);
        // And less SRAM saves it: 12.5 MB is 50 MB short, 50 - 15 = 35.
        let s = a.site(100.0, 12.5, 0.0, 0.0, 0.0);
        assert!((s.compute_mm2 - 35.0).abs() < 1e-9);
    }

    #[test]
    fn config3_shoreline_by_hand() {
        // Die 406 mm^2: edge 4 * sqrt(406) = 80.60 mm. Needed: 2 stacks * 11 = 22 mm, plus four
        // edges of 4 TB/s at 0.65 TB/s per mm = 24.62 mm: 46.62 mm.
        let a = AreaModel::default();
        let s = a.site(708.0, 442.5, 70.0, 2.0, 4.0);
        let e = a.shoreline(&s, 4.0);
        assert!((e.available_mm - 80.5978).abs() < 1e-3, "{e:?}");
        assert!((e.needed_mm - (22.0 + 16.0 / 0.65)).abs() < 1e-9, "{e:?}");
        assert!(e.fits());
    }

    #[test]
    fn a_small_die_runs_out_of_edge() {
        // 100 TFLOP/s with 4 stacks of 36 GB / 1.2 TB/s and 4 TB/s D2D: die 50 + 48 + 32 = 130
        // mm^2, edge 45.6 mm; needed 44 + 24.6 = 68.6 mm.
        let a = AreaModel::default();
        let s = a.site(100.0, 62.5, 144.0, 4.8, 4.0);
        let e = a.shoreline(&s, 4.0);
        assert!((e.available_mm - 4.0 * 130f64.sqrt()).abs() < 1e-9);
        assert!(!e.fits(), "{e:?}");
    }
}
