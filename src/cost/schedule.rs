//! The 1F1B pipeline schedule (plain and interleaved): micro-batches in flight and step time.

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
    let v = v.max(1) as f64;
    let sum: f64 = tau.iter().sum();
    let max = tau.iter().copied().fold(0.0, f64::max);
    sum / v + (m as f64 - 1.0 / v) * max
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
    fn few_micro_batches_cap_the_inflight_count() {
        assert_eq!(inflight(8, 0, 3, 1), 3.0);
        assert_eq!(inflight(4, 0, 1, 2), 1.0);
    }
}
