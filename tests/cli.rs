//! The `watos` binary end to end: bad input is reported with its file, line, field and what would
//! be valid (exit 2, never a panic); infeasible plans and instances exit 3 and say by how much;
//! sensible plans score sensibly; `solve --out` and `evaluate --plan` agree to the last digit; and
//! the command-line overrides build the same instance as the files they replace.
//!
//! Bad files are the shipped ones with one line changed, so that each test shows exactly which
//! mistake it makes; the expected line number is found in the edited text, not hard-coded.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_watos");

/// A file of the crate (shipped model, hardware or instance), as an absolute path.
fn shipped(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(rel)
        .display()
        .to_string()
}

/// The text of a shipped file.
fn shipped_text(rel: &str) -> String {
    std::fs::read_to_string(shipped(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// `text` with `from` replaced by `to`; fails if `from` is absent, so that a change to the shipped
/// files cannot quietly turn a bad-input test into a good-input one.
fn edit(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} not found in:\n{text}");
    text.replacen(from, to, 1)
}

/// 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not found in:\n{text}"))
        + 1
}

/// A scratch directory the binary runs in, so that files are named as short relative paths.
struct Scratch {
    dir: TempDir,
}

impl Scratch {
    fn new() -> Self {
        Scratch {
            dir: tempfile::tempdir().expect("temporary directory"),
        }
    }

    /// Writes `text` to `name` (sub-directories created) and returns `name`.
    fn write<'a>(&self, name: &'a str, text: &str) -> &'a str {
        let path = self.path(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create directory");
        }
        std::fs::write(&path, text).expect("write file");
        name
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `watos args...` in this directory.
    fn run(&self, args: &[&str]) -> Run {
        let out = Command::new(BIN)
            .args(args)
            .current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .output()
            .expect("run watos");
        Run {
            args: args.join(" "),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Runs `watos args...` in the crate's directory (for shipped files named relatively).
fn run_here(args: &[&str]) -> Run {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .output()
        .expect("run watos");
    Run {
        args: args.join(" "),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

struct Run {
    args: String,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// stderr as one line: the report wraps long messages at the terminal width and draws a
    /// margin (`×`, `│`) in front of the continuation lines; both are undone here.
    fn diagnostic(&self) -> String {
        self.stderr
            .lines()
            .map(|l| l.trim().trim_start_matches(['×', '│']).trim())
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn context(&self) -> String {
        format!(
            "watos {}\nexit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.args, self.code, self.stdout, self.stderr
        )
    }

    fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "{}", self.context());
        assert!(!self.stderr.contains("panicked"), "{}", self.context());
        self
    }

    /// Exit 2 and a diagnostic containing every one of `parts`.
    fn assert_bad_input(&self, parts: &[&str]) -> &Self {
        self.assert_code(2);
        let diag = self.diagnostic();
        for part in parts {
            assert!(
                diag.contains(part),
                "missing {part:?} in the diagnostic\n{}",
                self.context()
            );
        }
        self
    }

    /// Exit 2 and an error located at `file:line:` on `field`, with every hint.
    fn assert_located(&self, file: &str, line: usize, field: &str, hints: &[&str]) -> &Self {
        let head = format!("{file}:{line}: `{field}`:");
        self.assert_bad_input(&[&head]);
        self.assert_bad_input(hints)
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{}", self.context()))
    }
}

/// The number after `"key": ` in a JSON text, exactly as printed.
fn raw_number<'a>(json: &'a str, key: &str) -> &'a str {
    let tag = format!("\"{key}\": ");
    let start = json
        .find(&tag)
        .unwrap_or_else(|| panic!("no {tag} in\n{json}"))
        + tag.len();
    let rest = &json[start..];
    &rest[..rest.find([',', '\n', '}']).unwrap_or(rest.len())]
}

/// The number written right after `prefix` in `text` (e.g. "short by " -> 779.1).
fn number_after(text: &str, prefix: &str) -> f64 {
    let start = text
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix:?} in\n{text}"))
        + prefix.len();
    let digits: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no number after {prefix:?} in\n{text}"))
}

fn f64_of(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("`{key}` is not a number in {v}"))
}

const GPT3: &str = "instances/gpt3-175b-wafer.toml";
const LLAMA3: &str = "instances/llama3-70b-wafer.toml";
const LLAMA30: &str = "instances/llama-30b-wafer.toml";
const CONFIG3: &str = "hardware/wafer-config3.toml";

/// Evaluates GPT-3 on the shipped instance with one file replaced (`--model` or `--hardware`).
fn evaluate_with(s: &Scratch, flag: &str, file: &str) -> Run {
    s.run(&[
        "evaluate",
        &shipped(GPT3),
        flag,
        file,
        "--tp",
        "8",
        "--pp",
        "7",
    ])
}

// ---------------------------------------------------------------------------------------------
// Bad input: exit 2, file:line: `field`: what is wrong, and what would be valid.
// ---------------------------------------------------------------------------------------------

#[test]
fn unknown_field_in_hardware_file_is_located_and_corrected() {
    let s = Scratch::new();
    let text = edit(&shipped_text(CONFIG3), "dram_gb = 70.0", "dram_gbb = 70.0");
    let hw = s.write("hw.toml", &text);
    evaluate_with(&s, "--hardware", hw).assert_located(
        hw,
        line_of(&text, "dram_gbb"),
        "device.dram_gbb",
        &[
            "unknown field `dram_gbb`",
            "expected one of",
            "did you mean `dram_gb`?",
        ],
    );
}

#[test]
fn unknown_field_in_model_file_is_located_and_corrected() {
    let s = Scratch::new();
    let text = edit(
        &shipped_text("models/gpt3-175b.toml"),
        "hidden = 12288",
        "hiden = 12288",
    );
    let model = s.write("model.toml", &text);
    evaluate_with(&s, "--model", model).assert_located(
        model,
        line_of(&text, "hiden"),
        "hiden",
        &["unknown field `hiden`", "did you mean `hidden`?"],
    );
}

#[test]
fn unknown_field_in_instance_file_is_located_and_corrected() {
    let s = Scratch::new();
    let text = format!(
        "name = \"typo\"\nmodel = \"{}\"\nhardware = \"{}\"\n\n[training]\nglobal_batch = 512\nseq_lenn = 2048\n",
        shipped("models/gpt3-175b.toml"),
        shipped(CONFIG3)
    );
    let inst = s.write("inst.toml", &text);
    s.run(&["evaluate", inst, "--tp", "8", "--pp", "7"])
        .assert_located(
            inst,
            7,
            "training.seq_lenn",
            &["unknown field `seq_lenn`", "did you mean `seq_len`?"],
        );
}

#[test]
fn unknown_field_in_plan_file_is_located_and_corrected() {
    let s = Scratch::new();
    let stages = "[[stage]]\nlayers = 48\nrecompute = \"full\"\n\n[[stage]]\nlayers = 48\nrecompute = \"full\"\n";
    let top =
        format!("dp = 1\ntp = 8\npp = 2\nmicro_batch = 1\nsequence_paralel = true\n\n{stages}");
    let plan = s.write("plan.toml", &top);
    s.run(&["evaluate", &shipped(GPT3), "--plan", plan])
        .assert_located(
            plan,
            5,
            "sequence_paralel",
            &["did you mean `sequence_parallel`?"],
        );
    // The same inside a [[stage]] table: the path names the stage.
    let inner =
        edit(&top, "sequence_paralel = true\n", "").replacen("layers = 48", "layer = 48", 1);
    let plan = s.write("plan-stage.toml", &inner);
    s.run(&["evaluate", &shipped(GPT3), "--plan", plan])
        .assert_located(
            plan,
            line_of(&inner, "layer = 48"),
            "stage[0].layer",
            &["unknown field `layer`", "did you mean `layers`?"],
        );
}

#[test]
fn string_where_a_number_belongs_shows_the_fix() {
    let s = Scratch::new();
    let text = edit(
        &shipped_text("models/gpt3-175b.toml"),
        "heads = 96",
        "heads = \"96\"",
    );
    let model = s.write("model.toml", &text);
    evaluate_with(&s, "--model", model).assert_located(
        model,
        line_of(&text, "heads = "),
        "heads",
        &["invalid type: string \"96\", expected u32", "heads = 96"],
    );
    let text = edit(&shipped_text(CONFIG3), "dram_gb = 70.0", "dram_gb = \"70\"");
    let hw = s.write("hw.toml", &text);
    evaluate_with(&s, "--hardware", hw).assert_located(
        hw,
        line_of(&text, "dram_gb = "),
        "device.dram_gb",
        &["expected f64", "without quotes: dram_gb = 70"],
    );
}

#[test]
fn negative_bandwidths_are_rejected_with_an_example() {
    let s = Scratch::new();
    let text = edit(
        &shipped_text(CONFIG3),
        "dram_bw_tb_per_s = 2.0",
        "dram_bw_tb_per_s = -2",
    );
    let hw = s.write("dram.toml", &text);
    evaluate_with(&s, "--hardware", hw).assert_located(
        hw,
        line_of(&text, "dram_bw_tb_per_s"),
        "device.dram_bw_tb_per_s",
        &["is -2, must be a positive number", "e.g. 2.0"],
    );
    let text = edit(
        &shipped_text(CONFIG3),
        "d2d_bw_tb_per_s = 4.0",
        "d2d_bw_tb_per_s = -4",
    );
    let hw = s.write("d2d.toml", &text);
    evaluate_with(&s, "--hardware", hw).assert_located(
        hw,
        line_of(&text, "d2d_bw_tb_per_s ="),
        "wafer.d2d_bw_tb_per_s",
        &["is -4, must be a positive number", "e.g. 4.0"],
    );
}

#[test]
fn heads_that_do_not_divide_hidden_list_valid_counts() {
    let s = Scratch::new();
    let text = edit(
        &shipped_text("models/gpt3-175b.toml"),
        "heads = 96",
        "heads = 100",
    );
    let model = s.write("model.toml", &text);
    evaluate_with(&s, "--model", model).assert_located(
        model,
        line_of(&text, "heads = 100"),
        "heads",
        &[
            "100 heads do not divide hidden size 12288",
            "valid head counts: 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128",
        ],
    );
}

#[test]
fn kv_heads_that_do_not_divide_heads_list_valid_counts() {
    let s = Scratch::new();
    let text = edit(
        &shipped_text("models/llama2-70b.toml"),
        "kv_heads = 8",
        "kv_heads = 7",
    );
    let model = s.write("model.toml", &text);
    evaluate_with(&s, "--model", model).assert_located(
        model,
        line_of(&text, "kv_heads"),
        "kv_heads",
        &[
            "7 key/value heads do not divide the 64 attention heads",
            "valid: 1, 2, 4, 8, 16, 32, 64",
        ],
    );
}

#[test]
fn tp_that_does_not_divide_heads_names_the_flag_and_valid_degrees() {
    run_here(&["evaluate", GPT3, "--tp", "5"]).assert_bad_input(&[
        "--tp:",
        "tensor parallelism 5 does not divide the 96 attention heads",
        "valid: 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 96",
    ]);
}

#[test]
fn more_devices_than_the_wafer_has_names_both_counts() {
    run_here(&["evaluate", GPT3, "--dp", "2", "--tp", "8", "--pp", "7"]).assert_bad_input(&[
        "dp 2 x tp 8 x pp 7 = 112 devices",
        "has 56 healthy",
        "use at most 56 devices",
    ]);
}

#[test]
fn plan_whose_stages_miss_layers_names_the_stages() {
    let s = Scratch::new();
    let text = "dp = 1\ntp = 8\npp = 2\nmicro_batch = 1\n\n[[stage]]\nlayers = 48\nrecompute = \"full\"\n\n[[stage]]\nlayers = 47\nrecompute = \"full\"\n";
    let plan = s.write("plan.toml", text);
    s.run(&["evaluate", &shipped(GPT3), "--plan", plan])
        .assert_located(
            plan,
            line_of(text, "[[stage]]"),
            "stage",
            &[
                "stages hold 95 layers, the model has 96",
                "layers must sum to 96",
            ],
        );
}

#[test]
fn missing_model_file_names_the_path_and_the_instance_line() {
    let s = Scratch::new();
    let text = format!(
        "name = \"lost\"\nhardware = \"{}\"\nmodel = \"no-such-model.toml\"\n\n[training]\nglobal_batch = 512\nseq_len = 2048\n",
        shipped(CONFIG3)
    );
    let inst = s.write("inst.toml", &text);
    s.run(&["evaluate", inst]).assert_located(
        inst,
        3,
        "model",
        &[
            "cannot read no-such-model.toml",
            "paths are relative to the instance file",
        ],
    );
}

#[test]
fn faulty_die_outside_the_mesh_is_located() {
    let s = Scratch::new();
    let text = edit(
        &shipped_text(CONFIG3),
        "usable_area_mm2 = 40000",
        "usable_area_mm2 = 40000\nfaulty_dies = [[1, 2], [7, 3]]",
    );
    let hw = s.write("hw.toml", &text);
    evaluate_with(&s, "--hardware", hw).assert_located(
        hw,
        line_of(&text, "faulty_dies"),
        "wafer.faulty_dies[1]",
        &["[7, 3] is outside the 7 x 8 mesh", "[row, col], 0-based"],
    );
}

#[test]
fn dies_exceeding_the_wafer_area_are_reported_with_figures() {
    let s = Scratch::new();
    let text = edit(&shipped_text(CONFIG3), "rows = 7", "rows = 9");
    let hw = s.write("hw.toml", &text);
    let run = evaluate_with(&s, "--hardware", hw);
    run.assert_located(
        hw,
        line_of(&text, "usable_area_mm2"),
        "wafer.usable_area_mm2",
        &[
            "72 die sites",
            "over the 40000 mm^2 usable",
            "fewer or smaller dies",
        ],
    );
    assert!(
        number_after(&run.diagnostic(), "need ") > 40000.0,
        "{}",
        run.context()
    );
}

#[test]
fn hugging_face_config_of_an_unsupported_type_lists_the_supported_ones() {
    let s = Scratch::new();
    let cfg = s.write(
        "t5/config.json",
        "{\n  \"architectures\": [\"T5ForConditionalGeneration\"],\n  \"model_type\": \"t5\",\n  \"d_model\": 1024\n}\n",
    );
    evaluate_with(&s, "--model", cfg).assert_located(
        cfg,
        3,
        "model_type",
        &["\"t5\" is not one watos models", "gpt2, llama, mistral"],
    );
}

#[test]
fn hugging_face_config_missing_a_key_names_it_and_the_required_keys() {
    let s = Scratch::new();
    let cfg = s.write(
        "llama/config.json",
        "{\n  \"model_type\": \"llama\",\n  \"hidden_size\": 8192,\n  \"num_hidden_layers\": 80,\n  \"num_attention_heads\": 64,\n  \"vocab_size\": 32000\n}\n",
    );
    // Located where the object ends, where the key would go.
    evaluate_with(&s, "--model", cfg).assert_located(
        cfg,
        7,
        "intermediate_size",
        &[
            "missing field `intermediate_size`",
            "hidden_size, num_hidden_layers, num_attention_heads, intermediate_size, vocab_size",
        ],
    );
}

#[test]
fn malformed_toml_names_the_line_and_key_and_the_syntax() {
    let s = Scratch::new();
    let text = edit(
        &shipped_text("models/gpt3-175b.toml"),
        "heads = 96",
        "heads 96",
    );
    let model = s.write("model.toml", &text);
    evaluate_with(&s, "--model", model).assert_located(
        model,
        line_of(&text, "heads 96"),
        "heads",
        &["expected `=`", "TOML lines are `key = value`"],
    );
}

#[test]
fn missing_required_key_in_toml_is_named() {
    let s = Scratch::new();
    let text = edit(&shipped_text(CONFIG3), "rows = 7\n", "");
    let hw = s.write("hw.toml", &text);
    evaluate_with(&s, "--hardware", hw).assert_located(
        hw,
        line_of(&text, "[wafer]"),
        "wafer.rows",
        &["missing field `rows`", "add `rows = ...`"],
    );
}

/// Values whose products overflow 32 bits, or that leave no device at all, are input errors.
#[test]
fn extreme_values_are_input_errors_not_panics() {
    run_here(&["evaluate", GPT3, "--dp", "4294967295", "--micro-batch", "2"])
        .assert_bad_input(&["does not divide the global batch 512"]);
    run_here(&["evaluate", GPT3, "--tp", "2", "--pp", "4294967295"])
        .assert_bad_input(&["8589934590 devices", "use at most 56 devices"]);
    let s = Scratch::new();
    let text = edit(
        &edit(&shipped_text(CONFIG3), "rows = 7", "rows = 100000"),
        "cols = 8",
        "cols = 100000",
    );
    let hw = s.write("huge.toml", &text);
    evaluate_with(&s, "--hardware", hw).assert_located(
        hw,
        line_of(&text, "rows = "),
        "wafer.rows",
        &["10000000000 dies", "at most 1048576 dies"],
    );
    let text = edit(
        &edit(&shipped_text(CONFIG3), "rows = 7", "rows = 1"),
        "cols = 8",
        "cols = 2\nfaulty_dies = [[0, 0], [0, 1]]",
    );
    let hw = s.write("dead.toml", &text);
    evaluate_with(&s, "--hardware", hw).assert_located(
        hw,
        line_of(&text, "faulty_dies"),
        "wafer.faulty_dies",
        &[
            "all 2 dies are listed as faulty",
            "at least one healthy die",
        ],
    );
}

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
    assert!(run.stdout.is_empty(), "{}", run.context());
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
