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

/// Per-stage communication on a concrete placement.
struct StageComm {
    tp_allreduce_s: Vec<f64>,
    p2p_s: Vec<f64>,
    dp_s: Vec<f64>,
}

fn stage_comm(inst: &Instance, plan: &Plan, c: &ConfigCosts, g: &Placement) -> StageComm {
    let fabric = inst.fabric();
    let (d, p, t) = (plan.dp as usize, plan.pp as usize, plan.tp as usize);
    let eff = c.link_eff;
    // Tensor parallelism: every group's ring at once.
    let tp_groups: Vec<&[DeviceId]> = g
        .iter()
        .flat_map(|rep| rep.iter().map(|grp| grp.as_slice()))
        .collect();
    let tp_paths = fabric.rings(&tp_groups);
    let mut tp_allreduce_s = vec![0.0; p];
    for (i, path) in tp_paths.iter().enumerate() {
        let j = i % p;
        tp_allreduce_s[j] = f64::max(
            tp_allreduce_s[j],
            ring_allreduce_s(plan.tp, c.tp_bytes, *path, eff),
        );
    }
    // Pipeline: every rank sends its shard to the same rank of the next stage, both directions.
    let mut pairs = Vec::new();
    let mut senders = Vec::new();
    for rep in g {
        for j in 0..p.saturating_sub(1) {
            for (a, b) in rep[j].iter().zip(&rep[j + 1]) {
                pairs.push((*a, *b));
                senders.push((j, true));
                pairs.push((*b, *a));
                senders.push((j + 1, false));
            }
        }
    }
    let paths = fabric.flows(&pairs);
    let mut send_fwd = vec![0.0f64; p];
    let mut send_bwd = vec![0.0f64; p];
    for ((j, forward), path) in senders.iter().zip(&paths) {
        let time = p2p_s(c.p2p_bytes, *path, eff);
        let slot = if *forward {
            &mut send_fwd[*j]
        } else {
            &mut send_bwd[*j]
        };
        *slot = slot.max(time);
    }
    // With interleaving the wrap-around transfer (last device to first) costs about a forward send.
    let wrap = send_fwd.iter().copied().fold(0.0, f64::max);
    let p2p_s = (0..p as u32)
        .map(|j| {
            let (nf, nb) = c.p2p_sends(j);
            let f = if (j as usize) + 1 < p {
                send_fwd[j as usize]
            } else {
                wrap
            };
            let b = if j > 0 { send_bwd[j as usize] } else { wrap };
            nf * f + nb * b
        })
        .collect();
    // Data parallelism: one ring per (stage, rank) across replicas, all at once.
    let mut dp_s = vec![0.0; p];
    if d > 1 {
        let rings: Vec<Vec<DeviceId>> = (0..p)
            .flat_map(|j| (0..t).map(move |k| (j, k)))
            .map(|(j, k)| g.iter().map(|rep| rep[j][k]).collect())
            .collect();
        let refs: Vec<&[DeviceId]> = rings.iter().map(|r| r.as_slice()).collect();
        for (i, path) in fabric.rings(&refs).iter().enumerate() {
            let j = i / t;
            let params = c.stage_params(j as u32, plan.stages[j].layers);
            dp_s[j] = f64::max(dp_s[j], c.dp_sync_s(params, *path));
        }
    }
    // Tied embeddings: first and last stage all-reduce the embedding gradient.
    if p > 1 && inst.model.tied_embeddings {
        let pairs: Vec<[DeviceId; 2]> = g
            .iter()
            .flat_map(|rep| (0..t).map(move |k| [rep[0][k], rep[p - 1][k]]))
            .collect();
        let refs: Vec<&[DeviceId]> = pairs.iter().map(|x| x.as_slice()).collect();
        let bytes = inst.model.vocab as f64 * inst.model.hidden as f64 / t as f64 * c.state.grads;
        let worst = fabric
            .rings(&refs)
            .iter()
            .map(|path| ring_allreduce_s(2, bytes, *path, eff))
            .fold(0.0, f64::max);
        dp_s[0] += worst;
        dp_s[p - 1] += worst;
    }
    StageComm {
        tp_allreduce_s,
        p2p_s,
        dp_s,
    }
}

/// Parking traffic: bytes/s each park entry gets (slower of the helper's DRAM and its contended path).
fn park_bandwidths(inst: &Instance, plan: &Plan, c: &ConfigCosts, g: &Placement) -> Vec<Vec<f64>> {
    let mut pairs = Vec::new();
    let mut owner = Vec::new();
    for (j, stage) in plan.stages.iter().enumerate() {
        for (i, park) in stage.park.iter().enumerate() {
            for rep in g {
                for (a, b) in rep[j].iter().zip(&rep[park.to as usize]) {
                    pairs.push((*a, *b));
                    owner.push((j, i));
                }
            }
        }
    }
    let paths: Vec<PathCost> = inst.fabric().flows(&pairs);
    let mut bw: Vec<Vec<f64>> = plan
        .stages
        .iter()
        .map(|s| vec![f64::INFINITY; s.park.len()])
        .collect();
    for ((j, i), path) in owner.iter().zip(paths) {
        bw[*j][*i] = bw[*j][*i].min(c.dram_bw_eff.min(path.bw_bytes_per_s * c.link_eff));
    }
    bw
}

/// Scores a plan whose configuration costs and placement are already known (local search calls
/// this directly).
pub fn evaluate_with(inst: &Instance, plan: &Plan, c: &ConfigCosts, g: &Placement) -> Evaluation {
    let p = plan.pp as usize;
    let comm = stage_comm(inst, plan, c, g);
    let park_bw = park_bandwidths(inst, plan, c, g);
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
        tail[j] = comm.dp_s[j] + opt_s;
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
            stage,
            inflight,
            tau[j],
            parts,
            comm.dp_s[j],
            opt_s,
            mem,
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
