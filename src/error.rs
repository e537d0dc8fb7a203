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
    /// No plan in the search space fits: the text says what does not fit and by how much.
    #[error("no feasible plan: {0}")]
    #[diagnostic(code(watos::infeasible))]
    Infeasible(String),
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
