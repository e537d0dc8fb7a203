//! The weight-streaming strategy (Cerebras): every healthy die of the wafer runs each layer in
//! turn, its weights streamed from the dies' DRAM every pass ([`crate::cost::streaming`] says
//! how the evaluator scores it). Its own choices are the micro-batch (the rest of the global
//! batch is gradient accumulation) and one recomputation mode; it enumerates all of them, so the
//! best plan's step time is also the proven bound over its space.

use std::time::Instant;

use crate::cost::bound::memory_need;
use crate::cost::{evaluate_with, plan_error, streaming, ConfigCosts};
use crate::error::{Error, InfeasibleReason};
use crate::instance::Instance;
use crate::plan::{Config, Recompute};
use crate::solution::{ConfigStats, Found, Method, Solution};
use crate::workload::divisors;

use super::{infeasible, Observer, SearchOptions};

/// What the strategy searches.
pub const SPACE: &str = "weight streaming: one stage on every healthy die of each wafer, each layer split over all of them, weights streamed from DRAM every pass, data parallelism across wafers; every micro-batch, one recomputation mode";

/// Cerebras weight streaming (see the module documentation).
#[derive(Debug, Clone, Copy, Default)]
pub struct WeightStreaming;

impl super::Strategy for WeightStreaming {
    fn name(&self) -> &'static str {
        "weight-streaming"
    }

    fn space(&self) -> &'static str {
        SPACE
    }

    fn solve(
        &self,
        inst: &Instance,
        opts: &SearchOptions,
        observer: &dyn Observer,
    ) -> Result<Solution, Error> {
        search(inst, opts, observer)
    }
}

/// The best streamed plan of `inst` (an error saying why when there is none).
///
/// ```
/// let inst = watos::Instance::load(concat!(env!("CARGO_MANIFEST_DIR"), "/instances/gpt3-175b-wafer.toml")).unwrap();
/// let sol = watos::strategy::streaming::search(&inst, &Default::default(), &watos::strategy::Silent).unwrap();
/// assert!(sol.plan.weight_streaming && sol.lower_bound_s == sol.evaluation.step_time_s);
/// ```
pub fn search(
    inst: &Instance,
    opts: &SearchOptions,
    observer: &dyn Observer,
) -> Result<Solution, Error> {
    let start = Instant::now();
    if inst.hardware.cluster.is_some() {
        return Err(Error::invalid(
            "strategy",
            format!(
                "weight streaming runs on a wafer, and {} is a GPU cluster",
                inst.hardware.name
            ),
            "use it on a wafer's instance",
        ));
    }
    let max_b = inst.limits.max_micro_batch.unwrap_or(u32::MAX);
    let replicas = streaming::plan(inst, 1, Recompute::Full).dp;
    let batches: Vec<u32> = divisors(inst.training.global_batch)
        .filter(|b| *b <= max_b && inst.training.global_batch % (b * replicas) == 0)
        .collect();
    let modes: Vec<Recompute> = Recompute::ALL
        .into_iter()
        .filter(|r| inst.limits.recompute.as_ref().is_none_or(|m| m.contains(r)))
        .collect();
    observer.start(batches.len() as u64, "micro-batches");
    let mut best: Option<(crate::Plan, crate::cost::Evaluation)> = None;
    // The plan that overflows least (its worst overflow ratio) and why, for the error.
    let mut closest: Option<(f64, Config, String)> = None;
    let mut memory_infeasible = 0;
    for b in &batches {
        let first = streaming::plan(inst, *b, Recompute::Full);
        // A wafer whose faults leave no streamed plan (a replica would span two wafers) is an
        // answer, not a mistake in the input: the strategy has no plan there.
        if let Err(e) = first
            .check(inst)
            .and_then(|_| first.placement(inst.fabric()))
        {
            let mut err = infeasible(inst, None, InfeasibleReason::Rules);
            if let Error::Infeasible(i) = &mut err {
                i.detail = Some(plan_error(e).to_string());
            }
            return Err(err);
        }
        let placement = first.placement(inst.fabric()).map_err(plan_error)?;
        let costs = ConfigCosts::new(inst, Config::of(&first));
        if !memory_need(&costs).fits() {
            memory_infeasible += 1;
        }
        for mode in &modes {
            let plan = streaming::plan(inst, *b, *mode);
            let e = evaluate_with(inst, &plan, &costs, &placement);
            if e.feasible {
                if best
                    .as_ref()
                    .is_none_or(|(_, f)| e.step_time_s < f.step_time_s)
                {
                    best = Some((plan, e));
                }
            } else if let Some(v) = e.violations.first() {
                let (used, cap) = v.figures();
                let ratio = used / cap.max(f64::MIN_POSITIVE);
                if closest.as_ref().is_none_or(|(r, _, _)| ratio < *r) {
                    closest = Some((ratio, Config::of(&plan), format!("{plan}: {v}")));
                }
            }
        }
        observer.advance(1);
    }
    observer.finish();
    let Some((plan, evaluation)) = best else {
        let mut err = infeasible(inst, None, InfeasibleReason::Rules);
        if let (Error::Infeasible(i), Some((_, _, why))) = (&mut err, closest) {
            i.detail = Some(why);
        }
        return Err(err);
    };
    let step = evaluation.step_time_s;
    let mut sol = Solution::conclude(
        inst,
        Found {
            plan,
            evaluation,
            // Every plan of the space was scored.
            bound_s: step,
            mip_objective_s: f64::NAN,
            mip_plan_step_time_s: step,
            configs: ConfigStats {
                total: batches.len(),
                memory_infeasible,
                solved: batches.len() - memory_infeasible,
                pruned: 0,
            },
            nodes: 0,
            out_of_time: false,
            limited: false,
            first_plan_s: None,
        },
        &opts.solver,
        start,
        Method::Enumeration,
        SPACE,
    );
    // watos's notes on its configuration space say nothing of this one.
    sol.space
        .fixed
        .retain(|f| !super::space::SPACE_NOTES.contains(&f.as_str()));
    sol.space.fixed.push(
        "sequence parallelism is on: the elementwise work is split over the dies like the matmuls"
            .into(),
    );
    Ok(sol)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::Silent;

    #[test]
    fn one_replica_per_wafer_and_a_model_too_big_says_why() {
        let inst = Instance::load(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/instances/deepseek-v3-671b-4wafers.toml"
        ))
        .unwrap();
        let plan = streaming::plan(&inst, 1, Recompute::Full);
        assert_eq!((plan.dp, plan.tp, plan.pp), (4, 56, 1));
        plan.check(&inst).unwrap();
        // Every wafer holds a whole copy of 671B parameters' state: 234.5 GB per die of 70.
        let err = search(&inst, &SearchOptions::default(), &Silent).unwrap_err();
        assert!(matches!(err, Error::Infeasible(_)), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("weight streaming") && text.contains("optimizer"),
            "{text}"
        );
    }
}
