//! Pipeline schedules: micro-batches in flight per stage, pipeline sends, and the step time from
//! stage times. A new schedule is a new [`Schedule`] variant.

use super::scalar::Scalar;

/// How micro-batches flow through the pipeline.
///
/// ```
/// use watos::cost::Schedule;
/// let s = Schedule::of(1);
/// assert_eq!(s, Schedule::OneFOneB);
/// // Four equal stages of 1 s, 8 micro-batches: (8 + 3) s.
/// assert_eq!(s.step_time(&4.0, &1.0, 8), 11.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Schedule {
    /// One forward, one backward (Narayanan et al., PipeDream-Flush, arXiv 2006.09503).
    OneFOneB,
    /// 1F1B over `chunks` model chunks per device (Megatron-LM, arXiv 2104.04473 section 2.2).
    Interleaved { chunks: u32 },
}

impl Schedule {
    /// The schedule of a plan's `interleave` field.
    pub fn of(interleave: u32) -> Self {
        if interleave <= 1 {
            Schedule::OneFOneB
        } else {
            Schedule::Interleaved { chunks: interleave }
        }
    }

    /// Model chunks per device.
    pub fn chunks(&self) -> u32 {
        match self {
            Schedule::OneFOneB => 1,
            Schedule::Interleaved { chunks } => *chunks,
        }
    }

    /// Micro-batches' worth of activations stage `j` of `p` holds ([`inflight`]).
    pub fn inflight(&self, p: u32, j: u32, m: u32) -> f64 {
        inflight(p, j, m, self.chunks())
    }

    /// Step time of the pipeline from the sum and the maximum of the per-micro-batch stage times:
    /// `sum / v + (m - 1/v) max` ([`pipeline_time_s`]). Linear in both, so the MIP states it with
    /// an epigraph variable for the maximum.
    pub fn step_time<S: Scalar>(&self, sum_tau: &S, max_tau: &S, m: u32) -> S {
        let v = self.chunks() as f64;
        let mut out = sum_tau.times(1.0 / v);
        out.add_mul(m as f64 - 1.0 / v, max_tau);
        out
    }

    /// Pipeline sends per micro-batch out of stage `j` of `p`, forward and backward: one per chunk
    /// boundary; with interleaving the last device feeds the first one's next chunk.
    pub fn p2p_sends(&self, p: u32, j: u32) -> (f64, f64) {
        let v = self.chunks() as f64;
        if p == 1 {
            return (0.0, 0.0);
        }
        let fwd = if j + 1 < p { v } else { v - 1.0 };
        let bwd = if j > 0 { v } else { v - 1.0 };
        (fwd, bwd)
    }
}

/// Activations in flight on pipeline stage `j` of `p`, in micro-batches' worth of the stage's
/// layers. Plain 1F1B: `min(p - j, m)` (Narayanan et al. 2021). Interleaved with `v` chunks per
/// device: Megatron-LM warms up `2 (p - j - 1) + (v - 1) p` chunks and holds one more, each chunk
/// a `1/v` share of the device's layers; on the first stage this is Korthikanti et al.'s
/// `L (1 + (p - 1) / (p v))` per device. Never more than the `m v` chunks of the step.
///
/// ```
/// use watos::cost::schedule::inflight;
/// assert_eq!(inflight(8, 0, 64, 1), 8.0);
/// assert_eq!(inflight(8, 7, 64, 1), 1.0);
/// // 175B on 8 stages, interleave 3: (2*7 + 2*8 + 1) / 3 chunks = 31/3.
/// assert!((inflight(8, 0, 64, 3) - 31.0 / 3.0).abs() < 1e-12);
/// ```
pub fn inflight(p: u32, j: u32, m: u32, v: u32) -> f64 {
    if v <= 1 {
        return (p - j).min(m) as f64;
    }
    let chunks = (2 * (p - j - 1) + (v - 1) * p + 1).min(m * v);
    chunks as f64 / v as f64
}

/// Step time of the pipeline from per-micro-batch stage times `tau` (forward + backward of one
/// micro-batch on each stage): `sum_j tau_j / v + (m - 1/v) max_j tau_j`. With equal stages this is
/// `(m + (p - 1)/v) tau`, Megatron-LM's bubble `(p - 1)/v`; with unequal stages the slowest one
/// sets the steady state (Alpa's form, Zheng et al. 2022).
///
/// ```
/// use watos::cost::schedule::pipeline_time_s;
/// assert_eq!(pipeline_time_s(&[1.0, 1.0, 1.0, 1.0], 8, 1), 11.0);
/// assert_eq!(pipeline_time_s(&[1.0, 2.0], 4, 1), 3.0 + 3.0 * 2.0);
/// ```
pub fn pipeline_time_s(tau: &[f64], m: u32, v: u32) -> f64 {
    let sum: f64 = tau.iter().sum();
    let max = tau.iter().copied().fold(0.0, f64::max);
    Schedule::of(v).step_time(&sum, &max, m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaved_bubble_matches_megatron() {
        // Equal stages: (m + (p-1)/v) tau.
        let t = pipeline_time_s(&[2.0; 8], 64, 3);
        assert!((t - (64.0 + 7.0 / 3.0) * 2.0).abs() < 1e-12);
    }

    #[test]
    fn first_stage_memory_factor_matches_korthikanti() {
        // Per device L/p layers; first stage holds L/p * inflight = L (1 + (p-1)/(p v)).
        let (p, v) = (35u32, 3u32);
        let factor = inflight(p, 0, 280, v) / p as f64;
        assert!((factor - (1.0 + (p - 1) as f64 / (p * v) as f64)).abs() < 1e-12);
    }

    #[test]
    fn pipeline_sends_per_micro_batch() {
        // Plain 1F1B: the ends send one way, the middle both. Interleaved (v = 3): a send per chunk
        // boundary; the last device feeds the first one's next chunk.
        let plain = Schedule::OneFOneB;
        assert_eq!(
            (0..4).map(|j| plain.p2p_sends(4, j)).collect::<Vec<_>>(),
            vec![(1.0, 0.0), (1.0, 1.0), (1.0, 1.0), (0.0, 1.0)]
        );
        let three = Schedule::of(3);
        assert_eq!(three.p2p_sends(4, 0), (3.0, 2.0));
        assert_eq!(three.p2p_sends(4, 3), (2.0, 3.0));
        assert_eq!(plain.p2p_sends(1, 0), (0.0, 0.0));
    }

    #[test]
    fn few_micro_batches_cap_the_inflight_count() {
        assert_eq!(inflight(8, 0, 3, 1), 3.0);
        assert_eq!(inflight(4, 0, 1, 2), 1.0);
    }
}
