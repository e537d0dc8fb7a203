//! The scaling series (instances/scale/) under criterion: solves to a 1% gap on instances that
//! reach it in seconds, from 8 GPUs to 512, and the MIP build of a large cluster's configuration.
//! `watos bench instances/scale` reports the whole series once; this keeps a few under repeated
//! measurement.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use watos::cost::ConfigCosts;
use watos::formulation::{MipComm, SolverOptions, StageMip};
use watos::plan::Config;
use watos::strategy::{solve, SearchOptions};
use watos::Instance;

/// Instances of the series `watos bench` proves within 1% in well under the limit.
const SOLVED: [&str; 4] = [
    "gpu8-llama3-8b",
    "wafer16-llama3-8b",
    "gpu512-llama3-70b-seq16k",
    "wafer56-llama3-70b-seq32k",
];

fn load(name: &str) -> Instance {
    Instance::load(format!(
        "{}/instances/scale/{name}.toml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("shipped instance")
}

/// One HiGHS thread; a 10 s limit so that a slower solver shows as 10 s, not as a hang.
fn options() -> SearchOptions {
    SearchOptions {
        solver: SolverOptions {
            gap: 0.01,
            threads: 1,
            time_limit_s: Some(10.0),
            ..Default::default()
        },
        local_search: true,
    }
}

fn solve_series(c: &mut Criterion) {
    let mut group = c.benchmark_group("scaling series to 1% gap");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    for name in SOLVED {
        let inst = load(name);
        let opts = options();
        group.bench_function(name, |b| b.iter(|| solve(&inst, &opts).expect("solvable")));
    }
    group.finish();
}

/// The decomposition's MIP of one configuration of Llama 3 70B on 4,096 GPUs (that of the plan
/// a solve finds), from its coefficients to the model handed to HiGHS.
fn build_mip(c: &mut Criterion) {
    let inst = load("gpu4096-llama3-70b");
    let plan = solve(&inst, &options()).expect("solvable").plan;
    let costs = ConfigCosts::new(&inst, Config::of(&plan));
    c.bench_function("MIP build, Llama 3 70B on 4,096 H100", |b| {
        b.iter(|| StageMip::new(&costs, MipComm::ideal(&inst, &costs), None))
    });
}

criterion_group!(benches, solve_series, build_mip);
criterion_main!(benches);
