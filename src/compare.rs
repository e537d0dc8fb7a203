//! Strategies side by side: each instance solved by every strategy, the figures that compare them
//! (throughput, utilisation of the machine's memory and compute), watos's speed-up over each
//! baseline, and the means across instances. A strategy that cannot fit the model gives its
//! reason instead of figures. Any strategy [`by_name`] knows can be compared.

use serde::Serialize;

use crate::cost::Evaluation;
use crate::error::Error;
use crate::instance::Instance;
use crate::plan::Plan;
use crate::strategy::megatron::args::{arguments, Launch};
use crate::strategy::{by_name, run, Observer, SearchOptions};

/// The strategy the others are measured against.
pub const REFERENCE: &str = "watos";

/// One strategy's answer on one instance.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub name: String,
    /// The hardware the plan runs on (a baseline may bring its own).
    pub hardware: String,
    pub feasible: bool,
    /// Why there is no plan (the strategy's own error), when there is none.
    pub reason: Option<String>,
    /// The plan as one line; `null` without a plan.
    pub plan: Option<String>,
    #[serde(skip)]
    pub plan_data: Option<Plan>,
    pub step_time_s: Option<f64>,
    pub tokens_per_s: Option<f64>,
    pub mfu: Option<f64>,
    /// Bytes held in DRAM over the DRAM of every device of the hardware ([`dram_used`]).
    pub dram_used: Option<f64>,
    /// FLOPs executed per second over the peak of every device of the hardware ([`compute_used`]).
    pub compute_used: Option<f64>,
    /// The strategy's proven lower bound over its own space.
    pub lower_bound_s: Option<f64>,
    pub status: Option<String>,
    pub solve_time_s: Option<f64>,
    /// The Megatron-LM command line that runs the plan, on a GPU cluster.
    pub megatron: Option<Launch>,
}

/// Every strategy's answer on one instance, and watos's speed-ups.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceComparison {
    pub instance: String,
    /// The instance's own hardware.
    pub hardware: String,
    pub strategies: Vec<Entry>,
    /// Per baseline with a plan, its step time over watos's (when watos has a plan).
    pub speedups: Vec<Speedup>,
}

/// watos's speed-up over one baseline.
#[derive(Debug, Clone, Serialize)]
pub struct Speedup {
    pub baseline: String,
    pub speedup: f64,
}

/// The means of watos's speed-up over one baseline across the instances where both have a plan.
#[derive(Debug, Clone, Serialize)]
pub struct Mean {
    pub baseline: String,
    pub geometric: f64,
    pub arithmetic: f64,
    pub instances: usize,
}

/// DRAM in use over all the DRAM the hardware has: every used device's bytes (a stage's per
/// device, times `dp x tp` devices) over every healthy device's capacity, a framework's reserve
/// counted as free.
///
/// ```
/// use watos::{Instance, Plan, plan::Recompute};
/// let inst = Instance::load(concat!(env!("CARGO_MANIFEST_DIR"), "/instances/gpt3-175b-wafer.toml")).unwrap();
/// let plan = Plan::uniform(96, 1, 8, 7, 1, Recompute::Full);
/// let e = watos::evaluate(&inst, &plan).unwrap();
/// let used = watos::compare::dram_used(&inst, &plan, &e);
/// // 175B parameters at 18 bytes (weights, FP32 gradients, Adam) are 80% of 56 x 70 GB.
/// assert!(used > 0.8 && used < 1.0, "{used}");
/// ```
pub fn dram_used(inst: &Instance, plan: &Plan, e: &Evaluation) -> f64 {
    let per_stage = f64::from(plan.dp) * f64::from(plan.tp);
    let held: f64 = e
        .memory
        .stages
        .iter()
        .map(|s| s.dram_used_bytes.max(0.0) * per_stage)
        .sum();
    let devices = f64::from(inst.fabric().healthy_count());
    held / (devices * inst.physical_dram_bytes())
}

/// FLOPs executed (recomputation included) per second over the peak of every healthy device,
/// idle ones too: HFU scaled by the share of devices the plan uses.
pub fn compute_used(inst: &Instance, e: &Evaluation) -> f64 {
    e.hfu * e.devices_used as f64 / f64::from(inst.fabric().healthy_count())
}

/// `exp(mean(ln x))` and `mean(x)` of positive numbers (`None` for none).
///
/// ```
/// let (g, a) = watos::compare::means(&[2.0, 8.0]).unwrap();
/// assert!((g - 4.0).abs() < 1e-12 && (a - 5.0).abs() < 1e-12);
/// ```
pub fn means(x: &[f64]) -> Option<(f64, f64)> {
    if x.is_empty() {
        return None;
    }
    let n = x.len() as f64;
    let geometric = (x.iter().map(|v| v.ln()).sum::<f64>() / n).exp();
    Some((geometric, x.iter().sum::<f64>() / n))
}

/// Whether a strategy's failure is an answer ("it does not fit", "no plan in time") rather than
/// a mistake in the input, which stops the comparison.
fn is_answer(e: &Error) -> bool {
    matches!(e, Error::Infeasible(_) | Error::Limit(_) | Error::Solver(_))
}

/// Solves `inst` with each named strategy (names from `strategy::NAMES`) and works out watos's
/// speed-ups. `done` is told after each strategy.
pub fn compare_instance(
    inst: &Instance,
    names: &[String],
    opts: &SearchOptions,
    observer: &dyn Observer,
    done: &dyn Fn(&str),
) -> Result<InstanceComparison, Error> {
    let mut strategies = Vec::new();
    for name in names {
        let s = by_name(name).ok_or_else(|| unknown(name))?;
        let entry = match run(s.as_ref(), inst, opts, observer) {
            Ok(out) => entry(name, &out.instance, &out.solution),
            Err(e) if is_answer(&e) => Entry {
                name: name.clone(),
                hardware: s
                    .instance(inst)
                    .map_or_else(|_| inst.hardware.name.clone(), |i| i.hardware.name),
                feasible: false,
                reason: Some(e.to_string()),
                plan: None,
                plan_data: None,
                step_time_s: None,
                tokens_per_s: None,
                mfu: None,
                dram_used: None,
                compute_used: None,
                lower_bound_s: None,
                status: None,
                solve_time_s: None,
                megatron: None,
            },
            Err(e) => return Err(e),
        };
        strategies.push(entry);
        done(name);
    }
    let reference = strategies
        .iter()
        .find(|e| e.name == REFERENCE)
        .and_then(|e| e.step_time_s);
    let speedups = match reference {
        None => Vec::new(),
        Some(w) => strategies
            .iter()
            .filter(|e| e.name != REFERENCE)
            .filter_map(|e| {
                e.step_time_s.map(|t| Speedup {
                    baseline: e.name.clone(),
                    speedup: t / w,
                })
            })
            .collect(),
    };
    Ok(InstanceComparison {
        instance: inst.name.clone(),
        hardware: inst.hardware.name.clone(),
        strategies,
        speedups,
    })
}

fn entry(name: &str, on: &Instance, sol: &crate::solution::Solution) -> Entry {
    let e = &sol.evaluation;
    let launch = on
        .hardware
        .cluster
        .is_some()
        .then(|| arguments(&sol.plan, on))
        .flatten();
    Entry {
        name: name.to_string(),
        hardware: on.hardware.name.clone(),
        feasible: e.feasible,
        reason: None,
        plan: Some(sol.plan.to_string()),
        plan_data: Some(sol.plan.clone()),
        step_time_s: Some(e.step_time_s),
        tokens_per_s: Some(e.tokens_per_s),
        mfu: Some(e.mfu),
        dram_used: Some(dram_used(on, &sol.plan, e)),
        compute_used: Some(compute_used(on, e)),
        lower_bound_s: Some(sol.lower_bound_s),
        status: Some(sol.status.to_string()),
        solve_time_s: Some(sol.solve_time_s),
        megatron: launch,
    }
}

/// A name no strategy has.
pub fn unknown(name: &str) -> Error {
    Error::invalid(
        "--strategies",
        format!("no strategy `{name}`"),
        format!("known: {}", crate::strategy::NAMES.join(", ")),
    )
}

/// The means of watos's speed-up over each baseline, in the order the baselines first appear.
pub fn speedup_means(all: &[InstanceComparison]) -> Vec<Mean> {
    let mut baselines: Vec<String> = Vec::new();
    for s in all.iter().flat_map(|c| &c.strategies) {
        if s.name != REFERENCE && !baselines.contains(&s.name) {
            baselines.push(s.name.clone());
        }
    }
    baselines
        .into_iter()
        .filter_map(|b| {
            let x: Vec<f64> = all
                .iter()
                .flat_map(|c| &c.speedups)
                .filter(|s| s.baseline == b)
                .map(|s| s.speedup)
                .collect();
            means(&x).map(|(geometric, arithmetic)| Mean {
                baseline: b,
                geometric,
                arithmetic,
                instances: x.len(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Recompute;

    #[test]
    fn utilisation_counts_every_device_of_the_hardware() {
        // Llama 3 70B on config 3 (56 dies of 70 GB), D1 T8 P7: 8 devices per stage.
        let inst = Instance::load(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/instances/llama3-70b-wafer.toml"
        ))
        .unwrap();
        let plan = Plan::uniform(80, 1, 8, 7, 1, Recompute::Full);
        let e = crate::evaluate(&inst, &plan).unwrap();
        let held: f64 = e.memory.stages.iter().map(|s| s.dram_used_bytes).sum();
        // 8 devices per stage, over 56 x 70 GB.
        let want = held * 8.0 / (56.0 * 70e9);
        assert!((dram_used(&inst, &plan, &e) - want).abs() < 1e-12);
        // All 56 dies used: compute used is the HFU itself; with a reserve the capacity the
        // fraction is taken of stays the hardware's.
        assert!((compute_used(&inst, &e) - e.hfu).abs() < 1e-12);
        let reserved = inst.with_reserve(3e9);
        assert!((dram_used(&reserved, &plan, &e) - want).abs() < 1e-12);
        // Half the dies: half the compute.
        let half = Plan::uniform(80, 1, 4, 7, 1, Recompute::Full);
        let e = crate::evaluate(&inst, &half).unwrap();
        assert!((compute_used(&inst, &e) - e.hfu / 2.0).abs() < 1e-12);
    }

    #[test]
    fn means_of_speedups() {
        // Geometric mean of 1.8, 2.2, 2.5 and 3.5: (34.65)^(1/4) = 2.4262; arithmetic 2.5.
        let (g, a) = means(&[1.8, 2.2, 2.5, 3.5]).unwrap();
        assert!((g - 2.4262).abs() < 1e-4, "{g}");
        assert!((a - 2.5).abs() < 1e-12);
        assert!(means(&[]).is_none());
    }
}
