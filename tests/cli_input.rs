//! Bad input through the binary: exit 2 with the file, line and field, what is wrong and what
//! would be valid; never a panic.

mod common;

use common::cli::*;

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
fn interleaving_outside_megatrons_rule_is_refused_with_the_rule() {
    // The GPT-3 instance: 512 sequences; D1 micro-batch 2 gives 256 micro-batches, not a multiple of 7.
    run_here(&[
        "evaluate",
        GPT3,
        "--tp",
        "8",
        "--pp",
        "7",
        "--micro-batch",
        "2",
        "--interleave",
        "2",
    ])
    .assert_bad_input(&["--interleave:", "micro-batches (", "a multiple of pp (7)"]);
    run_here(&[
        "evaluate",
        GPT3,
        "--tp",
        "8",
        "--pp",
        "1",
        "--interleave",
        "2",
    ])
    .assert_bad_input(&["--interleave:", "interleaving needs pp > 1"]);
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
        .assert_bad_input(&["--dp 4294967295:", "4294967295 devices"]);
    run_here(&["evaluate", GPT3, "--dp", "7", "--micro-batch", "2"])
        .assert_bad_input(&["does not divide the global batch 512"]);
    run_here(&["evaluate", GPT3, "--tp", "2", "--pp", "4294967295"])
        .assert_bad_input(&["--pp: 4294967295 is more than the 96 layers of GPT-3 175B"]);
    run_here(&[
        "evaluate",
        GPT3,
        "--tp",
        "2",
        "--pp",
        "96",
        "--dp",
        "4294967295",
    ])
    .assert_bad_input(&["824633720640 devices", "use at most 56 devices"]);
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
        &["is 100000, must be from 1 to 4,096 dies"],
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
