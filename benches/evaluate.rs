//! The evaluator is the hot path of local search and sweeps: how long one evaluation takes.

use criterion::{criterion_group, criterion_main, Criterion};
use watos::cost::{evaluate_with, ConfigCosts};
use watos::plan::{Config, Recompute};
use watos::{Instance, Plan};

fn gpt3_plan() -> (Instance, Plan) {
    let inst = Instance::load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/instances/gpt3-175b-wafer.toml"
    ))
    .expect("shipped instance");
    let mut plan = Plan::uniform(96, 1, 8, 7, 2, Recompute::Selective);
    plan.sequence_parallel = true;
    (inst, plan)
}

fn evaluate(c: &mut Criterion) {
    let (inst, plan) = gpt3_plan();
    let costs = ConfigCosts::new(&inst, Config::of(&plan));
    let placement = plan.placement(inst.fabric()).expect("default placement");
    c.bench_function("evaluate GPT-3 175B, D1 T8 P7, config 3", |b| {
        b.iter(|| evaluate_with(&inst, &plan, &costs, &placement))
    });
    c.bench_function("configuration coefficients (ConfigCosts::new)", |b| {
        b.iter(|| ConfigCosts::new(&inst, Config::of(&plan)))
    });
    c.bench_function("evaluate from scratch (watos::evaluate)", |b| {
        b.iter(|| watos::evaluate(&inst, &plan))
    });
}

criterion_group!(benches, evaluate);
criterion_main!(benches);
