//! watos plans the training of large language models on wafer-scale chips.
//!
//! Dependencies point down: [`workload`] (models as layer kinds) and [`hardware`] (wafer or
//! cluster, fabric, area) -> [`instance`] -> [`plan`] -> [`placement`] -> [`cost`] (the evaluator and
//! its stage model, the single source of truth) -> [`formulation`] (MIP encodings built from the
//! stage model) -> [`solution`] -> [`strategy`] (the searches) -> [`validate`] -> [`report`] ->
//! [`cli`].

pub mod compare;
pub mod cost;
pub mod error;
pub mod explore;
pub mod formulation;
pub mod hardware;
pub mod input;
pub mod instance;
pub mod placement;
pub mod plan;
pub mod solution;
pub mod strategy;
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
