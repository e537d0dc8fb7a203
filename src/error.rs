//! Errors that explain themselves: every error names what was wrong, where, and what would be valid.

use miette::{Diagnostic, NamedSource, SourceSpan};

/// A problem with one field of one input file, located to its line.
///
/// Rendered by `miette` with the offending line underlined.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{file}:{line}: `{field}`: {message}")]
#[diagnostic(code(watos::input))]
pub struct InputError {
    /// Path of the file as the user gave it.
    pub file: String,
    /// 1-based line of the field (or of the parse error).
    pub line: usize,
    /// Dotted path of the field, e.g. `wafer.d2d_bw_tb_per_s` or `stage[2].layers`.
    pub field: String,
    /// What is wrong.
    pub message: String,
    #[source_code]
    pub src: NamedSource<String>,
    #[label("here")]
    pub span: SourceSpan,
    /// What would be valid.
    #[help]
    pub help: Option<String>,
}

/// Every way watos can fail.
///
/// ```
/// let err = watos::Error::invalid("--tp", "3 does not divide the 96 attention heads", "valid: 1, 2, 4, 8");
/// assert!(err.to_string().contains("--tp"));
/// ```
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read {path}: {reason}")]
    #[diagnostic(code(watos::io))]
    Io {
        path: String,
        reason: String,
        #[help]
        help: Option<String>,
    },
    /// A field of a file is malformed or inconsistent.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Input(Box<InputError>),
    /// A command-line value or a combination of inputs is inconsistent.
    #[error("{what}: {message}")]
    #[diagnostic(code(watos::invalid))]
    Invalid {
        what: String,
        message: String,
        #[help]
        help: Option<String>,
    },
    /// No plan in the search space fits: what does not fit and by how much.
    #[error("no feasible plan: {0}")]
    #[diagnostic(code(watos::infeasible))]
    Infeasible(Box<Infeasibility>),
    /// A time or node limit ran out before the first feasible plan was found.
    #[error("no plan yet: {0}")]
    #[diagnostic(
        code(watos::limit),
        help("give the solver more time (--time-limit) or nodes (--node-limit)")
    )]
    Limit(String),
    /// The MIP solver failed in a way that is not the user's doing.
    #[error("solver: {0}")]
    #[diagnostic(code(watos::solver))]
    Solver(String),
}

impl Error {
    /// An inconsistent command-line value or input combination.
    pub fn invalid(
        what: impl Into<String>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> Self {
        let help = help.into();
        Error::Invalid {
            what: what.into(),
            message: message.into(),
            help: (!help.is_empty()).then_some(help),
        }
    }
}

/// Why no plan fits, with the figures.
///
/// ```
/// let i = watos::error::Infeasibility {
///     model: "GPT-3".into(), hardware: "w".into(), healthy_devices: 4, dram_total_bytes: 280e9,
///     closest: None, reason: watos::error::InfeasibleReason::Aggregate,
/// };
/// assert!(i.to_string().contains("does not fit"));
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Infeasibility {
    pub model: String,
    pub hardware: String,
    pub healthy_devices: u32,
    pub dram_total_bytes: f64,
    /// The configuration that comes closest to fitting, and what it needs.
    pub closest: Option<Shortfall>,
    pub reason: InfeasibleReason,
}

/// What rules the plans out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InfeasibleReason {
    /// Every configuration needs more memory, summed over its pipeline, than its devices have.
    Aggregate,
    /// Some configurations fit in aggregate, but in each some device overflows even with
    /// activations and optimizer state parked on other stages.
    PerDevice,
}

/// The least DRAM a configuration needs summed over one pipeline (one tensor-parallel rank of one
/// replica), against what its devices have (`cost::bound::memory_need`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct MemoryNeed {
    pub weights_bytes: f64,
    pub grads_bytes: f64,
    pub optimizer_bytes: f64,
    pub activations_bytes: f64,
    pub workspace_bytes: f64,
    /// DRAM of the pipeline's devices, plus the SRAM that could hold weights.
    pub available_bytes: f64,
}

impl MemoryNeed {
    /// Everything needed.
    pub fn total_bytes(&self) -> f64 {
        self.weights_bytes
            + self.grads_bytes
            + self.optimizer_bytes
            + self.activations_bytes
            + self.workspace_bytes
    }

    /// Whether the aggregate fits (a necessary condition: parking moves bytes between stages but
    /// cannot create room).
    pub fn fits(&self) -> bool {
        self.total_bytes() <= self.available_bytes
    }
}

/// The configuration that comes closest to fitting, and what it needs.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Shortfall {
    /// The configuration, as `D T P micro-batch` (and ZeRO-1).
    pub config: String,
    pub stages: u32,
    #[serde(flatten)]
    pub need: MemoryNeed,
}

impl std::fmt::Display for Infeasibility {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const GB: f64 = 1e9;
        write!(
            f,
            "{} does not fit {} ({} healthy devices, {:.1} GB of DRAM in all)",
            self.model,
            self.hardware,
            self.healthy_devices,
            self.dram_total_bytes / GB
        )?;
        if let Some(s) = &self.closest {
            let (n, need) = (&s.need, s.need.total_bytes());
            write!(
                f,
                ": the most frugal plan with {} (full recomputation, activations on the stages that hold the fewest micro-batches) needs {:.1} GB per tensor-parallel rank across its {}: weights {:.1}, gradients {:.1}, optimizer {:.1}, activations {:.1}, workspace {:.1}; its devices have {:.1} GB of DRAM (and SRAM for weights): short by {:.1} GB ({:.0}%). DRAM capacity is what runs out",
                s.config,
                need / GB,
                if s.stages == 1 { "one stage".to_string() } else { format!("{} stages", s.stages) },
                n.weights_bytes / GB,
                n.grads_bytes / GB,
                n.optimizer_bytes / GB,
                n.activations_bytes / GB,
                n.workspace_bytes / GB,
                n.available_bytes / GB,
                (need - n.available_bytes) / GB,
                100.0 * (need / n.available_bytes - 1.0),
            )?;
        }
        if self.reason == InfeasibleReason::PerDevice {
            f.write_str("; some configurations fit in aggregate, but in each one some device overflows even with activations and optimizer state parked on other stages")?;
        }
        Ok(())
    }
}

/// Convenience alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A field-level validation failure, before it is located in a file.
///
/// `field` is a dotted path (`wafer.rows`, `stage[1].recompute.full`); the loader turns it into a
/// file, line and span.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
    pub help: String,
}

impl FieldError {
    /// A failure of `field` with what is wrong and what would be valid.
    ///
    /// ```
    /// let e = watos::error::FieldError::new("heads", "must divide hidden (12288)", "e.g. 96");
    /// assert_eq!(e.field, "heads");
    /// ```
    pub fn new(
        field: impl Into<String>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
            help: help.into(),
        }
    }

    /// The same failure seen from an enclosing table (`die` + `peak_tflops` -> `die.peak_tflops`).
    pub fn within(mut self, prefix: &str) -> Self {
        self.field = format!("{prefix}.{}", self.field);
        self
    }
}

/// Shorthand for checks: `ensure(x > 0.0, || FieldError::new(..))`.
pub(crate) fn ensure(ok: bool, err: impl FnOnce() -> FieldError) -> Result<(), FieldError> {
    if ok {
        Ok(())
    } else {
        Err(err())
    }
}

/// Checks that a number read from a file is finite and positive.
pub(crate) fn positive(field: &str, value: f64, what: &str) -> Result<(), FieldError> {
    ensure(value.is_finite() && value > 0.0, || {
        FieldError::new(
            field,
            format!("is {value}, must be a positive number"),
            what,
        )
    })
}

/// Checks that a number read from a file is finite and not negative.
pub(crate) fn non_negative(field: &str, value: f64, what: &str) -> Result<(), FieldError> {
    ensure(value.is_finite() && value >= 0.0, || {
        FieldError::new(field, format!("is {value}, must be zero or positive"), what)
    })
}
