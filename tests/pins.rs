//! Every figure watos publishes is pinned: the plan and step time `watos solve` finds on each
//! shipped instance, and every prediction of `watos validate`, to 1e-9 relative. A change that
//! moves one updates `tests/data/pins.json` and says why there (`why`). An instance the search
//! cannot settle yet is listed under `pending` with the reason, and must still load.

mod common;

use common::repo;
use serde::Deserialize;
use std::collections::BTreeMap;
use watos::strategy::{self, SearchOptions};
use watos::Instance;

#[derive(Deserialize)]
struct Pins {
    solve: BTreeMap<String, SolvePin>,
    /// Instances without a pinned figure yet, with the reason.
    #[serde(default)]
    pending: BTreeMap<String, String>,
    validate: Vec<ValidatePin>,
}

#[derive(Deserialize)]
struct SolvePin {
    plan: String,
    step_time_s: f64,
}

#[derive(Deserialize)]
struct ValidatePin {
    label: String,
    quantity: String,
    predicted: f64,
}

fn pins() -> Pins {
    let text = std::fs::read_to_string(repo("tests/data/pins.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs()
}

#[test]
fn shipped_instances_solve_to_the_pinned_plans() {
    let pins = pins();
    let mut files: Vec<_> = std::fs::read_dir(repo("instances"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert_eq!(
        files.len(),
        pins.solve.len() + pins.pending.len(),
        "every shipped instance is pinned or pending"
    );
    for path in files {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let inst = Instance::load(&path).unwrap();
        if let Some(why) = pins.pending.get(&name) {
            assert!(!why.is_empty(), "{name}: pending without a reason");
            continue;
        }
        let pin = &pins.solve[&name];
        let sol = strategy::solve(&inst, &SearchOptions::default()).unwrap();
        assert_eq!(sol.plan.to_string(), pin.plan, "{name}");
        assert!(
            close(sol.evaluation.step_time_s, pin.step_time_s),
            "{name}: {} s, pinned {} s",
            sol.evaluation.step_time_s,
            pin.step_time_s
        );
    }
}

#[test]
fn validation_predictions_are_pinned() {
    let pins = pins();
    let v = watos::validate::run().unwrap();
    assert_eq!(v.rows.len(), pins.validate.len());
    for (row, pin) in v.rows.iter().zip(&pins.validate) {
        let quantity = serde_json::to_value(row.quantity).unwrap();
        assert_eq!(
            (row.label.as_str(), quantity.as_str()),
            (pin.label.as_str(), Some(pin.quantity.as_str()))
        );
        assert!(
            close(row.predicted, pin.predicted),
            "{} {}: {}, pinned {}",
            row.label,
            pin.quantity,
            row.predicted,
            pin.predicted
        );
    }
}
