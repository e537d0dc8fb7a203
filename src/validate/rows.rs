//! The rows of the report: one published figure beside its prediction, and their summaries.

use serde::Serialize;

use crate::plan::Plan;

/// Which published table or figure a row checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    /// Megatron-LM Table 1: step time.
    MegatronTable1,
    /// Korthikanti Table 5: step time.
    KorthikantiTable5,
    /// Korthikanti Table 5: MFU and HFU, reported but not checked. MFU restates the step time; the
    /// paper's HFU / MFU ratios equal `1 + 12 s / (72 h + 12 s)` in all four rows, i.e. they count
    /// `12 b s^2 h` recomputed FLOPs per layer where re-running the attention core's forward pass
    /// executes `4 b s^2 h` (what the evaluator counts).
    KorthikantiUtilisation,
    /// Korthikanti Table 4: per-layer forward and backward time.
    KorthikantiTable4,
    /// Korthikanti Figure 1: memory per GPU.
    KorthikantiFigure1,
}

impl Group {
    /// In report order.
    pub const ALL: [Group; 5] = [
        Group::MegatronTable1,
        Group::KorthikantiTable5,
        Group::KorthikantiUtilisation,
        Group::KorthikantiTable4,
        Group::KorthikantiFigure1,
    ];

    /// Heading with the source.
    pub fn title(self) -> &'static str {
        match self {
            Group::MegatronTable1 => "Megatron-LM Table 1 (arXiv 2104.04473): step time",
            Group::KorthikantiTable5 => "Korthikanti Table 5 (arXiv 2205.05198): step time",
            Group::KorthikantiUtilisation => {
                "Korthikanti Table 5 (arXiv 2205.05198): MFU / HFU, reported only"
            }
            Group::KorthikantiTable4 => "Korthikanti Table 4 (arXiv 2205.05198): one 22B layer",
            Group::KorthikantiFigure1 => "Korthikanti Figure 1 (arXiv 2205.05198): memory per GPU",
        }
    }

    /// Rows whose quantity is a whole training step's time.
    pub fn is_step_time(self) -> bool {
        matches!(self, Group::MegatronTable1 | Group::KorthikantiTable5)
    }
}

/// What a row measures; fixes its unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Quantity {
    /// Seconds per optimizer step.
    StepTime,
    /// Seconds of one layer's forward pass for one micro-batch.
    LayerForward,
    /// Seconds of one layer's backward pass (with any recomputation) for one micro-batch.
    LayerBackward,
    /// Bytes per GPU.
    Memory,
    /// Fraction of peak FLOP/s.
    Utilisation,
}

impl Quantity {
    /// SI unit of `predicted` and `measured`.
    pub fn unit(self) -> &'static str {
        match self {
            Quantity::StepTime | Quantity::LayerForward | Quantity::LayerBackward => "s",
            Quantity::Memory => "B",
            Quantity::Utilisation => "1",
        }
    }
}

/// One published figure beside the evaluator's prediction.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Which table or figure.
    pub group: Group,
    /// Which run or variant, e.g. `175B, SP + selective`.
    pub label: String,
    /// What is compared.
    pub quantity: Quantity,
    /// Unit of `predicted` and `measured` (SI: `s`, `B`, or `1` for a fraction).
    pub unit: &'static str,
    /// The evaluator's figure.
    pub predicted: f64,
    /// The published figure, converted to SI.
    pub measured: f64,
    /// `(predicted - measured) / measured`: negative is optimistic for times.
    pub signed_error: f64,
    /// `|signed_error|`.
    pub abs_error: f64,
    /// The plan the prediction comes from, as `watos evaluate` prints it.
    pub plan: String,
    /// Whether the evaluator finds that plan fits (the published runs did).
    pub feasible: bool,
}

impl Row {
    pub(super) fn new(
        group: Group,
        label: impl Into<String>,
        quantity: Quantity,
        predicted: f64,
        measured: f64,
        plan: &Plan,
        feasible: bool,
    ) -> Self {
        let signed_error = (predicted - measured) / measured;
        Row {
            group,
            label: label.into(),
            quantity,
            unit: quantity.unit(),
            predicted,
            measured,
            signed_error,
            abs_error: signed_error.abs(),
            plan: plan.to_string(),
            feasible,
        }
    }
}

/// Error statistics of one group of rows.
#[derive(Debug, Clone, Serialize)]
pub struct GroupSummary {
    /// Which table or figure.
    pub group: Group,
    /// Heading with the source.
    pub title: &'static str,
    /// Rows in the group.
    pub rows: usize,
    /// Mean of the absolute errors.
    pub mean_abs_error: f64,
    /// Largest absolute error.
    pub worst_abs_error: f64,
    /// Label of the worst row.
    pub worst_row: String,
    /// Mean of the signed errors: the group's bias.
    pub mean_signed_error: f64,
}

impl GroupSummary {
    pub(super) fn of(group: Group, rows: &[Row]) -> Option<Self> {
        let mine: Vec<&Row> = rows.iter().filter(|r| r.group == group).collect();
        let n = mine.len();
        let worst = mine
            .iter()
            .max_by(|a, b| a.abs_error.total_cmp(&b.abs_error))?;
        Some(GroupSummary {
            group,
            title: group.title(),
            rows: n,
            mean_abs_error: mine.iter().map(|r| r.abs_error).sum::<f64>() / n as f64,
            worst_abs_error: worst.abs_error,
            worst_row: worst.label.clone(),
            mean_signed_error: mine.iter().map(|r| r.signed_error).sum::<f64>() / n as f64,
        })
    }
}

/// The micro-batch and interleaving chosen for one Megatron Table 1 row.
#[derive(Debug, Clone, Serialize)]
pub struct Table1Knobs {
    /// Parameters in billions, as Table 1 names the run.
    pub params_b: f64,
    /// Data-parallel degree (GPUs / (tp pp)).
    pub dp: u32,
    /// Tensor-parallel degree, as published.
    pub tp: u32,
    /// Pipeline-parallel degree, as published.
    pub pp: u32,
    /// Chosen micro-batch.
    pub micro_batch: u32,
    /// Model chunks per GPU (1: plain 1F1B).
    pub interleave: u32,
    /// Gradient all-reduce overlapped with the backward pass (PyTorch DDP).
    pub dp_overlap: bool,
}
