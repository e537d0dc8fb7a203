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
//! - Data parallelism only across wafers: a watos hardware file is one wafer, so `dp = 1`.
//! - Memory per die: `1/N` of the weights, gradients and optimizer state of all layers plus the
//!   stored activations of the recomputation mode ([`super::stage::memory`]); a plan that does not
//!   fit reports what overflows like any other.

use crate::error::{ensure, FieldError};
use crate::instance::Instance;
use crate::plan::{Plan, Recompute, WeightSource};

/// The streamed plan of `inst` at a micro-batch and recomputation mode: every healthy die of the
/// wafer in one stage.
///
/// ```
/// use watos::{Instance, plan::Recompute};
/// let inst = Instance::load(concat!(env!("CARGO_MANIFEST_DIR"), "/instances/gpt3-175b-wafer.toml")).unwrap();
/// let plan = watos::cost::streaming::plan(&inst, 1, Recompute::Full);
/// assert_eq!((plan.dp, plan.tp, plan.pp), (1, 56, 1));
/// assert!(watos::evaluate(&inst, &plan).is_ok());
/// ```
pub fn plan(inst: &Instance, micro_batch: u32, mode: Recompute) -> Plan {
    let dies = inst.fabric().healthy_count();
    let mut plan = Plan::uniform(inst.model.layers, 1, dies, 1, micro_batch, mode);
    plan.weight_streaming = true;
    plan.sequence_parallel = dies > 1;
    plan
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
    let fixed = [
        (
            "dp",
            plan.dp,
            1,
            "data parallelism runs only across wafers, and the hardware is one wafer",
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
    let dies = inst.fabric().healthy_count();
    ensure(plan.tp == dies, || {
        FieldError::new(
            "tp",
            format!(
                "tp = {} in a weight-streaming plan, which splits each layer over every healthy die of {}",
                plan.tp, hw.name
            ),
            format!("tp = {dies}"),
        )
    })?;
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
