//! What the evaluator returns: step time and its breakdown, memory per stage, violations.

use serde::Serialize;

use crate::instance::Instance;
use crate::plan::{ParkKind, Plan, Recompute, Stage, WeightSource};
use crate::units::GB;

use super::config::ConfigCosts;
use super::stage;

/// Where the step time goes. The parts sum to the step time: the slowest stage's work per
/// micro-batch times the micro-batch count, the pipeline bubble, then the step's tail (data-parallel
/// synchronisation and optimizer) on the stage whose tail is longest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Breakdown {
    /// Forward and backward math.
    pub compute_s: f64,
    /// Recomputed forward work (with its memory traffic).
    pub recompute_s: f64,
    /// DRAM traffic not hidden under math (roofline excess).
    pub dram_s: f64,
    /// Tensor-parallel collectives.
    pub tp_comm_s: f64,
    /// Expert-parallel token all-to-alls.
    pub ep_comm_s: f64,
    /// Pipeline sends between stages.
    pub pp_comm_s: f64,
    /// Parked activations written to and read from other devices' DRAM (sender and helper side).
    pub remote_dram_s: f64,
    /// Pipeline fill and drain, and waiting on slower stages.
    pub bubble_s: f64,
    /// Data-parallel gradient synchronisation (and tied-embedding reduction).
    pub dp_comm_s: f64,
    /// Optimizer step, including parked optimizer state.
    pub optimizer_s: f64,
}

impl Breakdown {
    /// Sum of the parts.
    pub fn total_s(&self) -> f64 {
        self.compute_s
            + self.recompute_s
            + self.dram_s
            + self.tp_comm_s
            + self.ep_comm_s
            + self.pp_comm_s
            + self.remote_dram_s
            + self.bubble_s
            + self.dp_comm_s
            + self.optimizer_s
    }
}

/// One stage's per-micro-batch time by part.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct StageParts {
    pub compute_s: f64,
    pub recompute_s: f64,
    pub memory_s: f64,
    pub tp_s: f64,
    /// Expert-parallel token all-to-alls.
    pub ep_s: f64,
    pub pp_s: f64,
    pub remote_s: f64,
}

/// `-0.0` (what summing no floats gives) printed as `0`.
fn unsigned_zero(x: f64) -> f64 {
    x + 0.0
}

impl StageParts {
    fn normalized(self) -> Self {
        StageParts {
            compute_s: unsigned_zero(self.compute_s),
            recompute_s: unsigned_zero(self.recompute_s),
            memory_s: unsigned_zero(self.memory_s),
            tp_s: unsigned_zero(self.tp_s),
            ep_s: unsigned_zero(self.ep_s),
            pp_s: unsigned_zero(self.pp_s),
            remote_s: unsigned_zero(self.remote_s),
        }
    }

    /// Whole per-micro-batch stage time.
    pub fn total(&self) -> f64 {
        self.compute_s
            + self.recompute_s
            + self.memory_s
            + self.tp_s
            + self.ep_s
            + self.pp_s
            + self.remote_s
    }
}

/// Overflow ignored when checking capacities: one part per million, the order of the MIP solver's
/// feasibility tolerance (HiGHS works to 1e-7 of a device's DRAM) plus whole-byte rounding of
/// parked amounts. Physically nothing: 70 kB of a 70 GB die.
pub const CAPACITY_TOLERANCE: f64 = 1e-6;

/// Memory of one device of a stage, by category, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct StageMemory {
    pub weights_bytes: f64,
    pub weights_in_sram: bool,
    pub grads_bytes: f64,
    pub optimizer_bytes: f64,
    /// Stored activations of all micro-batches in flight (before parking).
    pub activations_bytes: f64,
    pub workspace_bytes: f64,
    /// Activations and optimizer state this stage keeps on a helper.
    pub parked_out_bytes: f64,
    /// Other stages' bytes kept here.
    pub parked_in_bytes: f64,
    pub dram_used_bytes: f64,
    pub dram_capacity_bytes: f64,
    pub sram_used_bytes: f64,
    pub sram_weight_capacity_bytes: f64,
    #[serde(skip)]
    act_out: f64,
    #[serde(skip)]
    opt_out: f64,
}

impl StageMemory {
    /// The report of the stage model's memory terms (`source`: where the stage's weights live).
    pub(super) fn new(c: &ConfigCosts, m: &stage::StageMemory<f64>, source: WeightSource) -> Self {
        StageMemory {
            weights_bytes: m.weights_dram + m.weights_sram,
            weights_in_sram: source == WeightSource::Sram,
            grads_bytes: m.grads,
            optimizer_bytes: m.optimizer,
            activations_bytes: m.activations,
            workspace_bytes: m.workspace,
            parked_out_bytes: unsigned_zero(m.parked_out_activations + m.parked_out_optimizer),
            parked_in_bytes: unsigned_zero(m.parked_in),
            dram_used_bytes: m.dram_used(),
            dram_capacity_bytes: c.dram_capacity_bytes,
            sram_used_bytes: m.weights_sram,
            sram_weight_capacity_bytes: c.sram_weight_bytes,
            act_out: m.parked_out_activations,
            opt_out: m.parked_out_optimizer,
        }
    }

    /// What the stage overruns: DRAM, the SRAM left for weights, or more parked than it holds.
    pub(super) fn violations(&self, j: u32) -> Vec<Violation> {
        let mut out = Vec::new();
        if self.dram_used_bytes > self.dram_capacity_bytes * (1.0 + CAPACITY_TOLERANCE) {
            out.push(Violation::Dram {
                stage: j,
                memory: Box::new(*self),
            });
        }
        if self.sram_used_bytes > self.sram_weight_capacity_bytes * (1.0 + CAPACITY_TOLERANCE) {
            out.push(Violation::Sram {
                stage: j,
                needed_bytes: self.sram_used_bytes,
                available_bytes: self.sram_weight_capacity_bytes,
            });
        }
        for (what, out_bytes, have) in [
            (ParkKind::Activations, self.act_out, self.activations_bytes),
            (ParkKind::Optimizer, self.opt_out, self.optimizer_bytes),
        ] {
            if out_bytes > have * (1.0 + CAPACITY_TOLERANCE) + 1.0 {
                out.push(Violation::Park {
                    stage: j,
                    what,
                    parked_bytes: out_bytes,
                    held_bytes: have,
                });
            }
        }
        out
    }
}

/// What kind of resource a plan overruns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationKind {
    Dram,
    Sram,
    Park,
    Schedule,
    Recompute,
}

/// A resource the plan overruns, with its figures.
#[derive(Debug, Clone, PartialEq)]
pub enum Violation {
    /// A device's DRAM overflows; the stage's memory by category.
    Dram {
        stage: u32,
        memory: Box<StageMemory>,
    },
    /// Weights do not fit the SRAM left beside the streaming buffers.
    Sram {
        stage: u32,
        needed_bytes: f64,
        available_bytes: f64,
    },
    /// A stage parks more of something than it holds.
    Park {
        stage: u32,
        what: ParkKind,
        parked_bytes: f64,
        held_bytes: f64,
    },
    /// The interleaved schedule needs the micro-batches to be a multiple of the stages.
    Schedule { micro_batches: u32, pp: u32 },
    /// Layers recompute in a mode the instance's `[limits] recompute` leaves out.
    Recompute {
        stage: u32,
        mode: Recompute,
        layers: u32,
    },
}

impl Violation {
    /// Which resource.
    pub fn kind(&self) -> ViolationKind {
        match self {
            Violation::Dram { .. } => ViolationKind::Dram,
            Violation::Sram { .. } => ViolationKind::Sram,
            Violation::Park { .. } => ViolationKind::Park,
            Violation::Schedule { .. } => ViolationKind::Schedule,
            Violation::Recompute { .. } => ViolationKind::Recompute,
        }
    }

    /// The stage that overruns it, if one does.
    pub fn stage(&self) -> Option<u32> {
        match self {
            Violation::Dram { stage, .. }
            | Violation::Sram { stage, .. }
            | Violation::Park { stage, .. }
            | Violation::Recompute { stage, .. } => Some(*stage),
            Violation::Schedule { .. } => None,
        }
    }

    /// What is needed and what there is (bytes; 0 for the schedule).
    pub fn figures(&self) -> (f64, f64) {
        match self {
            Violation::Dram { memory, .. } => (memory.dram_used_bytes, memory.dram_capacity_bytes),
            Violation::Sram {
                needed_bytes,
                available_bytes,
                ..
            } => (*needed_bytes, *available_bytes),
            Violation::Park {
                parked_bytes,
                held_bytes,
                ..
            } => (*parked_bytes, *held_bytes),
            Violation::Schedule { .. } | Violation::Recompute { .. } => (0.0, 0.0),
        }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Violation::Dram { stage, memory: m } => write!(
                f,
                "stage {stage}: DRAM needs {:.2} GB per device but has {:.2} GB (over by {:.2} GB): weights {:.2}, gradients {:.2}, optimizer {:.2}, activations {:.2}, workspace {:.2}, parked in {:.2}, minus parked out {:.2}",
                m.dram_used_bytes / GB,
                m.dram_capacity_bytes / GB,
                (m.dram_used_bytes - m.dram_capacity_bytes) / GB,
                if m.weights_in_sram { 0.0 } else { m.weights_bytes / GB },
                m.grads_bytes / GB,
                m.optimizer_bytes / GB,
                m.activations_bytes / GB,
                m.workspace_bytes / GB,
                m.parked_in_bytes / GB,
                m.parked_out_bytes / GB,
            ),
            Violation::Sram {
                stage,
                needed_bytes,
                available_bytes,
            } => write!(
                f,
                "stage {stage}: weights of {:.1} MB do not fit the {:.1} MB of SRAM left beside the streaming buffers",
                needed_bytes / 1e6,
                available_bytes / 1e6
            ),
            Violation::Park {
                stage,
                what,
                parked_bytes,
                held_bytes,
            } => write!(
                f,
                "stage {stage} parks {:.3} GB of {} but holds only {:.3} GB",
                parked_bytes / GB,
                match what {
                    ParkKind::Activations => "activations",
                    ParkKind::Optimizer => "optimizer state",
                },
                held_bytes / GB
            ),
            Violation::Schedule { micro_batches, pp } => write!(
                f,
                "the interleaved schedule needs the {micro_batches} micro-batches to be a multiple of pp = {pp}"
            ),
            Violation::Recompute { stage, mode, layers } => write!(
                f,
                "stage {stage}: {layers} layers recompute `{}`, which [limits] recompute leaves out",
                match mode {
                    Recompute::None => "none",
                    Recompute::Selective => "selective",
                    Recompute::Full => "full",
                }
            ),
        }
    }
}

impl Serialize for Violation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let (needed, available) = self.figures();
        let mut st = s.serialize_struct("Violation", 5)?;
        st.serialize_field("kind", &self.kind())?;
        st.serialize_field("stage", &self.stage())?;
        st.serialize_field("needed_bytes", &needed)?;
        st.serialize_field("available_bytes", &available)?;
        st.serialize_field("message", &self.to_string())?;
        st.end()
    }
}

/// One stage in the evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct StageReport {
    pub layers: u32,
    pub recompute_none: u32,
    pub recompute_selective: u32,
    pub recompute_full: u32,
    /// Micro-batches' worth of activations in flight.
    pub inflight: f64,
    /// Forward + backward of one micro-batch, all parts.
    pub time_per_microbatch_s: f64,
    pub parts: StageParts,
    pub dp_comm_s: f64,
    pub optimizer_s: f64,
    pub memory: StageMemory,
}

impl StageReport {
    pub(super) fn new(
        stage: &Stage,
        inflight: f64,
        tau: f64,
        time: &stage::StageTime<f64>,
        dp_comm_s: f64,
        optimizer_s: f64,
        memory: StageMemory,
    ) -> Self {
        let modes = stage.mode_totals();
        let parts = StageParts {
            compute_s: time.compute,
            recompute_s: time.recompute,
            memory_s: time.memory,
            tp_s: time.tp,
            ep_s: time.ep,
            pp_s: time.pp,
            remote_s: time.remote,
        };
        StageReport {
            layers: stage.layers,
            recompute_none: modes.none,
            recompute_selective: modes.selective,
            recompute_full: modes.full,
            inflight,
            time_per_microbatch_s: tau,
            parts: parts.normalized(),
            dp_comm_s,
            optimizer_s,
            memory,
        }
    }
}

/// One layer on one device for one micro-batch, in one recomputation mode (the granularity of
/// Korthikanti et al.'s Table 4): forward, and backward including any recomputation, each with its
/// tensor-parallel collectives on the slowest stage's groups.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LayerReport {
    /// Index of the layer kind (`Model::layout().kinds`).
    pub kind: usize,
    pub mode: Recompute,
    pub forward_s: f64,
    pub backward_s: f64,
    pub recompute_s: f64,
    pub activation_bytes: f64,
}

/// The evaluator's verdict on a plan.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub step_time_s: f64,
    pub tokens_per_s: f64,
    /// Model FLOPs (no recomputation) per second over the peak of the devices used.
    pub mfu: f64,
    /// Executed FLOPs (with recomputation) per second over the same peak.
    pub hfu: f64,
    pub feasible: bool,
    pub violations: Vec<Violation>,
    pub breakdown: Breakdown,
    /// Per-stage memory of one device, and the peak.
    pub memory: MemorySummary,
    pub stages: Vec<StageReport>,
    pub devices_used: u64,
    pub micro_batches: u32,
    /// Stage whose per-micro-batch time sets the pipeline's pace.
    pub critical_stage: u32,
    pub model_flops_per_step: f64,
    pub hardware_flops_per_step: f64,
    /// All parameters of the model (every expert), and those one token passes through.
    pub params_total: f64,
    pub params_active: f64,
    /// Model FLOPs of training one token, forward and backward (as MFU counts them).
    pub model_flops_per_token: f64,
    /// What the model file holds that watos does not model (see `Model::warnings`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub model_warnings: Vec<String>,
    /// One layer of each kind in each recomputation mode (weights in DRAM).
    pub layer: Vec<LayerReport>,
}

/// Peak memory over the stages.
#[derive(Debug, Clone, Serialize)]
pub struct MemorySummary {
    pub peak_dram_bytes: f64,
    pub dram_capacity_bytes: f64,
    pub peak_sram_bytes: f64,
    pub stages: Vec<StageMemory>,
}

#[allow(clippy::too_many_arguments)]
pub(super) fn assemble(
    inst: &Instance,
    plan: &Plan,
    c: &ConfigCosts,
    pipeline_s: f64,
    tau: &[f64],
    tail: &[f64],
    tp_allreduce_s: f64,
    all_to_all_s: f64,
    recompute_flops_per_mb: f64,
    stages: Vec<StageReport>,
    violations: Vec<Violation>,
) -> Evaluation {
    let crit = (0..tau.len())
        .max_by(|a, b| tau[*a].total_cmp(&tau[*b]).then(b.cmp(a)))
        .unwrap_or(0);
    let tail_stage = (0..tail.len())
        .max_by(|a, b| tail[*a].total_cmp(&tail[*b]).then(b.cmp(a)))
        .unwrap_or(0);
    let m = c.m as f64;
    let parts = stages.get(crit).map(|s| s.parts).unwrap_or_default();
    let (dp_comm_s, optimizer_s) = stages
        .get(tail_stage)
        .map(|s| (s.dp_comm_s, s.optimizer_s))
        .unwrap_or_default();
    let breakdown = Breakdown {
        compute_s: unsigned_zero(m * parts.compute_s),
        recompute_s: unsigned_zero(m * parts.recompute_s),
        dram_s: unsigned_zero(m * parts.memory_s),
        tp_comm_s: unsigned_zero(m * parts.tp_s),
        ep_comm_s: unsigned_zero(m * parts.ep_s),
        pp_comm_s: unsigned_zero(m * parts.pp_s),
        remote_dram_s: unsigned_zero(m * parts.remote_s),
        bubble_s: pipeline_s - m * tau.get(crit).copied().unwrap_or(0.0),
        dp_comm_s: unsigned_zero(dp_comm_s),
        optimizer_s: unsigned_zero(optimizer_s),
    };
    let step_time_s = pipeline_s + tail.get(tail_stage).copied().unwrap_or(0.0);
    let devices = plan.devices();
    let peak = inst.hardware.peak_flops() * devices as f64;
    // Recomputation FLOPs per micro-batch summed over stages, per replica and TP rank: scale to the step.
    let hardware_flops =
        c.model_flops_step + recompute_flops_per_mb * m * plan.dp as f64 * plan.tp as f64;
    let mem: Vec<StageMemory> = stages.iter().map(|s| s.memory).collect();
    Evaluation {
        step_time_s,
        tokens_per_s: inst.training.tokens_per_step() / step_time_s,
        mfu: c.model_flops_step / (step_time_s * peak),
        hfu: hardware_flops / (step_time_s * peak),
        feasible: violations.is_empty(),
        violations,
        breakdown,
        memory: MemorySummary {
            peak_dram_bytes: mem.iter().map(|s| s.dram_used_bytes).fold(0.0, f64::max),
            dram_capacity_bytes: c.dram_capacity_bytes,
            peak_sram_bytes: mem.iter().map(|s| s.sram_used_bytes).fold(0.0, f64::max),
            stages: mem,
        },
        stages,
        devices_used: devices,
        micro_batches: c.m,
        critical_stage: crit as u32,
        model_flops_per_step: c.model_flops_step,
        hardware_flops_per_step: hardware_flops,
        params_total: c.params_total,
        params_active: c.params_active,
        model_flops_per_token: c.model_flops_per_token,
        model_warnings: inst.model.warnings.clone(),
        layer: c
            .kinds
            .iter()
            .enumerate()
            .flat_map(|(k, kc)| {
                Recompute::ALL.map(|r| {
                    let mc = kc.mode_cost(WeightSource::Dram, r);
                    // Half the collectives run in the forward pass.
                    let none = Recompute::None.index();
                    let fwd_comm = kc.tp_collectives[none] / 2.0 * tp_allreduce_s
                        + kc.all_to_alls[none] / 2.0 * all_to_all_s;
                    LayerReport {
                        kind: k,
                        mode: r,
                        forward_s: mc.forward.time_s + fwd_comm,
                        backward_s: kc.time_s(WeightSource::Dram, r, tp_allreduce_s, all_to_all_s)
                            - mc.forward.time_s
                            - fwd_comm,
                        recompute_s: unsigned_zero(mc.recompute.time_s),
                        activation_bytes: kc.act_bytes[r.index()],
                    }
                })
            })
            .collect(),
    }
}
