//! The architecture sweep under criterion: all 5,400 designs of `paper-7nm-wide.toml` for GPT-3
//! 175B, as `watos explore hardware/spaces/paper-7nm-wide.toml --model
//! instances/gpt3-175b-wafer.toml --top 3 --no-sensitivity` runs it (the target: 5,000
//! points under 60 s on two cores). Ten samples of a sweep take a few minutes.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use watos::explore::{sweep, DesignSpace, ExploreOptions, Workload};
use watos::Instance;

fn path(rel: &str) -> String {
    format!("{}/{rel}", env!("CARGO_MANIFEST_DIR"))
}

fn bench(c: &mut Criterion) {
    let space = DesignSpace::load(path("hardware/spaces/paper-7nm-wide.toml")).expect("space");
    let inst = Instance::load(path("instances/gpt3-175b-wafer.toml")).expect("instance");
    let workloads = [Workload {
        name: inst.model.name.clone(),
        model: inst.model,
        training: inst.training,
        limits: inst.limits,
        weight: 1.0,
        path: None,
    }];
    let opts = ExploreOptions {
        top: 3,
        sensitivity: false,
        ..ExploreOptions::default()
    };
    let mut g = c.benchmark_group("explore");
    g.sample_size(10).measurement_time(Duration::from_secs(200));
    g.bench_function("sweep 5,400 designs for GPT-3 175B", |b| {
        b.iter(|| sweep(&space, &workloads, &opts, [0, 1], &|_| {}).expect("sweep"))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
