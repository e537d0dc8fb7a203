//! `watos explore`: which wafer to build. A design space (ranges of compute, SRAM, DRAM stacks,
//! D2D bandwidth, mesh shape and wafers, tied by the area model's budgets) is swept for one model
//! or a weighted mix; every design that could matter is solved by the solve engine and scored by
//! the evaluator, every other is skipped by a proven bound.
//!
//! - [`space`]: design space files and their points; [`budget`]: area, die edge and power of one.
//! - [`sweep`]: the sweep of one slice of a space (all of it, or `--shard I/N`), in parallel and
//!   pruned by bounds; it returns a [`Slice`].
//! - [`rules`]: which designs a report needs; a design is skipped only when solved designs
//!   already beat its bound for every answer, so the answers do not depend on the order of the
//!   sweep, on the thread count, or on how the space was sliced.
//! - [`answer`]: the report built from slices (one for a single run, several for `watos merge`):
//!   best designs with what binds them, the Pareto front, the best design per value of each
//!   range, sensitivities; [`plot`]: its SVGs.
//! - [`mip`]: the co-exploration MIP, one model choosing the design and the plan together.

pub mod answer;
pub mod budget;
pub mod mip;
pub mod plot;
pub mod rules;
pub mod space;
pub mod sweep;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::cost::Evaluation;
use crate::instance::{Limits, Training};
use crate::plan::Plan;
use crate::solution::Solution;
use crate::workload::Model;

pub use answer::Report;
pub use budget::Budget;
pub use space::{Design, DesignSpace};
pub use sweep::sweep;

/// One model with its training setup and its share of the mix.
#[derive(Debug, Clone)]
pub struct Workload {
    pub name: String,
    pub model: Model,
    pub training: Training,
    pub limits: Limits,
    /// Share of the mix's training FLOPs (normalised over the mix).
    pub weight: f64,
    /// The file it came from.
    pub path: Option<PathBuf>,
}

/// How a sweep runs and what its report holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExploreOptions {
    /// Gap the sweep solves every design to.
    pub coarse_gap: f64,
    /// Gap the designs a report shows are solved to again.
    pub gap: f64,
    /// Pruning tolerance: a design is skipped when its bound cannot beat the solved designs by
    /// more than this share, so the best design reported is within it of the best of the space
    /// (as every coarse solve is within the coarse gap). 0: skipped only when strictly beaten,
    /// and the report of merged slices equals a single run's.
    #[serde(default)]
    pub prune_gap: f64,
    /// Rows of the best-designs table.
    pub top: usize,
    /// HiGHS random seed.
    pub seed: i32,
    /// Whether plans may recompute activations.
    pub recompute: bool,
    /// Sensitivities of the best design (ten solves per model).
    pub sensitivity: bool,
}

impl Default for ExploreOptions {
    fn default() -> Self {
        ExploreOptions {
            coarse_gap: 0.05,
            gap: 0.01,
            prune_gap: 0.05,
            top: 10,
            seed: 0,
            recompute: true,
            sensitivity: true,
        }
    }
}

/// One model's share of a mix, as a report names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadInfo {
    pub name: String,
    pub weight: f64,
    /// Model FLOPs of one step (forward and backward, no recomputation).
    pub flops_per_step: f64,
    pub tokens_per_step: f64,
}

/// What solving one model on one design found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// Step time of the best plan found (infinite, `null` in JSON, when no plan fits).
    #[serde(with = "inf")]
    pub step_time_s: f64,
    /// Proven lower bound over every plan (infinite when none fits).
    #[serde(with = "inf")]
    pub lower_bound_s: f64,
    pub tokens_per_s: f64,
    pub mfu: f64,
    pub status: String,
    /// Where the step goes and what is full, for "what binds".
    pub shares: Shares,
    /// The plan (kept for the designs a report shows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
    /// The plan in one line.
    pub plan_text: String,
}

/// The step time's parts as fractions of it, and how full the memories are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Shares {
    pub compute: f64,
    pub recompute: f64,
    /// DRAM traffic not hidden under math, and the optimizer step (streaming state).
    pub dram_bandwidth: f64,
    /// Tensor-parallel, pipeline, data-parallel and parking transfers over D2D links.
    pub d2d: f64,
    /// Pipeline fill, drain and waiting.
    pub bubble: f64,
    /// Peak DRAM used over capacity.
    pub dram_used: f64,
}

impl Outcome {
    /// No plan fits.
    pub fn infeasible(lower_bound_s: f64) -> Self {
        Outcome {
            step_time_s: f64::INFINITY,
            lower_bound_s,
            tokens_per_s: 0.0,
            mfu: 0.0,
            status: "infeasible".into(),
            shares: Shares::default(),
            plan: None,
            plan_text: "no plan fits".into(),
        }
    }

    /// What a solve found.
    pub fn of(sol: &Solution) -> Self {
        let e = &sol.evaluation;
        Outcome {
            step_time_s: e.step_time_s,
            lower_bound_s: sol.lower_bound_s,
            tokens_per_s: e.tokens_per_s,
            mfu: e.mfu,
            status: sol.status.to_string(),
            shares: Shares::of(e),
            plan: Some(sol.plan.clone()),
            plan_text: sol.plan.to_string(),
        }
    }

    /// Whether a plan was found.
    pub fn feasible(&self) -> bool {
        self.step_time_s.is_finite()
    }
}

impl Shares {
    /// The shares of an evaluation.
    pub fn of(e: &Evaluation) -> Self {
        let b = &e.breakdown;
        let step = e.step_time_s.max(f64::MIN_POSITIVE);
        let dram_used = e
            .memory
            .stages
            .iter()
            .map(|s| s.dram_used_bytes / s.dram_capacity_bytes.max(1.0))
            .fold(0.0, f64::max);
        Shares {
            compute: b.compute_s / step,
            recompute: b.recompute_s / step,
            dram_bandwidth: (b.dram_s + b.optimizer_s) / step,
            d2d: (b.tp_comm_s + b.pp_comm_s + b.dp_comm_s + b.remote_dram_s) / step,
            bubble: b.bubble_s / step,
            dram_used,
        }
    }
}

/// Model FLOP/s per wafer: the score of one model on one design.
pub(crate) fn rate(w: &WorkloadInfo, step_time_s: f64, wafers: u32) -> f64 {
    if step_time_s.is_finite() && step_time_s > 0.0 {
        w.flops_per_step / (step_time_s * f64::from(wafers))
    } else {
        0.0
    }
}

/// The mix's score from each model's rate: the model FLOP/s per wafer of the whole mix when each
/// model gets its weight's share of the FLOPs (`1 / sum w_i / rate_i`, the weighted harmonic
/// mean); 0 when some model does not fit.
///
/// ```
/// use watos::explore::mix_score;
/// assert_eq!(mix_score(&[1.0], &[5.0]), 5.0);
/// // Half the FLOPs at 1, half at 3: 1 / (0.5 + 0.5 / 3) = 1.5.
/// assert!((mix_score(&[0.5, 0.5], &[1.0, 3.0]) - 1.5).abs() < 1e-12);
/// assert_eq!(mix_score(&[0.5, 0.5], &[1.0, 0.0]), 0.0);
/// ```
pub fn mix_score(weights: &[f64], rates: &[f64]) -> f64 {
    let total: f64 = weights.iter().sum();
    let mut inverse = 0.0;
    for (w, r) in weights.iter().zip(rates) {
        if *r <= 0.0 {
            return 0.0;
        }
        inverse += w / total / r;
    }
    if inverse > 0.0 {
        1.0 / inverse
    } else {
        0.0
    }
}

/// Serde for a step time that may be infinite (no plan fits): JSON has no infinity, so it is
/// written as `null` and read back as infinity.
pub(crate) mod inf {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else {
            s.serialize_none()
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::INFINITY))
    }

    /// The same for a list.
    pub mod vec {
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(v: &[f64], s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(v.iter().map(|x| x.is_finite().then_some(*x)))
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
            let v = Vec::<Option<f64>>::deserialize(d)?;
            Ok(v.into_iter().map(|x| x.unwrap_or(f64::INFINITY)).collect())
        }
    }
}
