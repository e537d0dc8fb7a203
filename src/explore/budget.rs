//! What one design spends of its budgets: wafer area (with the part spent on memory), the compute
//! die against the reticle, the die edge against its PHYs, and power. The figures come from the
//! design's hardware through the area model (`hardware::area`) and the power model
//! (`hardware::power`), so a design and the hardware file written from it agree.

use serde::{Deserialize, Serialize};

use crate::hardware::Hardware;

use super::space::{Design, DesignSpace};

/// Which budget a design breaks, the first in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Broken {
    /// The compute die exceeds one reticle.
    Reticle,
    /// The DRAM and D2D PHYs need more die edge than there is.
    Shoreline,
    /// The die sites exceed the usable wafer area.
    Area,
    /// A die draws more than the power budget.
    Power,
}

impl Broken {
    pub const ALL: [Broken; 4] = [
        Broken::Reticle,
        Broken::Shoreline,
        Broken::Area,
        Broken::Power,
    ];

    /// Its name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Broken::Reticle => "reticle",
            Broken::Shoreline => "shoreline",
            Broken::Area => "area",
            Broken::Power => "power",
        }
    }
}

/// A design's use of its budgets.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    /// One die site, mm^2.
    pub site_mm2: f64,
    /// One compute die (the site without its stacks), and the reticle.
    pub die_mm2: f64,
    pub reticle_mm2: f64,
    /// Area of all sites on one wafer, and what the wafer has.
    pub used_mm2: f64,
    pub usable_mm2: f64,
    /// Area one wafer spends on DRAM: stacks and their PHYs.
    pub memory_mm2: f64,
    /// DRAM's share of a site's compute and memory area (the compute/memory split).
    pub memory_share: f64,
    /// Die edge the PHYs need and a die has, mm.
    pub shoreline_needed_mm: f64,
    pub shoreline_mm: f64,
    /// One die at full rate, and the budget if the space sets one.
    pub power_w: f64,
    pub max_power_w: Option<f64>,
}

impl Budget {
    /// The budgets of a design of `space`.
    ///
    /// ```
    /// use watos::explore::{Budget, DesignSpace};
    /// let s = DesignSpace::load(concat!(env!("CARGO_MANIFEST_DIR"), "/hardware/spaces/paper.toml")).unwrap();
    /// let d = s.design(0);
    /// let b = Budget::of(&s, &d);
    /// assert!(b.memory_mm2 > 0.0 && b.memory_share < 1.0);
    /// ```
    pub fn of(space: &DesignSpace, d: &Design) -> Self {
        Self::of_hardware(
            &space.hardware(d),
            &space.technologies[d.technology].power,
            space.power.as_ref().map(|p| p.max_w_per_die),
        )
    }

    /// The budgets of a wafer's hardware with a technology's power model.
    pub fn of_hardware(
        hw: &Hardware,
        power: &crate::hardware::power::PowerModel,
        max_power_w: Option<f64>,
    ) -> Self {
        let d2d = hw.wafer.as_ref().map_or(0.0, |w| w.d2d_bw_tb_per_s);
        // A cluster has no wafer: nothing spent, nothing to spend.
        let model = crate::hardware::AreaModel::default();
        let empty = model.site(0.0, 0.0, 0.0, 0.0, 0.0);
        let (site, dies, usable, shoreline, reticle) = match hw.wafer_area() {
            Some(a) => (
                a.site,
                f64::from(a.dies_per_wafer),
                a.usable_mm2,
                a.shoreline,
                a.reticle_mm2,
            ),
            None => (empty, 0.0, 0.0, model.shoreline(&empty, 0.0), 0.0),
        };
        let dev = &hw.device;
        Budget {
            site_mm2: site.total_mm2(),
            die_mm2: site.die_mm2(),
            reticle_mm2: reticle,
            used_mm2: site.total_mm2() * dies,
            usable_mm2: usable,
            memory_mm2: site.dram_mm2 * dies,
            memory_share: site.dram_mm2 / (site.compute_mm2 + site.dram_mm2).max(f64::MIN_POSITIVE),
            shoreline_needed_mm: shoreline.needed_mm,
            shoreline_mm: shoreline.available_mm,
            power_w: power
                .die(dev.peak_tflops, dev.dram_bw_tb_per_s, d2d)
                .total_w(),
            max_power_w,
        }
    }

    /// The first budget the design breaks, if any.
    pub fn broken(&self) -> Option<Broken> {
        let over = |used: f64, have: f64| used > have * (1.0 + 1e-12);
        if over(self.die_mm2, self.reticle_mm2) {
            Some(Broken::Reticle)
        } else if over(self.shoreline_needed_mm, self.shoreline_mm) {
            Some(Broken::Shoreline)
        } else if over(self.used_mm2, self.usable_mm2) {
            Some(Broken::Area)
        } else if self.max_power_w.is_some_and(|m| over(self.power_w, m)) {
            Some(Broken::Power)
        } else {
            None
        }
    }
}
