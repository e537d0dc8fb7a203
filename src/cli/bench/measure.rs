//! One bench run: one instance solved by one formulation, with the figures that say where the time
//! went.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::cost::{evaluate_with, ConfigCosts};
use crate::error::Error;
use crate::formulation::monolithic::MonolithicMip;
use crate::formulation::{MipComm, SolverOptions, StageMip};
use crate::instance::Instance;
use crate::plan::{Config, Plan};
use crate::report::{fmt_gap, fmt_short_s, BenchRow};
use crate::solution::Solution;
use crate::strategy::monolithic::{self, DEFAULT_MAX_CANDIDATES};
use crate::strategy::space::Frontier;
use crate::strategy::{self, next_candidates, Observer, SearchOptions};

/// Solves `inst` (read from `path`) by the formulation `name` and measures it. Never fails: a run
/// without a plan is a row that says why.
pub(super) fn run(
    path: &Path,
    inst: &Instance,
    name: &str,
    solver: &SolverOptions,
    bar: &indicatif::ProgressBar,
) -> BenchRow {
    let file = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut row = BenchRow::new(
        &file,
        &inst.name,
        inst.fabric().healthy_count() as usize,
        name,
    );
    row.fabric = if inst.hardware.wafer.is_some() {
        "wafer"
    } else {
        "cluster"
    }
    .into();
    bar.set_message(format!("{file} {name}"));
    if name == "exhaustive" {
        super::child::exhaustive(path, solver, &mut row);
        return row;
    }
    let watch = Watch {
        start: Instant::now(),
        target: solver.gap,
        reached_s: Mutex::new(None),
        bar,
        label: format!("{file} {name}"),
    };
    let opts = SearchOptions {
        solver: *solver,
        local_search: true,
    };
    let solved = if name == "monolithic" {
        monolithic::solve_with(inst, &opts, &Default::default(), &watch)
            .map(|(sol, size)| (sol, Some((size.columns, size.rows))))
    } else {
        match strategy::by_name(name) {
            Some(s) => s.solve(inst, &opts, &watch).map(|sol| (sol, None)),
            None => Err(Error::invalid(
                "--formulation",
                format!("no formulation {name}"),
                strategy::NAMES.join(", "),
            )),
        }
    };
    match solved {
        Ok((sol, size)) => {
            fill(&mut row, inst, &sol, solver.gap, watch.reached());
            match size {
                Some((columns, rows)) => {
                    row.mip_columns = Some(columns);
                    row.mip_rows = Some(rows);
                    row.mip_build_s = Some(monolithic_build_s(inst));
                }
                None => {
                    let (columns, rows, build_s) = plan_mip(inst, &sol.plan);
                    row.mip_columns = Some(columns);
                    row.mip_rows = Some(rows);
                    row.mip_build_s = Some(build_s);
                }
            }
        }
        Err(e) => failed(&mut row, &e, watch.start.elapsed(), solver),
    }
    row
}

/// Watches a search: when the gap first reaches the target, and the incumbent and bound on the
/// progress bar.
struct Watch<'a> {
    start: Instant,
    target: f64,
    reached_s: Mutex<Option<f64>>,
    bar: &'a indicatif::ProgressBar,
    label: String,
}

impl Watch<'_> {
    fn reached(&self) -> Option<f64> {
        self.reached_s.lock().ok().and_then(|r| *r)
    }
}

impl Observer for Watch<'_> {
    fn status(&self, incumbent_s: f64, bound_s: f64) {
        if !(incumbent_s.is_finite() && incumbent_s > 0.0) {
            return;
        }
        let gap = (incumbent_s - bound_s.min(incumbent_s)) / incumbent_s;
        if gap <= self.target + 1e-12 {
            if let Ok(mut r) = self.reached_s.lock() {
                r.get_or_insert(self.start.elapsed().as_secs_f64());
            }
        }
        self.bar.set_message(format!(
            "{}: {} >= bound {}, gap {}",
            self.label,
            fmt_short_s(Some(incumbent_s)),
            fmt_short_s(Some(bound_s)),
            fmt_gap(gap)
        ));
    }
}

/// The row's figures from a solution. `reached_s`: when the watch saw the gap reach the target; a
/// search that reports no progress reached it when it returned, if it did.
fn fill(row: &mut BenchRow, inst: &Instance, sol: &Solution, target: f64, reached_s: Option<f64>) {
    row.status = sol.status.to_string();
    row.step_time_s = Some(sol.evaluation.step_time_s);
    row.lower_bound_s = Some(sol.lower_bound_s);
    row.gap = Some(sol.gap);
    row.solve_time_s = sol.solve_time_s;
    row.first_plan_s = sol.first_plan_s;
    row.target_gap_s = (sol.gap <= target + 1e-12)
        .then(|| reached_s.unwrap_or(sol.solve_time_s).min(sol.solve_time_s));
    row.nodes = Some(sol.nodes);
    row.configurations = Some(sol.configs.total);
    row.mips_solved = Some(sol.configs.solved);
    row.plan = Some(sol.plan.to_string());
    row.evaluate_s = evaluate_s(inst, &sol.plan);
}

/// Why a run found no plan, in the row.
fn failed(row: &mut BenchRow, e: &Error, elapsed: Duration, solver: &SolverOptions) {
    row.status = status_of(e, solver).into();
    row.solve_time_s = elapsed.as_secs_f64();
    row.message = Some(e.to_string());
}

/// A bench status for a run that ended in `e` (see [`BenchRow::status`]).
fn status_of(e: &Error, solver: &SolverOptions) -> &'static str {
    match e {
        Error::Limit(_) if solver.node_limit.is_some() => "node_limit",
        Error::Limit(_) => "time_limit",
        Error::Infeasible(_) => "infeasible",
        Error::Invalid { what, .. } if what == "--exhaustive" => "too_large",
        _ => "failed",
    }
}

/// Mean wall time of one evaluation of `plan` (its configuration's coefficients and placement
/// made once, as local search does).
fn evaluate_s(inst: &Instance, plan: &Plan) -> Option<f64> {
    let costs = ConfigCosts::new(inst, Config::of(plan));
    let placement = plan.placement(inst.fabric()).ok()?;
    let reps = 200;
    let start = Instant::now();
    for _ in 0..reps {
        std::hint::black_box(evaluate_with(inst, plan, &costs, &placement));
    }
    Some(start.elapsed().as_secs_f64() / reps as f64)
}

/// Columns, rows and build time of the MIP of `plan`'s configuration as the decomposition builds
/// it (communication at the best any placement allows). The build is timed from the
/// configuration's coefficients to the model handed to HiGHS, the fastest of three.
fn plan_mip(inst: &Instance, plan: &Plan) -> (usize, usize, f64) {
    let costs = ConfigCosts::new(inst, Config::of(plan));
    let mut size = (0, 0);
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let start = Instant::now();
        let mip = StageMip::new(&costs, MipComm::ideal(inst, &costs), None);
        best = best.min(start.elapsed().as_secs_f64());
        size = (mip.columns(), mip.rows());
    }
    (size.0, size.1, best)
}

/// Build time of the monolithic formulation's first MIP (the candidates with the least bounds, as
/// many as one MIP holds), timed as [`plan_mip`] times one configuration's.
fn monolithic_build_s(inst: &Instance) -> f64 {
    let mut frontier = Frontier::new(inst);
    let block = next_candidates(inst, &mut frontier, DEFAULT_MAX_CANDIDATES);
    let costs: Vec<&ConfigCosts> = block.iter().map(|c| &c.costs).collect();
    let start = Instant::now();
    std::hint::black_box(MonolithicMip::ideal(inst, &costs));
    start.elapsed().as_secs_f64()
}
