//! Structural checks of a plan against an instance: what makes a plan meaningless, as opposed to
//! merely not fitting (which the evaluator reports as a violation).

use crate::error::{ensure, FieldError};
use crate::instance::Instance;
use crate::workload::divisors;

use super::Plan;

fn list(n: u32) -> String {
    divisors(n)
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn check(plan: &Plan, inst: &Instance) -> Result<(), FieldError> {
    let m = &inst.model;
    for (field, v) in [
        ("dp", plan.dp),
        ("ep", plan.ep),
        ("tp", plan.tp),
        ("pp", plan.pp),
        ("micro_batch", plan.micro_batch),
        ("interleave", plan.interleave),
    ] {
        ensure(v >= 1, || {
            FieldError::new(field, "must be at least 1", "a positive integer")
        })?;
    }
    if plan.weight_streaming {
        crate::cost::streaming::check(plan, inst)?;
    }
    ensure(plan.weight_streaming || m.heads % plan.tp == 0, || {
        FieldError::new(
            "tp",
            format!(
                "tensor parallelism {} does not divide the {} attention heads of {}",
                plan.tp, m.heads, m.name
            ),
            format!("valid: {}", list(m.heads)),
        )
    })?;
    let kv = m.kv_heads();
    ensure(
        plan.weight_streaming || kv % plan.tp == 0 || plan.tp % kv == 0,
        || {
            let valid: Vec<String> = divisors(m.heads)
                .filter(|t| kv % t == 0 || t % kv == 0)
                .map(|t| t.to_string())
                .collect();
            FieldError::new(
            "tp",
            format!(
                "tensor parallelism {} neither divides nor is a multiple of the {kv} key/value heads",
                plan.tp
            ),
            format!("valid: {}", valid.join(", ")),
        )
        },
    )?;
    // Products and sums in u64: the factors come from files and flags, and a product that wraps
    // would pass (or fail) a check for the wrong reason.
    let gb = inst.training.global_batch;
    ensure(
        u64::from(gb) % (u64::from(plan.dp) * u64::from(plan.micro_batch)) == 0,
        || {
            FieldError::new(
                "micro_batch",
                format!(
                    "dp {} x micro-batch {} does not divide the global batch {gb}",
                    plan.dp, plan.micro_batch
                ),
                format!("dp x micro_batch must divide {gb}"),
            )
        },
    )?;
    check_ep(plan, inst)?;
    let healthy = inst.fabric().healthy_count();
    let devices = plan.devices();
    ensure(devices <= u64::from(healthy), || {
        FieldError::new(
            "dp",
            format!(
                "dp {} x tp {} x pp {} = {devices} devices, but {} has {healthy} healthy",
                plan.dp, plan.tp, plan.pp, inst.hardware.name
            ),
            format!("use at most {healthy} devices"),
        )
    })?;
    ensure(plan.stages.len() as u64 == u64::from(plan.pp), || {
        FieldError::new(
            "stage",
            format!(
                "{} [[stage]] tables for pp = {}",
                plan.stages.len(),
                plan.pp
            ),
            "one [[stage]] per pipeline stage",
        )
    })?;
    // Megatron-LM's interleaved schedule runs the micro-batches in rounds of p (its
    // `num_microbatches % pipeline_parallel_size == 0` check); with one stage there is nothing to
    // interleave. The search keeps the same rule, so its bound covers every plan accepted here.
    if plan.interleave > 1 {
        let micro_batches = u64::from(gb) / (u64::from(plan.dp) * u64::from(plan.micro_batch));
        ensure(
            plan.pp > 1 && micro_batches % u64::from(plan.pp) == 0,
            || {
                FieldError::new(
                    "interleave",
                    format!(
                        "interleaving needs pp > 1 and micro-batches ({micro_batches}) a multiple of pp ({})",
                        plan.pp
                    ),
                    "interleave = 1, or a batch, dp and micro-batch giving a multiple of pp micro-batches",
                )
            },
        )?;
    }
    ensure(plan.pp <= m.layers, || {
        FieldError::new(
            "pp",
            format!("{} stages for {} layers", plan.pp, m.layers),
            format!("at most {}", m.layers),
        )
    })?;
    let mut total = 0u64;
    for (j, s) in plan.stages.iter().enumerate() {
        let f = |name: &str| format!("stage[{j}].{name}");
        ensure(s.layers >= 1, || {
            FieldError::new(f("layers"), "a stage needs at least one layer", "1 or more")
        })?;
        let counted: u64 = s.recompute.iter().map(|r| r.total()).sum();
        ensure(counted == u64::from(s.layers), || {
            FieldError::new(
                f("recompute"),
                format!(
                    "counts sum to {counted} but the stage has {} layers",
                    s.layers
                ),
                "none + selective + full = layers",
            )
        })?;
        // Chunks may differ by a layer (Megatron-LM's uneven virtual stages); each needs one.
        ensure(s.layers >= plan.interleave, || {
            FieldError::new(
                f("layers"),
                format!(
                    "{} layers cannot make {} interleaved chunks of at least one layer",
                    s.layers, plan.interleave
                ),
                format!("at least interleave = {} layers per stage", plan.interleave),
            )
        })?;
        for (i, park) in s.park.iter().enumerate() {
            ensure(park.to < plan.pp && park.to != j as u32, || {
                FieldError::new(
                    format!("stage[{j}].park[{i}].to"),
                    format!("stage {} is not another stage of this plan", park.to),
                    format!("0..{} except {j}", plan.pp),
                )
            })?;
        }
        total += u64::from(s.layers);
    }
    ensure(total == u64::from(m.layers), || {
        FieldError::new(
            "stage",
            format!("stages hold {total} layers, the model has {}", m.layers),
            format!("layers must sum to {}", m.layers),
        )
    })?;
    plan.placement(inst.fabric()).map(|_| ())
}

/// Expert parallelism: groups of `ep` data-parallel replicas split the routed experts, so `ep`
/// divides both; a dense model has no experts to split.
fn check_ep(plan: &Plan, inst: &Instance) -> Result<(), FieldError> {
    let m = &inst.model;
    let Some(moe) = &m.moe else {
        return ensure(plan.ep == 1, || {
            FieldError::new(
                "ep",
                format!(
                    "expert parallelism {} for {}, which has no experts",
                    plan.ep, m.name
                ),
                "ep = 1 (or leave it out) for a dense model",
            )
        });
    };
    let valid = || {
        let v: Vec<String> = divisors(moe.experts)
            .filter(|e| plan.dp % e == 0)
            .map(|e| e.to_string())
            .collect();
        format!(
            "valid with dp = {}: {} (ep divides both dp and the {} experts)",
            plan.dp,
            v.join(", "),
            moe.experts
        )
    };
    ensure(moe.experts % plan.ep == 0, || {
        FieldError::new(
            "ep",
            format!(
                "expert parallelism {} does not divide the {} routed experts of {}",
                plan.ep, moe.experts, m.name
            ),
            valid(),
        )
    })?;
    ensure(plan.dp % plan.ep == 0, || {
        FieldError::new(
            "ep",
            format!(
                "expert parallelism {} does not divide dp = {}: expert-parallel groups are formed from data-parallel replicas",
                plan.ep, plan.dp
            ),
            valid(),
        )
    })
}
