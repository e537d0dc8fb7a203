//! The configurations watos's strategies search: the top level of the plan space.

use crate::instance::Instance;
use crate::plan::Config;
use crate::workload::divisors;

/// Largest micro-batch tried unless the instance says otherwise.
pub const DEFAULT_MAX_MICRO_BATCH: u32 = 8;

/// Every configuration of the search space: `t` dividing the heads (and compatible with the
/// key/value heads), `t p d` at most the healthy devices (idle devices allowed), `b d` dividing the
/// global batch, sequence parallelism when `t > 1`, ZeRO-1 when `d > 1`; plain 1F1B.
///
/// ```
/// let inst = watos::Instance::load(concat!(env!("CARGO_MANIFEST_DIR"), "/instances/gpt3-175b-wafer.toml")).unwrap();
/// let configs = watos::strategy::space::configs(&inst);
/// assert!(configs.iter().all(|c| c.dp * c.tp * c.pp <= 56 && 96 % c.tp == 0));
/// ```
pub fn configs(inst: &Instance) -> Vec<Config> {
    let m = &inst.model;
    let healthy = inst.fabric().healthy_count();
    let batch = inst.training.global_batch;
    let lim = &inst.limits;
    let max_b = lim.max_micro_batch.unwrap_or(DEFAULT_MAX_MICRO_BATCH);
    let kv = m.kv_heads();
    let mut out = Vec::new();
    for t in divisors(m.heads).filter(|t| {
        (kv % t == 0 || t % kv == 0) && *t <= healthy && lim.max_tp.is_none_or(|x| *t <= x)
    }) {
        let max_p = (healthy / t)
            .min(m.layers)
            .min(lim.max_pp.unwrap_or(u32::MAX));
        for p in 1..=max_p {
            for d in 1..=healthy / (t * p) {
                if batch % d != 0 {
                    continue;
                }
                for b in (1..=max_b.min(batch / d)).filter(|b| (batch / d) % b == 0) {
                    for sp in [false, true] {
                        if sp && t == 1 {
                            continue;
                        }
                        for zero1 in [false, true] {
                            if zero1 && d == 1 {
                                continue;
                            }
                            out.push(Config {
                                dp: d,
                                tp: t,
                                pp: p,
                                micro_batch: b,
                                sequence_parallel: sp,
                                interleave: 1,
                                zero1,
                                dp_overlap: false,
                            });
                        }
                    }
                }
            }
        }
    }
    out
}
