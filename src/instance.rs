//! An instance: a model, a hardware file and a training setup, each from its own file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{ensure, Error, FieldError};
use crate::hardware::{AttentionKernel, Execution, Fabric, Hardware};
use crate::input::{relative_to, SourceFile};
use crate::workload::Model;

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

    fn validate(&self) -> Result<(), FieldError> {
        ensure(self.global_batch > 0, || {
            FieldError::new(
                "global_batch",
                "must be at least 1",
                "sequences per step, e.g. 512",
            )
        })?;
        ensure(self.seq_len > 0, || {
            FieldError::new(
                "seq_len",
                "must be at least 1",
                "tokens per sequence, e.g. 2048",
            )
        })
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
        let model_path = relative_to(path, &file.model);
        let hardware_path = relative_to(path, &file.hardware);
        let model = Model::load(&model_path).map_err(|e| named_from(e, &src, "model"))?;
        let hardware =
            Hardware::load(&hardware_path).map_err(|e| named_from(e, &src, "hardware"))?;
        let name = file
            .name
            .unwrap_or_else(|| format!("{} on {}", model.name, hardware.name));
        let mut inst = Instance::new(name, model, hardware, file.training)?;
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

/// A file referenced by an instance failed: say which instance field pointed at it.
fn named_from(err: Error, instance: &SourceFile, field: &str) -> Error {
    match err {
        Error::Io { path, reason, .. } => {
            let located = instance.field_error(FieldError::new(
                field,
                format!("cannot read {path}: {reason}"),
                "paths are relative to the instance file",
            ));
            located
        }
        other => other,
    }
}
