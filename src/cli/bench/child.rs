//! Exhaustive enumeration in a child process (`watos solve --exhaustive --json`), stopped at the
//! time limit. Enumeration checks no clock: once started in this process it would run to its end
//! and hold a core while the next runs are timed. A child can be stopped; its figures come back as
//! the JSON object `solve --json` prints.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::formulation::SolverOptions;
use crate::plan::Plan;
use crate::report::BenchRow;

/// Time a child gets beyond the time limit to load its instance and print its answer.
const GRACE_S: f64 = 2.0;

/// Enumerates the instance at `path` in a child process and fills `row` with what it found, or
/// with why it found nothing.
pub(super) fn exhaustive(path: &Path, solver: &SolverOptions, row: &mut BenchRow) {
    let start = Instant::now();
    let outcome = run_child(path, solver);
    row.solve_time_s = start.elapsed().as_secs_f64();
    match outcome {
        Ok(Some(v)) => read_answer(&v, solver, row),
        Ok(None) => {
            row.status = "time_limit".into();
            row.message = Some("the enumeration did not finish within the time limit".into());
        }
        Err(reason) => {
            row.status = "failed".into();
            row.message = Some(reason);
        }
    }
}

/// The child's JSON answer, `None` if it was stopped at the time limit.
fn run_child(path: &Path, solver: &SolverOptions) -> Result<Option<Value>, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the watos binary: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.arg("solve")
        .arg(path)
        .args(["--exhaustive", "--json"])
        .args(["--gap", &solver.gap.to_string()])
        .args(["--threads", &solver.threads.to_string()]);
    if let Some(t) = solver.time_limit_s {
        cmd.args(["--time-limit", &t.to_string()]);
    }
    if let Some(n) = solver.node_limit {
        cmd.args(["--node-limit", &n.to_string()]);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start `watos solve --exhaustive`: {e}"))?;
    // Read while the child runs: a plan's JSON can outgrow the pipe's buffer.
    let stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut out) = stdout {
            let _ = out.read_to_string(&mut text);
        }
        text
    });
    let deadline = solver
        .time_limit_s
        .map(|t| Instant::now() + Duration::from_secs_f64(t + GRACE_S));
    let mut stopped = false;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if deadline.is_some_and(|d| Instant::now() >= d) => {
                let _ = child.kill();
                let _ = child.wait();
                stopped = true;
                break;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("waiting for `watos solve --exhaustive`: {e}"));
            }
        }
    }
    let text = reader.join().unwrap_or_default();
    if stopped {
        return Ok(None);
    }
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| format!("`watos solve --exhaustive` printed no JSON answer: {e}"))
}

/// Fills `row` from `solve --json`'s object: a solution, or `{"error": ...}`.
fn read_answer(v: &Value, solver: &SolverOptions, row: &mut BenchRow) {
    if let Some(err) = v.get("error") {
        let kind = err["kind"].as_str().unwrap_or("");
        row.status = match kind {
            "limit" if solver.node_limit.is_some() => "node_limit",
            "limit" => "time_limit",
            "infeasible" => "infeasible",
            "invalid" if err["field"] == "--exhaustive" => "too_large",
            _ => "failed",
        }
        .into();
        row.message = err["message"].as_str().map(str::to_string);
        return;
    }
    let num = |k: &str| v[k].as_f64();
    let count = |k: &str| v["configs"][k].as_u64().map(|n| n as usize);
    row.status = v["status"].as_str().unwrap_or("failed").into();
    row.step_time_s = num("step_time_s");
    row.lower_bound_s = num("lower_bound_s");
    row.gap = num("gap");
    row.first_plan_s = num("first_plan_s");
    // The child's own figure: without starting a process and loading the instance.
    if let Some(t) = num("solve_time_s") {
        row.solve_time_s = t;
    }
    // Enumeration proves its plan the best of the space (with the default placement) when it ends.
    row.target_gap_s = (row.status == "optimal").then_some(row.solve_time_s);
    row.nodes = v["nodes"].as_u64();
    row.configurations = count("total");
    row.mips_solved = count("solved");
    row.plan = serde_json::from_value::<Plan>(v["plan"].clone())
        .ok()
        .map(|p| p.to_string());
}
