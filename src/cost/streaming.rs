//! Weight streaming (Cerebras: S. Lie, "Cerebras Architecture Deep Dive", Hot Chips 34, 2022;
//! Hall et al., "Weight streaming on Cerebras CS-2", Cerebras white paper, 2022) as a plan the
//! one evaluator scores with the same stage model as every other plan. Nothing here computes a
//! time: this module says what a streamed plan is, and the mapping below says where each part of
//! the execution mode is costed.
//!
//! - The whole wafer runs one layer at a time, its work split evenly over all `N` healthy dies
//!   whatever the heads (Cerebras partitions each matmul over the whole fabric): one stage
//!   (`pp = 1`) with `tp = N` and the rule that `tp` divide the heads lifted. Every per-layer
//!   coefficient in [`super::layers`] is already a `1/t` share of the layer's FLOPs, parameters
//!   and split activations, as a real number, so `N` need not divide anything; the elementwise
//!   work is split too (sequence parallelism on).
//! - Compute: the layer's FLOPs over `N x peak x efficiency` ([`super::kernels`] rooflines).
//! - Weights stream in: each pass (forward, backward, and a recomputed forward) reads the die's
//!   `1/N` share of the layer's weights from its DRAM, and the backward pass reads and writes the
//!   accumulated weight gradients there ([`super::kernels::layer_costs`]). The fused pass costs
//!   `max(compute, DRAM bytes / bandwidth)`: the fetch of the next layer overlaps this layer's
//!   compute, so only the stream time beyond compute is exposed. Per micro-batch, so gradient
//!   accumulation re-streams the weights every micro-batch.
//! - The update happens at the memory: the optimizer step is memory-bound at DRAM
//!   ([`super::stage::tail`]).
//! - Activations stay on the dies (their own DRAM, stacked on them); none leave the wafer.
//! - Activation exchange inside the wafer: an assumption, since Cerebras does not publish its
//!   fabric traffic per layer. It is charged as the tensor-parallel collectives of a `t = N`
//!   group on the wafer's mesh and its placement ([`super::comm`]), as Megatron's split of the
//!   same matmuls would need.
//! - Data parallelism only across wafers: `dp` is the number of wafers, each replica on one
//!   wafer, its gradients all-reduced over the wafer-to-wafer links as they stream out (the
//!   data-parallel ring of [`super::comm`], overlapped with the last backward pass); each wafer
//!   keeps its own copy of the optimizer state (no ZeRO sharding across wafers).
//! - Memory per die: `1/N` of the weights, gradients and optimizer state of all layers plus the
//!   stored activations of the recomputation mode ([`super::stage::memory`]); a plan that does not
//!   fit reports what overflows like any other.

use crate::error::{ensure, FieldError};
use crate::instance::Instance;
use crate::plan::{Plan, Recompute, WeightSource};

/// The streamed plan of `inst` at a micro-batch and recomputation mode: one stage, one replica per
/// wafer on its healthy dies (the fewest any wafer has, when faults differ).
///
/// ```
/// use watos::{Instance, plan::Recompute};
/// let inst = Instance::load(concat!(env!("CARGO_MANIFEST_DIR"), "/instances/gpt3-175b-wafer.toml")).unwrap();
/// let plan = watos::cost::streaming::plan(&inst, 1, Recompute::Full);
/// assert_eq!((plan.dp, plan.tp, plan.pp), (1, 56, 1));
/// assert!(watos::evaluate(&inst, &plan).is_ok());
/// ```
pub fn plan(inst: &Instance, micro_batch: u32, mode: Recompute) -> Plan {
    let (wafers, dies) = shape(inst);
    let mut plan = Plan::uniform(inst.model.layers, wafers, dies, 1, micro_batch, mode);
    plan.weight_streaming = true;
    plan.sequence_parallel = dies > 1;
    plan.dp_overlap = wafers > 1;
    if let (Some(w), true) = (&inst.hardware.wafer, wafers > 1) {
        // Each replica on its own wafer, along the rows in a snake.
        let fabric = inst.fabric();
        let mut pinned = Vec::new();
        for k in 0..wafers {
            let on_wafer = (k * w.rows..(k + 1) * w.rows).flat_map(|r| {
                let cols: Vec<u32> = if r % 2 == 0 {
                    (0..w.cols).collect()
                } else {
                    (0..w.cols).rev().collect()
                };
                cols.into_iter().map(move |c| [r, c])
            });
            pinned.extend(
                on_wafer
                    .filter(|rc| fabric.id_of(*rc).is_some_and(|id| fabric.is_healthy(id)))
                    .take(dies as usize),
            );
        }
        plan.stages[0].dies = Some(pinned);
    }
    plan
}

/// Wafers, and the dies each replica runs on: the healthy dies of the wafer with the fewest.
fn shape(inst: &Instance) -> (u32, u32) {
    let Some(w) = &inst.hardware.wafer else {
        return (1, inst.fabric().healthy_count());
    };
    let wafers = w.wafers.max(1);
    let faulty = |k: u32| {
        w.faulty_dies
            .iter()
            .filter(|[r, _]| *r / w.rows.max(1) == k)
            .count() as u32
    };
    let fewest = (0..wafers)
        .map(|k| (w.rows * w.cols).saturating_sub(faulty(k)))
        .min()
        .unwrap_or(0);
    (wafers, fewest)
}

/// The rules a plan with `weight_streaming = true` follows (the head rule of ordinary tensor
/// parallelism does not apply to it).
///
/// ```
/// use watos::{Instance, plan::Recompute};
/// let inst = Instance::load(concat!(env!("CARGO_MANIFEST_DIR"), "/instances/gpt3-175b-wafer.toml")).unwrap();
/// let mut plan = watos::cost::streaming::plan(&inst, 1, Recompute::Full);
/// plan.tp = 8;
/// assert_eq!(watos::cost::streaming::check(&plan, &inst).unwrap_err().field, "tp");
/// ```
pub fn check(plan: &Plan, inst: &Instance) -> Result<(), FieldError> {
    let hw = &inst.hardware;
    ensure(hw.cluster.is_none(), || {
        FieldError::new(
            "weight_streaming",
            format!(
                "weight streaming runs on a wafer, and {} is a GPU cluster",
                hw.name
            ),
            "weight_streaming = false",
        )
    })?;
    let (wafers, dies) = shape(inst);
    let fixed = [
        (
            "dp",
            plan.dp,
            wafers,
            "data parallelism runs only across wafers: one replica per wafer",
        ),
        (
            "pp",
            plan.pp,
            1,
            "the whole wafer runs one layer at a time: one stage",
        ),
        (
            "ep",
            plan.ep,
            1,
            "the whole wafer runs each layer, its experts too",
        ),
        (
            "interleave",
            plan.interleave,
            1,
            "one stage has nothing to interleave",
        ),
    ];
    for (field, v, want, why) in fixed {
        ensure(v == want, || {
            FieldError::new(
                field,
                format!("{field} = {v} in a weight-streaming plan: {why}"),
                format!("{field} = {want}"),
            )
        })?;
    }
    ensure(plan.tp == dies, || {
        FieldError::new(
            "tp",
            format!(
                "tp = {} in a weight-streaming plan, which splits each layer over every healthy die of a wafer of {}",
                plan.tp, hw.name
            ),
            format!("tp = {dies}"),
        )
    })?;
    ensure(!plan.zero1, || {
        FieldError::new(
            "zero1",
            "each wafer keeps its own optimizer state in a weight-streaming plan",
            "zero1 = false",
        )
    })?;
    if let (Some(w), Ok(g)) = (&hw.wafer, plan.placement(inst.fabric())) {
        let wafer_of = |id| inst.fabric().coord(id)[0] / w.rows.max(1);
        for r in 0..g.replicas() {
            let group = g.group(r, 0);
            ensure(
                group.iter().all(|id| wafer_of(*id) == wafer_of(group[0])),
                || {
                    FieldError::new(
                        "stage[0].dies",
                        format!("replica {r} of a weight-streaming plan spans several wafers"),
                        "each replica's dies on one wafer",
                    )
                },
            )?;
        }
    }
    for (j, s) in plan.stages.iter().enumerate() {
        ensure(s.weights == WeightSource::Dram, || {
            FieldError::new(
                format!("stage[{j}].weights"),
                "streamed weights are read from DRAM every pass",
                "weights = \"dram\"",
            )
        })?;
        ensure(s.park.is_empty(), || {
            FieldError::new(
                format!("stage[{j}].park"),
                "a weight-streaming plan has one stage and no other stage to park on",
                "no park entries",
            )
        })?;
    }
    Ok(())
}
