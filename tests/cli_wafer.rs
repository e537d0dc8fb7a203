//! The wafer's own outputs end to end: the die map in text, JSON and SVG, and `watos faults`.

mod common;

use common::cli::*;

#[test]
fn solve_draws_the_die_map_and_lists_every_die() {
    let s = Scratch::new();
    let svg = s.path("map.svg").display().to_string();
    let run = run_here(&["solve", GPT3, "--json", "--svg", &svg]);
    run.assert_code(0);
    let j = run.json();
    let devices = j["placement"]["devices"].as_array().unwrap();
    let plan = &j["plan"];
    let used =
        plan["dp"].as_u64().unwrap() * plan["tp"].as_u64().unwrap() * plan["pp"].as_u64().unwrap();
    assert_eq!(devices.len() as u64, used, "{}", run.context());
    for d in devices {
        for key in ["row", "col", "replica", "stage", "tensor_rank"] {
            assert!(d[key].is_u64(), "{key} in {d}");
        }
    }
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") && text.trim_end().ends_with("</svg>"));
    // The text map marks the faulty die of a faulted wafer.
    let faulty = run_here(&[
        "solve",
        GPT3,
        "--hardware",
        "docs/wafer-config3-faults.toml",
        "--map",
    ]);
    faulty.assert_code(0);
    assert!(
        faulty.stdout.contains("Die map: mean pipeline send"),
        "{}",
        faulty.context()
    );
    assert_eq!(
        faulty.stdout.matches("XX").count(),
        2 + 1,
        "{}",
        faulty.context()
    );
}

#[test]
fn svg_on_a_cluster_is_an_error_naming_the_flag() {
    let s = Scratch::new();
    let svg = s.path("map.svg").display().to_string();
    let run = run_here(&[
        "evaluate",
        "--model",
        "models/gpt3-175b.toml",
        "--hardware",
        "hardware/dgx-a100-80gb.toml",
        "--batch",
        "64",
        "--seq",
        "2048",
        "--tp",
        "8",
        "--pp",
        "8",
        "--svg",
        &svg,
    ]);
    run.assert_bad_input(&["--svg", "cluster"]);
}

#[test]
fn fault_sweep_prints_one_json_object() {
    let run = run_here(&[
        "faults", GPT3, "--rates", "0,0.1", "--seeds", "1", "--kind", "links", "--json",
    ]);
    run.assert_code(0);
    let j = run.json();
    let rows = j["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{}", run.context());
    // Without faults both planners run the same plan on the same wafer.
    let r0 = &rows[0];
    assert_eq!(
        r0["mean_aware_tokens_per_s"],
        r0["mean_unaware_tokens_per_s"]
    );
    let t = &rows[1]["trials"][0];
    assert_eq!(
        t["faulty_links"].as_array().unwrap().len(),
        10,
        "10% of 97 links"
    );
    assert!(t["aware"]["tokens_per_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn fault_sweep_rejects_bad_rates_and_seeds() {
    run_here(&["faults", GPT3, "--rates", "0.1,1.2"]).assert_bad_input(&["--rates", "1.2"]);
    run_here(&["faults", GPT3, "--seeds", "0"]).assert_bad_input(&["--seeds"]);
    let run = run_here(&[
        "faults",
        "--model",
        "models/gpt3-175b.toml",
        "--hardware",
        "hardware/dgx-a100-80gb.toml",
        "--batch",
        "64",
        "--seq",
        "2048",
    ]);
    run.assert_bad_input(&["cluster"]);
}
