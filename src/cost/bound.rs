//! Cheap lower bounds on a configuration's step time and memory, without a solver: the stage model
//! (`cost::stage`) evaluated at fractional layer counts chosen so that its linear terms sum to a
//! bound over every plan of the configuration.

pub use crate::error::MemoryNeed;
use crate::error::Shortfall;
use crate::plan::{Config, Recompute, WeightSource};

use super::comm::{CommCosts, UnitClass, UnitComm};
use super::config::ConfigCosts;
use super::stage::{self, StageVars};

/// The figures of an infeasibility report: what configuration `c` needs at least.
pub fn shortfall(need: &MemoryNeed, c: &Config) -> Shortfall {
    Shortfall {
        config: format!(
            "D{} T{} P{} micro-batch {}{}",
            c.dp,
            c.tp,
            c.pp,
            c.micro_batch,
            if c.zero1 { " ZeRO-1" } else { "" }
        ),
        stages: c.pp,
        need: *need,
    }
}

/// Stage vars with `counts[k]` layers of kind `k` in `mode`, weights in DRAM, nothing parked.
fn vars(counts: &[f64], mode: impl Fn(usize) -> (WeightSource, Recompute)) -> StageVars<f64> {
    StageVars {
        layers: counts
            .iter()
            .enumerate()
            .map(|(k, n)| {
                let mut by = [[0.0; 3]; WeightSource::COUNT];
                let (w, r) = mode(k);
                by[w.index()][r.index()] = *n;
                by
            })
            .collect(),
        ends_in_sram: 0.0,
        park_out: Vec::new(),
        park_in: Vec::new(),
    }
}

/// The least memory a configuration needs across one pipeline: every layer fully recomputed,
/// each stage with one layer of the kind that stores least and every other layer on the stage
/// with the fewest micro-batches in flight, and all SRAM holding weights. Parking moves bytes
/// between stages; it cannot make room.
pub fn memory_need(c: &ConfigCosts) -> MemoryNeed {
    let p = c.config.pp;
    let full = Recompute::Full.index();
    let smallest = (0..c.kinds.len())
        .min_by(|a, b| c.kinds[*a].act_bytes[full].total_cmp(&c.kinds[*b].act_bytes[full]))
        .unwrap_or(0);
    let shallowest = (0..p)
        .min_by(|a, b| c.inflight(*a).total_cmp(&c.inflight(*b)))
        .unwrap_or(0);
    let totals = c.layout.totals();
    let mut need = MemoryNeed {
        weights_bytes: 0.0,
        grads_bytes: 0.0,
        optimizer_bytes: 0.0,
        activations_bytes: 0.0,
        workspace_bytes: 0.0,
        available_bytes: p as f64 * (c.dram_capacity_bytes + c.sram_weight_bytes),
    };
    for j in 0..p {
        // The linear terms sum to the frugal allocation whatever the sign of the shallowest
        // stage's share.
        let counts: Vec<f64> = (0..c.kinds.len())
            .map(|k| {
                let one = f64::from(u8::from(k == smallest));
                if j == shallowest {
                    totals[k] as f64 - (p - 1) as f64 * one
                } else {
                    one
                }
            })
            .collect();
        let v = vars(&counts, |_| (WeightSource::Dram, Recompute::Full));
        let m = stage::memory(c, j, &v, &1.0);
        need.weights_bytes += m.weights_dram + m.weights_sram;
        need.grads_bytes += m.grads;
        need.optimizer_bytes += m.optimizer;
        need.activations_bytes += m.activations;
        need.workspace_bytes += m.workspace;
    }
    need
}

/// A lower bound on the stage times summed over the pipeline, per micro-batch, under `comm`
/// (which must price every stage alike): what does not depend on the layers (embedding, head,
/// sends), plus the layers at their cheapest, with the recomputation that memory forces priced in.
/// Memory enters by Lagrangian relaxation of its aggregate: activations of every layer, at least
/// the fewest micro-batches any stage holds, fit in what the pipeline's devices have left after
/// model state, workspace and the ends' activations (parking moves bytes between stages but adds
/// none); for every price `lambda >= 0` of a byte, `sum_layers min_mode (time + lambda bytes) -
/// lambda free` bounds the layers' time from below (weak duality), and the best of the prices
/// where a layer's cheapest mode changes is taken.
fn stage_sum(c: &ConfigCosts, comm: &CommCosts) -> f64 {
    let p = c.config.pp;
    let fixed: f64 = stage_fixed(c, comm).iter().sum();
    let tp = comm.tp_allreduce_s.first().copied().unwrap_or(0.0);
    let a2a = comm.all_to_all_s.first().copied().unwrap_or(0.0);
    let inflight = (0..p).map(|j| c.inflight(j)).fold(f64::INFINITY, f64::min);
    let s = &c.state;
    let totals = c.layout.totals();
    let state_per_param = s.weights + s.grads + s.optimizer / c.optimizer_shards();
    let params: f64 = c
        .kinds
        .iter()
        .zip(&totals)
        .map(|(k, n)| k.params * *n as f64)
        .sum::<f64>()
        + (0..p).map(|j| c.ends_params(j)).sum::<f64>();
    // Expert optimizer state is sharded over fewer replicas.
    let experts: f64 = c
        .kinds
        .iter()
        .zip(&totals)
        .map(|(k, n)| k.expert_params * *n as f64)
        .sum();
    let expert_extra =
        s.optimizer / c.expert_optimizer_shards() - s.optimizer / c.optimizer_shards();
    let free = p as f64 * (c.dram_capacity_bytes + c.sram_weight_bytes - c.workspace_bytes)
        - params * state_per_param
        - experts * expert_extra
        - (0..p)
            .map(|j| c.inflight(j) * c.ends_act_bytes(j))
            .sum::<f64>();
    // Every (time, stored bytes) a layer of each kind can take.
    let options: Vec<Vec<(f64, f64)>> = c
        .kinds
        .iter()
        .map(|k| {
            WeightSource::ALL
                .into_iter()
                .flat_map(|w| {
                    Recompute::ALL
                        .map(|r| (k.time_s(w, r, tp, a2a), inflight * k.act_bytes[r.index()]))
                })
                .collect()
        })
        .collect();
    let dual = |lambda: f64| {
        options
            .iter()
            .zip(&totals)
            .map(|(opts, n)| {
                *n as f64
                    * opts
                        .iter()
                        .map(|(t, a)| t + lambda * a)
                        .fold(f64::INFINITY, f64::min)
            })
            .sum::<f64>()
            - lambda * free
    };
    let mut prices = vec![0.0];
    for opts in &options {
        for (t1, a1) in opts {
            for (t2, a2) in opts {
                if a1 > a2 && t2 > t1 {
                    prices.push((t2 - t1) / (a1 - a2));
                }
            }
        }
    }
    fixed
        + prices
            .into_iter()
            .map(dual)
            .fold(f64::NEG_INFINITY, f64::max)
}

/// Each stage's time per micro-batch without its layers: embedding, head, sends.
fn stage_fixed(c: &ConfigCosts, comm: &CommCosts) -> Vec<f64> {
    let none = vec![0.0; c.kinds.len()];
    let empty = vars(&none, |_| (WeightSource::Dram, Recompute::None));
    (0..c.config.pp)
        .map(|j| stage::time(c, j, &empty, &comm.stage(c, j, false), &1.0).total())
        .collect()
}

/// The cheapest time of one layer of any kind, mode and weight source at `tp` seconds per
/// all-reduce and `a2a` per all-to-all, and its tensor-parallel all-reduces.
fn cheapest_layer(c: &ConfigCosts, tp: f64, a2a: f64) -> (f64, f64) {
    c.kinds
        .iter()
        .flat_map(|k| {
            WeightSource::ALL.into_iter().flat_map(move |w| {
                Recompute::ALL.map(move |r| (k.time_s(w, r, tp, a2a), k.tp_collectives[r.index()]))
            })
        })
        .fold((f64::INFINITY, f64::INFINITY), |a, b| {
            (a.0.min(b.0), a.1.min(b.1))
        })
}

/// A lower bound on the slowest stage's time per micro-batch: layers are whole, every stage holds
/// at least one per chunk, and each costs at least `layer` (`straddle_extra` more on every layer
/// of one stage of the caller's choosing, a stage whose group spans units: the least over the
/// stages is taken). The least `T` at which `sum_j floor((T - fixed_j) / cost_j)` stages can hold
/// all the layers.
fn slowest_stage(c: &ConfigCosts, fixed: &[f64], layer: f64, straddle_extra: Option<f64>) -> f64 {
    if layer.is_nan() || layer <= 0.0 || fixed.is_empty() {
        return 0.0;
    }
    let uniform = vec![layer; fixed.len()];
    let Some(extra) = straddle_extra else {
        return least_time(c, fixed, &uniform);
    };
    // Stages with the same fixed time give the same answer: one try per distinct value.
    let mut tried: Vec<f64> = Vec::new();
    let mut best = f64::INFINITY;
    for (j, f) in fixed.iter().enumerate() {
        if tried.contains(f) {
            continue;
        }
        tried.push(*f);
        let mut cost = uniform.clone();
        cost[j] = layer + extra.max(0.0);
        best = best.min(least_time(c, fixed, &cost));
    }
    best
}

/// The least `T` with `T >= fixed_j + v cost_j` for every stage and `sum_j floor((T - fixed_j) /
/// cost_j) >= layers`: whole layers of `cost_j` each fill the stages up to `T`.
fn least_time(c: &ConfigCosts, fixed: &[f64], cost: &[f64]) -> f64 {
    let (layers, v) = (c.model_layers as f64, c.config.interleave as f64);
    let holds = |t: f64| {
        fixed
            .iter()
            .zip(cost)
            .map(|(f, k)| ((t - f) / k + 1e-9).floor().max(0.0))
            .sum::<f64>()
            >= layers
    };
    let lo = fixed
        .iter()
        .zip(cost)
        .map(|(f, k)| f + v * k)
        .fold(0.0, f64::max);
    let widest = cost.iter().copied().fold(0.0, f64::max);
    let (mut lo, mut hi) = (lo, lo + layers * widest);
    if holds(lo) {
        return lo;
    }
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if holds(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    lo
}

/// The least tail any one stage can have under `comm`: some stage holding at least one layer per
/// chunk and at most what the others leave (of the lightest kind, where a stage's parameters are
/// fewest), its backward in the mode that takes longest. The synchronisation exposed is monotone
/// in the layers, so the two ends of the range bound it from below.
fn least_stage_tail(c: &ConfigCosts, comm: &CommCosts, dp_overlap: bool) -> f64 {
    let p = c.config.pp;
    let v = c.config.interleave as f64;
    let layers = c.model_layers as f64;
    let (lightest, _) = c
        .kinds
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.params.total_cmp(&b.1.params))
        .map_or((0, 0.0), |(k, kc)| (k, kc.params));
    let longest = |k: usize| {
        let kc = &c.kinds[k];
        WeightSource::ALL
            .into_iter()
            .flat_map(|w| Recompute::ALL.map(|r| (w, r)))
            .max_by(|a, b| {
                let bwd = |(w, r): (WeightSource, Recompute)| {
                    let mc = kc.mode_cost(w, r);
                    mc.total.time_s - mc.forward.time_s
                };
                bwd(*a).total_cmp(&bwd(*b))
            })
            .unwrap_or((WeightSource::Dram, Recompute::Full))
    };
    let most = (layers - (p as f64 - 1.0) * v).max(v);
    (0..p)
        .flat_map(|j| [v, most].map(move |n| (j, n)))
        .map(|(j, n)| {
            let mut counts = vec![0.0; c.kinds.len()];
            counts[lightest] = n;
            let vs = vars(&counts, longest);
            let tail = stage::tail(c, j, &vs, &comm.stage(c, j, dp_overlap), &1.0);
            tail.optimizer + tail.dp.into_iter().fold(0.0, f64::max)
        })
        .fold(f64::INFINITY, f64::min)
}

/// The tail averaged over the stages, a lower bound on its longest: each stage's synchronisation
/// and optimizer with the layers split evenly (fractions allowed, nothing parked) and, where the
/// synchronisation overlaps the backward pass, each layer in the mode whose backward is longest.
fn even_tail(c: &ConfigCosts, comm: &CommCosts, dp_overlap: bool) -> f64 {
    let p = c.config.pp;
    let longest: Vec<(WeightSource, Recompute)> = c
        .kinds
        .iter()
        .map(|kc| {
            let backward = |(w, r): (WeightSource, Recompute)| {
                let mc = kc.mode_cost(w, r);
                mc.total.time_s - mc.forward.time_s
            };
            WeightSource::ALL
                .into_iter()
                .flat_map(|w| Recompute::ALL.map(|r| (w, r)))
                .max_by(|a, b| backward(*a).total_cmp(&backward(*b)))
                .unwrap_or((WeightSource::Dram, Recompute::Full))
        })
        .collect();
    let even: Vec<f64> = c
        .layout
        .totals()
        .iter()
        .map(|n| *n as f64 / p as f64)
        .collect();
    let v = vars(&even, |k| longest[k]);
    let mut optimizer = 0.0;
    let mut dp: Vec<f64> = Vec::new();
    for j in 0..p {
        let tail = stage::tail(c, j, &v, &comm.stage(c, j, dp_overlap), &1.0);
        optimizer += tail.optimizer / p as f64;
        dp.resize(tail.dp.len(), 0.0);
        for (a, x) in dp.iter_mut().zip(&tail.dp) {
            *a += x / p as f64;
        }
    }
    optimizer + dp.into_iter().fold(0.0, f64::max)
}

/// A lower bound on the step time of every plan of a configuration: the pipeline of the summed
/// stage times (its slowest stage at least their average) plus the tail (its longest at least
/// their average), from [`stage_sum`] and [`even_tail`]. `comm` is the best any placement allows
/// ([`CommCosts::ideal`]). On a fabric of units, `units` sharpens it per placement class: with `s`
/// stages straddling units, each straddling stage pays the slower all-reduce on at least one
/// layer per chunk (on every layer when all straddle), and every pipeline edge crosses units but
/// those between two straddling stages (when two aligned groups cannot share a unit), or at least
/// `min_units - 1` less what straddling makes up; aligned stages' rings span units. The bound is
/// the least over the `s` of `units.class`.
pub fn quick_bound(
    c: &ConfigCosts,
    comm: &CommCosts,
    units: Option<&UnitComm>,
    dp_overlap: bool,
) -> f64 {
    let p = c.config.pp;
    let finish = |sum: f64, slowest: f64, tail: f64| {
        c.schedule
            .step_time(&sum, &(sum / p as f64).max(slowest), c.m)
            + tail
    };
    let Some(u) = units else {
        let tp = comm.tp_allreduce_s.first().copied().unwrap_or(0.0);
        let a2a = comm.all_to_all_s.first().copied().unwrap_or(0.0);
        let slowest = slowest_stage(c, &stage_fixed(c, comm), cheapest_layer(c, tp, a2a).0, None);
        return finish(stage_sum(c, comm), slowest, even_tail(c, comm, dp_overlap));
    };
    let inside = CommCosts {
        tp_allreduce_s: vec![u.tp_inside_s; p as usize],
        p2p_s: (0..p)
            .map(|j| {
                let (nf, nb) = c.p2p_sends(j);
                (nf + nb) * u.send_inside_s
            })
            .collect(),
        dp_paths: vec![
            if c.config.dp > 1 {
                vec![u.dp_aligned]
            } else {
                Vec::new()
            };
            p as usize
        ],
        // Expert-parallel groups are priced at the best any placement allows in every class.
        all_to_all_s: comm.all_to_all_s.clone(),
        expert_dp_paths: comm.expert_dp_paths.clone(),
        tied_s: comm.tied_s,
    };
    let sum_inside = stage_sum(c, &inside);
    let mut fixed = stage_fixed(c, &inside);
    let a2a = comm.all_to_all_s.first().copied().unwrap_or(0.0);
    let (layer, layer_collectives) = cheapest_layer(c, u.tp_inside_s, a2a);
    let (tail_aligned, tail_any) = (
        even_tail(c, &inside, dp_overlap),
        even_tail(c, comm, dp_overlap),
    );
    // With some stage aligned, the longest tail is at least that stage's.
    let tail_some_aligned = tail_any.max(least_stage_tail(c, &inside, dp_overlap));
    let v = c.config.interleave as f64;
    let collectives = c
        .kinds
        .iter()
        .flat_map(|k| k.tp_collectives)
        .fold(f64::INFINITY, f64::min);
    let ends: f64 = (0..p)
        .flat_map(|j| c.ends(j))
        .map(|f| f.tp_collectives)
        .sum();
    let d_tp = (u.tp_across_s - u.tp_inside_s).max(0.0);
    let d_send = 2.0 * v * (u.send_across_s - u.send_inside_s).max(0.0);
    // With no stage straddling and two aligned groups never in one unit, every send crosses.
    let straddled_slowest = slowest_stage(c, &fixed, layer, Some(d_tp * layer_collectives));
    if u.aligned_sends_cross {
        for (j, f) in fixed.iter_mut().enumerate() {
            let edges = u32::from(j > 0) + u32::from(j + 1 < p as usize);
            *f += edges as f64 * d_send / 2.0;
        }
    }
    let aligned_slowest = slowest_stage(c, &fixed, layer, None);
    let least = u.min_straddling;
    let (first, last) = match u.class {
        _ if u.must_straddle => (p, p),
        UnitClass::Any => (least, p),
        UnitClass::Aligned => (least, 0),
        UnitClass::Straddled => (least.max(1), p),
    };
    if first > last || (u.must_straddle && u.class == UnitClass::Aligned) {
        return f64::INFINITY;
    }
    (first..=last)
        .map(|s| {
            let tp = if s == p {
                d_tp * (collectives * c.model_layers as f64 + ends)
            } else {
                d_tp * collectives * v * s as f64
            };
            let edges = (p - 1) as f64;
            let crossings = if u.aligned_sends_cross {
                if s == 0 {
                    edges
                } else {
                    (p - s) as f64
                }
            } else {
                (u.min_units.saturating_sub(1) as f64 - (u.straddle_weight * s) as f64).max(0.0)
            };
            let (tail, slowest) = match s {
                0 => (tail_aligned, aligned_slowest),
                s if s < p => (tail_some_aligned, straddled_slowest),
                _ => (tail_any, straddled_slowest),
            };
            finish(
                sum_inside + tp + crossings.min(edges) * d_send,
                slowest,
                tail,
            )
        })
        .fold(f64::INFINITY, f64::min)
}
