//! The evaluator against published measurements of real GPU training runs.
//!
//! The wafer side of watos has no public measurements; GPU clusters do, and the evaluator is the
//! same code whichever hardware it is given. So the DGX A100 cluster file and the Megatron GPT model
//! files are run through [`evaluate`] on the configurations the papers used, and every prediction
//! is set beside its published figure (`data/measurements.toml`, each table with its source):
//!
//! - Narayanan et al., Megatron-LM (arXiv 2104.04473), Table 1: step time of ten weak-scaling runs
//!   with full recomputation. The micro-batch size and interleaving were not published; Megatron's
//!   authors tuned them per run, so each row takes the fastest feasible plan over those two knobs.
//! - Korthikanti et al. (arXiv 2205.05198), Table 5: step time of four models with full
//!   recomputation and with sequence parallelism plus selective recomputation, on the published
//!   Table 3 configurations; the MFU and HFU of the latter are reported beside them.
//! - Korthikanti et al., Table 4: forward and backward time of one 22B layer in five variants.
//! - Korthikanti et al., Figure 1: parameter, optimizer and activation memory per GPU.
//!
//! Nothing is fitted to a row: the hardware file's efficiencies are one set for the A100 generation.
//! The data and model files are compiled into the binary, so `watos validate` works from any
//! directory.
//!
//! [`evaluate`]: crate::cost::evaluate

mod data;
mod rows;
mod runs;

use serde::Serialize;

use crate::error::Error;

pub use data::{
    CalculonFigures, Figure1, Korthikanti, KorthikantiConfig, LayerTiming, Measurements,
    MegatronRow, MegatronTable1, MemoryFigures, StepTimes, Table3, Table4, Table5,
    MEASUREMENTS_TOML,
};
pub use rows::{Group, GroupSummary, Quantity, Row, Table1Knobs};
pub use runs::TABLE1_KNOBS_NOTE;

use data::load_hardware;
use runs::{korthikanti, megatron_table1, table1_label};

/// Largest mean absolute step-time error over Megatron Table 1 and Korthikanti Table 5 together.
pub const MAX_MEAN_STEP_TIME_ERROR: f64 = 0.05;
/// Largest absolute step-time error of any single run.
pub const MAX_STEP_TIME_ERROR: f64 = 0.12;
/// Largest absolute error of any Figure 1 memory figure.
pub const MAX_MEMORY_ERROR: f64 = 0.05;
/// Largest mean absolute error over Korthikanti Table 4's ten per-layer times (forward and
/// backward of five variants): the step-time bound, applied to the layer the steps are made of.
pub const MAX_MEAN_LAYER_TIME_ERROR: f64 = 0.05;

/// The thresholds the validation holds the evaluator to.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Thresholds {
    /// [`MAX_MEAN_STEP_TIME_ERROR`].
    pub max_mean_step_time_error: f64,
    /// [`MAX_STEP_TIME_ERROR`].
    pub max_step_time_error: f64,
    /// [`MAX_MEMORY_ERROR`].
    pub max_memory_error: f64,
    /// [`MAX_MEAN_LAYER_TIME_ERROR`].
    pub max_mean_layer_time_error: f64,
}

/// The thresholds in force.
pub const THRESHOLDS: Thresholds = Thresholds {
    max_mean_step_time_error: MAX_MEAN_STEP_TIME_ERROR,
    max_step_time_error: MAX_STEP_TIME_ERROR,
    max_memory_error: MAX_MEMORY_ERROR,
    max_mean_layer_time_error: MAX_MEAN_LAYER_TIME_ERROR,
};

/// One threshold applied.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What is bounded.
    pub name: String,
    /// Its value (a fraction, or a count).
    pub value: f64,
    /// The bound it must not exceed.
    pub limit: f64,
    /// `value <= limit`.
    pub passed: bool,
    /// `value` and `limit` count rows rather than being fractions.
    pub count: bool,
}

impl Check {
    fn at_most(name: impl Into<String>, value: f64, limit: f64) -> Self {
        Check {
            name: name.into(),
            value,
            limit,
            // NaN (no rows, or a broken prediction) fails.
            passed: value <= limit,
            count: false,
        }
    }

    fn count_at_most(name: impl Into<String>, value: usize, limit: usize) -> Self {
        Check {
            count: true,
            ..Check::at_most(name, value as f64, limit as f64)
        }
    }
}

/// watos's figures set against Calculon's on the same tables.
#[derive(Debug, Clone, Serialize)]
pub struct PeerComparison {
    /// Calculon's published figures.
    pub calculon: CalculonFigures,
    /// watos's mean absolute error on Korthikanti Table 5.
    pub table5_mean_abs_error: f64,
    /// watos's worst absolute error on Korthikanti Table 5.
    pub table5_worst_abs_error: f64,
    /// Worst absolute error over Table 1 rows without pipelining.
    pub table1_unpipelined_worst_abs_error: f64,
    /// Lowest and highest signed error over pipelined Table 1 rows.
    pub table1_pipelined_signed_error: [f64; 2],
}

impl PeerComparison {
    /// Two sentences for the report.
    pub fn text(&self) -> String {
        let c = &self.calculon;
        format!(
            "Calculon (Isaev et al., SC'23) predicts Korthikanti Table 5 within {:.2}% mean ({:.2}% worst); \
watos {:.2}% mean ({:.2}% worst).\n\
Calculon predicts Megatron Table 1 within {:.0}% without pipelining but {:.0}-{:.0}% optimistic with it; \
watos within {:.1}% without pipelining and {:+.1}% to {:+.1}% with it (negative = optimistic).",
            c.table5_mean_abs_error_pct,
            c.table5_worst_abs_error_pct,
            100.0 * self.table5_mean_abs_error,
            100.0 * self.table5_worst_abs_error,
            c.table1_unpipelined_within_pct,
            c.table1_pipelined_optimistic_pct[0],
            c.table1_pipelined_optimistic_pct[1],
            100.0 * self.table1_unpipelined_worst_abs_error,
            100.0 * self.table1_pipelined_signed_error[0],
            100.0 * self.table1_pipelined_signed_error[1],
        )
    }
}

/// The whole validation: every row, per-group statistics, the thresholds and whether they hold.
#[derive(Debug, Clone, Serialize)]
pub struct Validation {
    /// Name of the hardware every run used.
    pub hardware: String,
    /// Every published figure beside its prediction.
    pub rows: Vec<Row>,
    /// Per-group statistics, in [`Group::ALL`] order.
    pub groups: Vec<GroupSummary>,
    /// Micro-batch and interleaving chosen per Megatron Table 1 row.
    pub table1_knobs: Vec<Table1Knobs>,
    /// Why those were chosen rather than given.
    pub table1_knobs_note: &'static str,
    /// The bounds in force.
    pub thresholds: Thresholds,
    /// The bounds applied.
    pub checks: Vec<Check>,
    /// watos beside Calculon.
    pub calculon: PeerComparison,
    /// All checks hold.
    pub passed: bool,
}

impl Validation {
    /// The summary of `group`, if it has rows.
    pub fn group(&self, group: Group) -> Option<&GroupSummary> {
        self.groups.iter().find(|g| g.group == group)
    }

    /// Rows of `group`, in data-file order.
    pub fn rows_of(&self, group: Group) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(move |r| r.group == group)
    }
}

/// Runs the validation on the embedded measurements.
///
/// ```
/// let v = watos::validate::run().unwrap();
/// assert!(v.passed, "{:#?}", v.checks);
/// ```
pub fn run() -> Result<Validation, Error> {
    run_on(&Measurements::embedded()?)
}

/// Runs the validation on `data` (the embedded model and hardware files, any measurements).
pub fn run_on(data: &Measurements) -> Result<Validation, Error> {
    let hardware = load_hardware(&data.hardware)?;
    let (table1_rows, knobs) = megatron_table1(data, &hardware)?;
    let korthikanti_rows = korthikanti(data, &hardware)?;
    let rows: Vec<Row> = table1_rows.into_iter().chain(korthikanti_rows).collect();
    let groups: Vec<GroupSummary> = Group::ALL
        .iter()
        .filter_map(|g| GroupSummary::of(*g, &rows))
        .collect();
    let checks = checks(&rows, &groups);
    let passed = checks.iter().all(|c| c.passed);
    let calculon = peer_comparison(data, &rows, &groups);
    Ok(Validation {
        hardware: hardware.name.clone(),
        rows,
        groups,
        table1_knobs: knobs,
        table1_knobs_note: TABLE1_KNOBS_NOTE,
        thresholds: THRESHOLDS,
        checks,
        calculon,
        passed,
    })
}

fn checks(rows: &[Row], groups: &[GroupSummary]) -> Vec<Check> {
    let step: Vec<&Row> = rows.iter().filter(|r| r.group.is_step_time()).collect();
    let mean_step = step.iter().map(|r| r.abs_error).sum::<f64>() / step.len() as f64;
    let worst = |g: &[&Row]| g.iter().map(|r| r.abs_error).fold(f64::NAN, f64::max);
    let memory: Vec<&Row> = rows
        .iter()
        .filter(|r| r.group == Group::KorthikantiFigure1)
        .collect();
    let layer_mean = groups
        .iter()
        .find(|g| g.group == Group::KorthikantiTable4)
        .map_or(f64::NAN, |g| g.mean_abs_error);
    // A run that was measured cannot have overflowed memory; an evaluator that says it does is wrong.
    let infeasible = rows.iter().filter(|r| !r.feasible).count();
    vec![
        Check::at_most(
            "mean |error| of step time, Megatron Table 1 + Korthikanti Table 5",
            mean_step,
            MAX_MEAN_STEP_TIME_ERROR,
        ),
        Check::at_most(
            "worst |error| of any step time",
            worst(&step),
            MAX_STEP_TIME_ERROR,
        ),
        Check::at_most(
            "worst |error| of Figure 1 memory",
            worst(&memory),
            MAX_MEMORY_ERROR,
        ),
        Check::at_most(
            "mean |error| of Table 4 layer times",
            layer_mean,
            MAX_MEAN_LAYER_TIME_ERROR,
        ),
        Check::count_at_most(
            "published runs the evaluator finds infeasible",
            infeasible,
            0,
        ),
    ]
}

fn peer_comparison(data: &Measurements, rows: &[Row], groups: &[GroupSummary]) -> PeerComparison {
    let t5 = groups.iter().find(|g| g.group == Group::KorthikantiTable5);
    let pp_of = |label: &str| {
        data.megatron
            .rows
            .iter()
            .find(|r| table1_label(r) == label)
            .map_or(1, |r| r.pp)
    };
    let (mut unpiped_worst, mut lo, mut hi) = (0.0f64, f64::INFINITY, f64::NEG_INFINITY);
    for r in rows.iter().filter(|r| r.group == Group::MegatronTable1) {
        if pp_of(&r.label) > 1 {
            lo = lo.min(r.signed_error);
            hi = hi.max(r.signed_error);
        } else {
            unpiped_worst = unpiped_worst.max(r.abs_error);
        }
    }
    PeerComparison {
        calculon: data.calculon.clone(),
        table5_mean_abs_error: t5.map_or(f64::NAN, |g| g.mean_abs_error),
        table5_worst_abs_error: t5.map_or(f64::NAN, |g| g.worst_abs_error),
        table1_unpipelined_worst_abs_error: unpiped_worst,
        table1_pipelined_signed_error: [lo, hi],
    }
}
