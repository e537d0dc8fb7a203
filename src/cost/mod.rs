//! The evaluator: plan x instance -> step time with its breakdown, memory per device, throughput,
//! MFU/HFU and feasibility. It is the single source of truth: every plan watos prints was scored here.

pub mod comm;
pub mod config;
pub mod kernels;
pub mod memory;
mod report;
pub mod schedule;
pub mod work;

use crate::error::{Error, FieldError};
use crate::hardware::fabric::PathCost;
use crate::hardware::DeviceId;
use crate::instance::Instance;
use crate::plan::{ParkKind, Placement, Plan};

pub use config::{Config, ConfigCosts};
pub use memory::Recompute;
pub use report::{Breakdown, Evaluation, LayerReport, StageMemory, StageReport, Violation};

use comm::{p2p_s, ring_allreduce_s};
use schedule::pipeline_time_s;

/// Scores a plan. Structural errors (a plan that does not describe a way to train this model on
/// this hardware) are errors; resource overflows are violations in a feasible = false evaluation.
///
/// ```
/// use watos::{Instance, Plan, cost::{evaluate, Recompute}};
/// let inst = Instance::load(concat!(env!("CARGO_MANIFEST_DIR"), "/instances/gpt3-175b-wafer.toml")).unwrap();
/// let mut plan = Plan::uniform(96, 1, 4, 14, 1, Recompute::Full);
/// plan.sequence_parallel = true;
/// let e = evaluate(&inst, &plan).unwrap();
/// assert!(e.step_time_s > 0.0 && e.mfu > 0.0 && e.mfu < 1.0);
/// ```
pub fn evaluate(inst: &Instance, plan: &Plan) -> Result<Evaluation, Error> {
    plan.check(inst).map_err(plan_error)?;
    let placement = plan.placement(inst.fabric()).map_err(plan_error)?;
    let costs = ConfigCosts::new(inst, Config::of(plan));
    Ok(evaluate_with(inst, plan, &costs, &placement))
}

/// A plan error seen from outside a plan file.
pub fn plan_error(e: FieldError) -> Error {
    Error::invalid(format!("plan `{}`", e.field), e.message, e.help)
}

/// Communication of one configuration, per stage: on a concrete placement (what the evaluator
/// charges) or at the best any placement allows (what the bounding MIP charges).
#[derive(Debug, Clone)]
pub struct CommCosts {
    /// One tensor-parallel all-reduce on the stage's groups (slowest replica).
    pub tp_allreduce_s: Vec<f64>,
    /// Pipeline sends of one micro-batch out of the stage, forward and backward.
    pub p2p_s: Vec<f64>,
    /// Paths of the stage's data-parallel rings (one per tensor-parallel rank; empty without
    /// data parallelism).
    pub dp_paths: Vec<Vec<PathCost>>,
    /// Tied-embedding gradient all-reduce between the first and last stage.
    pub tied_s: f64,
}

impl CommCosts {
    /// Communication on a placement: rings and transfers of every group at once, sharing links.
    pub fn of_placement(inst: &Instance, c: &ConfigCosts, g: &Placement) -> Self {
        let fabric = inst.fabric();
        let (p, t) = (c.config.pp as usize, c.config.tp as usize);
        let eff = c.link_eff;
        let tp_groups: Vec<&[DeviceId]> = g
            .iter()
            .flat_map(|rep| rep.iter().map(|grp| grp.as_slice()))
            .collect();
        let mut tp_allreduce_s = vec![0.0; p];
        for (i, path) in fabric.rings(&tp_groups).iter().enumerate() {
            let j = i % p;
            tp_allreduce_s[j] = f64::max(
                tp_allreduce_s[j],
                ring_allreduce_s(c.config.tp, c.tp_bytes, *path, eff),
            );
        }
        // Every rank sends its shard to the same rank of the next stage. In 1F1B the forward sends
        // of all stages overlap each other, and so do the backward sends, but a stage never sends
        // both ways at once: two phases.
        let mut send_fwd = vec![0.0f64; p];
        let mut send_bwd = vec![0.0f64; p];
        for forward in [true, false] {
            let mut pairs = Vec::new();
            let mut senders = Vec::new();
            for rep in g {
                for j in 0..p.saturating_sub(1) {
                    for (a, b) in rep[j].iter().zip(&rep[j + 1]) {
                        pairs.push(if forward { (*a, *b) } else { (*b, *a) });
                        senders.push(if forward { j } else { j + 1 });
                    }
                }
            }
            let slots = if forward {
                &mut send_fwd
            } else {
                &mut send_bwd
            };
            for (j, path) in senders.iter().zip(&fabric.flows(&pairs)) {
                slots[*j] = slots[*j].max(p2p_s(c.p2p_bytes, *path, eff));
            }
        }
        // With interleaving the wrap-around transfer (last device to first) costs about a forward send.
        let wrap = send_fwd.iter().copied().fold(0.0, f64::max);
        let p2p_s = (0..p)
            .map(|j| {
                let (nf, nb) = c.p2p_sends(j as u32);
                nf * if j + 1 < p { send_fwd[j] } else { wrap }
                    + nb * if j > 0 { send_bwd[j] } else { wrap }
            })
            .collect();
        let mut dp_paths = vec![Vec::new(); p];
        if c.config.dp > 1 {
            let rings: Vec<Vec<DeviceId>> = (0..p)
                .flat_map(|j| (0..t).map(move |k| (j, k)))
                .map(|(j, k)| g.iter().map(|rep| rep[j][k]).collect())
                .collect();
            let refs: Vec<&[DeviceId]> = rings.iter().map(|r| r.as_slice()).collect();
            for (i, path) in fabric.rings(&refs).into_iter().enumerate() {
                dp_paths[i / t].push(path);
            }
        }
        let mut tied_s = 0.0;
        if c.tied_sync_bytes > 0.0 {
            let pairs: Vec<[DeviceId; 2]> = g
                .iter()
                .flat_map(|rep| (0..t).map(move |k| [rep[0][k], rep[p - 1][k]]))
                .collect();
            let refs: Vec<&[DeviceId]> = pairs.iter().map(|x| x.as_slice()).collect();
            tied_s = fabric
                .rings(&refs)
                .iter()
                .map(|path| c.tied_sync_s(*path))
                .fold(0.0, f64::max);
        }
        CommCosts {
            tp_allreduce_s,
            p2p_s,
            dp_paths,
            tied_s,
        }
    }

    /// Communication at the best any placement allows: a lower bound on [`CommCosts::of_placement`]
    /// for every placement.
    pub fn ideal(inst: &Instance, c: &ConfigCosts) -> Self {
        let ideal = c.ideal_comm(inst.fabric());
        let p = c.config.pp as usize;
        CommCosts {
            tp_allreduce_s: vec![ideal.tp_allreduce_s; p],
            p2p_s: (0..p as u32)
                .map(|j| {
                    let (nf, nb) = c.p2p_sends(j);
                    (nf + nb) * ideal.p2p_s
                })
                .collect(),
            dp_paths: vec![
                if c.config.dp > 1 {
                    vec![ideal.dp_path]
                } else {
                    Vec::new()
                };
                p
            ],
            tied_s: c.tied_sync_s(ideal.tied_path),
        }
    }

    /// Data-parallel synchronisation of stage `j` holding `params` parameters per device: its
    /// slowest ring, plus the tied-embedding reduction on the first and last stage.
    pub fn dp_s(&self, c: &ConfigCosts, j: usize, params: f64) -> f64 {
        let rings = self.dp_paths[j]
            .iter()
            .map(|path| c.dp_sync_s(params, *path))
            .fold(0.0, f64::max);
        let ends = j == 0 || j + 1 == self.tp_allreduce_s.len();
        rings + if ends { self.tied_s } else { 0.0 }
    }
}

/// Parking traffic: bytes/s each park entry gets, the slower of the helper's DRAM and its path.
/// Activations move every micro-batch and optimizer state once per step: two phases.
fn park_bandwidths(inst: &Instance, plan: &Plan, c: &ConfigCosts, g: &Placement) -> Vec<Vec<f64>> {
    let mut bw: Vec<Vec<f64>> = plan
        .stages
        .iter()
        .map(|s| vec![f64::INFINITY; s.park.len()])
        .collect();
    for what in [ParkKind::Activations, ParkKind::Optimizer] {
        let mut pairs = Vec::new();
        let mut owner = Vec::new();
        for (j, stage) in plan.stages.iter().enumerate() {
            for (i, park) in stage
                .park
                .iter()
                .enumerate()
                .filter(|(_, p)| p.what == what)
            {
                for rep in g {
                    for (a, b) in rep[j].iter().zip(&rep[park.to as usize]) {
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

/// Scores a plan whose configuration costs and placement are already known (local search calls
/// this directly).
pub fn evaluate_with(inst: &Instance, plan: &Plan, c: &ConfigCosts, g: &Placement) -> Evaluation {
    let comm = CommCosts::of_placement(inst, c, g);
    let park_bw = park_bandwidths(inst, plan, c, g);
    evaluate_comm(inst, plan, c, &comm, &park_bw)
}

/// Scores a plan as if every transfer got the best any placement allows ([`CommCosts::ideal`]):
/// what the bounding MIP's objective is at this plan, by construction, and a lower bound on
/// [`evaluate_with`] for every placement.
pub fn evaluate_ideal(inst: &Instance, plan: &Plan, c: &ConfigCosts) -> Evaluation {
    let comm = CommCosts::ideal(inst, c);
    let bw = c.ideal_comm(inst.fabric()).park_bw;
    let park_bw: Vec<Vec<f64>> = plan.stages.iter().map(|s| vec![bw; s.park.len()]).collect();
    evaluate_comm(inst, plan, c, &comm, &park_bw)
}

/// Scores a plan given its communication: per stage, and per park entry.
fn evaluate_comm(
    inst: &Instance,
    plan: &Plan,
    c: &ConfigCosts,
    comm: &CommCosts,
    park_bw: &[Vec<f64>],
) -> Evaluation {
    let p = plan.pp as usize;
    let mut parked_in = vec![[0.0f64; 2]; p];
    let mut helper_s = vec![0.0f64; p];
    let mut helper_opt_s = vec![0.0f64; p];
    for (j, stage) in plan.stages.iter().enumerate() {
        let inflight = c.inflight(j as u32);
        for park in &stage.park {
            let to = park.to as usize;
            let bytes = park.bytes as f64;
            match park.what {
                ParkKind::Activations => {
                    parked_in[to][0] += bytes;
                    // Each micro-batch writes its parked share and reads it back: helper DRAM time.
                    helper_s[to] += 2.0 * bytes / inflight / c.dram_bw_eff;
                }
                ParkKind::Optimizer => {
                    parked_in[to][1] += bytes;
                    helper_opt_s[to] += 2.0 * bytes / c.dram_bw_eff;
                }
            }
        }
    }
    let mut tau = vec![0.0; p];
    let mut reports = Vec::with_capacity(p);
    let mut violations = Vec::new();
    let mut tail = vec![0.0; p];
    let mut recompute_flops = 0.0;
    for (j, stage) in plan.stages.iter().enumerate() {
        let ju = j as u32;
        let inflight = c.inflight(ju);
        let tp_ar = comm.tp_allreduce_s[j];
        let mut parts = report::StageParts::default();
        for mode in Recompute::ALL {
            let n = stage.recompute.get(mode) as f64;
            let mc = c.mode_cost(stage.weights, mode);
            parts.compute_s += n * (mc.total.compute_s - mc.recompute.compute_s);
            parts.recompute_s += n * mc.recompute.time_s;
            parts.memory_s += n
                * (mc.total.time_s
                    - mc.total.compute_s
                    - (mc.recompute.time_s - mc.recompute.compute_s));
            parts.tp_s += n * c.tp_collectives[mode.index()] * tp_ar;
            recompute_flops += n * mc.recompute.flops;
        }
        for f in c.ends(ju) {
            parts.compute_s += f.pass.compute_s;
            parts.memory_s += f.pass.time_s - f.pass.compute_s;
            parts.tp_s += f.tp_collectives * tp_ar;
        }
        parts.pp_s = comm.p2p_s[j];
        let (mut act_out, mut opt_out, mut opt_remote_s) = (0.0, 0.0, 0.0);
        for (i, park) in stage.park.iter().enumerate() {
            let bytes = park.bytes as f64;
            match park.what {
                ParkKind::Activations => {
                    act_out += bytes;
                    parts.remote_s += 2.0 * bytes / inflight / park_bw[j][i];
                }
                ParkKind::Optimizer => {
                    opt_out += bytes;
                    opt_remote_s += 2.0 * bytes / park_bw[j][i];
                }
            }
        }
        parts.remote_s += helper_s[j];
        tau[j] = parts.total();
        let params = c.stage_params(ju, stage.layers);
        let opt_s = c.optimizer_local_s(params, opt_out) + opt_remote_s + helper_opt_s[j];
        let mut dp_s = comm.dp_s(c, j, params);
        if plan.dp_overlap {
            // Buckets are reduced while the last micro-batch's backward pass (with its
            // recomputation) still runs; only what outlasts it is exposed.
            let backward: f64 = Recompute::ALL
                .iter()
                .map(|r| {
                    let mc = c.mode_cost(stage.weights, *r);
                    stage.recompute.get(*r) as f64 * (mc.total.time_s - mc.forward.time_s)
                })
                .sum();
            dp_s = (dp_s - backward).max(0.0);
        }
        tail[j] = dp_s + opt_s;
        let mem = StageMemory::new(
            c,
            ju,
            stage,
            params,
            inflight,
            act_out,
            opt_out,
            parked_in[j],
        );
        mem.violations(c, ju, stage, &mut violations);
        reports.push(StageReport::new(
            stage, inflight, tau[j], parts, dp_s, opt_s, mem,
        ));
    }
    if plan.interleave > 1 && c.m % plan.pp != 0 {
        violations.push(Violation::schedule(format!(
            "the interleaved schedule needs the {} micro-batches to be a multiple of pp = {}",
            c.m, plan.pp
        )));
    }
    let pipeline_s = pipeline_time_s(&tau, c.m, plan.interleave);
    let crit_tp = comm.tp_allreduce_s.iter().copied().fold(0.0, f64::max);
    report::assemble(
        inst,
        plan,
        c,
        pipeline_s,
        &tau,
        &tail,
        crit_tp,
        recompute_flops,
        reports,
        violations,
    )
}
