//! Hugging Face configs of the models people train today, read by the importer: each gives its
//! published parameter count (sources in `tests/data/hf/SOURCES.md`), and modified copies are
//! refused or warned about, never misread.

mod common;

use common::repo;
use watos::cost::work::{active_params, embedding_params, total_params};
use watos::error::Error;
use watos::input::SourceFile;
use watos::workload::LayerKind;
use watos::Model;

fn fixture(name: &str) -> Model {
    Model::load(repo(&format!("tests/data/hf/{name}/config.json"))).unwrap()
}

fn fixture_text(name: &str) -> String {
    std::fs::read_to_string(repo(&format!("tests/data/hf/{name}/config.json"))).unwrap()
}

/// Reads a config given as text, as if it were `dir/config.json`.
fn read(dir: &str, text: &str) -> Result<Model, Error> {
    Model::from_source(&SourceFile::from_text(format!("{dir}/config.json"), text))
}

/// `ours` within 0.5% of `published`.
fn close(what: &str, ours: f64, published: f64) {
    let err = ours / published - 1.0;
    assert!(
        err.abs() <= 0.005,
        "{what}: {ours:.4e} vs published {published:.4e} ({:+.2}%)",
        100.0 * err
    );
}

/// Total parameters (the sequence length only matters for learned positions, which none of
/// these has).
fn total(m: &Model) -> f64 {
    total_params(m, 4096)
}

#[test]
fn dense_models_give_their_published_counts() {
    // Hugging Face model pages (safetensors parameter counts) and model cards.
    close("Llama 3.1 8B", total(&fixture("llama-3.1-8b")), 8.03e9);
    close(
        "Mistral 7B v0.3",
        total(&fixture("mistral-7b-v0.3")),
        7.25e9,
    );
    close("Qwen2.5-7B", total(&fixture("qwen2.5-7b")), 7.61e9);
    close("Phi-3-mini", total(&fixture("phi-3-mini-4k")), 3.82e9);
    // Gemma 2 report (arXiv 2408.00118) Table 2: 8,324M non-embedding + 917M embedding.
    close("Gemma 2 9B", total(&fixture("gemma-2-9b")), 9.241e9);
}

#[test]
fn mixtral_gives_46_7b_total_and_12_9b_active() {
    let m = fixture("mixtral-8x7b");
    close("Mixtral total", total(&m), 46.7e9);
    // Mistral's 12.9B counts the embedding table too (our active count leaves it out).
    close(
        "Mixtral active",
        active_params(&m) + embedding_params(&m, 4096),
        12.9e9,
    );
    assert!(m.warnings.is_empty(), "{:?}", m.warnings);
}

#[test]
fn qwen_moe_gives_14_3b_total_and_2_7b_active() {
    let m = fixture("qwen1.5-moe-a2.7b");
    close("Qwen1.5-MoE total", total(&m), 14.3e9);
    // The model card's 2.7B activated counts the embedding table.
    close(
        "Qwen1.5-MoE active",
        active_params(&m) + embedding_params(&m, 4096),
        2.7e9,
    );
    let layout = m.layout();
    assert!(layout
        .kinds
        .iter()
        .all(|k| matches!(k, LayerKind::Moe { moe, .. } if moe.shared_expert_gate && moe.shared_ffn_hidden == 5632)));
}

#[test]
fn deepseek_v3_gives_671b_total_and_36_6b_active() {
    let m = fixture("deepseek-v3");
    // DeepSeek-V3 README_WEIGHTS: main model 671B, 36.6B activated including the 0.9B head.
    close("DeepSeek-V3 total", total(&m), 671e9);
    close("DeepSeek-V3 active", active_params(&m), 36.6e9);
    // 3 dense layers, then 58 MoE layers.
    let l = m.layout();
    assert_eq!(
        l.blocks.iter().map(|b| b.layers).collect::<Vec<_>>(),
        vec![3, 58]
    );
    // Not modelled, and said so: multi-token prediction, group-limited routing, FP8 storage.
    for word in ["num_nextn_predict_layers", "n_group", "quantization_config"] {
        assert!(
            m.warnings.iter().any(|w| w.contains(word)),
            "{word}: {:?}",
            m.warnings
        );
    }
}

#[test]
fn deepseek_v2_lite_gives_15_7b_total() {
    let m = fixture("deepseek-v2-lite");
    close("DeepSeek-V2-Lite total", total(&m), 15.7e9);
    // The card's "2.4B activated" has two significant digits: ours is 2.45B (without the
    // embedding table, as DeepSeek counts V3).
    let active = active_params(&m);
    assert!((active - 2.45e9).abs() < 0.01e9, "{active}");
    assert!(m.mla.is_some_and(|a| a.q_lora_rank.is_none()));
}

#[test]
fn gemma2_alternates_windows_and_warns_of_soft_capping() {
    let m = fixture("gemma-2-9b");
    let l = m.layout();
    assert_eq!(l.blocks.len(), 42);
    assert_eq!(l.kinds[l.blocks[0].kind].window(), Some(4096));
    assert_eq!(l.kinds[l.blocks[1].kind].window(), None);
    assert!(m.post_norms && m.tied_embeddings && m.head_dim() == 256);
    assert_eq!(
        m.warnings
            .iter()
            .filter(|w| w.contains("softcapping"))
            .count(),
        2,
        "{:?}",
        m.warnings
    );
}

#[test]
fn qwen2_has_qkv_biases_and_no_window_unless_asked() {
    let m = fixture("qwen2.5-7b");
    assert!(m.qkv_bias && !m.bias);
    assert_eq!(m.sliding_window, None);
    // use_sliding_window with max_window_layers 20 of 28: layers 20-27 windowed.
    let text = fixture_text("qwen2.5-7b")
        .replace(
            "\"use_sliding_window\": false",
            "\"use_sliding_window\": true",
        )
        .replace("\"max_window_layers\": 28", "\"max_window_layers\": 20")
        .replace("\"sliding_window\": 131072", "\"sliding_window\": 4096");
    let l = read("qwen", &text).unwrap().layout();
    assert_eq!(
        l.blocks
            .iter()
            .map(|b| (l.kinds[b.kind].window(), b.layers))
            .collect::<Vec<_>>(),
        vec![(None, 20), (Some(4096), 8)]
    );
}

#[test]
fn named_from_the_config_or_the_hub_cache() {
    assert_eq!(
        fixture("mistral-7b-v0.3").name,
        "mistralai/Mistral-7B-Instruct-v0.3"
    );
    assert_eq!(fixture("mixtral-8x7b").name, "mixtral-8x7b");
    // No _name_or_path, in a snapshot folder named by its hash: architecture and size.
    let m = read(
        "snapshots/41bd4c9e7e4fb318ca40e721131d4933966c2cc1",
        &fixture_text("mixtral-8x7b"),
    )
    .unwrap();
    assert_eq!(
        m.name,
        "MixtralForCausalLM (32 layers, hidden 4096, 8 experts top-2)"
    );
}

/// The error of `text`: its field and line.
fn refused(text: &str) -> (String, usize, String) {
    match read("attack", text).unwrap_err() {
        Error::Input(e) => (e.field, e.line, e.help.unwrap_or_default()),
        e => panic!("{e}"),
    }
}

#[test]
fn a_mistral_config_with_experts_is_refused() {
    // Mixtral's config with its model_type changed: read as dense it would be 7.2B.
    let text = fixture_text("mixtral-8x7b").replace("\"mixtral\"", "\"mistral\"");
    let (field, line, help) = refused(&text);
    assert_eq!(field, "num_local_experts");
    assert_eq!(
        fixture_text("mixtral-8x7b")
            .lines()
            .nth(line - 1)
            .map(str::trim),
        Some("\"num_local_experts\": 8,")
    );
    assert!(help.contains("mixtral"), "{help}");
}

#[test]
fn a_missing_shape_field_is_named_with_all_the_needed_keys() {
    let text = fixture_text("deepseek-v3").replace("  \"kv_lora_rank\": 512,\n", "");
    let (field, _, help) = refused(&text);
    assert_eq!(field, "kv_lora_rank");
    assert!(help.contains("qk_rope_head_dim"), "{help}");
    let text = fixture_text("llama-3.1-8b").replace("  \"num_hidden_layers\": 32,\n", "");
    assert_eq!(refused(&text).0, "num_hidden_layers");
}

#[test]
fn an_unknown_moe_key_is_a_warning_not_a_silence() {
    let text = fixture_text("mixtral-8x7b").replace(
        "\"num_local_experts\": 8,",
        "\"num_local_experts\": 8,\n  \"expert_capacity_groups\": 4,",
    );
    let m = read("attack", &text).unwrap();
    assert!(
        m.warnings
            .iter()
            .any(|w| w.contains("expert_capacity_groups")),
        "{:?}",
        m.warnings
    );
}

#[test]
fn head_dim_is_read_for_mistral_small_shapes() {
    // Mistral-Small-24B's shape: hidden 5120, 32 heads of 128 (not 160), 40 layers, FFN 32768,
    // vocabulary 131072: 23.57B (with 160-wide heads it would be 24.10B).
    let text = fixture_text("llama-3.1-8b")
        .replace(
            "\"hidden_size\": 4096",
            "\"hidden_size\": 5120,\n  \"head_dim\": 128",
        )
        .replace(
            "\"intermediate_size\": 14336",
            "\"intermediate_size\": 32768",
        )
        .replace("\"num_hidden_layers\": 32", "\"num_hidden_layers\": 40")
        .replace("\"vocab_size\": 128256", "\"vocab_size\": 131072");
    let m = read("small", &text).unwrap();
    close("Mistral-Small-24B shape", total(&m), 23.57e9);
}

#[test]
fn a_qwen2_config_with_experts_and_bad_dropout_are_refused() {
    let text = fixture_text("qwen2.5-7b").replace(
        "\"num_hidden_layers\": 28,",
        "\"num_hidden_layers\": 28,\n  \"num_experts\": 64,",
    );
    assert_eq!(refused(&text).0, "num_experts");
    let text =
        fixture_text("phi-3-mini-4k").replace("\"resid_pdrop\": 0.0", "\"resid_pdrop\": 1.2");
    assert_eq!(refused(&text).0, "resid_pdrop");
}

#[test]
fn shipped_moe_models_give_their_published_counts() {
    let load = |name: &str| Model::load(repo(&format!("models/{name}.toml"))).unwrap();
    let m = load("gshard-137b");
    // DeepSeekMoE Table 6 counts the embedding table among the activated parameters.
    close("GShard total", total(&m), 136.5e9);
    close(
        "GShard active",
        active_params(&m) + embedding_params(&m, 4096),
        21.6e9,
    );
    let m = load("deepseek-v3-671b");
    close("DeepSeek-V3 total", total(&m), 671e9);
    close("DeepSeek-V3 active", active_params(&m), 36.6e9);
    assert_eq!(m.layout(), fixture("deepseek-v3").layout());
    let m = load("mixtral-8x7b");
    close("Mixtral total", total(&m), 46.7e9);
    assert_eq!(m.layout(), fixture("mixtral-8x7b").layout());
}

/// The shipped model files written from Hugging Face configs read the same as those configs do,
/// and give the published counts.
#[test]
fn shipped_llama3_files_match_their_configs_and_published_counts() {
    let shape = |m: &Model| {
        (
            m.layers,
            m.hidden,
            m.heads,
            m.kv_heads(),
            m.head_dim(),
            m.ffn_hidden(),
            m.vocab,
            m.tied_embeddings,
            m.bias,
        )
    };
    let shipped = |name: &str| Model::load(repo(&format!("models/{name}.toml"))).unwrap();
    // Llama 3 8B and Llama 3.1 8B differ only in their rotary scaling.
    let llama3_8b = shipped("llama3-8b");
    assert_eq!(shape(&llama3_8b), shape(&fixture("llama-3.1-8b")));
    close("Llama 3 8B", total(&llama3_8b), 8.03e9);
    // meta-llama/Llama-3.1-405B config.json, its shape keys.
    let hf_405b = read(
        "llama-3.1-405b",
        r#"{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
            "hidden_size": 16384, "intermediate_size": 53248, "num_attention_heads": 128,
            "num_hidden_layers": 126, "num_key_value_heads": 8, "vocab_size": 128256,
            "max_position_embeddings": 131072, "attention_bias": false, "mlp_bias": false,
            "tie_word_embeddings": false, "rms_norm_eps": 1e-05, "rope_theta": 500000.0}"#,
    )
    .unwrap();
    let llama31_405b = shipped("llama3.1-405b");
    assert_eq!(shape(&llama31_405b), shape(&hf_405b));
    close("Llama 3.1 405B", total(&llama31_405b), 405.9e9);
    assert_eq!(total(&llama31_405b), total(&hf_405b));
}
