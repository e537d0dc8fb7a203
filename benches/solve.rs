//! `watos solve` on the shipped instances to a proven 1% gap, one HiGHS thread. Issue target:
//! GPT-3 175B on config 3 under 2 s, every shipped instance under 10 s.
//!
//! Second group: the same instances by the monolithic formulation (one MIP over the first
//! `DEFAULT_MAX_CANDIDATES` configurations, `strategy::monolithic`), the alternative the
//! decomposition is benchmarked against .

use criterion::{criterion_group, criterion_main, Criterion};
use watos::formulation::SolverOptions;
use watos::strategy::{monolithic, solve, SearchOptions, Silent};
use watos::Instance;

const INSTANCES: [&str; 3] = ["gpt3-175b-wafer", "llama-30b-wafer", "llama3-70b-wafer"];

fn load(name: &str) -> Instance {
    Instance::load(format!(
        "{}/instances/{name}.toml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("shipped instance")
}

fn options() -> SearchOptions {
    SearchOptions {
        solver: SolverOptions {
            gap: 0.01,
            threads: 1,
            ..Default::default()
        },
        local_search: true,
    }
}

fn solve_instances(c: &mut Criterion) {
    let mut group = c.benchmark_group("solve to 1% gap");
    group.sample_size(10);
    for name in INSTANCES {
        let inst = load(name);
        let opts = options();
        group.bench_function(name, |b| b.iter(|| solve(&inst, &opts).expect("solvable")));
    }
    group.finish();
}

fn solve_instances_monolithic(c: &mut Criterion) {
    let mut group = c.benchmark_group("monolithic solve to 1% gap");
    // A solve takes seconds: ten samples need about a minute per instance.
    group.sample_size(10);
    group.measurement_time(std::time::Duration::from_secs(60));
    for name in INSTANCES {
        let inst = load(name);
        let opts = options();
        group.bench_function(name, |b| {
            b.iter(|| {
                monolithic::solve_with(&inst, &opts, &Default::default(), &Silent)
                    .map(|(s, _)| s)
                    .expect("solvable")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, solve_instances, solve_instances_monolithic);
criterion_main!(benches);
