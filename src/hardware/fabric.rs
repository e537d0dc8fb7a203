//! The interconnect as a graph: devices, directed links, routes, and how concurrent transfers share
//! links. Only topology facts live here; the time formulas that use them are in `cost::comm`.

use crate::error::FieldError;
use crate::units::{GB, TB};

use super::Hardware;

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

/// A mesh of dies (several wafers stacked along rows), with faulty dies and links.
#[derive(Debug, Clone)]
pub struct Mesh {
    pub rows: u32,
    pub cols: u32,
    wafer_rows: u32,
    d2d_bw: f64,
    w2w_bw: f64,
    hop_latency_s: f64,
    w2w_latency_s: f64,
    healthy: Vec<bool>,
    /// Directed link `device * 4 + dir` works (dir: 0 east, 1 west, 2 south, 3 north).
    link_ok: Vec<bool>,
    /// With faults, `next[src * n + dst]` is the neighbour of `src` on a shortest healthy path.
    next: Option<Vec<u32>>,
}

/// A cluster: GPUs on an intra-node switch, each with its own network port.
#[derive(Debug, Clone)]
pub struct ClusterTopo {
    pub gpus_per_node: u32,
    pub nodes: u32,
    intra_bw: f64,
    inter_bw: f64,
    intra_latency_s: f64,
    inter_latency_s: f64,
}

const DIRS: [(i64, i64); 4] = [(0, 1), (0, -1), (1, 0), (-1, 0)];
const NONE: u32 = u32::MAX;

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
                    // A wafer boundary is crossed by `cols` links sharing the wafer-to-wafer bandwidth.
                    w2w_bw: w.w2w_bw_tb_per_s.unwrap_or(w.d2d_bw_tb_per_s) * TB / w.cols as f64,
                    hop_latency_s: w.hop_latency_s(),
                    w2w_latency_s: w.w2w_latency_ns.unwrap_or(w.d2d_latency_ns) * crate::units::NS,
                    healthy: vec![true; n],
                    link_ok: vec![true; n * 4],
                    next: None,
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
                if !w.faulty_dies.is_empty() || !w.faulty_links.is_empty() {
                    mesh.build_routes()?;
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

    fn width(&self) -> u32 {
        match self {
            Fabric::Mesh(m) => m.cols,
            Fabric::Cluster(c) => c.gpus_per_node,
        }
    }

    /// Healthy devices in the order default placements fill them. On a mesh: bands of two rows
    /// walked column by column, bands in alternating directions, so that any `2k` consecutive dies
    /// form a 2 x k block and consecutive blocks touch. Single rows (odd `t`) use a plain snake.
    pub fn placement_order(&self, group: u32) -> Vec<DeviceId> {
        match self {
            Fabric::Mesh(m) => m.band_snake(if group % 2 == 0 { 2 } else { 1 }),
            Fabric::Cluster(_) => (0..self.device_count()).collect(),
        }
    }

    /// Reorders a group so that walking it is a short cycle: on a mesh, a group lying in two
    /// adjacent rows becomes the top row left to right, then the bottom row right to left.
    pub fn ring_order(&self, group: &mut [DeviceId]) {
        let Fabric::Mesh(m) = self else { return };
        let rows: Vec<u32> = group.iter().map(|id| id / m.cols).collect();
        let (lo, hi) = (
            rows.iter().min().copied().unwrap_or(0),
            rows.iter().max().copied().unwrap_or(0),
        );
        if hi > lo + 1 {
            return;
        }
        group.sort_by_key(|id| {
            let (r, c) = (id / m.cols, id % m.cols);
            if r == lo {
                (0, c as i64)
            } else {
                (1, -(c as i64))
            }
        });
    }

    /// Rings run at the same time (one per group, in the group's order): what each gets.
    pub fn rings(&self, groups: &[&[DeviceId]]) -> Vec<PathCost> {
        match self {
            Fabric::Mesh(m) => m.rings(groups),
            Fabric::Cluster(c) => groups.iter().map(|g| c.ring(g)).collect(),
        }
    }

    /// The best a ring of `n` devices can get under any placement: a lower bound on its time.
    pub fn ideal_ring(&self, n: u32) -> PathCost {
        match self {
            Fabric::Mesh(m) => PathCost {
                // Two devices share one link pair; three or more can run a bidirectional ring
                // whose every step is one hop on its own link (a Hamiltonian cycle, idle dies as
                // relays where needed).
                bw_bytes_per_s: if n >= 3 { 2.0 * m.d2d_bw } else { m.d2d_bw },
                latency_s: if n >= 2 { m.hop_latency_s } else { 0.0 },
                hops: u32::from(n >= 2),
            },
            Fabric::Cluster(c) => {
                let multi = n > c.gpus_per_node;
                PathCost {
                    bw_bytes_per_s: if multi {
                        c.intra_bw.min(c.gpus_per_node as f64 * c.inter_bw)
                    } else {
                        c.intra_bw
                    },
                    latency_s: if multi {
                        c.inter_latency_s
                    } else {
                        c.intra_latency_s
                    },
                    hops: 1,
                }
            }
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

    /// The best a single transfer between two distinct devices can get under any placement.
    pub fn ideal_flow(&self) -> PathCost {
        match self {
            Fabric::Mesh(m) => PathCost {
                bw_bytes_per_s: m.d2d_bw,
                latency_s: m.hop_latency_s,
                hops: 1,
            },
            Fabric::Cluster(c) => PathCost {
                bw_bytes_per_s: c.intra_bw,
                latency_s: c.intra_latency_s,
                hops: 1,
            },
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

    /// Whether every pair of healthy devices is connected (faults may cut the mesh).
    pub fn is_connected(&self) -> bool {
        match self {
            Fabric::Mesh(m) => m.connected(),
            Fabric::Cluster(_) => true,
        }
    }
}

impl Mesh {
    fn n(&self) -> u32 {
        self.rows * self.cols
    }

    fn neighbour(&self, id: DeviceId, dir: u32) -> Option<DeviceId> {
        let (r, c) = ((id / self.cols) as i64, (id % self.cols) as i64);
        let (dr, dc) = DIRS[dir as usize];
        let (nr, nc) = (r + dr, c + dc);
        (nr >= 0 && nc >= 0 && nr < self.rows as i64 && nc < self.cols as i64)
            .then(|| (nr as u32) * self.cols + nc as u32)
    }

    fn link_bw(&self, link: u32) -> f64 {
        let (id, dir) = (link / 4, link % 4);
        let r = id / self.cols;
        let crosses = match dir {
            2 => (r + 1) % self.wafer_rows == 0,
            3 => r % self.wafer_rows == 0,
            _ => false,
        };
        if crosses {
            self.w2w_bw
        } else {
            self.d2d_bw
        }
    }

    fn link_latency(&self, link: u32) -> f64 {
        if self.link_bw(link) == self.d2d_bw {
            self.hop_latency_s
        } else {
            self.w2w_latency_s
        }
    }

    /// Dimension-ordered (column first) route without faults; table-driven shortest healthy
    /// route with them. Appends directed link ids to `out`.
    fn route(&self, a: DeviceId, b: DeviceId, out: &mut Vec<u32>) {
        if let Some(next) = &self.next {
            let n = self.n();
            let mut cur = a;
            while cur != b {
                let nb = next[(cur * n + b) as usize];
                if nb == NONE {
                    return;
                }
                let dir = (0..4)
                    .find(|d| self.neighbour(cur, *d) == Some(nb))
                    .unwrap_or(0);
                out.push(cur * 4 + dir);
                cur = nb;
            }
            return;
        }
        let (mut r, mut c) = (a / self.cols, a % self.cols);
        let (br, bc) = (b / self.cols, b % self.cols);
        while c != bc {
            let dir = if bc > c { 0 } else { 1 };
            out.push((r * self.cols + c) * 4 + dir);
            c = if bc > c { c + 1 } else { c - 1 };
        }
        while r != br {
            let dir = if br > r { 2 } else { 3 };
            out.push((r * self.cols + c) * 4 + dir);
            r = if br > r { r + 1 } else { r - 1 };
        }
    }

    /// All-pairs next-hop table by breadth-first search over healthy links, neighbours tried in a
    /// fixed order so that routes are deterministic.
    fn build_routes(&mut self) -> Result<(), FieldError> {
        let n = self.n();
        let mut next = vec![NONE; (n * n) as usize];
        let mut queue = std::collections::VecDeque::new();
        for dst in 0..n {
            if !self.healthy[dst as usize] {
                continue;
            }
            // BFS from the destination over reversed links: the parent is the next hop toward dst.
            next[(dst * n + dst) as usize] = dst;
            queue.push_back(dst);
            while let Some(cur) = queue.pop_front() {
                for dir in 0..4 {
                    let Some(nb) = self.neighbour(cur, dir) else {
                        continue;
                    };
                    let back = dir ^ 1;
                    if self.link_ok[(nb * 4 + back) as usize]
                        && next[(nb * n + dst) as usize] == NONE
                    {
                        next[(nb * n + dst) as usize] = cur;
                        queue.push_back(nb);
                    }
                }
            }
        }
        self.next = Some(next);
        Ok(())
    }

    fn connected(&self) -> bool {
        let Some(next) = &self.next else { return true };
        let n = self.n();
        let healthy: Vec<u32> = (0..n).filter(|i| self.healthy[*i as usize]).collect();
        healthy
            .iter()
            .all(|a| healthy.iter().all(|b| next[(a * n + b) as usize] != NONE))
    }

    fn band_snake(&self, band: u32) -> Vec<DeviceId> {
        let mut order = Vec::with_capacity(self.n() as usize);
        let mut top = 0;
        let mut forward = true;
        while top < self.rows {
            let height = band.min(self.rows - top);
            let cols: Vec<u32> = if forward {
                (0..self.cols).collect()
            } else {
                (0..self.cols).rev().collect()
            };
            for c in cols {
                for r in top..top + height {
                    let id = r * self.cols + c;
                    if self.healthy[id as usize] {
                        order.push(id);
                    }
                }
            }
            top += height;
            forward = !forward;
        }
        order
    }

    fn load(&self, edges: &[(DeviceId, DeviceId)], loads: &mut [u32], scratch: &mut Vec<u32>) {
        for (a, b) in edges {
            scratch.clear();
            self.route(*a, *b, scratch);
            for l in scratch.iter() {
                loads[*l as usize] += 1;
            }
        }
    }

    /// Each edge's share: the slowest link of its route divided among the edges using it.
    fn edge_cost(
        &self,
        a: DeviceId,
        b: DeviceId,
        loads: &[u32],
        scratch: &mut Vec<u32>,
    ) -> PathCost {
        scratch.clear();
        self.route(a, b, scratch);
        let mut bw = f64::INFINITY;
        let mut latency = 0.0;
        for l in scratch.iter() {
            bw = bw.min(self.link_bw(*l) / loads[*l as usize].max(1) as f64);
            latency += self.link_latency(*l);
        }
        if scratch.is_empty() {
            bw = 0.0;
        }
        PathCost {
            bw_bytes_per_s: bw,
            latency_s: latency,
            hops: scratch.len() as u32,
        }
    }

    /// Each group runs a unidirectional ring, or two half-rings in opposite directions, whichever
    /// is faster given the links the other groups use: best responses until no group changes.
    fn rings(&self, groups: &[&[DeviceId]]) -> Vec<PathCost> {
        let edges = |g: &[DeviceId], bidirectional: bool| -> Vec<(DeviceId, DeviceId)> {
            let n = g.len();
            if n < 2 {
                return Vec::new();
            }
            let mut e: Vec<_> = (0..n).map(|i| (g[i], g[(i + 1) % n])).collect();
            if bidirectional {
                e.extend((0..n).map(|i| (g[(i + 1) % n], g[i])));
            }
            e
        };
        let mut scratch = Vec::new();
        let mut bi = vec![true; groups.len()];
        let mut loads = vec![0u32; (self.n() * 4) as usize];
        let cost = |g: &[DeviceId],
                    bidirectional: bool,
                    loads: &[u32],
                    scratch: &mut Vec<u32>|
         -> PathCost {
            let e = edges(g, bidirectional);
            if e.is_empty() {
                return PathCost {
                    bw_bytes_per_s: f64::INFINITY,
                    latency_s: 0.0,
                    hops: 0,
                };
            }
            let mut worst = PathCost {
                bw_bytes_per_s: f64::INFINITY,
                latency_s: 0.0,
                hops: 0,
            };
            for (a, b) in e {
                let c = self.edge_cost(a, b, loads, scratch);
                worst.bw_bytes_per_s = worst.bw_bytes_per_s.min(c.bw_bytes_per_s);
                worst.latency_s = worst.latency_s.max(c.latency_s);
                worst.hops = worst.hops.max(c.hops);
            }
            // Two rings in opposite directions each carry half the data.
            if bidirectional {
                worst.bw_bytes_per_s *= 2.0;
            }
            worst
        };
        for _ in 0..8 {
            loads.iter_mut().for_each(|l| *l = 0);
            for (g, b) in groups.iter().zip(&bi) {
                self.load(&edges(g, *b), &mut loads, &mut scratch);
            }
            let mut changed = false;
            for (i, g) in groups.iter().enumerate() {
                // Try the other choice with this group's own links swapped out.
                let mut alt = loads.clone();
                self.unload(&edges(g, bi[i]), &mut alt, &mut scratch);
                self.load(&edges(g, !bi[i]), &mut alt, &mut scratch);
                let now = cost(g, bi[i], &loads, &mut scratch).bw_bytes_per_s;
                let other = cost(g, !bi[i], &alt, &mut scratch).bw_bytes_per_s;
                if other > now * (1.0 + 1e-12) {
                    bi[i] = !bi[i];
                    loads = alt;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        loads.iter_mut().for_each(|l| *l = 0);
        for (g, b) in groups.iter().zip(&bi) {
            self.load(&edges(g, *b), &mut loads, &mut scratch);
        }
        groups
            .iter()
            .zip(&bi)
            .map(|(g, b)| cost(g, *b, &loads, &mut scratch))
            .collect()
    }

    fn unload(&self, edges: &[(DeviceId, DeviceId)], loads: &mut [u32], scratch: &mut Vec<u32>) {
        for (a, b) in edges {
            scratch.clear();
            self.route(*a, *b, scratch);
            for l in scratch.iter() {
                loads[*l as usize] = loads[*l as usize].saturating_sub(1);
            }
        }
    }

    fn flows(&self, pairs: &[(DeviceId, DeviceId)]) -> Vec<PathCost> {
        let mut scratch = Vec::new();
        let routes: Vec<Vec<u32>> = pairs
            .iter()
            .map(|(a, b)| {
                scratch.clear();
                self.route(*a, *b, &mut scratch);
                scratch.clone()
            })
            .collect();
        let mut users: std::collections::HashMap<u32, Vec<usize>> =
            std::collections::HashMap::new();
        for (f, route) in routes.iter().enumerate() {
            for l in route {
                users.entry(*l).or_default().push(f);
            }
        }
        let mut loads = vec![0u32; (self.n() * 4) as usize];
        pairs
            .iter()
            .enumerate()
            .map(|(f, (a, b))| {
                for l in &routes[f] {
                    let others = users[l]
                        .iter()
                        .filter(|g| pairs[**g].0 != *a && pairs[**g].1 != *b)
                        .count();
                    loads[*l as usize] = 1 + others as u32;
                }
                self.edge_cost(*a, *b, &loads, &mut scratch)
            })
            .collect()
    }
}

impl ClusterTopo {
    fn node(&self, id: DeviceId) -> u32 {
        id / self.gpus_per_node
    }

    /// NCCL-style: inside a node the ring runs at NVLink speed; across nodes it runs one channel
    /// per member of a node, each through its own NIC, so the members per node multiply the
    /// network bandwidth (up to NVLink's).
    fn ring(&self, group: &[DeviceId]) -> PathCost {
        if group.len() < 2 {
            return PathCost {
                bw_bytes_per_s: f64::INFINITY,
                latency_s: 0.0,
                hops: 0,
            };
        }
        let mut per_node: Vec<(u32, u32)> = Vec::new();
        for id in group {
            let node = self.node(*id);
            match per_node.iter_mut().find(|(n, _)| *n == node) {
                Some((_, count)) => *count += 1,
                None => per_node.push((node, 1)),
            }
        }
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
    fn flows(&self, pairs: &[(DeviceId, DeviceId)]) -> Vec<PathCost> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn wafer(rows: u32, cols: u32, extra: &str) -> Fabric {
        let text = format!(
            "name='w'\n[device]\npeak_tflops=1\nsram_mb=1\ndram_gb=1\ndram_bw_tb_per_s=1\n[software]\nattention='flash'\nexecution='dataflow'\n[wafer]\nrows={rows}\ncols={cols}\nd2d_bw_tb_per_s=1\nd2d_latency_ns=100\n{extra}"
        );
        let hw: Hardware = toml::from_str(&text).unwrap();
        hw.fabric().unwrap()
    }

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
        assert!(!f.placement_order(1).contains(&4));
    }

    #[test]
    fn faulty_link_forces_a_detour() {
        let f = wafer(2, 2, "faulty_links=[[[0,0],[0,1]]]");
        assert_eq!(f.hops(0, 1), 3);
        assert_eq!(f.hops(2, 3), 1);
    }

    #[test]
    fn band_snake_makes_two_by_k_blocks() {
        let f = wafer(4, 3, "");
        assert_eq!(
            f.placement_order(2),
            vec![0, 3, 1, 4, 2, 5, 8, 11, 7, 10, 6, 9]
        );
        let mut g = vec![0, 3, 1, 4];
        f.ring_order(&mut g);
        assert_eq!(g, vec![0, 1, 4, 3]);
    }
}
