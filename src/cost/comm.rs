//! Communication times: collectives and point-to-point transfers over paths the fabric prices.

use crate::hardware::fabric::PathCost;

/// Ring all-reduce of `bytes` over `n` devices: `2 (n-1)/n * S / B + 2 (n-1) * alpha`
/// (physics.md; Patarasuk and Yuan 2009). `B` is the path's bandwidth times the link efficiency.
///
/// ```
/// use watos::hardware::fabric::PathCost;
/// let path = PathCost { bw_bytes_per_s: 100e9, latency_s: 1e-6, hops: 1 };
/// // 4 devices, 1 GB: 1.5 GB over 100 GB/s plus 6 steps of 1 us.
/// let t = watos::cost::comm::ring_allreduce_s(4, 1e9, path, 1.0);
/// assert!((t - (0.015 + 6e-6)).abs() < 1e-12);
/// ```
pub fn ring_allreduce_s(n: u32, bytes: f64, path: PathCost, link_eff: f64) -> f64 {
    2.0 * ring_half_s(n, bytes, path, link_eff)
}

/// Ring reduce-scatter or all-gather of `bytes` (the whole buffer) over `n` devices: half an
/// all-reduce, `(n-1)/n * S / B + (n-1) * alpha`.
pub fn ring_half_s(n: u32, bytes: f64, path: PathCost, link_eff: f64) -> f64 {
    if n < 2 || bytes <= 0.0 {
        return 0.0;
    }
    let n = n as f64;
    (n - 1.0) / n * bytes / (path.bw_bytes_per_s * link_eff) + (n - 1.0) * path.latency_s
}

/// One message of `bytes` over a path, cut-through: `alpha * hops + S / B` (the fabric already
/// summed the per-hop latencies into `path.latency_s`).
pub fn p2p_s(bytes: f64, path: PathCost, link_eff: f64) -> f64 {
    if bytes <= 0.0 {
        return 0.0;
    }
    path.latency_s + bytes / (path.bw_bytes_per_s * link_eff)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: PathCost = PathCost {
        bw_bytes_per_s: 300e9,
        latency_s: 5e-6,
        hops: 1,
    };

    #[test]
    fn megatron_tp8_allreduce_by_hand() {
        // 22B layer, b 4: 2 * 2048 * 4 * 6144 bytes = 100.66 MB over 8 GPUs at 300 GB/s:
        // 2 * 7/8 * 100.66e6 / 300e9 = 587.2 us, plus 14 * 5 us.
        let s = 2.0 * 2048.0 * 4.0 * 6144.0;
        let t = ring_allreduce_s(8, s, PATH, 1.0);
        assert!((t - (2.0 * 7.0 / 8.0 * s / 300e9 + 14.0 * 5e-6)).abs() < 1e-12);
        assert!((t - 657.2e-6).abs() < 0.1e-6, "{t}");
    }

    #[test]
    fn one_device_costs_nothing() {
        assert_eq!(ring_allreduce_s(1, 1e9, PATH, 1.0), 0.0);
        assert_eq!(p2p_s(0.0, PATH, 1.0), 0.0);
    }

    #[test]
    fn p2p_by_hand() {
        // 6.3 MB over 25 GB/s at 80% efficiency, plus 5 us.
        let path = PathCost {
            bw_bytes_per_s: 25e9,
            latency_s: 5e-6,
            hops: 1,
        };
        assert!((p2p_s(6.3e6, path, 0.8) - (5e-6 + 6.3e6 / 20e9)).abs() < 1e-15);
    }
}
