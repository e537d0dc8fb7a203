//! Bad input found by fuzzing, through the binary: numbers outside their valid range, files that
//! are not regular files or are of the wrong kind, lines too long to draw, and command lines whose
//! message named the wrong thing. Each is exit 2 with a message that names the file, line and
//! field (or the flag) and what would be valid; never a panic.

mod common;

use common::cli::*;

// ---------------------------------------------------------------------------------------------
// Valid ranges: numbers that parse but would give absurd figures, overflow, or hand HiGHS a
// coefficient it cannot represent are refused where they are written, with the range.
// ---------------------------------------------------------------------------------------------

#[test]
fn hardware_numbers_out_of_range_are_located_with_the_range() {
    let s = Scratch::new();
    for (from, to, field, range) in [
        (
            "peak_tflops = 708.0",
            "peak_tflops = 1e-300",
            "device.peak_tflops",
            "from 0.001 to 100,000 TFLOP/s",
        ),
        (
            "sram_mb = 442.5",
            "sram_mb = 1e308",
            "device.sram_mb",
            "from 0 to 1,000,000 MB",
        ),
        (
            "dram_bw_tb_per_s = 2.0",
            "dram_bw_tb_per_s = 1e-300",
            "device.dram_bw_tb_per_s",
            "TB/s",
        ),
        (
            "d2d_bw_tb_per_s = 4.0",
            "d2d_bw_tb_per_s = 1e-300",
            "wafer.d2d_bw_tb_per_s",
            "TB/s",
        ),
        (
            "d2d_latency_ns = 200",
            "d2d_latency_ns = 1e308",
            "wafer.d2d_latency_ns",
            "from 0 to 1,000,000 ns",
        ),
        (
            "gemm = 0.8",
            "gemm = 1e-300",
            "efficiency.gemm",
            "from 0.01 to 1",
        ),
        (
            "attention = 0.6",
            "attention = nan",
            "efficiency.attention",
            "is NaN",
        ),
        (
            "dram = 0.8",
            "dram = 1e-300",
            "efficiency.dram",
            "from 0.01 to 1",
        ),
        (
            "link = 0.85",
            "link = 1e-300",
            "efficiency.link",
            "from 0.01 to 1",
        ),
        (
            "gemm_half_dim = 128",
            "gemm_half_dim = 4294967296",
            "efficiency.gemm_half_dim",
            "from 0 to 65,536",
        ),
        (
            "gemm_half_dim = 128",
            "gemm_half_dim = 1e200",
            "efficiency.gemm_half_dim",
            "is 1e200",
        ),
        (
            "usable_area_mm2 = 40000",
            "usable_area_mm2 = inf",
            "wafer.usable_area_mm2",
            "is inf",
        ),
    ] {
        let text = edit(&shipped_text(CONFIG3), from, to);
        let hw = s.write("hw.toml", &text);
        evaluate_with(&s, "--hardware", hw).assert_located(hw, line_of(&text, to), field, &[range]);
    }
}

#[test]
fn clusters_too_large_to_search_are_refused_with_the_limit() {
    let s = Scratch::new();
    let text = edit(
        &shipped_text("hardware/dgx-a100-80gb.toml"),
        "nodes = 400",
        "nodes = 131072",
    );
    let hw = s.write("hw.toml", &text);
    evaluate_with(&s, "--hardware", hw).assert_located(
        hw,
        line_of(&text, "nodes = "),
        "cluster.nodes",
        &[
            "131072 nodes of 8 GPUs make 1048576 GPUs",
            "at most 131072 GPUs",
        ],
    );
}

#[test]
fn model_sizes_that_would_overflow_name_their_own_key() {
    let s = Scratch::new();
    // 4 x 2^31 (the default ffn_hidden) overflows 32 bits: the error is `hidden`'s.
    for hidden in ["2147483648", "1073741825"] {
        let text = edit(
            &shipped_text("models/gpt3-175b.toml"),
            "hidden = 12288",
            &format!("hidden = {hidden}"),
        );
        let model = s.write("model.toml", &text);
        evaluate_with(&s, "--model", model).assert_located(
            model,
            line_of(&text, "hidden = "),
            "hidden",
            &[&format!("is {hidden}, must be from 1 to 1,048,576")],
        );
    }
}

#[test]
fn training_and_limits_out_of_range_are_located() {
    let s = Scratch::new();
    let inst = |extra: &str| {
        format!(
            "model = \"{}\"\nhardware = \"{}\"\n\n[training]\nglobal_batch = 512\nseq_len = 2048\n{extra}",
            shipped("models/llama3-70b.toml"),
            shipped(CONFIG3)
        )
    };
    for (extra, field, hint) in [
        (
            "\n[limits]\nmax_tp = 0\n",
            "limits.max_tp",
            "is 0, must be at least 1",
        ),
        (
            "\n[limits]\nmax_pp = 0\n",
            "limits.max_pp",
            "omit the key for no limit",
        ),
        (
            "\n[limits]\nmax_micro_batch = 0\n",
            "limits.max_micro_batch",
            "at least 1",
        ),
        (
            "\n[limits]\ntime_limit_s = -5\n",
            "limits.time_limit_s",
            "is -5, must be a positive number",
        ),
        (
            "\n[limits]\ntime_limit_s = nan\n",
            "limits.time_limit_s",
            "is NaN",
        ),
        (
            "\n[limits]\ntime_limit_s = inf\n",
            "limits.time_limit_s",
            "is inf",
        ),
        (
            "\n[limits]\ntime_limit_s = 1e308\n",
            "limits.time_limit_s",
            "to 10,000,000 s",
        ),
    ] {
        let text = inst(extra);
        let file = s.write("inst.toml", &text);
        let key = field.rsplit('.').next().unwrap_or(field);
        s.run(&["solve", file])
            .assert_located(file, line_of(&text, key), field, &[hint]);
    }
    let text = edit(&inst(""), "seq_len = 2048", "seq_len = 4294967295");
    let file = s.write("inst.toml", &text);
    s.run(&["evaluate", file, "--tp", "8"]).assert_located(
        file,
        line_of(&text, "seq_len"),
        "training.seq_len",
        &["from 1 to 1,048,576 tokens"],
    );
    run_here(&["evaluate", LLAMA3, "--seq", "0", "--tp", "8"])
        .assert_bad_input(&["--seq: is 0, must be from 1 to 1,048,576 tokens"]);
}

#[test]
fn time_limits_that_are_not_a_duration_are_refused() {
    for t in ["-5", "NaN", "inf", "1e308", "0"] {
        let flag = format!("--time-limit={t}");
        run_here(&["solve", LLAMA3, &flag]).assert_bad_input(&["--time-limit: is ", "seconds"]);
    }
    // A negative number is a value, not a flag.
    run_here(&["solve", LLAMA3, "--time-limit", "-5"]).assert_bad_input(&["--time-limit: is -5"]);
}

#[test]
fn coordinates_need_exactly_two_numbers() {
    let s = Scratch::new();
    let plan_text = "dp = 1\ntp = 8\npp = 1\nmicro_batch = 1\n\n[[stage]]\nlayers = 80\nrecompute = \"full\"\ndies = [[0, 0, 9], [0, 1], [0, 2], [0, 3], [0, 4], [0, 5], [0, 6], [0, 7]]\n";
    let plan = s.write("plan.toml", plan_text);
    s.run(&["evaluate", &shipped(LLAMA3), "--plan", plan])
        .assert_located(
            plan,
            line_of(plan_text, "dies"),
            "stage[0].dies",
            &["invalid length 3", "two numbers, [row, col]"],
        );
    let text = edit(
        &shipped_text(CONFIG3),
        "usable_area_mm2 = 40000",
        "usable_area_mm2 = 40000\nfaulty_dies = [[1, 2, 3]]",
    );
    let hw = s.write("hw.toml", &text);
    evaluate_with(&s, "--hardware", hw).assert_located(
        hw,
        line_of(&text, "faulty_dies"),
        "wafer.faulty_dies",
        &["invalid length 3"],
    );
}

#[test]
fn recompute_counts_that_overflow_when_summed_are_refused() {
    let s = Scratch::new();
    let text = "dp = 1\ntp = 8\npp = 1\nmicro_batch = 1\n\n[[stage]]\nlayers = 80\nrecompute = { none = 4294967295, full = 4294967295 }\n";
    let plan = s.write("plan.toml", text);
    s.run(&["evaluate", &shipped(LLAMA3), "--plan", plan])
        .assert_located(
            plan,
            line_of(text, "recompute"),
            "stage[0].recompute",
            &["counts sum to 8589934590 but the stage has 80 layers"],
        );
}

#[test]
fn values_of_the_wrong_type_name_the_valid_ones() {
    let s = Scratch::new();
    let text = edit(
        &shipped_text("models/gpt3-175b.toml"),
        "ffn = \"gelu\"",
        "ffn = 5",
    );
    let model = s.write("model.toml", &text);
    evaluate_with(&s, "--model", model).assert_located(
        model,
        line_of(&text, "ffn = 5"),
        "ffn",
        &["`gelu` or `swiglu`, in double quotes"],
    );
    let text = edit(
        &shipped_text(CONFIG3),
        "attention = \"flash\"",
        "attention = 3",
    );
    let hw = s.write("hw.toml", &text);
    evaluate_with(&s, "--hardware", hw).assert_located(
        hw,
        line_of(&text, "attention = 3"),
        "software.attention",
        &["`unfused` or `flash`, in double quotes"],
    );
}

// ---------------------------------------------------------------------------------------------
// Files: only regular files of a sane size are read; a file named by an instance is reported at
// the line that named it.
// ---------------------------------------------------------------------------------------------

#[test]
fn files_that_are_not_regular_files_are_refused() {
    let s = Scratch::new();
    std::fs::create_dir(s.path("dir")).expect("mkdir");
    evaluate_with(&s, "--model", "dir")
        .assert_bad_input(&["cannot read dir: is a directory, not a regular file"]);
    #[cfg(unix)]
    {
        evaluate_with(&s, "--model", "/dev/zero")
            .assert_bad_input(&["cannot read /dev/zero: is a device, not a regular file"]);
        let made = std::process::Command::new("mkfifo")
            .arg(s.path("fifo"))
            .status()
            .expect("run mkfifo");
        assert!(made.success());
        // Refused without opening it: opening a FIFO would wait for a writer forever.
        evaluate_with(&s, "--model", "fifo")
            .assert_bad_input(&["cannot read fifo: is a FIFO (named pipe), not a regular file"]);
    }
}

#[test]
fn files_too_large_or_not_text_are_refused() {
    let s = Scratch::new();
    let big = std::fs::File::create(s.path("big.toml")).expect("create");
    big.set_len(17 << 20).expect("grow");
    evaluate_with(&s, "--model", "big.toml")
        .assert_bad_input(&["is 17825792 bytes; input files are read up to 16777216 bytes"]);
    std::fs::write(s.path("bin.toml"), b"name = \"\xff\"\n").expect("write");
    evaluate_with(&s, "--model", "bin.toml")
        .assert_bad_input(&["cannot read bin.toml: is not UTF-8 text (byte 8"]);
}

#[test]
fn an_instance_naming_the_wrong_kind_of_file_is_reported_at_its_line() {
    let s = Scratch::new();
    s.write("passwd", "root:x:0:0:root:/root:/bin/bash\n");
    for (model, message, inner) in [
        (
            shipped(CONFIG3),
            format!("{} is a hardware file, not a model file", shipped(CONFIG3)),
            "unknown field `device`".to_string(),
        ),
        (
            "passwd".to_string(),
            "passwd is not a valid model file".to_string(),
            "passwd:1:".to_string(),
        ),
    ] {
        let text = format!(
            "name = \"wrong\"\nhardware = \"{}\"\nmodel = \"{model}\"\n\n[training]\nglobal_batch = 512\nseq_len = 2048\n",
            shipped(CONFIG3)
        );
        let inst = s.write("inst.toml", &text);
        let run = s.run(&["evaluate", inst, "--tp", "8"]);
        run.assert_located(inst, 3, "model", &[&message, "names a model file", &inner]);
        let run = s.run(&["evaluate", inst, "--tp", "8", "--json"]);
        let e = &run.json()["error"];
        assert_eq!(
            (e["line"].as_u64(), e["field"].as_str()),
            (Some(3), Some("model"))
        );
        assert_eq!(e["cause"]["kind"], "input", "{}", run.context());
    }
    let text = format!(
        "model = \"{}\"\nhardware = \"{}\"\n\n[training]\nglobal_batch = 512\nseq_len = 2048\n",
        shipped("models/gpt3-175b.toml"),
        shipped("models/gpt3-175b.toml")
    );
    let inst = s.write("inst.toml", &text);
    s.run(&["evaluate", inst, "--tp", "8"]).assert_located(
        inst,
        2,
        "hardware",
        &["is a model file, not a hardware file"],
    );
}

#[test]
fn an_error_far_along_a_very_long_line_is_printed_without_a_panic() {
    let s = Scratch::new();
    let pad = "x".repeat(70_000);
    let cfg = s.write(
        "min/config.json",
        &format!("{{\"model_type\": \"llama\", \"pad\": \"{pad}\", \"hidden_size\": 8192, \"num_hidden_layers\": 80, \"num_attention_heads\": 64, \"intermediate_size\": 28672, \"vocab_size\": \"32000\"}}\n"),
    );
    let run = evaluate_with(&s, "--model", cfg);
    run.assert_bad_input(&[&format!("{cfg}:1:"), "vocab_size"]);
    assert!(
        run.stderr.len() < 5_000,
        "the snippet is a window\n{}",
        run.context()
    );
    // The same in TOML, inside an inline table.
    let spaces = " ".repeat(70_000);
    let text = format!(
        "name = \"m\"\nlayers = 2\nhidden = 64\nheads = 4\nvocab = 100\ntied_embeddings = true\nblock = [{{ layers = 1 }}, {{ layers = 1,{spaces}ffn_hiden = 5 }}]\n"
    );
    let model = s.write("long.toml", &text);
    let run = evaluate_with(&s, "--model", model);
    run.assert_located(
        model,
        7,
        "block[1].ffn_hiden",
        &["did you mean `ffn_hidden`?"],
    );
    assert!(
        run.stderr.len() < 5_000,
        "the snippet is a window\n{}",
        run.context()
    );
}

// ---------------------------------------------------------------------------------------------
// Messages about the command line name the flags the user gave.
// ---------------------------------------------------------------------------------------------

#[test]
fn pipeline_deeper_than_the_model_names_the_flag() {
    let s = Scratch::new();
    let text = edit(
        &shipped_text("models/gpt3-175b.toml"),
        "layers = 96",
        "layers = 12",
    );
    let model = s.write("m12.toml", &text);
    s.run(&["evaluate", &shipped(GPT3), "--model", model, "--pp", "14"])
        .assert_bad_input(&[
            "--pp: 14 is more than the 12 layers of GPT-3 175B",
            "every pipeline stage holds at least one layer",
        ]);
}

#[test]
fn too_many_devices_names_the_flags_given_not_dp() {
    let run = run_here(&["evaluate", GPT3, "--tp", "8", "--pp", "12"]);
    run.assert_bad_input(&[
        "--tp 8 x --pp 12: dp 1 x tp 8 x pp 12 = 96 devices",
        "use at most 56 devices",
    ]);
    assert!(!run.diagnostic().contains("--dp"), "{}", run.context());
}

#[test]
fn evaluate_without_a_plan_asks_for_one() {
    run_here(&["evaluate", GPT3]).assert_bad_input(&[
        "evaluate: needs a plan to score",
        "--plan PLAN.toml",
        "--dp D --tp T --pp P",
        "`watos solve INSTANCE` finds the best plan",
    ]);
}

#[test]
fn bench_on_a_folder_without_instances_is_an_error() {
    let s = Scratch::new();
    std::fs::create_dir(s.path("empty")).expect("mkdir");
    s.run(&["bench", "empty"])
        .assert_bad_input(&["INSTANCE: empty holds no instance files (*.toml)"]);
}
