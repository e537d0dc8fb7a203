//! The `watos` binary end to end: bad input is reported with its file, line, field and what would
//! be valid (exit 2, never a panic); infeasible plans and instances exit 3 and say by how much;
//! sensible plans score sensibly; `solve --out` and `evaluate --plan` agree to the last digit; and
//! the command-line overrides build the same instance as the files they replace.
//!
//! Bad files are the shipped ones with one line changed, so that each test shows exactly which
//! mistake it makes; the expected line number is found in the edited text, not hard-coded.

mod common;

use common::cli::*;
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Infeasible: exit 3 with the shortfall in figures.
// ---------------------------------------------------------------------------------------------

#[test]
fn whole_model_on_one_die_is_infeasible_with_the_dram_overflow() {
    let run = run_here(&["evaluate", GPT3, "--tp", "1", "--pp", "1", "--dp", "1"]);
    run.assert_code(3);
    let out = &run.stdout;
    assert!(out.contains("NO"), "{}", run.context());
    assert!(out.contains("infeasible:"), "{}", run.context());
    // "DRAM needs X GB per device but has 70.00 GB (over by Y GB)", with X - 70 = Y.
    let needs = number_after(out, "DRAM needs ");
    let over = number_after(out, "(over by ");
    assert!(out.contains("but has 70.00 GB"), "{}", run.context());
    assert!(needs > 1000.0, "175B parameters need terabytes: {needs}");
    assert!(
        (needs - 70.0 - over).abs() < 0.02,
        "needs {needs}, over by {over}"
    );
}

#[test]
fn solve_on_a_wafer_too_small_explains_the_shortfall() {
    let s = Scratch::new();
    let text = edit(
        &edit(
            &edit(&shipped_text(CONFIG3), "dram_gb = 70.0", "dram_gb = 8.0"),
            "rows = 7",
            "rows = 2",
        ),
        "cols = 8",
        "cols = 2",
    );
    s.write("small.toml", &text);
    let inst = s.write(
        "inst.toml",
        &format!(
            "model = \"{}\"\nhardware = \"small.toml\"\n\n[training]\nglobal_batch = 512\nseq_len = 2048\n",
            shipped("models/gpt3-175b.toml")
        ),
    );
    let run = s.run(&["solve", inst, "--json"]);
    run.assert_code(3);
    let diag = run.diagnostic();
    for part in [
        "no feasible plan",
        "GPT-3 175B does not fit",
        "4 healthy devices",
    ] {
        assert!(diag.contains(part), "missing {part:?}\n{}", run.context());
    }
    // 175B parameters with Adam need terabytes; the four dies have 32 GB of DRAM.
    let short = number_after(&diag, "short by ");
    assert!(short > 100.0, "short by {short} GB\n{}", run.context());
    assert!(diag.contains("32.0 GB of DRAM"), "{}", run.context());
    // --json: the same verdict as one object on stdout, with the figures.
    let e = &run.json()["error"];
    assert_eq!(e["kind"], "infeasible", "{}", run.context());
    let i = &e["infeasibility"];
    assert_eq!(i["healthy_devices"], 4, "{}", run.context());
    assert_eq!(f64_of(i, "dram_total_bytes"), 32e9, "{}", run.context());
    let closest = &i["closest"];
    let short_bytes = f64_of(closest, "weights_bytes") - f64_of(closest, "available_bytes");
    assert!(short_bytes > 0.0, "{}", run.context());
}

// ---------------------------------------------------------------------------------------------
// Sensible plans and the solver.
// ---------------------------------------------------------------------------------------------

/// A plan an engineer would pick scores as one: feasible, MFU in a plausible band, and the
/// headline figures consistent with each other.
fn assert_sensible(instance: &str, plan: &[&str], tokens_per_step: f64) {
    let mut args = vec!["evaluate", instance];
    args.extend_from_slice(plan);
    args.push("--json");
    let run = run_here(&args);
    run.assert_code(0);
    let v = run.json();
    for key in [
        "step_time_s",
        "tokens_per_s",
        "mfu",
        "hfu",
        "feasible",
        "breakdown",
        "memory",
    ] {
        assert!(!v[key].is_null(), "no `{key}`\n{}", run.context());
    }
    assert_eq!(v["feasible"], Value::Bool(true), "{}", run.context());
    let (step, tps, mfu, hfu) = (
        f64_of(&v, "step_time_s"),
        f64_of(&v, "tokens_per_s"),
        f64_of(&v, "mfu"),
        f64_of(&v, "hfu"),
    );
    assert!((0.20..=0.70).contains(&mfu), "MFU {mfu}\n{}", run.context());
    assert!(hfu >= mfu - 1e-12, "HFU {hfu} below MFU {mfu}");
    assert!(
        (tps * step / tokens_per_step - 1.0).abs() < 1e-9,
        "tokens/s {tps} x step {step} s is not {tokens_per_step} tokens"
    );
    assert!(f64_of(&v["breakdown"], "compute_s") > 0.0);
    assert!(
        f64_of(&v["memory"], "peak_dram_bytes") <= f64_of(&v["memory"], "dram_capacity_bytes"),
        "{}",
        run.context()
    );
}

#[test]
fn sensible_plans_on_the_shipped_instances_score_sensibly() {
    let tokens = 1_048_576.0;
    assert_sensible(
        GPT3,
        &[
            "--tp",
            "4",
            "--pp",
            "14",
            "--recompute",
            "full",
            "--sequence-parallel",
        ],
        tokens,
    );
    assert_sensible(
        LLAMA3,
        &["--tp", "4", "--pp", "14", "--sequence-parallel"],
        tokens,
    );
    assert_sensible(
        LLAMA30,
        &["--tp", "4", "--pp", "14", "--sequence-parallel"],
        tokens,
    );
}

#[test]
fn solve_out_and_evaluate_plan_agree_to_the_last_digit() {
    let s = Scratch::new();
    let out = s.path("plan.toml").display().to_string();
    let solve = run_here(&["solve", LLAMA3, "--json", "--out", &out]);
    solve.assert_code(0);
    let sv = solve.json();
    for key in [
        "plan",
        "step_time_s",
        "lower_bound_s",
        "gap",
        "status",
        "solve_time_s",
        "tokens_per_s",
        "mfu",
    ] {
        assert!(!sv[key].is_null(), "no `{key}`\n{}", solve.context());
    }
    let step = f64_of(&sv, "step_time_s");
    assert!(f64_of(&sv, "lower_bound_s") <= step, "{}", solve.context());
    assert!(f64_of(&sv, "gap") <= 0.01, "{}", solve.context());

    let eval = run_here(&["evaluate", LLAMA3, "--plan", &out, "--json"]);
    eval.assert_code(0);
    assert_eq!(
        raw_number(&solve.stdout, "step_time_s"),
        raw_number(&eval.stdout, "step_time_s"),
        "solve and evaluate print different step times"
    );
    assert_eq!(
        step.to_bits(),
        f64_of(&eval.json(), "step_time_s").to_bits()
    );
    assert_eq!(sv["plan"]["tp"], eval.json()["plan"]["tp"]);
}

// ---------------------------------------------------------------------------------------------
// Overrides and Hugging Face configs.
// ---------------------------------------------------------------------------------------------

const LLAMA2_PLAN: [&str; 5] = ["--tp", "8", "--pp", "7", "--sequence-parallel"];

fn step_bits(run: &Run) -> u64 {
    run.assert_code(0);
    f64_of(&run.json(), "step_time_s").to_bits()
}

#[test]
fn flags_replace_an_instance_file_entirely() {
    let mut args = vec![
        "evaluate",
        "--model",
        "models/llama2-70b.toml",
        "--hardware",
        CONFIG3,
        "--batch",
        "256",
        "--seq",
        "4096",
        "--json",
    ];
    args.extend_from_slice(&LLAMA2_PLAN);
    let flags = run_here(&args);
    let v = flags.json();
    assert_eq!(v["instance"], "Llama 2 70B on WATOS wafer config 3");
    assert_eq!(v["feasible"], Value::Bool(true), "{}", flags.context());
    let tokens = f64_of(&v, "tokens_per_s") * f64_of(&v, "step_time_s");
    assert!((tokens / (256.0 * 4096.0) - 1.0).abs() < 1e-9, "{tokens}");

    // The Llama 3 instance has the same hardware, batch and sequence: swapping its model for
    // Llama 2 must give the very same evaluation.
    let mut args = vec![
        "evaluate",
        LLAMA3,
        "--model",
        "models/llama2-70b.toml",
        "--json",
    ];
    args.extend_from_slice(&LLAMA2_PLAN);
    assert_eq!(step_bits(&flags), step_bits(&run_here(&args)));

    // Without an instance file every one of the four is needed, and the error says which.
    run_here(&[
        "evaluate",
        "--model",
        "models/llama2-70b.toml",
        "--hardware",
        CONFIG3,
        "--batch",
        "256",
    ])
    .assert_bad_input(&[
        "--seq: needed when no instance file is given",
        "--hardware, --batch and --seq",
    ]);
}

#[test]
fn batch_flag_overrides_the_instance() {
    let mut full = vec!["evaluate", LLAMA3, "--json"];
    full.extend_from_slice(&LLAMA2_PLAN);
    let mut half = full.clone();
    half.extend_from_slice(&["--batch", "128"]);
    let (full, half) = (run_here(&full), run_here(&half));
    full.assert_code(0);
    half.assert_code(0);
    let (f, h) = (full.json(), half.json());
    assert_eq!(f["micro_batches"], 256);
    assert_eq!(h["micro_batches"], 128);
    let tokens = f64_of(&h, "tokens_per_s") * f64_of(&h, "step_time_s");
    assert!((tokens / (128.0 * 4096.0) - 1.0).abs() < 1e-9, "{tokens}");
    assert!(f64_of(&h, "step_time_s") < f64_of(&f, "step_time_s"));
}

#[test]
fn hugging_face_llama_config_matches_the_watos_model_file() {
    let s = Scratch::new();
    let cfg = s.write(
        "Llama-2-70b-hf/config.json",
        r#"{
  "architectures": ["LlamaForCausalLM"],
  "model_type": "llama",
  "hidden_size": 8192,
  "num_hidden_layers": 80,
  "num_attention_heads": 64,
  "num_key_value_heads": 8,
  "intermediate_size": 28672,
  "vocab_size": 32000,
  "torch_dtype": "float16"
}
"#,
    );
    let cfg = s.path(cfg).display().to_string();
    let common = [
        "--hardware",
        CONFIG3,
        "--batch",
        "256",
        "--seq",
        "4096",
        "--json",
    ];
    let with = |model: &str| {
        let mut args = vec!["evaluate", "--model", model];
        args.extend_from_slice(&common);
        args.extend_from_slice(&LLAMA2_PLAN);
        run_here(&args)
    };
    let hf = with(&cfg);
    assert_eq!(
        hf.json()["instance"],
        "Llama-2-70b-hf on WATOS wafer config 3",
        "the model is named after its directory"
    );
    assert_eq!(step_bits(&hf), step_bits(&with("models/llama2-70b.toml")));
}

#[test]
fn pp_alone_splits_layers_as_evenly_as_possible() {
    for (instance, layers, pp, tp) in [
        (GPT3, 96, 5, "8"),
        (GPT3, 96, 7, "8"),
        (LLAMA3, 80, 14, "4"),
        (LLAMA3, 80, 3, "8"),
    ] {
        let pp_s = pp.to_string();
        let run = run_here(&["evaluate", instance, "--tp", tp, "--pp", &pp_s, "--json"]);
        // Some of these do not fit in memory (exit 3), but every one is evaluated and printed.
        assert!(matches!(run.code, Some(0 | 3)), "{}", run.context());
        let v = run.json();
        let split: Vec<u64> = v["stages"]
            .as_array()
            .unwrap_or_else(|| panic!("no stages\n{}", run.context()))
            .iter()
            .map(|s| s["layers"].as_u64().unwrap_or(0))
            .collect();
        let (min, max) = (split.iter().min(), split.iter().max());
        assert_eq!(split.len(), pp, "{split:?}");
        assert_eq!(split.iter().sum::<u64>(), layers, "{split:?}");
        assert!(max.zip(min).is_some_and(|(a, b)| a - b <= 1), "{split:?}");
        // Extra layers go to the middle stages (the first holds the most activations, the last
        // the output head), so the ends get the fewer when there are fewer extras than middles.
        if layers % pp as u64 <= pp as u64 - 2 {
            assert_eq!(Some(&split[0]), min, "{split:?}");
            assert_eq!(split.last(), min, "{split:?}");
        }
        let planned: Vec<u64> = v["plan"]["stage"]
            .as_array()
            .map(|a| a.iter().filter_map(|s| s["layers"].as_u64()).collect())
            .unwrap_or_default();
        assert_eq!(planned, split, "the plan and its evaluation disagree");
    }
}
