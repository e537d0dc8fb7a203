//! The interconnect as a graph: devices, directed links, routes, and how concurrent transfers share
//! links. Only topology facts live here; the time formulas that use them are in `cost::comm`.

use crate::error::FieldError;
use crate::units::{GB, TB};

use super::Hardware;

mod all_to_all;
mod all_to_all_bound;
mod bounds;
mod cluster;
mod detour;
mod mesh;

pub use all_to_all_bound::{injection_bound, least_busiest_load};
pub use bounds::Units;

pub use cluster::ClusterTopo;
pub use mesh::Mesh;

/// Index of a device: `row * cols + col` on a mesh, `node * gpus_per_node + gpu` on a cluster.
pub type DeviceId = u32;

/// What a set of concurrent transfers gets: bandwidth per transfer (or per ring direction summed)
/// and the latency of one message (per ring step).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PathCost {
    /// Effective bandwidth in bytes/s, after sharing links with the other transfers of the phase.
    pub bw_bytes_per_s: f64,
    /// Latency of one message (one ring step): hops times per-hop latency.
    pub latency_s: f64,
    /// Largest number of hops of one message.
    pub hops: u32,
}

/// Topology of a [`Hardware`]: a 2D mesh of dies or a cluster of GPU nodes.
#[derive(Debug, Clone)]
pub enum Fabric {
    Mesh(Mesh),
    Cluster(ClusterTopo),
}

impl Fabric {
    /// Builds the topology of a hardware description.
    pub fn new(hw: &Hardware) -> Result<Fabric, FieldError> {
        match (&hw.wafer, &hw.cluster) {
            (Some(w), _) => {
                let rows = w.rows * w.wafers;
                let n = (rows * w.cols) as usize;
                let mut mesh = Mesh {
                    rows,
                    cols: w.cols,
                    wafer_rows: w.rows,
                    d2d_bw: w.d2d_bw_tb_per_s * TB,
                    w2w_bw: w.w2w_bw_tb_per_s.unwrap_or(w.d2d_bw_tb_per_s) * TB,
                    hop_latency_s: w.hop_latency_s(),
                    w2w_latency_s: w.w2w_latency_ns.unwrap_or(w.d2d_latency_ns) * crate::units::NS,
                    healthy: vec![true; n],
                    link_ok: vec![true; n * 4],
                    faulty: !w.faulty_dies.is_empty() || !w.faulty_links.is_empty(),
                    detours: Default::default(),
                };
                for [r, c] in &w.faulty_dies {
                    mesh.healthy[(r * w.cols + c) as usize] = false;
                }
                for [[r1, c1], [r2, c2]] in &w.faulty_links {
                    let (a, b) = (r1 * w.cols + c1, r2 * w.cols + c2);
                    for (x, y) in [(a, b), (b, a)] {
                        if let Some(dir) = (0..4).find(|d| mesh.neighbour(x, *d) == Some(y)) {
                            mesh.link_ok[(x * 4 + dir) as usize] = false;
                        }
                    }
                }
                for id in 0..n as u32 {
                    if !mesh.healthy[id as usize] {
                        for dir in 0..4 {
                            mesh.link_ok[(id * 4 + dir) as usize] = false;
                            if let Some(nb) = mesh.neighbour(id, dir) {
                                let back = dir ^ 1;
                                mesh.link_ok[(nb * 4 + back) as usize] = false;
                            }
                        }
                    }
                }
                Ok(Fabric::Mesh(mesh))
            }
            (None, Some(c)) => Ok(Fabric::Cluster(ClusterTopo {
                gpus_per_node: c.gpus_per_node,
                nodes: c.nodes,
                intra_bw: c.intra_bw_gb_per_s * GB,
                inter_bw: c.inter_bw_gb_per_s * GB,
                intra_latency_s: c.intra_latency_s(),
                inter_latency_s: c.inter_latency_s(),
            })),
            (None, None) => Err(FieldError::new(
                "wafer",
                "no [wafer] or [cluster] table",
                "add one",
            )),
        }
    }

    /// All devices, healthy or not.
    pub fn device_count(&self) -> u32 {
        match self {
            Fabric::Mesh(m) => m.rows * m.cols,
            Fabric::Cluster(c) => c.nodes * c.gpus_per_node,
        }
    }

    /// Devices that work.
    pub fn healthy_count(&self) -> u32 {
        match self {
            Fabric::Mesh(m) => m.healthy.iter().filter(|h| **h).count() as u32,
            Fabric::Cluster(c) => c.nodes * c.gpus_per_node,
        }
    }

    /// Whether a device exists and works.
    pub fn is_healthy(&self, id: DeviceId) -> bool {
        match self {
            Fabric::Mesh(m) => m.healthy.get(id as usize).copied().unwrap_or(false),
            Fabric::Cluster(_) => id < self.device_count(),
        }
    }

    /// `[row, col]` on a mesh, `[node, gpu]` on a cluster.
    pub fn coord(&self, id: DeviceId) -> [u32; 2] {
        let w = self.width();
        [id / w, id % w]
    }

    /// The device at `[row, col]` / `[node, gpu]`, if it exists.
    pub fn id_of(&self, [a, b]: [u32; 2]) -> Option<DeviceId> {
        let w = self.width();
        (b < w && a * w + b < self.device_count()).then_some(a * w + b)
    }

    /// Devices per row of a mesh, per node of a cluster.
    pub fn width(&self) -> u32 {
        match self {
            Fabric::Mesh(m) => m.cols,
            Fabric::Cluster(c) => c.gpus_per_node,
        }
    }

    /// Rings run at the same time (one per group, in the group's order): what each gets.
    pub fn rings(&self, groups: &[&[DeviceId]]) -> Vec<PathCost> {
        match self {
            Fabric::Mesh(m) => m.rings(groups),
            Fabric::Cluster(c) => groups.iter().map(|g| c.ring(g)).collect(),
        }
    }

    /// Point-to-point transfers run at the same time: what each gets. A device sends its own
    /// transfers one after another and receives its own one after another (their times add up
    /// where they are charged), so two transfers contend for a link only when they share neither
    /// sender nor receiver.
    pub fn flows(&self, pairs: &[(DeviceId, DeviceId)]) -> Vec<PathCost> {
        match self {
            Fabric::Mesh(m) => m.flows(pairs),
            Fabric::Cluster(c) => c.flows(pairs),
        }
    }

    /// Hops between two devices on their route (1 between any two GPUs of a cluster).
    pub fn hops(&self, a: DeviceId, b: DeviceId) -> u32 {
        match self {
            Fabric::Mesh(m) => {
                let mut links = Vec::new();
                m.route(a, b, &mut links);
                links.len() as u32
            }
            Fabric::Cluster(_) => u32::from(a != b),
        }
    }

    /// The hops of the route from `a` to `b`, each as the two devices it joins (one hop between
    /// two GPUs of a cluster; none from a device to itself).
    ///
    /// ```
    /// let text = "name='w'\n[device]\npeak_tflops=1\nsram_mb=1\ndram_gb=1\ndram_bw_tb_per_s=1\n[software]\nattention='flash'\nexecution='dataflow'\n[wafer]\nrows=2\ncols=2\nd2d_bw_tb_per_s=1\nd2d_latency_ns=100\nfaulty_links=[[[0,0],[0,1]]]";
    /// let hw: watos::Hardware = toml::from_str(text).unwrap();
    /// let f = hw.fabric().unwrap();
    /// // The link from die 0 to die 1 is down: the route detours through the second row.
    /// assert_eq!(f.route(0, 1), vec![(0, 2), (2, 3), (3, 1)]);
    /// ```
    pub fn route(&self, a: DeviceId, b: DeviceId) -> Vec<(DeviceId, DeviceId)> {
        match self {
            Fabric::Mesh(m) => {
                let mut links = Vec::new();
                m.route(a, b, &mut links);
                links
                    .iter()
                    .map(|l| (l / 4, m.neighbour(l / 4, l % 4).unwrap_or(l / 4)))
                    .collect()
            }
            Fabric::Cluster(_) if a != b => vec![(a, b)],
            Fabric::Cluster(_) => Vec::new(),
        }
    }

    /// Whether the link between two neighbouring dies works (always on a cluster, whose switches
    /// join every pair of GPUs).
    pub fn link_works(&self, a: DeviceId, b: DeviceId) -> bool {
        match self {
            Fabric::Mesh(m) => {
                (0..4).any(|dir| m.neighbour(a, dir) == Some(b) && m.link_works(a * 4 + dir))
            }
            Fabric::Cluster(_) => self.is_healthy(a) && self.is_healthy(b),
        }
    }

    /// Whether every pair of healthy devices is connected (faults may cut the mesh).
    pub fn is_connected(&self) -> bool {
        match self {
            Fabric::Mesh(m) => m.connected(),
            Fabric::Cluster(_) => true,
        }
    }
}

/// A `rows x cols` wafer of unit dies (1 TB/s links, 100 ns hops) with `extra` wafer fields, for
/// unit tests.
#[cfg(test)]
pub(crate) fn test_wafer(rows: u32, cols: u32, extra: &str) -> Fabric {
    let text = format!(
        "name='w'\n[device]\npeak_tflops=1\nsram_mb=1\ndram_gb=1\ndram_bw_tb_per_s=1\n[software]\nattention='flash'\nexecution='dataflow'\n[wafer]\nrows={rows}\ncols={cols}\nd2d_bw_tb_per_s=1\nd2d_latency_ns=100\n{extra}"
    );
    let hw: Hardware = toml::from_str(&text).unwrap();
    hw.fabric().unwrap()
}

#[cfg(test)]
mod tests {
    use super::test_wafer as wafer;

    #[test]
    fn two_by_two_block_runs_a_bidirectional_ring_at_twice_link_speed() {
        let f = wafer(2, 2, "");
        // Cycle 0 -> 1 -> 3 -> 2 -> 0 uses neighbour links only.
        let r = f.rings(&[&[0, 1, 3, 2]]);
        assert_eq!(r[0].bw_bytes_per_s, 2e12);
        assert_eq!(r[0].hops, 1);
        assert_eq!(f.ideal_ring(4).bw_bytes_per_s, 2e12);
    }

    #[test]
    fn a_line_ring_shares_its_wraparound_links() {
        let f = wafer(1, 4, "");
        // 0->1->2->3 then 3->0 over three hops, against the forward edges: unidirectional fits
        // (each direction used once); bidirectional would load every link twice.
        let r = f.rings(&[&[0, 1, 2, 3]]);
        assert_eq!(r[0].bw_bytes_per_s, 1e12);
        assert_eq!(r[0].hops, 3);
    }

    #[test]
    fn each_group_picks_its_own_ring_direction() {
        // A 3 x 4 mesh: a 2 x 2 block (bidirectional at 2x) next to a 1 x 4 line in the last row
        // (unidirectional at 1x); the line must not drag the block down to one direction.
        let f = wafer(3, 4, "");
        let r = f.rings(&[&[0, 1, 5, 4], &[8, 9, 10, 11]]);
        assert_eq!(r[0].bw_bytes_per_s, 2e12);
        assert_eq!(r[1].bw_bytes_per_s, 1e12);
    }

    #[test]
    fn concurrent_flows_share_a_link() {
        let f = wafer(1, 4, "");
        // 0 -> 2 and 1 -> 3 both cross link 1 -> 2, with different ends: they share it.
        let r = f.flows(&[(0, 2), (1, 3)]);
        assert_eq!(r[0].bw_bytes_per_s, 0.5e12);
        assert_eq!(r[1].bw_bytes_per_s, 0.5e12);
        assert_eq!(r[0].hops, 2);
        // Two transfers into one device run one after another: each gets the link while it runs.
        let r = f.flows(&[(0, 3), (1, 3)]);
        assert_eq!(r[0].bw_bytes_per_s, 1e12);
        assert_eq!(r[1].bw_bytes_per_s, 1e12);
    }

    #[test]
    fn routes_avoid_faulty_dies() {
        let f = wafer(3, 3, "faulty_dies=[[1,1]]");
        assert_eq!(f.healthy_count(), 8);
        // 3 -> 5 would cross the dead centre; the detour takes four hops.
        assert_eq!(f.hops(3, 5), 4);
        assert!(f.is_connected());
    }

    #[test]
    fn a_large_faulted_mesh_routes_on_demand() {
        // 65,536 dies: no table of every pair, only the pairs asked for.
        let f = wafer(
            256,
            256,
            "faulty_dies=[[100,101]]\nfaulty_links=[[[7,7],[7,8]]]",
        );
        assert_eq!(f.healthy_count(), 65_535);
        assert!(f.is_connected());
        // Along row 100 across the dead die: two hops more than the straight route.
        let (a, b) = (100 * 256 + 90, 100 * 256 + 110);
        assert_eq!(f.hops(a, b), 22);
        assert!(f.route(a, b).iter().all(|(x, y)| f.link_works(*x, *y)));
        // Row-first avoids the broken link between two dies of one row without a detour.
        assert_eq!(f.hops(7 * 256 + 7, 9 * 256 + 9), 4);
        assert_eq!(f.hops(7 * 256 + 7, 7 * 256 + 8), 3);
    }

    #[test]
    fn faulty_link_forces_a_detour() {
        let f = wafer(2, 2, "faulty_links=[[[0,0],[0,1]]]");
        assert_eq!(f.hops(0, 1), 3);
        assert_eq!(f.hops(2, 3), 1);
    }
}
