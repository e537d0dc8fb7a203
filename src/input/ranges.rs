//! The valid range of every number an input file or flag gives, checked when the file is read.
//!
//! The bounds keep the arithmetic sound, not just the physics plausible: products such as
//! `4 x hidden` stay inside `u32`, a step time cannot reach infinity, and the MIP is never handed a
//! coefficient HiGHS cannot represent. Each is far beyond any real machine or model (the README's
//! "Valid ranges" table is [`markdown_table`], kept equal by a test).

use crate::error::{ensure, FieldError};

/// The inclusive range `lo..=hi` of one number, in the unit its key names.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    /// Which file gives it (`hardware`, `model`, `instance`, `flag`).
    pub file: &'static str,
    /// Its key (the last part of the field path), or keys sharing the range.
    pub keys: &'static str,
    pub lo: f64,
    pub hi: f64,
    /// Unit, for the README and messages (empty for counts and fractions).
    pub unit: &'static str,
}

impl Range {
    /// Checks a number from a file: finite and within the range; the error says the range.
    ///
    /// ```
    /// use watos::input::ranges::PEAK_TFLOPS;
    /// assert!(PEAK_TFLOPS.check("device.peak_tflops", 708.0, "e.g. 708").is_ok());
    /// let e = PEAK_TFLOPS.check("device.peak_tflops", 1e-300, "e.g. 708").unwrap_err();
    /// assert_eq!(e.message, "is 1e-300, must be from 0.001 to 100,000 TFLOP/s");
    /// ```
    pub fn check(&self, field: &str, value: f64, example: &str) -> Result<(), FieldError> {
        self.check_shown(field, value, &bound(value), example)
    }

    /// Checks a whole number (a count or a size).
    ///
    /// ```
    /// let e = watos::input::ranges::LAYERS.check_count("layers", 0, "e.g. 96").unwrap_err();
    /// assert_eq!(e.message, "is 0, must be from 1 to 10,000");
    /// ```
    pub fn check_count(&self, field: &str, value: u32, example: &str) -> Result<(), FieldError> {
        self.check_shown(field, f64::from(value), &value.to_string(), example)
    }

    fn check_shown(
        &self,
        field: &str,
        value: f64,
        shown: &str,
        example: &str,
    ) -> Result<(), FieldError> {
        ensure(
            value.is_finite() && value >= self.lo && value <= self.hi,
            || {
                let kind = if self.lo > 0.0 && self.lo < 1.0 && value <= 0.0 {
                    "a positive number "
                } else {
                    ""
                };
                FieldError::new(
                    field,
                    format!("is {shown}, must be {kind}{}", self.span()),
                    example,
                )
            },
        )
    }

    /// `from LO to HI UNIT`, or `at least LO` without an upper bound.
    fn span(&self) -> String {
        let unit = if self.unit.is_empty() {
            String::new()
        } else {
            format!(" {}", self.unit)
        };
        if self.hi.is_infinite() {
            return format!("at least {}{unit}", bound(self.lo));
        }
        format!("from {} to {}{unit}", bound(self.lo), bound(self.hi))
    }
}

/// A number as people write it: whole numbers with thousands separators, plain digits down to
/// 1e-4, scientific beyond.
fn bound(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        let digits = format!("{:.0}", x.abs());
        let mut out = String::from(if x < 0.0 { "-" } else { "" });
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        out
    } else if x == 0.0 || !x.is_finite() || (1e-4..1e7).contains(&x.abs()) {
        format!("{x}")
    } else {
        format!("{x:e}")
    }
}

const fn range(
    file: &'static str,
    keys: &'static str,
    lo: f64,
    hi: f64,
    unit: &'static str,
) -> Range {
    Range {
        file,
        keys,
        lo,
        hi,
        unit,
    }
}

/// Most devices a hardware file may describe. Enough for any machine built (the largest training
/// runs use about 10^5 GPUs); beyond it the search space (divisors of the device count in three
/// factors) takes minutes to enumerate.
pub const MAX_DEVICES: u32 = 1 << 17;

pub const PEAK_TFLOPS: Range = range("hardware", "peak_tflops", 1e-3, 1e5, "TFLOP/s");
pub const SRAM_MB: Range = range("hardware", "sram_mb", 0.0, 1e6, "MB");
pub const DRAM_GB: Range = range("hardware", "dram_gb", 1e-6, 1e5, "GB");
pub const BANDWIDTH_TB: Range = range(
    "hardware",
    "dram_bw_tb_per_s, d2d_bw_tb_per_s, w2w_bw_tb_per_s",
    1e-4,
    1e4,
    "TB/s",
);
pub const BANDWIDTH_GB: Range = range(
    "hardware",
    "intra_bw_gb_per_s, inter_bw_gb_per_s",
    1e-3,
    1e6,
    "GB/s",
);
pub const LATENCY_NS: Range = range("hardware", "d2d_latency_ns, w2w_latency_ns", 0.0, 1e6, "ns");
pub const LATENCY_US: Range = range(
    "hardware",
    "intra_latency_us, inter_latency_us",
    0.0,
    1e5,
    "us",
);
pub const MESH_SIDE: Range = range("hardware", "rows, cols", 1.0, 4096.0, "dies");
pub const WAFERS: Range = range("hardware", "wafers", 1.0, 1024.0, "");
pub const GPUS_PER_NODE: Range = range("hardware", "gpus_per_node", 1.0, 1024.0, "");
pub const NODES: Range = range("hardware", "nodes", 1.0, MAX_DEVICES as f64, "");
pub const USABLE_AREA: Range = range("hardware", "usable_area_mm2", 1.0, 1e6, "mm^2");
pub const EFFICIENCY: Range = range("hardware", "gemm, attention, dram, link", 0.01, 1.0, "");
pub const GEMM_HALF_DIM: Range = range("hardware", "gemm_half_dim", 0.0, 65536.0, "");
pub const AREA_CONSTANT: Range = range(
    "hardware [area]",
    "compute_mm2_per_tflops, dram_stack_gb, dram_stack_tb_per_s, dram_stack_mm2, dram_phy_mm2_per_tb_per_s, d2d_mm2_per_tb_per_s, sram_mb_per_tflops, sram_mm2_per_mb, dram_shoreline_mm_per_stack, d2d_tb_per_s_per_mm, reticle_mm2",
    1e-6,
    1e6,
    "",
);
pub const POWER_CONSTANT: Range = range(
    "space [technology.power]",
    "compute_w_per_tflops, dram_pj_per_bit, d2d_pj_per_bit",
    1e-6,
    1e6,
    "",
);
pub const STACKS: Range = range("space", "dram.stacks", 1.0, 1024.0, "stacks");
pub const SRAM_PER_TFLOPS: Range = range(
    "space",
    "die.sram_mb_per_tflops",
    0.0,
    10_000.0,
    "MB per TFLOP/s",
);
pub const ASPECT: Range = range("space", "mesh.max_aspect", 1.0, 4096.0, "");
pub const POWER_W: Range = range("space", "power.max_w_per_die", 1e-3, 1e7, "W");
pub const MIX_WEIGHT: Range = range("flag", "--model FILE=WEIGHT", 1e-6, 1e6, "");

pub const LAYERS: Range = range("model", "layers", 1.0, 10_000.0, "");
pub const HIDDEN: Range = range("model", "hidden", 1.0, 1_048_576.0, "");
pub const HEADS: Range = range("model", "heads, kv_heads", 1.0, 65_536.0, "");
pub const FFN_HIDDEN: Range = range("model", "ffn_hidden", 1.0, 16_777_216.0, "");
pub const VOCAB: Range = range("model", "vocab", 1.0, 16_777_216.0, "");
pub const MAX_POSITIONS: Range = range("model", "max_positions", 1.0, 16_777_216.0, "");

pub const GLOBAL_BATCH: Range = range(
    "instance",
    "global_batch, --batch",
    1.0,
    1_048_576.0,
    "sequences",
);
pub const SEQ_LEN: Range = range("instance", "seq_len, --seq", 1.0, 1_048_576.0, "tokens");
pub const SEARCH_LIMIT: Range = range(
    "instance",
    "max_micro_batch, max_tp, max_pp",
    1.0,
    f64::INFINITY,
    "",
);
pub const TIME_LIMIT: Range = range("instance", "time_limit_s, --time-limit", 1e-3, 1e7, "s");
pub const RESERVE_GB: Range = range("instance", "reserve_gb, --reserve-gb", 0.0, 1e5, "GB");

/// Every range, in the README's order.
pub const ALL: &[Range] = &[
    PEAK_TFLOPS,
    SRAM_MB,
    DRAM_GB,
    BANDWIDTH_TB,
    BANDWIDTH_GB,
    LATENCY_NS,
    LATENCY_US,
    MESH_SIDE,
    WAFERS,
    GPUS_PER_NODE,
    NODES,
    USABLE_AREA,
    EFFICIENCY,
    GEMM_HALF_DIM,
    AREA_CONSTANT,
    POWER_CONSTANT,
    STACKS,
    SRAM_PER_TFLOPS,
    ASPECT,
    POWER_W,
    MIX_WEIGHT,
    LAYERS,
    HIDDEN,
    HEADS,
    FFN_HIDDEN,
    VOCAB,
    MAX_POSITIONS,
    GLOBAL_BATCH,
    SEQ_LEN,
    SEARCH_LIMIT,
    TIME_LIMIT,
    RESERVE_GB,
];

/// The README's table of valid ranges.
///
/// ```
/// assert!(watos::input::ranges::markdown_table().contains("| hardware | `peak_tflops` |"));
/// ```
pub fn markdown_table() -> String {
    let mut out = String::from("| file | key | valid range |\n|---|---|---|\n");
    for r in ALL {
        let keys: Vec<String> = r.keys.split(", ").map(|k| format!("`{k}`")).collect();
        out.push_str(&format!(
            "| {} | {} | {} |\n",
            r.file,
            keys.join(", "),
            r.span().trim_start_matches("from ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_lists_every_range() {
        let readme = include_str!("../../README.md");
        assert!(
            readme.contains(&markdown_table()),
            "README.md's table of valid ranges differs from:\n{}",
            markdown_table()
        );
    }

    #[test]
    fn messages_name_the_range_and_reject_non_finite_values() {
        let e = EFFICIENCY
            .check("efficiency.gemm", 0.0, "e.g. 0.8")
            .unwrap_err();
        assert_eq!(e.message, "is 0, must be a positive number from 0.01 to 1");
        for bad in [f64::NAN, f64::INFINITY, -1.0, 1.5] {
            assert!(EFFICIENCY.check("g", bad, "").is_err(), "{bad}");
        }
        assert!(LATENCY_NS.check("d", 0.0, "").is_ok());
        let e = HIDDEN.check_count("hidden", 1 << 31, "").unwrap_err();
        assert_eq!(e.message, "is 2147483648, must be from 1 to 1,048,576");
        assert_eq!(bound(1e-6), "1e-6");
        assert_eq!(bound(-1234.0), "-1,234");
        assert_eq!(bound(1e308), "1e308");
        assert_eq!(bound(0.5), "0.5");
    }
}
