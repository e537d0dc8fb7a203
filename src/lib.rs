//! watos plans the training of large language models on wafer-scale chips.
//!
//! The pipeline: [`workload`] (models) -> [`hardware`] (wafer template, area) -> [`plan`] ->
//! [`cost`] (the evaluator, single source of truth) -> `formulation` (MIP encodings) ->
//! `search` -> `report` -> `cli`.

pub mod cost;
pub mod error;
pub mod formulation;
pub mod hardware;
pub mod input;
pub mod instance;
pub mod plan;
pub mod search;
pub mod units;
pub mod validate;
pub mod workload;

pub use cost::{evaluate, Evaluation};
pub use error::{Error, Result};
pub use hardware::Hardware;
pub use instance::{Instance, Training};
pub use plan::Plan;
pub use workload::Model;
pub mod cli;
pub mod report;

/// The README's example, compiled and run as a test so that it cannot drift.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
