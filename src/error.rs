//! Errors that explain themselves: every error names what was wrong, where, and what would be valid.

use miette::{Diagnostic, SourceSpan};
use serde_json::{json, Value};

use crate::input::Excerpt;

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
    pub src: Excerpt,
    #[label("here")]
    pub span: SourceSpan,
    /// What would be valid.
    #[help]
    pub help: Option<String>,
    /// The problem inside the file this field names (an instance's `model` or `hardware`), shown
    /// beneath it. A list because that is what miette renders as nested diagnostics; at most one.
    #[related]
    pub cause: Vec<Error>,
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
    /// An output file could not be written.
    #[error("cannot write {path}: {reason}")]
    #[diagnostic(code(watos::write))]
    Write {
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

    /// The exit status this error ends the program with: 2 bad input (a file, a flag or their
    /// combination), 3 nothing fits, 1 anything else (solver, limits, writing output).
    ///
    /// ```
    /// assert_eq!(watos::Error::invalid("--tp", "3 does not divide 96", "").exit_code(), 2);
    /// assert_eq!(watos::Error::Solver("HiGHS".into()).exit_code(), 1);
    /// ```
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Io { .. } | Error::Input(_) | Error::Invalid { .. } => 2,
            Error::Infeasible(_) => 3,
            Error::Write { .. } | Error::Limit(_) | Error::Solver(_) => 1,
        }
    }

    /// What kind of error this is, as `--json` spells it.
    ///
    /// ```
    /// assert_eq!(watos::Error::Limit("no plan in 1 s".into()).kind(), "limit");
    /// ```
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Io { .. } => "io",
            Error::Write { .. } => "write",
            Error::Input(_) => "input",
            Error::Invalid { .. } => "invalid",
            Error::Infeasible(_) => "infeasible",
            Error::Limit(_) => "limit",
            Error::Solver(_) => "solver",
        }
    }

    /// The error as the object `--json` prints: `{"error": {"kind", "file", "line", "field",
    /// "message", "help"}}`, with `infeasibility` (the figures) when nothing fits and `cause` when
    /// a file named by an instance is what failed. Absent parts are `null`.
    ///
    /// ```
    /// let e = watos::Error::invalid("--tp", "3 does not divide the 96 heads", "valid: 1, 2, 4");
    /// let v = e.to_json();
    /// assert_eq!(v["error"]["kind"], "invalid");
    /// assert_eq!(v["error"]["field"], "--tp");
    /// assert!(v["error"]["file"].is_null());
    /// ```
    pub fn to_json(&self) -> Value {
        json!({ "error": self.json_body() })
    }

    fn json_body(&self) -> Value {
        let mut body = json!({
            "kind": self.kind(),
            "file": Value::Null,
            "line": Value::Null,
            "field": Value::Null,
            "message": self.to_string(),
            "help": Value::Null,
        });
        match self {
            Error::Io { path, help, .. } | Error::Write { path, help, .. } => {
                body["file"] = json!(path);
                body["help"] = json!(help);
            }
            Error::Input(e) => {
                body["file"] = json!(e.file);
                body["line"] = json!(e.line);
                body["field"] = json!(e.field);
                body["message"] = json!(e.message);
                body["help"] = json!(e.help);
                if let Some(cause) = e.cause.first() {
                    body["cause"] = cause.json_body();
                }
            }
            Error::Invalid {
                what,
                message,
                help,
            } => {
                body["field"] = json!(what);
                body["message"] = json!(message);
                body["help"] = json!(help);
            }
            Error::Infeasible(i) => {
                body["infeasibility"] = serde_json::to_value(i).unwrap_or(Value::Null);
            }
            Error::Limit(_) => {
                body["help"] =
                    json!("give the solver more time (--time-limit) or nodes (--node-limit)");
            }
            Error::Solver(_) => {}
        }
        body
    }
}

/// Why no plan fits, with the figures.
///
/// ```
/// let i = watos::error::Infeasibility {
///     model: "GPT-3".into(), hardware: "w".into(), healthy_devices: 4, dram_total_bytes: 280e9,
///     closest: None, reason: watos::error::InfeasibleReason::Aggregate, detail: None,
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
    /// What overflows in the plan that comes closest, when a strategy scored plans.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
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
    /// Some configurations fit in aggregate, but every plan a framework's rules allow (equal
    /// stages, one recomputation mode, nothing parked, its memory reserve) overflows some device.
    Rules,
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
        match self.reason {
            InfeasibleReason::Aggregate => {}
            InfeasibleReason::PerDevice => f.write_str("; some configurations fit in aggregate, but in each one some device overflows even with activations and optimizer state parked on other stages")?,
            InfeasibleReason::Rules => f.write_str("; some configurations fit in aggregate, but every plan the framework's rules allow (equal stages, one recomputation mode for all, nothing parked, its memory reserve kept free) overflows some device")?,
        }
        if let Some(d) = &self.detail {
            write!(f, "; {d}")?;
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
