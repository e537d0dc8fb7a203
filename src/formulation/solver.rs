//! Solving a good_lp model with HiGHS while keeping what good_lp does not expose: the MIP dual
//! bound, the node count and the exact status.

use good_lp::solvers::highs::HighsProblem;
use highs::HighsModelStatus;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::error::Error;

/// Set by a Ctrl-C handler (the command line installs one): a running MIP stops at HiGHS's next
/// interrupt check and searches return the best plan so far with its proven gap.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Whether the user asked the search to stop.
///
/// ```
/// assert!(!watos::formulation::interrupted());
/// ```
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// HiGHS's MIP interrupt callback (`kHighsCallbackMipInterrupt`): asks HiGHS to stop when the user
/// did. HiGHS polls it between nodes, so Ctrl-C does not wait for a long MIP to end.
unsafe extern "C" fn on_callback(
    kind: std::os::raw::c_int,
    _message: *const std::os::raw::c_char,
    _out: *const highs_sys::HighsCallbackDataOut,
    input: *mut highs_sys::HighsCallbackDataIn,
    _user: *mut std::os::raw::c_void,
) {
    if kind == MIP_INTERRUPT as std::os::raw::c_int && interrupted() && !input.is_null() {
        // SAFETY: HiGHS passes a valid, exclusive pointer to its input data for the callback's
        // duration (checked non-null above).
        unsafe { (*input).user_interrupt = 1 };
    }
}

/// `kHighsCallbackMipInterrupt` in HiGHS's C API.
const MIP_INTERRUPT: highs_sys::HighsInt = 6;

fn install_interrupt(model: &mut highs::Model) {
    let ptr = model.as_mut_ptr();
    // SAFETY: `ptr` is the live model; the callback is a plain function and takes no user data,
    // so nothing it reads can dangle. A failure only loses Ctrl-C's promptness.
    unsafe {
        highs_sys::Highs_setCallback(ptr, Some(on_callback), std::ptr::null_mut());
        highs_sys::Highs_startCallback(ptr, MIP_INTERRUPT);
    }
}

/// How hard to solve. Tests use `node_limit` and one thread so that results repeat; users get
/// time limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SolverOptions {
    /// Relative gap at which HiGHS stops (`mip_rel_gap`).
    pub gap: f64,
    /// HiGHS threads. The count is fixed per OS thread by the first solve on it.
    pub threads: u32,
    pub time_limit_s: Option<f64>,
    pub node_limit: Option<u64>,
    pub seed: i32,
    /// Solve the LP relaxation only (integrality dropped): a bound in milliseconds.
    pub lp_relaxation: bool,
}

impl Default for SolverOptions {
    fn default() -> Self {
        SolverOptions {
            gap: 0.01,
            threads: 1,
            time_limit_s: None,
            node_limit: None,
            seed: 0,
            lp_relaxation: false,
        }
    }
}

/// When a search must stop: the user's time limit from its start, or Ctrl-C. Every strategy
/// asks this one type, so a limit means the same everywhere.
///
/// ```
/// use watos::formulation::{Deadline, SolverOptions};
/// let d = Deadline::of(std::time::Instant::now(), &SolverOptions { time_limit_s: Some(60.0), ..Default::default() });
/// assert!(!d.passed());
/// let o = d.limit(&SolverOptions::default());
/// assert!(o.time_limit_s.is_some_and(|t| t <= 60.0));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Deadline(Option<Instant>);

impl Deadline {
    /// The deadline of a search started at `start` under `opts`' time limit (none without one).
    pub fn of(start: Instant, opts: &SolverOptions) -> Self {
        Deadline(
            opts.time_limit_s
                .map(|t| start + Duration::from_secs_f64(t.clamp(0.0, 1e9))),
        )
    }

    /// The time limit ran out, or the user pressed Ctrl-C.
    pub fn passed(&self) -> bool {
        interrupted() || self.0.is_some_and(|d| Instant::now() >= d)
    }

    /// `opts` with its time limit cut to what is left (at least 10 ms, so HiGHS still returns).
    pub fn limit(&self, opts: &SolverOptions) -> SolverOptions {
        let mut o = *opts;
        if let Some(d) = self.0 {
            o.time_limit_s = Some(
                d.saturating_duration_since(Instant::now())
                    .as_secs_f64()
                    .max(0.01),
            );
        }
        o
    }
}

/// What one HiGHS solve returned.
#[derive(Debug, Clone, PartialEq)]
pub struct RawResult {
    /// Column values of the best solution found, in the order variables were added.
    pub columns: Option<Vec<f64>>,
    /// Objective of that solution.
    pub objective: f64,
    /// Proven lower bound on the objective (for an infeasible or cut-off model: +inf).
    pub dual_bound: f64,
    pub status: RawStatus,
    pub nodes: u64,
}

/// Why HiGHS stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawStatus {
    /// Optimal within the gap.
    Optimal,
    /// No solution below the cutoff exists (or none at all).
    Infeasible,
    /// A time or node limit stopped the search.
    Limit,
}

/// Solves a model built with good_lp. `cutoff`: only solutions below it are of interest (HiGHS
/// prunes with it; a model with none reports `Infeasible` and a dual bound of `cutoff`).
pub fn solve(
    problem: HighsProblem,
    opts: &SolverOptions,
    cutoff: Option<f64>,
) -> Result<RawResult, Error> {
    solve_tuned(problem, opts, cutoff, &[])
}

/// [`solve`] with integer HiGHS options a formulation sets for itself (name, value), such as
/// presolve rules that cost more than they save on its structure.
pub fn solve_tuned(
    problem: HighsProblem,
    opts: &SolverOptions,
    cutoff: Option<f64>,
    tuning: &[(&str, i32)],
) -> Result<RawResult, Error> {
    let mut model = problem
        .try_into_inner()
        .map_err(|e| Error::Solver(format!("building the model: {e}")))?;
    model.make_quiet();
    install_interrupt(&mut model);
    let set = |m: &mut highs::Model, name: &str, r: Result<(), highs::TrySetOptionError>| {
        let _ = m;
        r.map_err(|_| Error::Solver(format!("HiGHS rejected option {name}")))
    };
    for (name, value) in tuning {
        let r = model.try_set_option(*name, *value);
        set(&mut model, name, r)?;
    }
    let r = model.try_set_option("threads", opts.threads.max(1) as i32);
    set(&mut model, "threads", r)?;
    let r = model.try_set_option("random_seed", opts.seed);
    set(&mut model, "random_seed", r)?;
    let r = model.try_set_option("mip_rel_gap", opts.gap.max(0.0));
    set(&mut model, "mip_rel_gap", r)?;
    if let Some(t) = opts.time_limit_s {
        let r = model.try_set_option("time_limit", t.max(0.0));
        set(&mut model, "time_limit", r)?;
    }
    if let Some(n) = opts.node_limit {
        let r = model.try_set_option("mip_max_nodes", n.min(i32::MAX as u64) as i32);
        set(&mut model, "mip_max_nodes", r)?;
    }
    if opts.lp_relaxation {
        // Small LPs solve faster than presolve can shrink them.
        let r = model.try_set_option("solve_relaxation", true);
        set(&mut model, "solve_relaxation", r)?;
        let r = model.try_set_option("presolve", "off");
        set(&mut model, "presolve", r)?;
    }
    if let Some(c) = cutoff.filter(|c| c.is_finite() && !opts.lp_relaxation) {
        let r = model.try_set_option("objective_bound", c);
        set(&mut model, "objective_bound", r)?;
    }
    let solved = model
        .try_solve()
        .map_err(|e| Error::Solver(format!("HiGHS failed: {e:?}")))?;
    let status = solved.status();
    let has_solution = matches!(
        solved.primal_solution_status(),
        highs::HighsSolutionStatus::Feasible
    );
    let objective = if has_solution {
        solved.objective_value()
    } else {
        f64::INFINITY
    };
    let reported_bound = solved
        .double_info_value(c"mip_dual_bound")
        .unwrap_or(f64::NEG_INFINITY);
    let nodes = node_count(&solved);
    let (status, dual_bound) = match status {
        // The LP's optimum is its bound (HiGHS reports no MIP dual bound for it).
        HighsModelStatus::Optimal if opts.lp_relaxation => (RawStatus::Optimal, objective),
        HighsModelStatus::Optimal => (
            RawStatus::Optimal,
            if reported_bound.is_finite() {
                reported_bound.min(objective)
            } else {
                objective
            },
        ),
        HighsModelStatus::Infeasible
        | HighsModelStatus::UnboundedOrInfeasible
        | HighsModelStatus::ObjectiveBound => {
            // Nothing below the cutoff. HiGHS may have stopped once its bound came within the gap
            // of the cutoff, so only that much is proven unless it reports more.
            let proven = match cutoff {
                Some(c) if reported_bound.is_finite() => {
                    reported_bound.max(c * (1.0 - opts.gap.max(0.0)))
                }
                Some(c) => c * (1.0 - opts.gap.max(0.0)),
                None => f64::INFINITY,
            };
            (RawStatus::Infeasible, proven)
        }
        HighsModelStatus::ReachedTimeLimit
        | HighsModelStatus::ReachedIterationLimit
        | HighsModelStatus::ReachedSolutionLimit
        | HighsModelStatus::ReachedInterrupt
        | HighsModelStatus::ReachedMemoryLimit => {
            // With a cutoff and no solution, the bound is still what HiGHS proved.
            (RawStatus::Limit, reported_bound)
        }
        other => {
            return Err(Error::Solver(format!(
                "HiGHS stopped with status {other:?}"
            )))
        }
    };
    Ok(RawResult {
        columns: has_solution.then(|| solved.get_solution().columns().to_vec()),
        objective,
        dual_bound,
        status,
        nodes,
    })
}

/// `mip_node_count` is a 64-bit info value, which `int_info_value` refuses.
fn node_count(solved: &highs::SolvedModel) -> u64 {
    let mut value: i64 = 0;
    // SAFETY: the pointer is the live solved model; the name is a NUL-terminated key HiGHS knows
    // as a 64-bit info value, and `value` outlives the call.
    let status = unsafe {
        highs_sys::Highs_getInt64InfoValue(
            solved.as_ptr() as *mut _,
            c"mip_node_count".as_ptr(),
            &mut value,
        )
    };
    if status == 0 {
        value.max(0) as u64
    } else {
        0
    }
}
