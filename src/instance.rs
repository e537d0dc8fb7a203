//! An instance: a model, a hardware file and a training setup, each from its own file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, FieldError};
use crate::hardware::{AttentionKernel, Execution, Fabric, Hardware};
use crate::input::{ranges, relative_to, SourceFile};
use crate::workload::Model;

mod framework;

/// Storage type of weights and activations (both 2 bytes in mixed precision).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    Fp16,
    Bf16,
}

/// Storage type of gradients (accumulation across micro-batches and data-parallel reduction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GradDtype {
    /// Megatron-LM's default: FP32 main gradients (4 bytes/parameter).
    Fp32,
    Bf16,
    Fp16,
}

/// Optimizer; its state lives beside FP32 master weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Optimizer {
    /// Two FP32 moments.
    Adam,
    /// One FP32 momentum.
    Sgd,
}

/// The training setup.
///
/// ```
/// let t: watos::Training = toml::from_str("global_batch = 512\nseq_len = 2048").unwrap();
/// assert_eq!(t.tokens_per_step(), 512.0 * 2048.0);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Training {
    /// Sequences per optimizer step.
    pub global_batch: u32,
    /// Tokens per sequence.
    pub seq_len: u32,
    #[serde(default = "default_precision")]
    pub precision: Precision,
    #[serde(default = "default_grad")]
    pub grad_dtype: GradDtype,
    #[serde(default = "default_optimizer")]
    pub optimizer: Optimizer,
    /// Overrides the hardware's default attention kernel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention: Option<AttentionKernel>,
    /// Overrides the hardware's default execution style.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution: Option<Execution>,
}

fn default_precision() -> Precision {
    Precision::Bf16
}
fn default_grad() -> GradDtype {
    GradDtype::Fp32
}
fn default_optimizer() -> Optimizer {
    Optimizer::Adam
}

impl Training {
    /// Tokens processed per optimizer step.
    pub fn tokens_per_step(&self) -> f64 {
        self.global_batch as f64 * self.seq_len as f64
    }

    /// Checks the batch and sequence length are in range.
    ///
    /// ```
    /// let t: watos::Training = toml::from_str("global_batch = 0\nseq_len = 2048").unwrap();
    /// assert_eq!(t.validate().unwrap_err().field, "global_batch");
    /// ```
    pub fn validate(&self) -> Result<(), FieldError> {
        ranges::GLOBAL_BATCH.check_count(
            "global_batch",
            self.global_batch,
            "sequences per step, e.g. 512",
        )?;
        ranges::SEQ_LEN.check_count("seq_len", self.seq_len, "tokens per sequence, e.g. 2048")
    }
}

/// Optional bounds on the search (`watos solve`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest micro-batch tried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_micro_batch: Option<u32>,
    /// Largest tensor-parallel degree tried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tp: Option<u32>,
    /// Largest pipeline depth tried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pp: Option<u32>,
    /// Wall-clock budget of the solver in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_limit_s: Option<f64>,
    /// Recomputation modes plans may use (all when absent): `["none"]` trains without
    /// recomputing anything. A plan using another mode is infeasible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recompute: Option<Vec<crate::plan::Recompute>>,
    /// Framework rule: nothing parked in other devices' DRAM (`framework`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_parking: bool,
    /// Framework rule: the tensor degree divides the key/value heads (none replicated).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tp_divides_kv_heads: bool,
    /// Framework rule: on a cluster, tensor-parallel groups stay inside a node.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tp_within_node: bool,
    /// Framework rule: DRAM per device kept free for the framework, in GB (10^9 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserve_gb: Option<f64>,
}

impl Limits {
    /// Checks every limit: degrees and micro-batch at least 1 (0 would exclude every plan and
    /// read as "does not fit"), a time limit finite and in range.
    ///
    /// ```
    /// let l: watos::instance::Limits = toml::from_str("max_tp = 0").unwrap();
    /// assert_eq!(l.validate().unwrap_err().field, "max_tp");
    /// ```
    pub fn validate(&self) -> Result<(), FieldError> {
        for (field, v) in [
            ("max_micro_batch", self.max_micro_batch),
            ("max_tp", self.max_tp),
            ("max_pp", self.max_pp),
        ] {
            if let Some(v) = v {
                ranges::SEARCH_LIMIT.check_count(field, v, "omit the key for no limit")?;
            }
        }
        if let Some(t) = self.time_limit_s {
            ranges::TIME_LIMIT.check("time_limit_s", t, "seconds, e.g. 60")?;
        }
        if self.recompute.as_ref().is_some_and(Vec::is_empty) {
            return Err(FieldError::new(
                "recompute",
                "allows no recomputation mode, so no plan",
                "list the modes plans may use, e.g. [\"none\"], or omit the key for all",
            ));
        }
        if let Some(r) = self.reserve_gb {
            ranges::RESERVE_GB.check("reserve_gb", r, "GB per device, e.g. 3")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct InstanceFile {
    name: Option<String>,
    model: String,
    hardware: String,
    training: Training,
    #[serde(default)]
    limits: Limits,
}

/// A model on a piece of hardware with a training setup: everything the evaluator needs.
#[derive(Debug, Clone)]
pub struct Instance {
    pub name: String,
    pub model: Model,
    pub hardware: Hardware,
    pub training: Training,
    pub limits: Limits,
    /// Where the model and hardware came from (for reports).
    pub model_path: Option<PathBuf>,
    pub hardware_path: Option<PathBuf>,
    /// DRAM per device already set aside for a framework and taken off `hardware`'s capacity
    /// ([`Instance::with_reserve`]); 0 for the hardware as built.
    pub reserved_bytes: f64,
    fabric: Fabric,
}

impl Instance {
    /// Reads an instance file and the model and hardware files it names (relative to it).
    ///
    /// ```
    /// let inst = watos::Instance::load(concat!(env!("CARGO_MANIFEST_DIR"), "/instances/gpt3-175b-wafer.toml")).unwrap();
    /// assert_eq!(inst.model.layers, 96);
    /// ```
    pub fn load(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let src = SourceFile::read(path)?;
        let file: InstanceFile = src.parse_toml()?;
        file.training
            .validate()
            .map_err(|e| src.field_error(e.within("training")))?;
        file.limits
            .validate()
            .map_err(|e| src.field_error(e.within("limits")))?;
        let model_path = relative_to(path, &file.model);
        let hardware_path = relative_to(path, &file.hardware);
        let model =
            Model::load(&model_path).map_err(|e| named_from(e, &src, "model", &model_path))?;
        let hardware = Hardware::load(&hardware_path)
            .map_err(|e| named_from(e, &src, "hardware", &hardware_path))?;
        let name = file
            .name
            .unwrap_or_else(|| format!("{} on {}", model.name, hardware.name));
        let mut inst = Instance::new(name, model, hardware, file.training)?;
        inst.check_reserve(file.limits.reserve_gb)
            .map_err(|e| src.field_error(e.within("limits")))?;
        inst.limits = file.limits;
        inst.model_path = Some(model_path);
        inst.hardware_path = Some(hardware_path);
        Ok(inst)
    }

    /// Assembles an instance from parts already loaded.
    pub fn new(
        name: impl Into<String>,
        model: Model,
        hardware: Hardware,
        training: Training,
    ) -> Result<Self, Error> {
        model.validate().map_err(|e| {
            Error::invalid(
                format!("model `{}`", model.name),
                format!("{}: {}", e.field, e.message),
                e.help,
            )
        })?;
        training
            .validate()
            .map_err(|e| Error::invalid(format!("training.{}", e.field), e.message, e.help))?;
        let fabric = hardware.fabric().map_err(|e| {
            Error::invalid(
                format!("hardware `{}`: {}", hardware.name, e.field),
                e.message,
                e.help,
            )
        })?;
        if let Some(p) = model.max_positions {
            if model.position == crate::workload::Position::Learned && training.seq_len > p {
                return Err(Error::invalid(
                    "training.seq_len",
                    format!(
                        "{} tokens exceed the model's {} learned positions",
                        training.seq_len, p
                    ),
                    format!("use seq_len <= {p}"),
                ));
            }
        }
        Ok(Instance {
            name: name.into(),
            model,
            hardware,
            training,
            limits: Limits::default(),
            model_path: None,
            hardware_path: None,
            reserved_bytes: 0.0,
            fabric,
        })
    }

    /// The hardware's interconnect.
    pub fn fabric(&self) -> &Fabric {
        &self.fabric
    }

    /// Attention kernel in effect (training setup, else hardware default).
    pub fn attention(&self) -> AttentionKernel {
        self.training
            .attention
            .unwrap_or(self.hardware.software.attention)
    }

    /// Execution style in effect (training setup, else hardware default).
    pub fn execution(&self) -> Execution {
        self.training
            .execution
            .unwrap_or(self.hardware.software.execution)
    }
}

/// A file named by an instance failed to load: the error is the instance's line that named it,
/// with the file's own problem beneath (a hardware file given as `model`, `/etc/passwd`, or a
/// real model file with a mistake: the instance line says which file, the cause says where).
fn named_from(err: Error, instance: &SourceFile, field: &str, named: &Path) -> Error {
    let (path, cause) = match err {
        // The file could not be read at all: the reason is the whole story.
        Error::Io { path, reason, .. } => {
            return instance.field_error(FieldError::new(
                field,
                format!("cannot read {path}: {reason}"),
                "paths are relative to the instance file",
            ))
        }
        Error::Input(e) => (e.file.clone(), Error::Input(e)),
        other => return other,
    };
    // Read again to tell what the file is instead (it was read once already, so this is cheap).
    let looks_like = SourceFile::read(named).ok().and_then(|f| sniff(&f.text));
    let expected = match field {
        "model" => "a model file (models/*.toml, or a Hugging Face config.json)",
        _ => "a hardware file (hardware/*.toml)",
    };
    let message = match looks_like {
        Some(kind) if kind != field => format!(
            "{path} is {} file, not {} file",
            article(kind),
            article(field)
        ),
        _ => format!("{path} is not a valid {field} file"),
    };
    let mut located = instance.field_error(FieldError::new(
        field,
        message,
        format!("`{field}` names {expected}; the problem in it is shown below"),
    ));
    if let Error::Input(e) = &mut located {
        e.cause.push(cause);
    }
    located
}

/// `a model`, `an instance`.
fn article(kind: &str) -> String {
    let an = kind.starts_with(['a', 'e', 'i', 'o', 'u']);
    format!("{} {kind}", if an { "an" } else { "a" })
}

/// What kind of watos file a text is, by its top-level keys (None when it is not TOML or has
/// none of the telling keys).
fn sniff(text: &str) -> Option<&'static str> {
    let table: toml::Table = toml::from_str(text).ok()?;
    let has = |k: &str| table.contains_key(k);
    if has("device") {
        Some("hardware")
    } else if has("training") {
        Some("instance")
    } else if has("stage") {
        Some("plan")
    } else if has("hidden") || has("layers") {
        Some("model")
    } else {
        None
    }
}
