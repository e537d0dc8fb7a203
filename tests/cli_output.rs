//! What the binary prints: tables that fit the width they are given, with legends and units that
//! read well; one JSON object on stdout for every `--json` run, whatever the exit status; quiet
//! ends on closed pipes; MFU and HFU that cannot pass 100%.

mod common;

use std::process::{Command, Stdio};

use common::cli::*;
use serde_json::Value;
use watos::solution::Status;

fn widest_line(text: &str) -> usize {
    text.lines().map(|l| l.chars().count()).max().unwrap_or(0)
}

/// Text output that reads well: no `0.000 us`, no negative zeros.
fn assert_readable(run: &Run) {
    for bad in ["0.000 us", "-0.00", "-0.0%", "NaN", "inf "] {
        assert!(
            !run.stdout.contains(bad),
            "{bad:?} printed\n{}",
            run.context()
        );
    }
}

#[test]
fn tables_fit_the_width_they_are_given() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for (args, columns, limit) in [
        (vec!["solve", GPT3], Some(80), 80),
        (vec!["solve", GPT3, "--wide", "--verbose"], Some(80), 80),
        (
            vec!["evaluate", LLAMA3, "--tp", "8", "--pp", "7"],
            Some(80),
            80,
        ),
        (vec!["validate"], Some(80), 80),
        // A pipe without COLUMNS gets 100 columns.
        (vec!["solve", LLAMA30, "--wide"], None, 100),
        (vec!["validate"], None, 100),
    ] {
        let run = run_with(dir, &args, columns);
        assert!(matches!(run.code, Some(0 | 3)), "{}", run.context());
        assert!(
            widest_line(&run.stdout) <= limit,
            "wider than {limit} columns\n{}",
            run.context()
        );
        assert_readable(&run);
    }
}

#[test]
fn tables_with_marks_carry_a_legend() {
    let run = run_here(&["solve", GPT3]);
    run.assert_code(0);
    let out = run.stdout_unwrapped();
    for legend in [
        "*: the critical stage",
        "n/s/f: layers with no, selective and full recomputation",
        "in flight:",
        "optimal: the plan is proven within the gap target",
        "MFU: model FLOPs",
    ] {
        assert!(out.contains(legend), "no {legend:?}\n{}", run.context());
    }
    // One headline step time; the solver's own figures only as diagnostics under --verbose.
    assert!(!out.contains("MIP objective"), "{}", run.context());
    assert_eq!(
        run.stdout.matches("step time ┆").count(),
        1,
        "{}",
        run.context()
    );
    let verbose = run_here(&["solve", GPT3, "--verbose"]);
    assert!(verbose
        .stdout
        .contains("diagnostics (the solver's internal figures)"));
    assert!(verbose
        .stdout
        .contains("MIP objective at the plan the MIP returned"));
}

/// The `--wide` memory table adds up: each row's categories, with parking in added and parking
/// out taken away, give its DRAM used (to the printed rounding).
#[test]
fn stage_memory_columns_add_up_to_the_dram_used() {
    let run = run_here(&["solve", GPT3, "--wide"]);
    run.assert_code(0);
    let table = run
        .stdout
        .split("DRAM of one device by category, GB")
        .nth(1)
        .unwrap_or_else(|| panic!("no memory table\n{}", run.context()));
    let mut rows = 0;
    for line in table.lines().filter(|l| l.starts_with('│')) {
        let cells: Vec<f64> = line
            .trim_matches('│')
            .split('┆')
            .filter_map(|c| c.trim().trim_matches(['(', ')']).parse().ok())
            .collect();
        if cells.len() != 9 {
            continue; // the header
        }
        let [_, w, g, o, a, ws, park_in, park_out, used] = cells[..] else {
            unreachable!()
        };
        assert!(
            (w + g + o + a + ws + park_in - park_out - used).abs() <= 0.05,
            "{line}"
        );
        rows += 1;
    }
    assert_eq!(rows, 7, "{}", run.context());
}

#[test]
fn statuses_are_spelt_alike_in_text_and_json_and_documented() {
    let text = run_here(&["solve", LLAMA3]);
    let json = run_here(&["solve", LLAMA3, "--json"]);
    let status = json.json()["status"].as_str().map(str::to_string);
    let status = status.unwrap_or_else(|| panic!("no status\n{}", json.context()));
    assert!(
        text.stdout.contains(&format!("┆ {status} ")),
        "{}",
        text.context()
    );
    let readme = std::fs::read_to_string(shipped("README.md")).expect("README");
    for s in [
        Status::Optimal,
        Status::TimeLimit,
        Status::NodeLimit,
        Status::Interrupted,
        Status::PlacementGap,
    ] {
        // Fails to compile when a status is added, so that it is documented too.
        match s {
            Status::Optimal
            | Status::TimeLimit
            | Status::NodeLimit
            | Status::Interrupted
            | Status::PlacementGap => {}
        }
        assert!(readme.contains(&format!("| `{s}` |")), "{s} not in README");
    }
    for mark in ["`*` marks the critical stage", "`n/s/f`", "`in flight`"] {
        assert!(readme.contains(mark), "{mark} not in README");
    }
}

// ---------------------------------------------------------------------------------------------
// --json: one object on stdout whatever the exit status.
// ---------------------------------------------------------------------------------------------

fn assert_error_object(run: &Run, code: i32, kind: &str) -> Value {
    run.assert_code(code);
    let v = run.json();
    let e = &v["error"];
    assert_eq!(e["kind"], kind, "{}", run.context());
    for key in ["file", "line", "field", "message", "help"] {
        assert!(e.get(key).is_some(), "no `{key}`\n{}", run.context());
    }
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
    e.clone()
}

#[test]
fn json_errors_are_one_object_on_stdout() {
    let s = Scratch::new();
    let text = edit(
        &shipped_text("models/gpt3-175b.toml"),
        "heads = 96",
        "heads 96",
    );
    let model = s.write("model.toml", &text);
    let e = assert_error_object(
        &s.run(&["solve", &shipped(GPT3), "--model", model, "--json"]),
        2,
        "input",
    );
    assert_eq!(e["file"], "model.toml");
    assert_eq!(e["line"], line_of(&text, "heads 96") as u64);
    assert_eq!(e["field"], "heads");

    let e = assert_error_object(&run_here(&["solve", "no-such.toml", "--json"]), 2, "io");
    assert_eq!(e["file"], "no-such.toml");
    let e = assert_error_object(
        &run_here(&["evaluate", GPT3, "--tp", "5", "--json"]),
        2,
        "invalid",
    );
    assert_eq!(e["field"], "--tp");
    let e = assert_error_object(
        &run_here(&["solve", GPT3, "--time-limt", "5", "--json"]),
        2,
        "usage",
    );
    assert_eq!(e["field"], "--time-limt");
    assert_error_object(
        &run_here(&["evaluate", GPT3, "--json", "--model", "/"]),
        2,
        "io",
    );
    // An infeasible plan is still a result: its evaluation, with exit 3.
    let run = run_here(&["evaluate", GPT3, "--tp", "1", "--json"]);
    run.assert_code(3);
    assert_eq!(run.json()["feasible"], Value::Bool(false));
}

#[test]
fn help_is_not_an_error() {
    let run = run_here(&["solve", "--help"]);
    run.assert_code(0);
    assert!(run.stdout.contains("--time-limit"), "{}", run.context());
}

// ---------------------------------------------------------------------------------------------
// Pipes and output files.
// ---------------------------------------------------------------------------------------------

/// `watos ... | head -c 100`, `| true`: the reader goes away before the output is written. The
/// write fails (Rust ignores SIGPIPE), the rest is dropped quietly and the exit status is the
/// command's own, never a panic about printing.
#[test]
fn a_reader_that_goes_away_ends_the_output_quietly() {
    for args in [
        vec!["solve", LLAMA3],
        vec!["solve", LLAMA3, "--json"],
        vec!["evaluate", LLAMA3, "--tp", "8", "--pp", "7"],
        vec!["validate"],
    ] {
        let mut child = Command::new(BIN)
            .args(&args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run watos");
        // Closed at once: loading the inputs alone takes longer than this.
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}\n{stderr}");
        assert!(stderr.is_empty(), "{args:?}\n{stderr}");
    }
}

#[cfg(target_os = "linux")]
#[test]
fn an_output_file_that_cannot_be_written_says_so() {
    run_here(&["solve", LLAMA3, "--out", "/dev/full"])
        .assert_code(1)
        .assert_diagnostic(&["cannot write /dev/full", "No space left on device"]);
    let s = Scratch::new();
    s.run(&["solve", &shipped(LLAMA3), "--out", "no/such/dir/plan.toml"])
        .assert_code(1)
        .assert_diagnostic(&["cannot write no/such/dir/plan.toml"]);
}

// ---------------------------------------------------------------------------------------------
// Figures: MFU <= HFU <= 100% at the extremes.
// ---------------------------------------------------------------------------------------------

/// Every efficiency at 1 and a sequence of 131,072 tokens: attention dominates, and the flash
/// kernel computes only its causal half. Model FLOPs count the same half, so MFU stays below
/// HFU and both below 100%.
#[test]
fn utilisation_never_passes_one_hundred_percent() {
    let s = Scratch::new();
    let mut text = shipped_text(CONFIG3);
    for (from, to) in [
        ("gemm = 0.8", "gemm = 1.0"),
        ("gemm_half_dim = 128", "gemm_half_dim = 0"),
        ("attention = 0.6", "attention = 1.0"),
        ("dram = 0.8", "dram = 1.0"),
        ("link = 0.85", "link = 1.0"),
    ] {
        text = edit(&text, from, to);
    }
    let hw = s.write("ideal.toml", &text);
    for seq in ["131072", "4096"] {
        let run = s.run(&[
            "solve",
            &shipped(LLAMA3),
            "--hardware",
            hw,
            "--seq",
            seq,
            "--batch",
            "8",
            "--json",
        ]);
        run.assert_code(0);
        let v = run.json();
        let (mfu, hfu) = (f64_of(&v, "mfu"), f64_of(&v, "hfu"));
        assert!(
            0.0 < mfu && mfu <= hfu && hfu <= 1.0,
            "seq {seq}: MFU {mfu}, HFU {hfu}"
        );
    }
}

/// `watos bench` on two small instances of the scaling series and two formulations: one JSON
/// object with a row per instance and formulation, the same rows in the CSV, and the plot.
#[test]
fn bench_reports_every_run_as_json_csv_and_svg() {
    let s = Scratch::new();
    let (csv, svg) = (s.path("bench.csv"), s.path("bench.svg"));
    let (gpu, wafer) = (
        shipped("instances/scale/gpu8-megatron-1.7b.toml"),
        shipped("instances/scale/wafer16-llama3-8b.toml"),
    );
    let run = s.run(&[
        "bench",
        &wafer,
        &gpu,
        "--formulation",
        "decomposition,monolithic",
        "--time-limit",
        "20",
        "--json",
        "--csv",
        &csv.display().to_string(),
        "--svg",
        &svg.display().to_string(),
    ]);
    assert_eq!(run.code, Some(0), "{}", run.context());
    let v = run.json();
    let rows = v["instances"].as_array().expect("rows");
    let ids: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["file"].as_str().unwrap(),
                r["formulation"].as_str().unwrap(),
            )
        })
        .collect();
    // In the order given, each instance by each formulation.
    assert_eq!(
        ids,
        [
            ("wafer16-llama3-8b", "decomposition"),
            ("wafer16-llama3-8b", "monolithic"),
            ("gpu8-megatron-1.7b", "decomposition"),
            ("gpu8-megatron-1.7b", "monolithic"),
        ]
    );
    for r in rows {
        let num = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} in {r}"));
        assert_eq!(r["status"], "optimal", "{r}");
        assert!(
            num("gap") <= 0.01 && num("lower_bound_s") <= num("step_time_s"),
            "{r}"
        );
        assert!(num("first_plan_s") <= num("target_gap_s"), "{r}");
        assert!(num("target_gap_s") <= num("solve_time_s"), "{r}");
        assert!(r["configurations"].as_u64().unwrap() >= r["mips_solved"].as_u64().unwrap());
    }
    // The two formulations search the same space: their plans are within the gap of each other.
    for pair in rows.chunks(2) {
        let (a, b) = (
            pair[0]["step_time_s"].as_f64().unwrap(),
            pair[1]["step_time_s"].as_f64().unwrap(),
        );
        assert!((a - b).abs() <= 0.01 * a.max(b), "{a} vs {b}");
    }
    let csv = std::fs::read_to_string(csv).expect("CSV written");
    assert_eq!(csv.lines().count(), 1 + rows.len(), "{csv}");
    assert!(
        csv.lines()
            .nth(1)
            .unwrap()
            .starts_with("wafer16-llama3-8b,"),
        "{csv}"
    );
    let svg = std::fs::read_to_string(svg).expect("SVG written");
    assert!(
        svg.starts_with("<svg") && svg.contains("monolithic"),
        "{svg}"
    );
}

/// The README's examples (every line inside a fenced block) fit in 100 columns, as its tables do
/// on a pipe.
#[test]
fn readme_examples_fit_in_100_columns() {
    let readme = std::fs::read_to_string(shipped("README.md")).expect("README");
    let mut fenced = false;
    for (i, line) in readme.lines().enumerate() {
        if line.starts_with("```") {
            fenced = !fenced;
            continue;
        }
        let width = line.chars().count();
        assert!(
            !fenced || width <= 100,
            "README.md:{}: {width} columns:\n{line}",
            i + 1
        );
    }
}
