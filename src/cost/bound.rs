//! Cheap lower bounds on a configuration's step time and memory, without a solver: the stage model
//! (`cost::stage`) evaluated at fractional layer counts chosen so that its linear terms sum to a
//! bound over every plan of the configuration.

pub use crate::error::MemoryNeed;
use crate::error::Shortfall;
use crate::plan::{Config, Recompute, WeightSource};

use super::comm::CommCosts;
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

/// A lower bound on the step time of every plan of a configuration: the stage times summed at
/// each layer's cheapest mode and weight source (the pipeline's maximum at least their average),
/// and the tail at least its average over the stages. `comm` must price every stage alike, as
/// [`CommCosts::ideal`] does (the best any placement allows, for a bound over all placements).
/// Parking only adds time.
pub fn quick_bound(c: &ConfigCosts, comm: &CommCosts, dp_overlap: bool) -> f64 {
    let p = c.config.pp;
    let tp = comm.tp_allreduce_s.first().copied().unwrap_or(0.0);
    let cheapest: Vec<(WeightSource, Recompute)> = c
        .kinds
        .iter()
        .map(|kc| {
            let options = WeightSource::ALL
                .into_iter()
                .flat_map(|w| Recompute::ALL.map(|r| (w, r)));
            options
                .min_by(|a, b| kc.time_s(a.0, a.1, tp).total_cmp(&kc.time_s(b.0, b.1, tp)))
                .unwrap_or((WeightSource::Dram, Recompute::None))
        })
        .collect();
    let even: Vec<f64> = c
        .layout
        .totals()
        .iter()
        .map(|n| *n as f64 / p as f64)
        .collect();
    let v = vars(&even, |k| cheapest[k]);
    let (mut sum, mut optimizer) = (0.0, 0.0);
    let mut dp: Vec<f64> = Vec::new();
    for j in 0..p {
        let sc = comm.stage(c, j, dp_overlap);
        sum += stage::time(c, j, &v, &sc, &1.0).total();
        let tail = stage::tail(c, j, &v, &sc, &1.0);
        optimizer += tail.optimizer / p as f64;
        dp.resize(tail.dp.len(), 0.0);
        for (a, x) in dp.iter_mut().zip(&tail.dp) {
            *a += x / p as f64;
        }
    }
    let pipeline = c.schedule.step_time(&sum, &(sum / p as f64), c.m);
    pipeline + optimizer + dp.into_iter().fold(0.0, f64::max)
}
