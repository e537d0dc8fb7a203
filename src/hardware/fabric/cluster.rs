//! A GPU cluster: nodes on a switch, one network port per GPU.

use super::{DeviceId, PathCost};

/// A cluster: GPUs on an intra-node switch, each with its own network port.
#[derive(Debug, Clone)]
pub struct ClusterTopo {
    pub gpus_per_node: u32,
    pub nodes: u32,
    pub(super) intra_bw: f64,
    pub(super) inter_bw: f64,
    pub(super) intra_latency_s: f64,
    pub(super) inter_latency_s: f64,
}

impl ClusterTopo {
    /// `(node, members of the group in it)`, in the order the nodes first appear.
    pub(super) fn members_per_node(&self, group: &[DeviceId]) -> Vec<(u32, u32)> {
        let mut per_node: Vec<(u32, u32)> = Vec::new();
        for id in group {
            let node = self.node(*id);
            match per_node.iter_mut().find(|(n, _)| *n == node) {
                Some((_, count)) => *count += 1,
                None => per_node.push((node, 1)),
            }
        }
        per_node
    }

    pub(super) fn node(&self, id: DeviceId) -> u32 {
        id / self.gpus_per_node
    }

    /// NCCL-style: inside a node the ring runs at NVLink speed; across nodes it runs one channel
    /// per member of a node, each through its own NIC, so the members per node multiply the
    /// network bandwidth (up to NVLink's).
    pub(super) fn ring(&self, group: &[DeviceId]) -> PathCost {
        if group.len() < 2 {
            return PathCost {
                bw_bytes_per_s: f64::INFINITY,
                latency_s: 0.0,
                hops: 0,
            };
        }
        let per_node = self.members_per_node(group);
        if per_node.len() == 1 {
            return PathCost {
                bw_bytes_per_s: self.intra_bw,
                latency_s: self.intra_latency_s,
                hops: 1,
            };
        }
        let g = per_node.iter().map(|(_, c)| *c).min().unwrap_or(1);
        PathCost {
            bw_bytes_per_s: self.intra_bw.min(g as f64 * self.inter_bw),
            latency_s: self.inter_latency_s,
            hops: 1,
        }
    }

    /// Every GPU has its own NVLink and network ports and transfers sharing an endpoint run one
    /// after another, so concurrent transfers never share a port here.
    pub(super) fn flows(&self, pairs: &[(DeviceId, DeviceId)]) -> Vec<PathCost> {
        pairs
            .iter()
            .map(|(a, b)| {
                let (bw, latency) = if self.node(*a) != self.node(*b) {
                    (self.inter_bw, self.inter_latency_s)
                } else {
                    (self.intra_bw, self.intra_latency_s)
                };
                PathCost {
                    bw_bytes_per_s: bw,
                    latency_s: latency,
                    hops: u32::from(a != b),
                }
            })
            .collect()
    }
}
