//! The published figures and the model and hardware files, compiled into the binary.

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::hardware::Hardware;
use crate::input::SourceFile;
use crate::plan::Recompute;
use crate::units::TERA;
use crate::workload::Model;

/// The published figures, as shipped in `data/measurements.toml`.
pub const MEASUREMENTS_TOML: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/data/measurements.toml"
));

const HARDWARE_FILES: &[(&str, &str)] = &[(
    "dgx-a100-80gb",
    include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/hardware/dgx-a100-80gb.toml"
    )),
)];

macro_rules! model_files {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/models/", $name, ".toml")))),*]
    };
}

const MODEL_FILES: &[(&str, &str)] = model_files!(
    "megatron-1.7b",
    "megatron-3.6b",
    "megatron-7.5b",
    "megatron-18.4b",
    "megatron-39.1b",
    "megatron-76.1b",
    "megatron-145.6b",
    "megatron-310.1b",
    "megatron-529.6b",
    "megatron-1008b",
    "megatron-22b",
    "megatron-175b",
    "megatron-530b",
    "megatron-1t",
);

/// The contents of `data/measurements.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Measurements {
    /// Hardware file (under `hardware/`, without extension) every run used.
    pub hardware: String,
    /// Tokens per sequence of every run.
    pub seq_len: u32,
    /// Vocabulary of every model.
    pub vocab: u32,
    /// Narayanan et al., Table 1.
    pub megatron: MegatronTable1,
    /// Korthikanti et al., Tables 3-5 and Figure 1.
    pub korthikanti: Korthikanti,
    /// The nearest peer's published accuracy.
    pub calculon: CalculonFigures,
}

/// Narayanan et al., Table 1.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MegatronTable1 {
    /// Authors, title, venue.
    pub paper: String,
    /// arXiv identifier.
    pub arxiv: String,
    /// Which table of the paper.
    pub table: String,
    /// How the published figure turns into a step time.
    pub note: String,
    /// Where the per-row run settings (micro-batch, interleave, DDP) come from.
    pub knobs_source: String,
    /// One entry per run.
    #[serde(rename = "row")]
    pub rows: Vec<MegatronRow>,
}

/// One weak-scaling run of Megatron Table 1.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MegatronRow {
    /// Parameters in billions, the run's name in the paper.
    pub params_b: f64,
    /// Model file under `models/`, without extension.
    pub model: String,
    /// Attention heads.
    pub heads: u32,
    /// Hidden size.
    pub hidden: u32,
    /// Transformer layers.
    pub layers: u32,
    /// Tensor-parallel degree.
    pub tp: u32,
    /// Pipeline-parallel degree.
    pub pp: u32,
    /// GPUs in the run (data parallelism is GPUs / (tp pp)).
    pub gpus: u32,
    /// Global batch in sequences.
    pub batch: u32,
    /// Achieved TFLOP/s per GPU, counting recomputation.
    pub tflops_per_gpu: f64,
    /// Micro-batch size of the run (from the run script).
    pub micro_batch: u32,
    /// Model chunks per device, interleaved 1F1B (1: plain 1F1B).
    pub interleave: u32,
    /// Data-parallel implementation: `torch` overlaps the gradient all-reduce with the backward
    /// pass, `local` reduces after it.
    pub ddp: String,
}

impl MegatronRow {
    /// FLOPs per step by Megatron's count with full recomputation:
    /// `96 B s L h^2 (1 + s/(6h) + V/(16 L h))` (arXiv 2104.04473, section 5.1).
    pub fn flops_per_step(&self, seq_len: u32, vocab: u32) -> f64 {
        let (b, s, l, h, v) = (
            self.batch as f64,
            seq_len as f64,
            self.layers as f64,
            self.hidden as f64,
            vocab as f64,
        );
        96.0 * b * s * l * h * h * (1.0 + s / (6.0 * h) + v / (16.0 * l * h))
    }

    /// The measured step time the published throughput implies.
    ///
    /// ```
    /// let data = watos::validate::Measurements::embedded().unwrap();
    /// let row = &data.megatron.rows[0];
    /// let t = row.measured_step_time_s(data.seq_len, data.vocab);
    /// assert!(t > 1.0 && t < 10.0, "{t}");
    /// ```
    pub fn measured_step_time_s(&self, seq_len: u32, vocab: u32) -> f64 {
        self.flops_per_step(seq_len, vocab) / (self.gpus as f64 * self.tflops_per_gpu * TERA)
    }
}

/// Korthikanti et al.'s tables and figure.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Korthikanti {
    /// Authors, title, venue.
    pub paper: String,
    /// arXiv identifier.
    pub arxiv: String,
    /// Configurations.
    pub table3: Table3,
    /// Per-layer times.
    pub table4: Table4,
    /// Step times and utilisation.
    pub table5: Table5,
    /// Memory per GPU.
    pub figure1: Figure1,
}

/// Korthikanti Table 3: the configurations.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Table3 {
    /// Which table of the paper.
    pub table: String,
    /// One entry per model.
    #[serde(rename = "row")]
    pub rows: Vec<KorthikantiConfig>,
}

/// One configuration of Korthikanti Table 3 (data parallel 1).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KorthikantiConfig {
    /// The paper's name for the model, e.g. `22B`.
    pub name: String,
    /// Model file under `models/`, without extension.
    pub model: String,
    /// Attention heads.
    pub heads: u32,
    /// Hidden size.
    pub hidden: u32,
    /// Transformer layers.
    pub layers: u32,
    /// Tensor-parallel degree.
    pub tp: u32,
    /// Pipeline-parallel degree.
    pub pp: u32,
    /// GPUs in the run.
    pub gpus: u32,
    /// Global batch in sequences.
    pub batch: u32,
    /// Micro-batch in sequences.
    pub micro_batch: u32,
    /// Model chunks per GPU; absent where the paper prints "-".
    pub interleave: Option<u32>,
}

/// Korthikanti Table 4: one layer of one model.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Table4 {
    /// Which table of the paper.
    pub table: String,
    /// Table 3 configuration the layer belongs to.
    pub name: String,
    /// One entry per variant.
    #[serde(rename = "row")]
    pub rows: Vec<LayerTiming>,
}

/// One variant of Table 4.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerTiming {
    /// The paper's name for the variant.
    pub variant: String,
    /// Recomputation of the variant.
    pub recompute: Recompute,
    /// Whether the variant uses sequence parallelism.
    pub sequence_parallel: bool,
    /// Forward pass of one layer, in ms as published.
    pub forward_ms: f64,
    /// Backward pass (with any recomputation), in ms as published.
    pub backward_ms: f64,
}

/// Korthikanti Table 5: step times, MFU and HFU.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Table5 {
    /// Which table of the paper.
    pub table: String,
    /// One entry per model.
    #[serde(rename = "row")]
    pub rows: Vec<StepTimes>,
}

/// One model of Table 5.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepTimes {
    /// Table 3 configuration.
    pub name: String,
    /// Step time with full recomputation.
    pub full_recompute_s: f64,
    /// Step time with sequence parallelism and selective recomputation.
    pub sp_selective_s: f64,
    /// Model FLOPs utilisation of the latter, percent.
    pub mfu_pct: f64,
    /// Hardware FLOPs utilisation of the latter, percent.
    pub hfu_pct: f64,
}

/// Korthikanti Figure 1: memory per GPU.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Figure1 {
    /// Which figure of the paper.
    pub figure: String,
    /// One entry per model.
    #[serde(rename = "row")]
    pub rows: Vec<MemoryFigures>,
}

/// One model of Figure 1, in GiB as published.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryFigures {
    /// Table 3 configuration.
    pub name: String,
    /// Weights, gradients and optimizer state of the layers.
    pub params_optimizer_gib: f64,
    /// Layer activations without recomputation or sequence parallelism.
    pub activations_none_gib: f64,
    /// Layer activations with sequence parallelism and selective recomputation.
    pub activations_sp_selective_gib: f64,
}

/// Calculon's published accuracy on the same data (Isaev et al., SC'23), in percent.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CalculonFigures {
    /// Authors, title, venue.
    pub paper: String,
    /// Mean absolute step-time error on Korthikanti Table 5.
    pub table5_mean_abs_error_pct: f64,
    /// Worst absolute step-time error on Korthikanti Table 5.
    pub table5_worst_abs_error_pct: f64,
    /// Bound on the error for Megatron Table 1 runs without pipelining.
    pub table1_unpipelined_within_pct: f64,
    /// How much too fast Calculon predicts the pipelined Table 1 runs, low and high.
    pub table1_pipelined_optimistic_pct: [f64; 2],
}

impl Measurements {
    /// The figures compiled into the binary.
    ///
    /// ```
    /// let data = watos::validate::Measurements::embedded().unwrap();
    /// assert_eq!(data.megatron.rows.len(), 10);
    /// assert_eq!(data.korthikanti.table5.rows.len(), 4);
    /// ```
    pub fn embedded() -> Result<Self, Error> {
        Self::parse(MEASUREMENTS_TOML)
    }

    /// Parses measurements in the format of `data/measurements.toml`.
    pub fn parse(text: &str) -> Result<Self, Error> {
        SourceFile::from_text("data/measurements.toml", text).parse_toml()
    }

    pub(super) fn config(&self, name: &str) -> Result<&KorthikantiConfig, Error> {
        self.korthikanti
            .table3
            .rows
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| {
                data_error(
                    format!("`{name}` is not a configuration of Korthikanti Table 3"),
                    "name one of the [[korthikanti.table3.row]] entries",
                )
            })
    }
}

pub(super) fn data_error(message: impl Into<String>, help: impl Into<String>) -> Error {
    Error::invalid("data/measurements.toml", message, help)
}

/// The text of a file compiled into watos, as a source named after its place in the repository.
fn embedded(
    files: &[(&str, &'static str)],
    dir: &str,
    what: &str,
    name: &str,
) -> Result<SourceFile, Error> {
    let (_, text) = files.iter().find(|(n, _)| *n == name).ok_or_else(|| {
        let known: Vec<&str> = files.iter().map(|(n, _)| *n).collect();
        data_error(
            format!("{what} `{name}` is not compiled into watos"),
            format!("known: {}", known.join(", ")),
        )
    })?;
    Ok(SourceFile::from_text(format!("{dir}/{name}.toml"), *text))
}

pub(super) fn load_hardware(name: &str) -> Result<Hardware, Error> {
    Hardware::from_source(&embedded(HARDWARE_FILES, "hardware", "hardware", name)?)
}

pub(super) fn load_model(name: &str) -> Result<Model, Error> {
    Model::from_source(&embedded(MODEL_FILES, "models", "model", name)?)
}
