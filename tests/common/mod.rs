//! Small instances built in code for the tests, and the binary's harness.
#![allow(dead_code)]

pub mod cli;
pub mod files;

use watos::hardware::Hardware;
use watos::instance::Training;
use watos::{Instance, Model};

pub fn model(layers: u32, hidden: u32, heads: u32, vocab: u32) -> Model {
    toml::from_str(&format!("name='m{layers}x{hidden}'\nlayers={layers}\nhidden={hidden}\nheads={heads}\nvocab={vocab}\ntied_embeddings=true\nmax_positions=4096")).unwrap()
}

/// A one-node cluster of `gpus` devices: every placement is as good as the ideal one, so the MIP
/// is exact against the evaluator.
pub fn node(gpus: u32, dram_gb: f64, sram_mb: f64) -> Hardware {
    toml::from_str(&format!(
        "name='node'\n[device]\npeak_tflops=100\nsram_mb={sram_mb}\ndram_gb={dram_gb}\ndram_bw_tb_per_s=1\n[software]\nattention='unfused'\nexecution='kernels'\n[cluster]\ngpus_per_node={gpus}\nnodes=1\nintra_bw_gb_per_s=100\nintra_latency_us=2\ninter_bw_gb_per_s=10\ninter_latency_us=5\n"
    ))
    .unwrap()
}

/// A small wafer.
pub fn wafer(rows: u32, cols: u32, dram_gb: f64, sram_mb: f64, extra: &str) -> Hardware {
    let hw: Hardware = toml::from_str(&format!(
        "name='w{rows}x{cols}'\n[device]\npeak_tflops=100\nsram_mb={sram_mb}\ndram_gb={dram_gb}\ndram_bw_tb_per_s=1\n[software]\nattention='flash'\nexecution='dataflow'\n[wafer]\nrows={rows}\ncols={cols}\nd2d_bw_tb_per_s=0.5\nd2d_latency_ns=100\n{extra}\n"
    ))
    .unwrap();
    hw.validate().unwrap();
    hw
}

pub fn training(batch: u32, seq: u32) -> Training {
    toml::from_str(&format!("global_batch={batch}\nseq_len={seq}")).unwrap()
}

pub fn instance(model: Model, hw: Hardware, tr: Training, max_micro_batch: u32) -> Instance {
    let mut inst = Instance::new("test", model, hw, tr).unwrap();
    inst.limits.max_micro_batch = Some(max_micro_batch);
    inst
}

pub fn repo(path: &str) -> String {
    format!("{}/{}", env!("CARGO_MANIFEST_DIR"), path)
}

/// Property-test settings: a fixed seed, so every run draws the same instances (the solver's
/// answers must repeat, and so must the tests that check them), and no failure files.
pub fn proptest_config(cases: u32) -> proptest::test_runner::Config {
    proptest::test_runner::Config {
        cases,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x5741_7459),
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    }
}

/// Random small instances on one node, where every placement is ideal and the MIP is exact:
/// 2-4 layers, hidden 64-256, 2-4 GPUs, DRAM from 2 MB (tight) to 40 MB (roomy), some SRAM.
pub fn switch_instances() -> impl proptest::strategy::Strategy<Value = Instance> {
    use proptest::prelude::*;
    (
        2u32..=4,
        prop::sample::select(vec![64u32, 128, 256]),
        prop::sample::select(vec![2u32, 4]),
        prop::sample::select(vec![64u32, 128, 256]),
        prop::sample::select(vec![2u32, 4]),
        2u32..=4,
        2_000f64..40_000.0,
        0f64..4_000.0,
    )
        .prop_map(
            |(layers, hidden, heads, seq, batch, gpus, dram_kb, sram_kb)| {
                instance(
                    model(layers, hidden, heads, 512),
                    node(gpus, dram_kb * 1e-6, sram_kb * 1e-3),
                    training(batch, seq),
                    2,
                )
            },
        )
}

/// A model whose first `first` layers have FFN width `ffn_first` and the rest the default 4h:
/// two layer kinds in two blocks.
pub fn two_kind_model(layers: u32, first: u32, hidden: u32, ffn_first: u32) -> Model {
    toml::from_str(&format!(
        "name='two-kind'\nlayers={layers}\nhidden={hidden}\nheads=2\nvocab=256\ntied_embeddings=true\nmax_positions=4096\n[[block]]\nlayers={first}\nffn_hidden={ffn_first}\n[[block]]\nlayers={}\n",
        layers - first
    ))
    .unwrap()
}

/// Random small two-kind instances on one node (exact MIP): 3-4 layers of which the first 1-2
/// differ in FFN width (narrower or wider), 2-4 GPUs, tight to roomy DRAM.
pub fn two_kind_instances() -> impl proptest::strategy::Strategy<Value = Instance> {
    use proptest::prelude::*;
    (
        3u32..=4,
        1u32..=2,
        prop::sample::select(vec![64u32, 128]),
        prop::sample::select(vec![32u32, 1024]),
        2u32..=4,
        4_000f64..30_000.0,
    )
        .prop_map(|(layers, first, hidden, ffn_first, gpus, dram_kb)| {
            instance(
                two_kind_model(layers, first, hidden, ffn_first),
                node(gpus, dram_kb * 1e-6, 0.0),
                training(2, 64),
                2,
            )
        })
}
