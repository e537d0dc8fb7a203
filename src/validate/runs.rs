//! The published runs rebuilt as instances and plans, and run through the evaluator.

use rayon::prelude::*;

use super::data::{data_error, load_model, KorthikantiConfig, Measurements, MegatronRow};
use super::rows::{Group, Quantity, Row, Table1Knobs};
use crate::cost::{evaluate, stage, ConfigCosts, Evaluation};
use crate::error::Error;
use crate::hardware::Hardware;
use crate::instance::{GradDtype, Instance, Optimizer, Precision, Training};
use crate::plan::Plan;
use crate::plan::{Config, Recompute, WeightSource};
use crate::units::{GIB, MS};

/// Micro-batch sizes tried for Megatron Table 1 (those dividing the per-replica batch).
pub const TABLE1_KNOBS_NOTE: &str = "Megatron-LM's Table 1 does not print micro-batch size, \
interleaving or the data-parallel implementation; each row uses the settings of the script that \
ran it (NVIDIA/Megatron-LM, examples/sc21/run_table_1.sh): micro-batch 16 to 1, interleaving on the \
76B to 530B runs, and PyTorch DDP (gradient all-reduce overlapped with the backward pass) up to 18B.";

/// The instance of one published run: FP16 mixed precision, Adam, FP32 main gradients.
#[allow(clippy::too_many_arguments)]
fn instance(
    data: &Measurements,
    hardware: &Hardware,
    model_file: &str,
    heads: u32,
    hidden: u32,
    layers: u32,
    batch: u32,
) -> Result<Instance, Error> {
    let model = load_model(model_file)?;
    // The model file and the paper's row must describe the same network.
    if (model.heads, model.hidden, model.layers, model.vocab) != (heads, hidden, layers, data.vocab)
    {
        return Err(data_error(
            format!(
                "models/{model_file}.toml has heads {}, hidden {}, layers {}, vocab {}; the published run has {heads}, {hidden}, {layers}, {}",
                model.heads, model.hidden, model.layers, model.vocab, data.vocab
            ),
            "the model file and the measurement must agree",
        ));
    }
    let training = Training {
        global_batch: batch,
        seq_len: data.seq_len,
        precision: Precision::Fp16,
        grad_dtype: GradDtype::Fp32,
        optimizer: Optimizer::Adam,
        attention: None,
        execution: None,
    };
    let name = format!("{} on {}", model.name, hardware.name);
    Instance::new(name, model, hardware.clone(), training)
}

fn data_parallel(gpus: u32, tp: u32, pp: u32, what: &str) -> Result<u32, Error> {
    let group = tp * pp;
    if group == 0 || gpus % group != 0 {
        return Err(data_error(
            format!("{what}: {gpus} GPUs are not a multiple of tp {tp} x pp {pp}"),
            "GPUs = dp x tp x pp",
        ));
    }
    Ok(gpus / group)
}

pub(super) fn table1_label(r: &MegatronRow) -> String {
    format!("{}B", r.params_b)
}

pub(super) fn megatron_table1(
    data: &Measurements,
    hardware: &Hardware,
) -> Result<(Vec<Row>, Vec<Table1Knobs>), Error> {
    let results: Vec<Result<(Row, Table1Knobs), Error>> = data
        .megatron
        .rows
        .par_iter()
        .map(|r| {
            let label = table1_label(r);
            let inst = instance(
                data, hardware, &r.model, r.heads, r.hidden, r.layers, r.batch,
            )?;
            let dp = data_parallel(r.gpus, r.tp, r.pp, &label)?;
            let overlap = match r.ddp.as_str() {
                "torch" => true,
                "local" => false,
                other => {
                    return Err(data_error(
                        format!("{label}: ddp = \"{other}\""),
                        "ddp is \"torch\" or \"local\"",
                    ))
                }
            };
            let mut plan = Plan::uniform(r.layers, dp, r.tp, r.pp, r.micro_batch, Recompute::Full);
            plan.interleave = r.interleave;
            plan.dp_overlap = overlap;
            let e = evaluate(&inst, &plan)?;
            let plan = &plan;
            let measured = r.measured_step_time_s(data.seq_len, data.vocab);
            let row = Row::new(
                Group::MegatronTable1,
                label,
                Quantity::StepTime,
                e.step_time_s,
                measured,
                plan,
                e.feasible,
            );
            let knobs = Table1Knobs {
                params_b: r.params_b,
                dp,
                tp: r.tp,
                pp: r.pp,
                micro_batch: plan.micro_batch,
                interleave: plan.interleave,
                dp_overlap: plan.dp_overlap,
            };
            Ok((row, knobs))
        })
        .collect();
    let mut rows = Vec::new();
    let mut knobs = Vec::new();
    for r in results {
        let (row, k) = r?;
        rows.push(row);
        knobs.push(k);
    }
    Ok((rows, knobs))
}

/// A Table 3 configuration evaluated with one recomputation mode and sequence-parallel setting.
struct Run {
    plan: Plan,
    eval: Evaluation,
    costs: ConfigCosts,
}

fn run_config(
    data: &Measurements,
    hardware: &Hardware,
    c: &KorthikantiConfig,
    mode: Recompute,
    sequence_parallel: bool,
) -> Result<Run, Error> {
    let inst = instance(
        data, hardware, &c.model, c.heads, c.hidden, c.layers, c.batch,
    )?;
    let dp = data_parallel(c.gpus, c.tp, c.pp, &c.name)?;
    let mut plan = Plan::uniform(c.layers, dp, c.tp, c.pp, c.micro_batch, mode);
    plan.sequence_parallel = sequence_parallel;
    plan.interleave = c.interleave.unwrap_or(1);
    let eval = evaluate(&inst, &plan)?;
    let costs = ConfigCosts::new(&inst, Config::of(&plan));
    Ok(Run { plan, eval, costs })
}

impl Run {
    /// The first stage's memory terms with its layers in `mode`, less the same stage without
    /// layers: what one GPU holds for its transformer layers (Figure 1 leaves out the embedding
    /// and head).
    fn layer_memory(&self, mode: Recompute) -> stage::StageMemory<f64> {
        let layers = self.eval.stages[0].layers as f64;
        let vars = |n: f64| {
            let mut v = stage::StageVars {
                layers: vec![[[0.0; 3]; WeightSource::COUNT]; self.costs.kinds.len()],
                ends_in_sram: 0.0,
                park_out: Vec::new(),
                park_in: Vec::new(),
            };
            v.layers[0][WeightSource::Dram.index()][mode.index()] = n;
            v
        };
        let with = stage::memory(&self.costs, 0, &vars(layers), &1.0);
        let without = stage::memory(&self.costs, 0, &vars(0.0), &1.0);
        stage::StageMemory {
            weights_dram: with.weights_dram - without.weights_dram,
            weights_sram: 0.0,
            grads: with.grads - without.grads,
            optimizer: with.optimizer - without.optimizer,
            activations: with.activations - without.activations,
            workspace: 0.0,
            parked_out_activations: 0.0,
            parked_out_optimizer: 0.0,
            parked_in: 0.0,
        }
    }

    /// Activation bytes one GPU of the first stage holds for its transformer layers in `mode`.
    fn layer_activation_bytes(&self, mode: Recompute) -> f64 {
        self.layer_memory(mode).activations
    }

    /// Weight, gradient and optimizer bytes of the first stage's transformer layers on one GPU.
    fn layer_state_bytes(&self) -> f64 {
        let m = self.layer_memory(Recompute::None);
        m.weights_dram + m.grads + m.optimizer
    }
}

pub(super) fn korthikanti(data: &Measurements, hardware: &Hardware) -> Result<Vec<Row>, Error> {
    let k = &data.korthikanti;
    // Table 5's two variants per model, then Table 4's layer without and with sequence parallelism.
    let mut jobs: Vec<(&KorthikantiConfig, Recompute, bool)> = Vec::new();
    for t in &k.table5.rows {
        let c = data.config(&t.name)?;
        jobs.push((c, Recompute::Full, false));
        jobs.push((c, Recompute::Selective, true));
    }
    let layer_config = data.config(&k.table4.name)?;
    // The evaluation reports a layer in every mode whatever the plan's own mode.
    jobs.push((layer_config, Recompute::Full, false));
    jobs.push((layer_config, Recompute::Full, true));
    let runs: Vec<Run> = jobs
        .par_iter()
        .map(|(c, mode, sp)| run_config(data, hardware, c, *mode, *sp))
        .collect::<Result<_, _>>()?;
    let n5 = k.table5.rows.len();
    let mut rows = Vec::new();
    for (i, t) in k.table5.rows.iter().enumerate() {
        let (full, sel) = (&runs[2 * i], &runs[2 * i + 1]);
        for (run, label, measured) in [
            (full, "full recomputation", t.full_recompute_s),
            (sel, "SP + selective", t.sp_selective_s),
        ] {
            rows.push(Row::new(
                Group::KorthikantiTable5,
                format!("{}, {label}", t.name),
                Quantity::StepTime,
                run.eval.step_time_s,
                measured,
                &run.plan,
                run.eval.feasible,
            ));
        }
        for (label, predicted, measured_pct) in [
            ("MFU", sel.eval.mfu, t.mfu_pct),
            ("HFU", sel.eval.hfu, t.hfu_pct),
        ] {
            rows.push(Row::new(
                Group::KorthikantiUtilisation,
                format!("{}, SP + selective, {label}", t.name),
                Quantity::Utilisation,
                predicted,
                measured_pct / 100.0,
                &sel.plan,
                sel.eval.feasible,
            ));
        }
    }
    let (plain, sp) = (&runs[2 * n5], &runs[2 * n5 + 1]);
    for t in &k.table4.rows {
        let run = if t.sequence_parallel { sp } else { plain };
        let layer = run
            .eval
            .layer
            .iter()
            .find(|l| l.mode == t.recompute)
            .ok_or_else(|| data_error("the evaluator reported no such layer mode", ""))?;
        for (pass, quantity, predicted, measured_ms) in [
            (
                "forward",
                Quantity::LayerForward,
                layer.forward_s,
                t.forward_ms,
            ),
            (
                "backward",
                Quantity::LayerBackward,
                layer.backward_s,
                t.backward_ms,
            ),
        ] {
            rows.push(Row::new(
                Group::KorthikantiTable4,
                format!("{}, {pass}", t.variant),
                quantity,
                predicted,
                measured_ms * MS,
                &run.plan,
                // One layer's timing: whether the whole model fits is Table 5's question.
                true,
            ));
        }
    }
    for f in &k.figure1.rows {
        let i = k
            .table5
            .rows
            .iter()
            .position(|t| t.name == f.name)
            .ok_or_else(|| {
                data_error(
                    format!(
                        "Figure 1's `{}` has no Table 5 row to take its plan from",
                        f.name
                    ),
                    "every Figure 1 model needs a [[korthikanti.table5.row]] of the same name",
                )
            })?;
        let (full, sel) = (&runs[2 * i], &runs[2 * i + 1]);
        for (run, label, predicted, measured_gib) in [
            (
                full,
                "parameters + optimizer",
                full.layer_state_bytes(),
                f.params_optimizer_gib,
            ),
            (
                full,
                "activations, no recomputation",
                full.layer_activation_bytes(Recompute::None),
                f.activations_none_gib,
            ),
            (
                sel,
                "activations, SP + selective",
                sel.layer_activation_bytes(Recompute::Selective),
                f.activations_sp_selective_gib,
            ),
        ] {
            rows.push(Row::new(
                Group::KorthikantiFigure1,
                format!("{}, {label}", f.name),
                Quantity::Memory,
                predicted,
                measured_gib * GIB,
                &run.plan,
                // Figure 1 is a breakdown, not a run: whether it fits is Table 5's question.
                true,
            ));
        }
    }
    Ok(rows)
}
