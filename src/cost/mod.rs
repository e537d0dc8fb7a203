//! The evaluator: plan x instance -> step time with its breakdown, memory per device, throughput,
//! MFU/HFU and feasibility. It is the single source of truth: every plan watos prints was scored
//! here. This module knows nothing of the MIP; the MIP reuses its stage model ([`stage`]) with
//! linear expressions for numbers.
//!
//! `work` (parameters, FLOPs) and `memory` (state bytes, activation shape) -> `layers` (one file per
//! layer kind) and `kernels` (rooflines) -> `config` (per-configuration coefficients) -> `comm`
//! (collectives on a placement or at the best any placement allows) and `schedule` -> `stage` (the
//! stage model, generic over [`Scalar`]) -> `bound` (cheap bounds) and `evaluate`.

pub mod bound;
pub mod comm;
pub mod config;
mod evaluate;
pub mod kernels;
pub mod layers;
pub mod memory;
mod report;
mod scalar;
pub mod schedule;
pub mod stage;
pub mod streaming;
pub mod work;

pub use comm::{CommCosts, IdealComm};
pub use config::ConfigCosts;
pub use evaluate::{evaluate, evaluate_ideal, evaluate_with, plan_error, stage_counts, stage_vars};
pub use report::{
    Breakdown, Evaluation, LayerReport, MemorySummary, StageMemory, StageParts, StageReport,
    Violation, ViolationKind, CAPACITY_TOLERANCE,
};
pub use scalar::Scalar;
pub use schedule::Schedule;
