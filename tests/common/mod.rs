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

/// `nodes` nodes of `gpus` devices; the network at `inter_gb_per_s` per device (100 GB/s inside
/// a node), slower or faster than the node's links.
pub fn cluster(gpus: u32, nodes: u32, inter_gb_per_s: f64) -> Hardware {
    toml::from_str(&format!(
        "name='cluster'\n[device]\npeak_tflops=100\nsram_mb=1\ndram_gb=0.05\ndram_bw_tb_per_s=1\n[software]\nattention='unfused'\nexecution='kernels'\n[cluster]\ngpus_per_node={gpus}\nnodes={nodes}\nintra_bw_gb_per_s=100\nintra_latency_us=2\ninter_bw_gb_per_s={inter_gb_per_s}\ninter_latency_us=1\n"
    ))
    .unwrap()
}

/// Six devices on one of seven fabrics: one switch, a 2 x 3 wafer, two 1 x 3 wafers with slow
/// or fast crossings, a 2 x 3 wafer with a broken link, two nodes of three with a slow or a fast
/// network. DRAM 50 MB, SRAM 1 MB.
pub fn six_devices(kind: u32) -> Hardware {
    let two = |w2w: f64| format!("wafers=2\nw2w_bw_tb_per_s={w2w}\nw2w_latency_ns=50");
    match kind % 7 {
        0 => node(6, 0.05, 1.0),
        1 => wafer(2, 3, 0.05, 1.0, ""),
        2 => wafer(1, 3, 0.05, 1.0, &two(0.05)),
        3 => wafer(1, 3, 0.05, 1.0, &two(16.0)),
        4 => wafer(2, 3, 0.05, 1.0, "faulty_links=[[[0,1],[1,1]]]"),
        5 => cluster(3, 2, 10.0),
        _ => cluster(3, 2, 1000.0),
    }
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
