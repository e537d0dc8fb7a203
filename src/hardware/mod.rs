//! Hardware: a wafer (2D mesh of dies) or a GPU cluster (nodes of GPUs), in one schema.
//!
//! Files use human units whose names say them (`dram_gb`, `d2d_bw_tb_per_s`); the accessors on
//! [`Hardware`] return SI units (bytes, bytes/s, FLOP/s, seconds) for everything inside watos.

pub mod area;
pub mod fabric;
pub mod power;

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{ensure, Error, FieldError};
use crate::input::ranges::{self, MAX_DEVICES};
use crate::input::SourceFile;
use crate::units::{GB, MB, NS, TB, TERA, US};

pub use area::AreaModel;
pub use fabric::{DeviceId, Fabric};

/// Area use of one wafer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct WaferArea {
    pub dies_per_wafer: u32,
    pub site: area::SiteArea,
    /// Each die's edge: what its DRAM and D2D PHYs need and what it has.
    pub shoreline: area::Shoreline,
    /// Largest compute die the technology makes (one reticle).
    pub reticle_mm2: f64,
    pub used_mm2: f64,
    pub usable_mm2: f64,
}

/// One compute device: a wafer die or a GPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Device {
    /// Dense FP16/BF16 peak.
    pub peak_tflops: f64,
    /// On-die SRAM (for a GPU, its L2: it holds no persistent state).
    pub sram_mb: f64,
    /// DRAM / HBM capacity.
    pub dram_gb: f64,
    /// DRAM / HBM bandwidth.
    pub dram_bw_tb_per_s: f64,
}

/// A wafer: `rows x cols` dies joined to their four neighbours by D2D links.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wafer {
    pub rows: u32,
    pub cols: u32,
    /// Bandwidth of one D2D link between neighbours, per direction.
    pub d2d_bw_tb_per_s: f64,
    /// Latency of one D2D hop.
    pub d2d_latency_ns: f64,
    /// Usable wafer area the dies must fit in.
    #[serde(default = "default_wafer_area")]
    pub usable_area_mm2: f64,
    /// Dies that do not work, as `[row, col]`; routes avoid them.
    #[serde(default, deserialize_with = "crate::input::pairs")]
    pub faulty_dies: Vec<[u32; 2]>,
    /// Links that do not work, as `[[row, col], [row, col]]` between neighbours.
    #[serde(default, deserialize_with = "crate::input::pairs_of_pairs")]
    pub faulty_links: Vec<[[u32; 2]; 2]>,
    /// Number of wafers, stacked along rows: wafer `w` holds global rows `w*rows .. (w+1)*rows`.
    #[serde(default = "one")]
    pub wafers: u32,
    /// Total wafer-to-wafer bandwidth per direction between two stacked wafers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub w2w_bw_tb_per_s: Option<f64>,
    /// Latency of a wafer-to-wafer crossing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub w2w_latency_ns: Option<f64>,
}

/// A GPU cluster: nodes of GPUs on a switch (NVLink), nodes joined by a network (InfiniBand).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    pub gpus_per_node: u32,
    pub nodes: u32,
    /// NVLink bandwidth per GPU per direction.
    pub intra_bw_gb_per_s: f64,
    pub intra_latency_us: f64,
    /// Network bandwidth per GPU (its own NIC) per direction.
    pub inter_bw_gb_per_s: f64,
    pub inter_latency_us: f64,
}

/// How close to peak the kernels get: a few parameters per device generation, never per workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Efficiency {
    /// Fraction of peak a large matrix multiply reaches.
    pub gemm: f64,
    /// A matrix dimension of this size costs half its efficiency: eff = gemm * prod(d / (d + half)).
    pub gemm_half_dim: f64,
    /// Fraction of peak a fused (flash) attention kernel reaches.
    pub attention: f64,
    /// Fraction of DRAM bandwidth a streaming kernel reaches.
    pub dram: f64,
    /// Fraction of link bandwidth a collective or point-to-point transfer reaches.
    pub link: f64,
}

impl Default for Efficiency {
    fn default() -> Self {
        Efficiency {
            gemm: 0.85,
            gemm_half_dim: 64.0,
            attention: 0.6,
            dram: 0.85,
            link: 0.85,
        }
    }
}

/// Attention kernel: unfused (scores go through DRAM) or flash (fused, causal half skipped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttentionKernel {
    Unfused,
    Flash,
}

/// Operator execution: GPU-style kernels (each reads and writes DRAM) or wafer dataflow (a layer's
/// operators fused, intermediates kept in SRAM when they fit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Execution {
    Kernels,
    Dataflow,
}

/// The software stack the device runs by default (a training setup may override it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Software {
    pub attention: AttentionKernel,
    pub execution: Execution,
}

/// A hardware file.
///
/// ```
/// let hw = watos::Hardware::load(concat!(env!("CARGO_MANIFEST_DIR"), "/hardware/wafer-config3.toml")).unwrap();
/// assert_eq!(hw.fabric().unwrap().healthy_count(), 56);
/// assert!((hw.peak_flops() - 708e12).abs() < 1e9);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hardware {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub device: Device,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wafer: Option<Wafer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<Cluster>,
    #[serde(default)]
    pub efficiency: Efficiency,
    pub software: Software,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area: Option<AreaModel>,
}

fn default_wafer_area() -> f64 {
    // About 200 mm x 200 mm usable on a 300 mm wafer (WATOS paper's template).
    40_000.0
}

fn one() -> u32 {
    1
}

impl Hardware {
    /// Reads and validates a hardware file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, Error> {
        let src = SourceFile::read(path.as_ref())?;
        Self::from_source(&src)
    }

    /// Parses and validates hardware from text already read.
    pub fn from_source(src: &SourceFile) -> Result<Self, Error> {
        let hw: Hardware = src.parse_toml()?;
        hw.validate().map_err(|e| src.field_error(e))?;
        Ok(hw)
    }

    /// Peak FLOP/s of one device.
    pub fn peak_flops(&self) -> f64 {
        self.device.peak_tflops * TERA
    }
    /// SRAM bytes of one device.
    pub fn sram_bytes(&self) -> f64 {
        self.device.sram_mb * MB
    }
    /// DRAM bytes of one device.
    pub fn dram_bytes(&self) -> f64 {
        self.device.dram_gb * GB
    }
    /// DRAM bytes/s of one device.
    pub fn dram_bw_bytes_per_s(&self) -> f64 {
        self.device.dram_bw_tb_per_s * TB
    }

    /// The interconnect, with routes and healthy devices.
    pub fn fabric(&self) -> Result<Fabric, FieldError> {
        Fabric::new(self)
    }

    /// Checks every field; the error names the field and what would be valid.
    pub fn validate(&self) -> Result<(), FieldError> {
        let d = &self.device;
        ranges::PEAK_TFLOPS.check(
            "device.peak_tflops",
            d.peak_tflops,
            "peak dense FP16 TFLOP/s of one die or GPU, e.g. 708",
        )?;
        ranges::SRAM_MB.check("device.sram_mb", d.sram_mb, "on-die SRAM in MB, e.g. 442.5")?;
        ranges::DRAM_GB.check(
            "device.dram_gb",
            d.dram_gb,
            "DRAM capacity per die in GB, e.g. 70",
        )?;
        ranges::BANDWIDTH_TB.check(
            "device.dram_bw_tb_per_s",
            d.dram_bw_tb_per_s,
            "DRAM bandwidth per die in TB/s, e.g. 2.0",
        )?;
        let e = &self.efficiency;
        for (field, v) in [
            ("efficiency.gemm", e.gemm),
            ("efficiency.attention", e.attention),
            ("efficiency.dram", e.dram),
            ("efficiency.link", e.link),
        ] {
            ranges::EFFICIENCY.check(field, v, "a fraction of peak, e.g. 0.8")?;
        }
        ranges::GEMM_HALF_DIM.check(
            "efficiency.gemm_half_dim",
            e.gemm_half_dim,
            "the matrix size at which a multiply reaches half its efficiency, e.g. 64",
        )?;
        match (&self.wafer, &self.cluster) {
            (Some(_), Some(_)) => {
                return Err(FieldError::new("cluster", "a hardware file describes a wafer or a cluster, not both", "remove [wafer] or [cluster]"))
            }
            (None, None) => {
                return Err(FieldError::new("device", "the file has neither [wafer] nor [cluster]", "add a [wafer] table (rows, cols, d2d_bw_tb_per_s, d2d_latency_ns) or a [cluster] table"))
            }
            (Some(w), None) => validate_wafer(w).map_err(|e| e.within("wafer"))?,
            (None, Some(c)) => validate_cluster(c).map_err(|e| e.within("cluster"))?,
        }
        if let Some(a) = &self.area {
            a.validate().map_err(|e| e.within("area"))?;
        }
        if let Some(area) = self.wafer_area() {
            ensure(area.used_mm2 <= area.usable_mm2, || {
                FieldError::new(
                    "wafer.usable_area_mm2",
                    format!(
                        "{} die sites of {:.1} mm^2 (compute {:.1}, DRAM {:.1}, D2D {:.1}) need {:.0} mm^2 per wafer, over the {:.0} mm^2 usable by {:.0} mm^2",
                        area.dies_per_wafer, area.site.total_mm2(), area.site.compute_mm2, area.site.dram_mm2, area.site.d2d_mm2, area.used_mm2, area.usable_mm2, area.used_mm2 - area.usable_mm2
                    ),
                    "use fewer or smaller dies (less compute, DRAM or D2D bandwidth), or give an [area] table for a denser technology",
                )
            })?;
        }
        if let Some(area) = self.wafer_area() {
            let die = area.site.die_mm2();
            ensure(die <= area.reticle_mm2, || {
                FieldError::new(
                    "device.peak_tflops",
                    format!(
                        "the compute die (compute {:.1}, DRAM PHY {:.1}, D2D PHY {:.1} mm^2) is {die:.0} mm^2, larger than one {:.0} mm^2 reticle",
                        area.site.compute_mm2, area.site.dram_phy_mm2, area.site.d2d_mm2, area.reticle_mm2
                    ),
                    "use less compute, SRAM or PHY bandwidth per die, or give [area] reticle_mm2",
                )
            })?;
            let edge = area.shoreline;
            ensure(edge.fits(), || {
                FieldError::new(
                    "device.dram_bw_tb_per_s",
                    format!(
                        "the DRAM stacks and D2D PHYs need {:.1} mm of die edge, but a {die:.0} mm^2 die has {:.1} mm",
                        edge.needed_mm, edge.available_mm
                    ),
                    "use fewer DRAM stacks or less D2D bandwidth per die, a larger die, or give [area] dram_shoreline_mm_per_stack and d2d_tb_per_s_per_mm for denser PHYs",
                )
            })?;
        }
        let fabric = self.fabric()?;
        ensure(fabric.is_connected(), || {
            FieldError::new(
                "wafer.faulty_links",
                "the faulty dies and links cut the mesh into pieces",
                "leave a healthy path between every pair of healthy dies",
            )
        })
    }

    /// Area a wafer's die sites take, by the file's `[area]` constants or the defaults.
    pub fn wafer_area(&self) -> Option<WaferArea> {
        let w = self.wafer.as_ref()?;
        let model = self.area.clone().unwrap_or_default();
        let d = &self.device;
        let site = model.site(
            d.peak_tflops,
            d.sram_mb,
            d.dram_gb,
            d.dram_bw_tb_per_s,
            w.d2d_bw_tb_per_s,
        );
        let dies = w.rows * w.cols;
        Some(WaferArea {
            dies_per_wafer: dies,
            site,
            shoreline: model.shoreline(&site, w.d2d_bw_tb_per_s),
            reticle_mm2: model.reticle_mm2,
            used_mm2: site.total_mm2() * dies as f64,
            usable_mm2: w.usable_area_mm2,
        })
    }
}

fn validate_wafer(w: &Wafer) -> Result<(), FieldError> {
    ranges::MESH_SIDE.check_count("rows", w.rows, "dies per column of the mesh, e.g. 7")?;
    ranges::MESH_SIDE.check_count("cols", w.cols, "dies per row of the mesh, e.g. 8")?;
    ranges::WAFERS.check_count("wafers", w.wafers, "number of wafers, e.g. 1")?;
    ranges::BANDWIDTH_TB.check(
        "d2d_bw_tb_per_s",
        w.d2d_bw_tb_per_s,
        "per-link, per-direction D2D bandwidth in TB/s, e.g. 4.0",
    )?;
    ranges::LATENCY_NS.check(
        "d2d_latency_ns",
        w.d2d_latency_ns,
        "latency of one D2D hop in ns, e.g. 200",
    )?;
    ranges::USABLE_AREA.check(
        "usable_area_mm2",
        w.usable_area_mm2,
        "usable wafer area in mm^2, e.g. 40000 (a 300 mm wafer is 70,686 mm^2)",
    )?;
    // Checked whenever given, even for one wafer where they are unused: a wrong value is a
    // mistake to report, not to ignore.
    if let Some(bw) = w.w2w_bw_tb_per_s {
        ranges::BANDWIDTH_TB.check(
            "w2w_bw_tb_per_s",
            bw,
            "wafer-to-wafer bandwidth in TB/s, e.g. 1.8",
        )?;
    }
    if let Some(ns) = w.w2w_latency_ns {
        ranges::LATENCY_NS.check("w2w_latency_ns", ns, "e.g. 500")?;
    }
    ensure(w.wafers == 1 || w.w2w_bw_tb_per_s.is_some(), || {
        FieldError::new(
            "w2w_bw_tb_per_s",
            "several wafers need a wafer-to-wafer bandwidth",
            "e.g. 1.8",
        )
    })?;
    let dies = u64::from(w.rows) * u64::from(w.wafers) * u64::from(w.cols);
    ensure(dies <= u64::from(MAX_DEVICES), || {
        FieldError::new(
            if w.wafers > 1 { "wafers" } else { "rows" },
            match w.wafers {
                1 => format!("a {} x {} mesh has {dies} dies", w.rows, w.cols),
                n => format!(
                    "{n} wafers of {} x {} dies make {dies} dies",
                    w.rows, w.cols
                ),
            },
            format!("at most {MAX_DEVICES} dies in all"),
        )
    })?;
    // Cannot wrap: bounded by MAX_DEVICES above.
    let rows = w.rows * w.wafers;
    for (i, [r, c]) in w.faulty_dies.iter().enumerate() {
        ensure(*r < rows && *c < w.cols, || {
            FieldError::new(
                format!("faulty_dies[{i}]"),
                format!("[{r}, {c}] is outside the {rows} x {} mesh", w.cols),
                "coordinates are [row, col], 0-based",
            )
        })?;
    }
    let distinct: std::collections::HashSet<_> = w.faulty_dies.iter().collect();
    ensure((distinct.len() as u64) < dies, || {
        FieldError::new(
            "faulty_dies",
            format!("all {dies} dies are listed as faulty"),
            "leave at least one healthy die",
        )
    })?;
    for (i, [[r1, c1], [r2, c2]]) in w.faulty_links.iter().enumerate() {
        let adjacent = r1.abs_diff(*r2) + c1.abs_diff(*c2) == 1;
        ensure(
            adjacent && *r1 < rows && *r2 < rows && *c1 < w.cols && *c2 < w.cols,
            || {
                FieldError::new(format!("faulty_links[{i}]"), format!("[[{r1}, {c1}], [{r2}, {c2}]] is not a link between two neighbouring dies of the mesh"), "a link joins [row, col] and a neighbour one row or one column away")
            },
        )?;
    }
    Ok(())
}

fn validate_cluster(c: &Cluster) -> Result<(), FieldError> {
    ranges::GPUS_PER_NODE.check_count("gpus_per_node", c.gpus_per_node, "e.g. 8")?;
    ranges::NODES.check_count("nodes", c.nodes, "e.g. 128")?;
    let gpus = u64::from(c.nodes) * u64::from(c.gpus_per_node);
    ensure(gpus <= u64::from(MAX_DEVICES), || {
        FieldError::new(
            "nodes",
            format!(
                "{} nodes of {} GPUs make {gpus} GPUs",
                c.nodes, c.gpus_per_node
            ),
            format!("at most {MAX_DEVICES} GPUs in all"),
        )
    })?;
    ranges::BANDWIDTH_GB.check(
        "intra_bw_gb_per_s",
        c.intra_bw_gb_per_s,
        "NVLink GB/s per GPU per direction, e.g. 300",
    )?;
    ranges::BANDWIDTH_GB.check(
        "inter_bw_gb_per_s",
        c.inter_bw_gb_per_s,
        "network GB/s per GPU per direction, e.g. 25",
    )?;
    ranges::LATENCY_US.check("intra_latency_us", c.intra_latency_us, "e.g. 3")?;
    ranges::LATENCY_US.check("inter_latency_us", c.inter_latency_us, "e.g. 5")?;
    Ok(())
}

impl Wafer {
    /// Latency of one D2D hop in seconds.
    pub fn hop_latency_s(&self) -> f64 {
        self.d2d_latency_ns * NS
    }
}

impl Cluster {
    /// Latency of an intra-node transfer in seconds.
    pub fn intra_latency_s(&self) -> f64 {
        self.intra_latency_us * US
    }
    /// Latency of an inter-node transfer in seconds.
    pub fn inter_latency_s(&self) -> f64 {
        self.inter_latency_us * US
    }
}
