//! What the evaluator returns: step time and its breakdown, memory per stage, violations.

use serde::Serialize;

use crate::instance::Instance;
use crate::plan::{Plan, Stage, Tier};
use crate::units::GB;

use super::config::ConfigCosts;
use super::memory::Recompute;

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
            pp_s: unsigned_zero(self.pp_s),
            remote_s: unsigned_zero(self.remote_s),
        }
    }

    /// Whole per-micro-batch stage time.
    pub fn total(&self) -> f64 {
        self.compute_s + self.recompute_s + self.memory_s + self.tp_s + self.pp_s + self.remote_s
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
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        c: &ConfigCosts,
        j: u32,
        stage: &Stage,
        params: f64,
        inflight: f64,
        act_out: f64,
        opt_out: f64,
        parked_in: [f64; 2],
    ) -> Self {
        let weights = params * c.state.weights;
        let sram = stage.weights == Tier::Sram;
        let grads = params * c.state.grads;
        let optimizer = c.optimizer_bytes(params);
        let per_mb: f64 = Recompute::ALL
            .iter()
            .map(|r| stage.recompute.get(*r) as f64 * c.act_bytes[r.index()])
            .sum::<f64>()
            + c.ends_act_bytes(j);
        let activations = inflight * per_mb;
        let parked_in = parked_in[0] + parked_in[1];
        let dram = if sram { 0.0 } else { weights } + grads + optimizer - opt_out + activations
            - act_out
            + c.workspace_bytes
            + parked_in;
        StageMemory {
            weights_bytes: weights,
            weights_in_sram: sram,
            grads_bytes: grads,
            optimizer_bytes: optimizer,
            activations_bytes: activations,
            workspace_bytes: c.workspace_bytes,
            parked_out_bytes: unsigned_zero(act_out + opt_out),
            parked_in_bytes: unsigned_zero(parked_in),
            dram_used_bytes: dram,
            dram_capacity_bytes: c.dram_capacity_bytes,
            sram_used_bytes: if sram { weights } else { 0.0 },
            sram_weight_capacity_bytes: c.sram_weight_bytes,
            act_out,
            opt_out,
        }
    }

    pub(super) fn violations(
        &self,
        _c: &ConfigCosts,
        j: u32,
        _stage: &Stage,
        out: &mut Vec<Violation>,
    ) {
        if self.dram_used_bytes > self.dram_capacity_bytes * (1.0 + CAPACITY_TOLERANCE) {
            out.push(Violation {
                kind: "dram".into(),
                stage: Some(j),
                needed_bytes: self.dram_used_bytes,
                available_bytes: self.dram_capacity_bytes,
                message: format!(
                    "stage {j}: DRAM needs {:.2} GB per device but has {:.2} GB (over by {:.2} GB): weights {:.2}, gradients {:.2}, optimizer {:.2}, activations {:.2}, workspace {:.2}, parked in {:.2}, parked out -{:.2}",
                    self.dram_used_bytes / GB,
                    self.dram_capacity_bytes / GB,
                    (self.dram_used_bytes - self.dram_capacity_bytes) / GB,
                    if self.weights_in_sram { 0.0 } else { self.weights_bytes / GB },
                    self.grads_bytes / GB,
                    self.optimizer_bytes / GB,
                    self.activations_bytes / GB,
                    self.workspace_bytes / GB,
                    self.parked_in_bytes / GB,
                    self.parked_out_bytes / GB,
                ),
            });
        }
        if self.sram_used_bytes > self.sram_weight_capacity_bytes * (1.0 + CAPACITY_TOLERANCE) {
            out.push(Violation {
                kind: "sram".into(),
                stage: Some(j),
                needed_bytes: self.sram_used_bytes,
                available_bytes: self.sram_weight_capacity_bytes,
                message: format!(
                    "stage {j}: weights of {:.1} MB do not fit the {:.1} MB of SRAM left beside the streaming buffers",
                    self.sram_used_bytes / 1e6,
                    self.sram_weight_capacity_bytes / 1e6
                ),
            });
        }
        for (what, out_bytes, have) in [
            ("activations", self.act_out, self.activations_bytes),
            ("optimizer state", self.opt_out, self.optimizer_bytes),
        ] {
            if out_bytes > have * (1.0 + CAPACITY_TOLERANCE) + 1.0 {
                out.push(Violation {
                    kind: "park".into(),
                    stage: Some(j),
                    needed_bytes: out_bytes,
                    available_bytes: have,
                    message: format!(
                        "stage {j} parks {:.3} GB of {what} but holds only {:.3} GB",
                        out_bytes / GB,
                        have / GB
                    ),
                });
            }
        }
    }
}

/// A resource the plan overruns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Violation {
    /// `dram`, `sram`, `park` or `schedule`.
    pub kind: String,
    pub stage: Option<u32>,
    pub needed_bytes: f64,
    pub available_bytes: f64,
    pub message: String,
}

impl Violation {
    pub(super) fn schedule(message: String) -> Self {
        Violation {
            kind: "schedule".into(),
            stage: None,
            needed_bytes: 0.0,
            available_bytes: 0.0,
            message,
        }
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
        parts: StageParts,
        dp_comm_s: f64,
        optimizer_s: f64,
        memory: StageMemory,
    ) -> Self {
        StageReport {
            layers: stage.layers,
            recompute_none: stage.recompute.none,
            recompute_selective: stage.recompute.selective,
            recompute_full: stage.recompute.full,
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
    pub devices_used: u32,
    pub micro_batches: u32,
    /// Stage whose per-micro-batch time sets the pipeline's pace.
    pub critical_stage: u32,
    pub model_flops_per_step: f64,
    pub hardware_flops_per_step: f64,
    /// One layer in each recomputation mode (weights in DRAM).
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
        layer: Recompute::ALL
            .iter()
            .map(|r| {
                let mc = c.mode_cost(Tier::Dram, *r);
                let fwd_tp = if c.config.tp > 1 {
                    2.0 * tp_allreduce_s
                } else {
                    0.0
                };
                LayerReport {
                    mode: *r,
                    forward_s: mc.forward.time_s + fwd_tp,
                    backward_s: c.layer_time_s(Tier::Dram, *r, tp_allreduce_s)
                        - mc.forward.time_s
                        - fwd_tp,
                    recompute_s: unsigned_zero(mc.recompute.time_s),
                    activation_bytes: c.act_bytes[r.index()],
                }
            })
            .collect(),
    }
}
