//! The stage model: time per micro-batch, memory per device and the step's tail of one pipeline
//! stage, written once over a [`Scalar`]. The evaluator calls it with numbers (the plan's layer
//! counts and parked bytes); the MIP calls it with linear expressions over its decision variables
//! (`formulation`), so the two agree by construction wherever the MIP is exact. Constants are
//! multiples of a caller's `one`: 1 for the evaluator and a stand-alone MIP, a configuration's
//! activation binary in the monolithic MIP.

use crate::hardware::fabric::PathCost;
use crate::plan::{ParkKind, Recompute, WeightSource};

use super::config::ConfigCosts;
use super::scalar::Scalar;

/// Bytes one stage parks on another, seen from either end.
#[derive(Debug, Clone)]
pub struct ParkFlow<S> {
    pub what: ParkKind,
    /// Bytes per device.
    pub bytes: S,
    /// Bytes/s the transfer gets: the slower of the helper's DRAM and the path (sender side).
    pub bw: f64,
    /// Micro-batches in flight on the sender (activations move once per micro-batch).
    pub sender_inflight: f64,
}

/// A stage's decisions.
#[derive(Debug, Clone)]
pub struct StageVars<S> {
    /// Layers by kind, weight source and mode: `layers[kind][source.index()][mode.index()]`.
    pub layers: Vec<[[S; 3]; WeightSource::COUNT]>,
    /// 1 when the embedding/head weights of the stage sit in SRAM, 0 when in DRAM.
    pub ends_in_sram: S,
    /// What this stage parks on other stages.
    pub park_out: Vec<ParkFlow<S>>,
    /// What other stages park here.
    pub park_in: Vec<ParkFlow<S>>,
}

/// What a stage's communication costs, fixed by the configuration and the placement (or the best
/// any placement allows).
#[derive(Debug, Clone, Copy)]
pub struct StageComm<'a> {
    /// One tensor-parallel all-reduce on the stage's groups.
    pub tp_allreduce_s: f64,
    /// Pipeline sends of one micro-batch out of the stage, forward and backward.
    pub p2p_s: f64,
    /// One token all-to-all on the stage's expert-parallel groups.
    pub all_to_all_s: f64,
    /// Paths of the stage's data-parallel rings (empty without data parallelism).
    pub dp_paths: &'a [PathCost],
    /// With expert parallelism, the paths of the rings that reduce the routed experts' gradients
    /// (the replicas holding the same experts): an equal run of them for each of `dp_paths`.
    pub expert_dp_paths: &'a [PathCost],
    /// Tied-embedding gradient reduction (first and last stage only).
    pub tied_s: f64,
    /// Gradients reduced during the last micro-batch's backward pass (PyTorch DDP).
    pub dp_overlap: bool,
}

/// A stage's time per micro-batch, by part (seconds).
#[derive(Debug, Clone)]
pub struct StageTime<S> {
    /// Forward and backward math.
    pub compute: S,
    /// Recomputed forward work (with its memory traffic).
    pub recompute: S,
    /// DRAM traffic not hidden under math.
    pub memory: S,
    /// Tensor-parallel collectives.
    pub tp: S,
    /// Expert-parallel token all-to-alls.
    pub ep: S,
    /// Pipeline sends.
    pub pp: S,
    /// Parked activations written to and read from other devices' DRAM (both ends).
    pub remote: S,
}

impl<S: Scalar> StageTime<S> {
    /// The whole per-micro-batch stage time.
    pub fn total(&self) -> S {
        S::sum(
            [
                &self.compute,
                &self.recompute,
                &self.memory,
                &self.tp,
                &self.ep,
                &self.pp,
                &self.remote,
            ]
            .into_iter(),
        )
    }
}

/// Memory of one device of a stage, by category (bytes).
#[derive(Debug, Clone)]
pub struct StageMemory<S> {
    pub weights_dram: S,
    pub weights_sram: S,
    pub grads: S,
    pub optimizer: S,
    /// Stored activations of all micro-batches in flight (before parking).
    pub activations: S,
    pub workspace: S,
    /// Activations this stage keeps on helpers.
    pub parked_out_activations: S,
    /// Optimizer state this stage keeps on helpers.
    pub parked_out_optimizer: S,
    /// Other stages' bytes kept here.
    pub parked_in: S,
}

impl<S: Scalar> StageMemory<S> {
    /// DRAM in use on one device.
    pub fn dram_used(&self) -> S {
        let mut d = S::sum(
            [
                &self.weights_dram,
                &self.grads,
                &self.optimizer,
                &self.activations,
                &self.workspace,
                &self.parked_in,
            ]
            .into_iter(),
        );
        d.add_mul(-1.0, &self.parked_out_activations);
        d.add_mul(-1.0, &self.parked_out_optimizer);
        d
    }
}

/// The step's tail on one stage: the optimizer step after the data-parallel synchronisation. The
/// synchronisation takes the longest of `dp` (one entry per ring; with overlap, 0 is one of them).
#[derive(Debug, Clone)]
pub struct StageTail<S> {
    pub optimizer: S,
    pub dp: Vec<S>,
}

/// Layers of the stage, weighted by `f(kind, source, mode)`, plus `ends` times `one`.
fn weighted<S: Scalar>(
    v: &StageVars<S>,
    one: &S,
    ends: f64,
    f: impl Fn(usize, WeightSource, Recompute) -> f64,
) -> S {
    let mut out = one.times(ends);
    for (k, by_source) in v.layers.iter().enumerate() {
        for w in WeightSource::ALL {
            for r in Recompute::ALL {
                let coef = f(k, w, r);
                if coef != 0.0 {
                    out.add_mul(coef, &by_source[w.index()][r.index()]);
                }
            }
        }
    }
    out
}

/// Parameters on one device of stage `j`.
pub fn params<S: Scalar>(c: &ConfigCosts, j: u32, v: &StageVars<S>, one: &S) -> S {
    weighted(v, one, c.ends_params(j), |k, _, _| c.kinds[k].params)
}

/// Parameters of the routed experts on one device of a stage (part of [`params`]).
pub fn expert_params<S: Scalar>(c: &ConfigCosts, v: &StageVars<S>, one: &S) -> S {
    weighted(v, one, 0.0, |k, _, _| c.kinds[k].expert_params)
}

/// Time of one micro-batch on stage `j`, by part: per layer its kind's cost in its mode with its
/// weight source, `tp_collectives` all-reduces and `all_to_alls` token all-to-alls; the embedding
/// and head; the pipeline sends; and the parking traffic ([`remote`]). The evaluator reports these
/// parts; [`time_total`] is their sum.
pub fn time<S: Scalar>(
    c: &ConfigCosts,
    j: u32,
    v: &StageVars<S>,
    comm: &StageComm,
    one: &S,
) -> StageTime<S> {
    let tp = comm.tp_allreduce_s;
    let ends = || c.ends(j);
    let cost = |k: usize, w, r| c.kinds[k].mode_cost(w, r);
    let compute = weighted(v, one, ends().map(|f| f.pass.compute_s).sum(), |k, w, r| {
        let mc = cost(k, w, r);
        mc.total.compute_s - mc.recompute.compute_s
    });
    let recompute = weighted(v, one, 0.0, |k, w, r| cost(k, w, r).recompute.time_s);
    let memory = weighted(
        v,
        one,
        ends().map(|f| f.pass.time_s - f.pass.compute_s).sum(),
        |k, w, r| {
            let mc = cost(k, w, r);
            mc.total.time_s - mc.total.compute_s - (mc.recompute.time_s - mc.recompute.compute_s)
        },
    );
    let tp_s = weighted(
        v,
        one,
        ends().map(|f| f.tp_collectives * tp).sum(),
        |k, _, r| c.kinds[k].tp_collectives[r.index()] * tp,
    );
    let ep = weighted(v, one, 0.0, |k, _, r| {
        c.kinds[k].all_to_alls[r.index()] * comm.all_to_all_s
    });
    StageTime {
        compute,
        recompute,
        memory,
        tp: tp_s,
        ep,
        pp: one.times(comm.p2p_s),
        remote: remote(c, j, v),
    }
}

/// The whole time of one micro-batch on stage `j`: [`time`] summed, with each layer's cost as one
/// coefficient ([`KindCosts::time_s`](super::layers::KindCosts::time_s)), as the MIP's rows hold it.
pub fn time_total<S: Scalar>(
    c: &ConfigCosts,
    j: u32,
    v: &StageVars<S>,
    comm: &StageComm,
    one: &S,
) -> S {
    let tp = comm.tp_allreduce_s;
    let ends: f64 = c
        .ends(j)
        .map(|f| f.pass.time_s + f.tp_collectives * tp)
        .sum();
    let mut out = weighted(v, one, ends + comm.p2p_s, |k, w, r| {
        c.kinds[k].time_s(w, r, tp, comm.all_to_all_s)
    });
    out.add_mul(1.0, &remote(c, j, v));
    out
}

/// Parking traffic of one micro-batch on stage `j`: `2 bytes / inflight` at the transfer's
/// bandwidth on the sender and at DRAM bandwidth on the helper (each byte written and read back
/// once).
fn remote<S: Scalar>(c: &ConfigCosts, j: u32, v: &StageVars<S>) -> S {
    let mut remote = S::zero();
    let inflight = c.inflight(j);
    for f in &v.park_out {
        if f.what == ParkKind::Activations {
            remote.add_mul(2.0 / inflight / f.bw, &f.bytes);
        }
    }
    for f in &v.park_in {
        if f.what == ParkKind::Activations {
            remote.add_mul(2.0 / f.sender_inflight / c.dram_bw_eff, &f.bytes);
        }
    }
    remote
}

/// Optimizer state bytes (or, with `per_param` the traffic per parameter, bytes moved) of one
/// device: ZeRO-1 shards the routed experts' over the replicas holding them, the rest over all.
fn sharded<S: Scalar>(c: &ConfigCosts, params: &S, experts: &S, per_param: f64) -> S {
    let (dense, expert) = (
        per_param / c.optimizer_shards(),
        per_param / c.expert_optimizer_shards(),
    );
    let mut out = params.times(dense);
    out.add_mul(expert - dense, experts);
    out
}

/// Memory of one device of stage `j`: model state for its parameters (16-bit weights in DRAM or
/// SRAM, gradients, optimizer state sharded by ZeRO-1), stored activations of the micro-batches in
/// flight, one layer's workspace, less what it parks elsewhere, plus what others park here.
pub fn memory<S: Scalar>(c: &ConfigCosts, j: u32, v: &StageVars<S>, one: &S) -> StageMemory<S> {
    let s = &c.state;
    let params = params(c, j, v, one);
    let experts = expert_params(c, v, one);
    let ends_weights = c.ends_params(j) * s.weights;
    let mut weights_dram = weighted(v, one, ends_weights, |k, w, _| {
        if w == WeightSource::Dram {
            c.kinds[k].params * s.weights
        } else {
            0.0
        }
    });
    weights_dram.add_mul(-ends_weights, &v.ends_in_sram);
    let mut weights_sram = weighted(v, one, 0.0, |k, w, _| {
        if w == WeightSource::Sram {
            c.kinds[k].params * s.weights
        } else {
            0.0
        }
    });
    weights_sram.add_mul(ends_weights, &v.ends_in_sram);
    let inflight = c.inflight(j);
    let activations = weighted(v, one, inflight * c.ends_act_bytes(j), |k, _, r| {
        inflight * c.kinds[k].act_bytes[r.index()]
    });
    let parked = |what: ParkKind, flows: &[ParkFlow<S>]| {
        let mut out = S::zero();
        for f in flows.iter().filter(|f| f.what == what) {
            out.add_mul(1.0, &f.bytes);
        }
        out
    };
    let mut parked_in = parked(ParkKind::Activations, &v.park_in);
    parked_in.add_mul(1.0, &parked(ParkKind::Optimizer, &v.park_in));
    StageMemory {
        weights_dram,
        weights_sram,
        grads: params.times(s.grads),
        optimizer: sharded(c, &params, &experts, s.optimizer),
        activations,
        workspace: one.times(c.workspace_bytes),
        parked_out_activations: parked(ParkKind::Activations, &v.park_out),
        parked_out_optimizer: parked(ParkKind::Optimizer, &v.park_out),
        parked_in,
    }
}

/// The step's tail on stage `j`: data-parallel synchronisation of its parameters on each of its
/// rings plus the tied-embedding reduction, then the optimizer step. The optimizer is memory-bound
/// at `StateBytes::optimizer_traffic` bytes per parameter on the local shard, less the optimizer
/// state parked elsewhere (read and written once over its link instead), plus guests' state read
/// and written in this stage's DRAM. With expert parallelism the routed experts' gradients are
/// reduced after the rest, over the ring of replicas holding the same experts (its latency is
/// charged on every stage, also one without expert layers: a few link latencies). With overlap the
/// synchronisation runs under the last micro-batch's backward pass (with its recomputation) and
/// only what outlasts it is exposed.
pub fn tail<S: Scalar>(
    c: &ConfigCosts,
    j: u32,
    v: &StageVars<S>,
    comm: &StageComm,
    one: &S,
) -> StageTail<S> {
    let params = params(c, j, v, one);
    let experts = expert_params(c, v, one);
    let mut optimizer = sharded(
        c,
        &params,
        &experts,
        c.state.optimizer_traffic() / c.dram_bw_eff,
    );
    for f in v.park_out.iter().filter(|f| f.what == ParkKind::Optimizer) {
        optimizer.add_mul(2.0 / f.bw - 2.0 / c.dram_bw_eff, &f.bytes);
    }
    for f in v.park_in.iter().filter(|f| f.what == ParkKind::Optimizer) {
        optimizer.add_mul(2.0 / c.dram_bw_eff, &f.bytes);
    }
    // One alternative per data-parallel ring, and with expert parallelism per expert ring of its
    // rank: the dense reduction, then the experts'.
    let run = (comm.expert_dp_paths.len() / comm.dp_paths.len().max(1)).max(1);
    let mut dp: Vec<S> = Vec::new();
    for (i, path) in comm.dp_paths.iter().enumerate() {
        let (per_param, fixed) = c.dp_sync_affine(*path);
        let mut ring = params.times(per_param);
        ring.add_mul(fixed + comm.tied_s, one);
        if c.config.ep < 2 {
            dp.push(ring);
            continue;
        }
        let own = comm
            .expert_dp_paths
            .get(i * run..(i + 1) * run)
            .unwrap_or(std::slice::from_ref(path));
        for expert_path in own {
            let (per_expert, expert_fixed) = c.expert_sync_affine(*expert_path);
            let mut both = ring.clone();
            both.add_mul(per_expert - per_param, &experts);
            both.add_mul(expert_fixed, one);
            dp.push(both);
        }
    }
    if dp.is_empty() {
        dp.push(one.times(comm.tied_s));
    }
    if comm.dp_overlap {
        let backward = weighted(v, one, 0.0, |k, w, r| {
            let mc = c.kinds[k].mode_cost(w, r);
            mc.total.time_s - mc.forward.time_s
        });
        for d in &mut dp {
            d.add_mul(-1.0, &backward);
        }
        dp.push(S::zero());
    }
    StageTail { optimizer, dp }
}
