//! The scaling series (instances/scale/): every instance loads, and on the small ones `watos
//! solve` agrees with exhaustive enumeration. Speed is `watos bench`'s, not a test's.
//!
//! Enumeration of a pipeline two stages deep already holds millions of plans per configuration
//! (every layer split times every recomputation mix per stage), minutes on these models, so the
//! comparison searches one-stage pipelines only (`[limits] max_pp = 1`, the same space for both).

use std::path::PathBuf;

use watos::formulation::SolverOptions;
use watos::solution::Status;
use watos::strategy::{self, exhaustive, SearchOptions};
use watos::Instance;

fn series() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("instances/scale")
}

fn load(name: &str) -> Instance {
    Instance::load(series().join(format!("{name}.toml"))).unwrap()
}

/// Solve (node limits and one thread, so it repeats) and enumeration on `name` restricted to
/// one-stage pipelines: both finish; the bound of each is below the other's plan; the plans are
/// within the gap of each other.
fn agrees_with_exhaustive(name: &str) {
    let gap = 0.01;
    let mut inst = load(name);
    inst.limits.max_pp = Some(1);
    let solver = SolverOptions {
        gap,
        threads: 1,
        time_limit_s: None,
        node_limit: Some(10_000),
        ..Default::default()
    };
    let ex = exhaustive::solve(&inst, &solver).unwrap();
    let opts = SearchOptions {
        solver,
        local_search: true,
    };
    let sol = strategy::solve(&inst, &opts).unwrap();
    // Every configuration enumerated: the exhaustive plan is the evaluator's optimum of the space.
    assert_eq!(ex.configs.pruned, 0, "{name}: enumeration stopped early");
    let best = ex.evaluation.step_time_s;
    let found = sol.evaluation.step_time_s;
    let tol = 1e-9 * best;
    assert!(
        sol.lower_bound_s <= best + tol,
        "{name}: solve's bound {} above the optimum {best}",
        sol.lower_bound_s
    );
    assert!(
        best <= found + tol,
        "{name}: solve's plan {found} beats exhaustive {best}"
    );
    assert_eq!(sol.status, Status::Optimal, "{name}: gap {}", sol.gap);
    assert!(
        found <= best / (1.0 - gap) + tol,
        "{name}: solve {found} not within {gap} of the optimum {best}"
    );
}

#[test]
fn megatron_1_7b_on_8_a100_agrees_with_exhaustive() {
    agrees_with_exhaustive("gpu8-megatron-1.7b");
}

#[test]
fn llama3_8b_on_8_h100_agrees_with_exhaustive() {
    agrees_with_exhaustive("gpu8-llama3-8b");
}

#[test]
fn llama3_8b_on_a_4x4_wafer_agrees_with_exhaustive() {
    agrees_with_exhaustive("wafer16-llama3-8b");
}

/// Every instance of the series loads, and the series spans what it claims: wafers of 16 to 1,024
/// dies and clusters of 8 to 16,384 GPUs.
#[test]
fn the_series_loads_and_spans_its_sizes() {
    let mut wafers = Vec::new();
    let mut gpus = Vec::new();
    for entry in std::fs::read_dir(series()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "toml") {
            let inst = Instance::load(&path).unwrap();
            let n = inst.fabric().healthy_count();
            if inst.hardware.wafer.is_some() {
                wafers.push(n);
            } else {
                gpus.push(n);
            }
        }
    }
    wafers.sort();
    wafers.dedup();
    gpus.sort();
    gpus.dedup();
    assert_eq!(wafers, [16, 56, 224, 1024]);
    assert_eq!(gpus, [8, 64, 512, 3200, 4096, 16384]);
}
