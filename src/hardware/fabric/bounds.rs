//! The best any placement allows: paths that no placement can beat, for the bounds of the search.
//! Every figure takes the fastest link of any kind a transfer could use (on-wafer, wafer-to-wafer,
//! NVLink, network) and the smallest latency, so it is a bound on every fabric the schema accepts.
//! Fabrics built of units (GPU nodes, wafers) also give bounds per placement class: what a group
//! kept inside one unit, or spread over several, can get at best.

use super::{DeviceId, Fabric, PathCost};

/// A fabric made of units (GPU nodes, wafers) joined by links of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Units {
    /// Devices one unit holds at most.
    pub size: u32,
    /// How many units there are.
    pub count: u32,
}

fn ring(bw_bytes_per_s: f64, latency_s: f64, n: u32) -> PathCost {
    PathCost {
        bw_bytes_per_s,
        latency_s: if n >= 2 { latency_s } else { 0.0 },
        hops: u32::from(n >= 2),
    }
}

impl Fabric {
    /// The units of a fabric of several: the nodes of a cluster, the wafers of several wafers.
    /// `None` for one node or one wafer.
    ///
    /// ```
    /// let hw = watos::Hardware::load(concat!(env!("CARGO_MANIFEST_DIR"), "/hardware/dgx-a100-80gb.toml")).unwrap();
    /// let u = hw.fabric().unwrap().units().unwrap();
    /// assert_eq!((u.size, u.count), (8, 400));
    /// ```
    pub fn units(&self) -> Option<Units> {
        match self {
            Fabric::Mesh(m) => {
                let count = m.rows / m.wafer_rows;
                let per = m.wafer_rows * m.cols;
                let size = (0..count)
                    .map(|w| {
                        (w * per..(w + 1) * per)
                            .filter(|id| m.healthy[*id as usize])
                            .count() as u32
                    })
                    .max()
                    .unwrap_or(0);
                (count > 1).then_some(Units { size, count })
            }
            Fabric::Cluster(c) => (c.nodes > 1).then_some(Units {
                size: c.gpus_per_node,
                count: c.nodes,
            }),
        }
    }

    /// Disjoint groups of `n` healthy devices that fit inside units at most: each unit holds
    /// `floor(healthy / n)` of them. Groups beyond this count must straddle units.
    ///
    /// ```
    /// let hw = watos::Hardware::load(concat!(env!("CARGO_MANIFEST_DIR"), "/hardware/wafer-config3-x4.toml")).unwrap();
    /// // Four wafers of 56 dies: three groups of 16 in each, one of 32.
    /// let f = hw.fabric().unwrap();
    /// assert_eq!((f.groups_inside_units(16), f.groups_inside_units(32)), (12, 4));
    /// ```
    pub fn groups_inside_units(&self, n: u32) -> u64 {
        let n = n.max(1);
        match self {
            Fabric::Mesh(m) => {
                let per = m.wafer_rows * m.cols;
                (0..m.rows / m.wafer_rows)
                    .map(|w| {
                        let healthy = (w * per..(w + 1) * per)
                            .filter(|id| m.healthy[*id as usize])
                            .count() as u64;
                        healthy / u64::from(n)
                    })
                    .sum()
            }
            Fabric::Cluster(c) => u64::from(c.nodes) * u64::from(c.gpus_per_node / n),
        }
    }

    /// The unit (node, wafer) a device belongs to.
    pub fn unit_of(&self, id: DeviceId) -> u32 {
        match self {
            Fabric::Mesh(m) => id / (m.wafer_rows * m.cols),
            Fabric::Cluster(c) => c.node(id),
        }
    }

    /// The best a ring of `n` devices can get under any placement: a lower bound on its time.
    pub fn ideal_ring(&self, n: u32) -> PathCost {
        match self {
            Fabric::Mesh(m) => {
                // Inside a wafer, three or more dies can run a bidirectional ring whose every step
                // is one hop on its own link (a Hamiltonian cycle, idle dies as relays where
                // needed); two share one link pair. A ring crossing wafers gets at most the
                // boundary's wafer-to-wafer link per step.
                let mesh = if n >= 3 { 2.0 * m.d2d_bw } else { m.d2d_bw };
                let (bw, latency) = if m.rows > m.wafer_rows {
                    (mesh.max(m.w2w_bw), m.hop_latency_s.min(m.w2w_latency_s))
                } else {
                    (mesh, m.hop_latency_s)
                };
                ring(bw, latency, n)
            }
            Fabric::Cluster(c) => {
                if n > c.gpus_per_node {
                    self.ideal_ring_across(n, c.gpus_per_node, 1)
                } else {
                    // One node's NVLink; a ring spread over nodes is never faster, but may have the
                    // smaller latency.
                    ring(c.intra_bw, c.intra_latency_s.min(c.inter_latency_s), n)
                }
            }
        }
    }

    /// The best a ring of `n` devices gets when it spans units, with at most `per_unit` of its
    /// members in one unit and `concurrent` such rings crossing the same unit boundaries at once.
    pub fn ideal_ring_across(&self, n: u32, per_unit: u32, concurrent: u32) -> PathCost {
        match self {
            Fabric::Mesh(m) => {
                let mesh = if n >= 3 { 2.0 * m.d2d_bw } else { m.d2d_bw };
                // Every ring out of a wafer crosses a boundary both ways; the boundary's link of
                // each direction carries one step of each concurrent ring.
                ring(
                    mesh.min(m.w2w_bw / concurrent.max(1) as f64),
                    m.w2w_latency_s,
                    n,
                )
            }
            // NCCL-style: one channel per member of a node, each through its own NIC.
            Fabric::Cluster(c) => ring(
                c.intra_bw.min(per_unit.max(1) as f64 * c.inter_bw),
                c.inter_latency_s,
                n,
            ),
        }
    }

    /// The best a ring of `n` devices gets inside one unit (or anywhere on a fabric of one unit).
    pub fn ideal_ring_inside(&self, n: u32) -> PathCost {
        match self {
            Fabric::Mesh(m) => ring(
                if n >= 3 { 2.0 * m.d2d_bw } else { m.d2d_bw },
                m.hop_latency_s,
                n,
            ),
            Fabric::Cluster(c) => ring(c.intra_bw, c.intra_latency_s, n),
        }
    }

    /// The best a single transfer between two distinct devices can get under any placement.
    pub fn ideal_flow(&self) -> PathCost {
        let (bw, latency) = match self {
            Fabric::Mesh(m) if m.rows > m.wafer_rows => {
                (m.d2d_bw.max(m.w2w_bw), m.hop_latency_s.min(m.w2w_latency_s))
            }
            Fabric::Mesh(m) => (m.d2d_bw, m.hop_latency_s),
            Fabric::Cluster(c) => (
                c.intra_bw.max(c.inter_bw),
                c.intra_latency_s.min(c.inter_latency_s),
            ),
        };
        PathCost {
            bw_bytes_per_s: bw,
            latency_s: latency,
            hops: 1,
        }
    }

    /// The best a transfer inside one unit gets.
    pub fn ideal_flow_inside(&self) -> PathCost {
        let (bw, latency) = match self {
            Fabric::Mesh(m) => (m.d2d_bw, m.hop_latency_s),
            Fabric::Cluster(c) => (c.intra_bw, c.intra_latency_s),
        };
        PathCost {
            bw_bytes_per_s: bw,
            latency_s: latency,
            hops: 1,
        }
    }

    /// The best a transfer between units gets, with `concurrent` transfers crossing the same
    /// boundary at once.
    pub fn ideal_flow_across(&self, concurrent: u32) -> PathCost {
        let (bw, latency) = match self {
            Fabric::Mesh(m) => (
                m.d2d_bw.min(m.w2w_bw / concurrent.max(1) as f64),
                m.w2w_latency_s,
            ),
            // Every GPU has its own NIC.
            Fabric::Cluster(c) => (c.inter_bw, c.inter_latency_s),
        };
        PathCost {
            bw_bytes_per_s: bw,
            latency_s: latency,
            hops: 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::hardware::fabric::test_wafer;

    #[test]
    fn a_fast_wafer_to_wafer_link_lifts_the_ideal() {
        // Two 1 x 4 wafers, 1 TB/s on the wafer, 16 TB/s across: a pair of dies on either side of
        // the boundary gets the boundary link's 16 TB/s, and the ideal must allow it.
        let f = test_wafer(
            1,
            4,
            "wafers = 2\nw2w_bw_tb_per_s = 16\nw2w_latency_ns = 50",
        );
        assert_eq!(f.ideal_ring(2).bw_bytes_per_s, 16e12);
        assert_eq!(f.ideal_ring(4).bw_bytes_per_s, 16e12);
        assert!((f.ideal_flow().latency_s - 50e-9).abs() < 1e-18);
        let real = f.rings(&[&[0, 4]]);
        assert!(real[0].bw_bytes_per_s <= f.ideal_ring(2).bw_bytes_per_s);
        assert_eq!(f.units().map(|u| (u.size, u.count)), Some((4, 2)));
    }

    #[test]
    fn flows_crossing_a_boundary_share_its_link() {
        // 1 TB/s per direction across: four dies of wafer 0 sending to their partners on wafer 1
        // at once get a quarter each.
        let f = test_wafer(1, 4, "wafers = 2\nw2w_bw_tb_per_s = 1");
        let r = f.flows(&[(0, 4), (1, 5), (2, 6), (3, 7)]);
        assert!(r.iter().all(|p| p.bw_bytes_per_s == 0.25e12), "{r:?}");
        assert_eq!(f.ideal_flow_across(4).bw_bytes_per_s, 0.25e12);
    }
}
