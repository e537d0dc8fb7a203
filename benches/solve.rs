//! `watos solve` on the shipped instances to a proven 1% gap, one HiGHS thread. Issue target:
//! GPT-3 175B on config 3 under 2 s, every shipped instance under 10 s.

use criterion::{criterion_group, criterion_main, Criterion};
use watos::formulation::SolverOptions;
use watos::search::{solve, SearchOptions};
use watos::Instance;

fn solve_instances(c: &mut Criterion) {
    let mut group = c.benchmark_group("solve to 1% gap");
    group.sample_size(10);
    for name in ["gpt3-175b-wafer", "llama-30b-wafer", "llama3-70b-wafer"] {
        let inst = Instance::load(format!(
            "{}/instances/{name}.toml",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("shipped instance");
        let opts = SearchOptions {
            solver: SolverOptions {
                gap: 0.01,
                threads: 1,
                ..Default::default()
            },
            local_search: true,
            progress: false,
        };
        group.bench_function(name, |b| b.iter(|| solve(&inst, &opts).expect("solvable")));
    }
    group.finish();
}

criterion_group!(benches, solve_instances);
criterion_main!(benches);
