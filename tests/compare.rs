//! `watos compare`: watos against its baselines on the shipped wafers.

mod common;

use std::process::Command;

use common::cli::{shipped, BIN};
use watos::compare::compare_instance;
use watos::strategy::megatron::{self, Pins};
use watos::strategy::{self, SearchOptions, Silent};
use watos::Instance;

const WAFERS: [&str; 3] = [
    "instances/llama-30b-wafer.toml",
    "instances/llama3-70b-wafer.toml",
    "instances/gpt3-175b-wafer.toml",
];

#[test]
fn watos_is_never_slower_than_a_baseline_and_its_bound_covers_their_plans() {
    let names: Vec<String> = strategy::COMPARED
        .iter()
        .filter(|n| strategy::by_name(n).is_some())
        .map(|n| n.to_string())
        .collect();
    for baseline in ["megatron", "gpu-node", "weight-streaming"] {
        assert!(names.iter().any(|n| n == baseline), "{baseline}");
    }
    for file in WAFERS {
        let inst = Instance::load(shipped(file)).unwrap();
        let opts = SearchOptions::default();
        let c = compare_instance(&inst, &names, &opts, &Silent, &|_| {}).unwrap();
        let step = |name: &str| {
            c.strategies
                .iter()
                .find(|e| e.name == name)
                .and_then(|e| e.step_time_s)
                .unwrap_or_else(|| panic!("{file}: {name} has no plan"))
        };
        let watos = step("watos");
        for e in c.strategies.iter().filter(|e| e.name != "watos") {
            if let Some(t) = e.step_time_s {
                assert!(watos <= t, "{file}: watos {watos} s, {} {t} s", e.name);
            }
        }
        for s in &c.speedups {
            assert!(s.speedup >= 1.0, "{file}: {s:?}");
        }
        // Megatron's plan is a plan of watos's space: scored on watos's instance (no reserve)
        // it fits, and watos's lower bound is below it.
        let base = megatron::search(
            &megatron::rules(&inst),
            &Pins::default(),
            "",
            &opts,
            &Silent,
        )
        .unwrap();
        let on_watos = watos::evaluate(&inst, &base.plan).unwrap();
        assert!(on_watos.feasible, "{file}");
        let bound = c.strategies[0].lower_bound_s.unwrap();
        assert!(bound <= on_watos.step_time_s, "{file}: bound {bound}");
        assert!(on_watos.step_time_s <= step("megatron") * (1.0 + 1e-12));
        // The weight-streaming plan is outside watos's search space: the watos strategy takes it
        // as an incumbent, and its bound (the lesser of the two searches') stays below it.
        let streamed = strategy::streaming::search(&inst, &opts, &Silent).unwrap();
        assert!(streamed.plan.weight_streaming);
        assert_eq!(step("weight-streaming"), streamed.evaluation.step_time_s);
        assert!(
            bound <= streamed.evaluation.step_time_s,
            "{file}: bound {bound}"
        );
    }
}

#[test]
fn compare_json_is_one_object_with_a_strategies_list_per_instance() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("bars.svg");
    let out = Command::new(BIN)
        .args([
            "compare",
            &shipped(WAFERS[0]),
            "--strategies",
            "watos,megatron",
            "--json",
            "--svg",
        ])
        .arg(&svg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &v["instances"][0]["strategies"];
    assert_eq!(s.as_array().map(Vec::len), Some(2));
    for e in s.as_array().unwrap() {
        for key in [
            "name",
            "plan",
            "step_time_s",
            "tokens_per_s",
            "mfu",
            "feasible",
            "reason",
        ] {
            assert!(e.get(key).is_some(), "{key} missing in {e}");
        }
    }
    assert_eq!(v["instances"][0]["speedups"][0]["baseline"], "megatron");
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
    // An unknown strategy is an error naming the flag, as one JSON object.
    let bad = Command::new(BIN)
        .args([
            "compare",
            &shipped(WAFERS[0]),
            "--strategies",
            "nope",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let e: serde_json::Value = serde_json::from_slice(&bad.stdout).unwrap();
    assert!(e.to_string().contains("--strategies"), "{e}");
}
