//! Plan -> [`Evaluation`]: the stage model at the plan's numbers, on its placement's communication.

use crate::error::{Error, FieldError};
use crate::instance::Instance;
use crate::placement::Placement;
use crate::plan::{Config, ParkKind, Plan, Recompute, WeightSource};

use super::comm::{CommCosts, IdealComm};
use super::config::ConfigCosts;
use super::report::{self, StageReport, Violation};
use super::stage::{self, ParkFlow, StageVars};

/// Scores a plan. Structural errors (a plan that does not describe a way to train this model on
/// this hardware) are errors; resource overflows are violations in a feasible = false evaluation.
///
/// ```
/// use watos::{Instance, Plan, cost::evaluate, plan::Recompute};
/// let inst = Instance::load(concat!(env!("CARGO_MANIFEST_DIR"), "/instances/gpt3-175b-wafer.toml")).unwrap();
/// let mut plan = Plan::uniform(96, 1, 4, 14, 1, Recompute::Full);
/// plan.sequence_parallel = true;
/// let e = evaluate(&inst, &plan).unwrap();
/// assert!(e.step_time_s > 0.0 && e.mfu > 0.0 && e.mfu < 1.0);
/// ```
pub fn evaluate(inst: &Instance, plan: &Plan) -> Result<super::Evaluation, Error> {
    plan.check(inst).map_err(plan_error)?;
    let placement = plan.placement(inst.fabric()).map_err(plan_error)?;
    let costs = ConfigCosts::new(inst, Config::of(plan));
    Ok(evaluate_with(inst, plan, &costs, &placement))
}

/// A plan error seen from outside a plan file.
pub fn plan_error(e: FieldError) -> Error {
    Error::invalid(format!("plan `{}`", e.field), e.message, e.help)
}

/// Scores a plan whose configuration costs and placement are already known (local search calls
/// this directly).
pub fn evaluate_with(
    inst: &Instance,
    plan: &Plan,
    c: &ConfigCosts,
    g: &Placement,
) -> super::Evaluation {
    let comm = CommCosts::of_placement(inst, c, g);
    let park_bw = park_bandwidths(inst, plan, c, g);
    evaluate_comm(inst, plan, c, &comm, &park_bw)
}

/// Scores a plan as if every transfer got the best any placement allows ([`CommCosts::ideal`]):
/// what the bounding MIP's objective is at this plan, by construction, and a lower bound on
/// [`evaluate_with`] for every placement.
pub fn evaluate_ideal(inst: &Instance, plan: &Plan, c: &ConfigCosts) -> super::Evaluation {
    let comm = CommCosts::ideal(inst, c);
    let bw = IdealComm::of(c, inst.fabric()).park_bw;
    let park_bw: Vec<Vec<f64>> = plan.stages.iter().map(|s| vec![bw; s.park.len()]).collect();
    evaluate_comm(inst, plan, c, &comm, &park_bw)
}

/// Parking traffic: bytes/s each park entry gets, the slower of the helper's DRAM and its path.
/// Activations move every micro-batch and optimizer state once per step: two phases.
fn park_bandwidths(inst: &Instance, plan: &Plan, c: &ConfigCosts, g: &Placement) -> Vec<Vec<f64>> {
    let mut bw: Vec<Vec<f64>> = plan
        .stages
        .iter()
        .map(|s| vec![f64::INFINITY; s.park.len()])
        .collect();
    for what in ParkKind::ALL {
        let mut pairs = Vec::new();
        let mut owner = Vec::new();
        for (j, stage) in plan.stages.iter().enumerate() {
            for (i, park) in stage
                .park
                .iter()
                .enumerate()
                .filter(|(_, p)| p.what == what)
            {
                for r in 0..g.replicas() {
                    for (a, b) in g.group(r, j).iter().zip(g.group(r, park.to as usize)) {
                        pairs.push((*a, *b));
                        owner.push((j, i));
                    }
                }
            }
        }
        for ((j, i), path) in owner.iter().zip(inst.fabric().flows(&pairs)) {
            bw[*j][*i] = bw[*j][*i].min(c.dram_bw_eff.min(path.bw_bytes_per_s * c.link_eff));
        }
    }
    bw
}

/// Layers of each kind in each mode, per stage (`[stage][kind][mode]`): the stage's layers are the
/// next `layers` of the model, in order, their modes the stage's runs in order.
pub fn stage_counts(plan: &Plan, c: &ConfigCosts) -> Vec<Vec<[u32; 3]>> {
    let mut start = 0u32;
    plan.stages
        .iter()
        .map(|s| {
            let mut counts = vec![[0u32; 3]; c.kinds.len()];
            for (k, r) in c.layout.kinds_in(start, s.layers).zip(s.modes_in_order()) {
                counts[k][r.index()] += 1;
            }
            start = start.saturating_add(s.layers);
            counts
        })
        .collect()
}

/// The stage model's decisions at a plan, with each park entry's bandwidth.
pub fn stage_vars(plan: &Plan, c: &ConfigCosts, park_bw: &[Vec<f64>]) -> Vec<StageVars<f64>> {
    let counts = stage_counts(plan, c);
    let mut vars: Vec<StageVars<f64>> = plan
        .stages
        .iter()
        .zip(&counts)
        .map(|(s, by_kind)| StageVars {
            layers: by_kind
                .iter()
                .map(|modes| {
                    let mut by = [[0.0; 3]; WeightSource::COUNT];
                    for r in Recompute::ALL {
                        by[s.weights.index()][r.index()] = modes[r.index()] as f64;
                    }
                    by
                })
                .collect(),
            ends_in_sram: f64::from(u8::from(s.weights == WeightSource::Sram)),
            park_out: Vec::new(),
            park_in: Vec::new(),
        })
        .collect();
    for (j, s) in plan.stages.iter().enumerate() {
        let sender_inflight = c.inflight(j as u32);
        for (i, park) in s.park.iter().enumerate() {
            let flow = ParkFlow {
                what: park.what,
                bytes: park.bytes as f64,
                bw: park_bw[j][i],
                sender_inflight,
            };
            vars[park.to as usize].park_in.push(flow.clone());
            vars[j].park_out.push(flow);
        }
    }
    vars
}

/// Scores a plan given its communication: per stage, and per park entry.
fn evaluate_comm(
    inst: &Instance,
    plan: &Plan,
    c: &ConfigCosts,
    comm: &CommCosts,
    park_bw: &[Vec<f64>],
) -> super::Evaluation {
    let p = plan.pp as usize;
    let vars = stage_vars(plan, c, park_bw);
    let mut tau = vec![0.0; p];
    let mut tail = vec![0.0; p];
    let mut reports = Vec::with_capacity(p);
    let mut violations = Vec::new();
    let mut recompute_flops = 0.0;
    for (j, (stage, v)) in plan.stages.iter().zip(&vars).enumerate() {
        let ju = j as u32;
        let sc = comm.stage(c, ju, plan.dp_overlap);
        let time = stage::time(c, ju, v, &sc, &1.0);
        let mem = stage::memory(c, ju, v, &1.0);
        let t = stage::tail(c, ju, v, &sc, &1.0);
        tau[j] = time.total();
        let dp_s = t.dp.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        tail[j] = dp_s + t.optimizer;
        for (k, by) in v.layers.iter().enumerate() {
            for w in WeightSource::ALL {
                for r in Recompute::ALL {
                    recompute_flops +=
                        by[w.index()][r.index()] * c.kinds[k].mode_cost(w, r).recompute.flops;
                }
            }
        }
        let mem = report::StageMemory::new(c, &mem, stage.weights);
        violations.extend(mem.violations(ju));
        for r in Recompute::ALL
            .into_iter()
            .filter(|r| !c.recompute_allowed[r.index()])
        {
            let layers: f64 = v.layers.iter().flatten().map(|by| by[r.index()]).sum();
            if layers > 0.0 {
                violations.push(Violation::Recompute {
                    stage: ju,
                    mode: r,
                    layers: layers as u32,
                });
            }
        }
        reports.push(StageReport::new(
            stage,
            c.inflight(ju),
            tau[j],
            &time,
            dp_s,
            t.optimizer,
            mem,
        ));
    }
    if plan.interleave > 1 && c.m % plan.pp != 0 {
        violations.push(Violation::Schedule {
            micro_batches: c.m,
            pp: plan.pp,
        });
    }
    let sum: f64 = tau.iter().sum();
    let max = tau.iter().copied().fold(0.0, f64::max);
    let pipeline_s = c.schedule.step_time(&sum, &max, c.m);
    let crit_tp = comm.tp_allreduce_s.iter().copied().fold(0.0, f64::max);
    let crit_a2a = comm.all_to_all_s.iter().copied().fold(0.0, f64::max);
    report::assemble(
        inst,
        plan,
        c,
        pipeline_s,
        &tau,
        &tail,
        crit_tp,
        crit_a2a,
        recompute_flops,
        reports,
        violations,
    )
}
