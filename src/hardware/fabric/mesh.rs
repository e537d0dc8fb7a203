//! A 2D mesh of dies: links, dimension-ordered or fault-avoiding routes, rings and transfers
//! that share links.

use super::detour::Detours;
use super::{DeviceId, PathCost};

/// A mesh of dies (several wafers stacked along rows), with faulty dies and links.
#[derive(Debug, Clone)]
pub struct Mesh {
    pub rows: u32,
    pub cols: u32,
    pub(super) wafer_rows: u32,
    pub(super) d2d_bw: f64,
    pub(super) w2w_bw: f64,
    pub(super) hop_latency_s: f64,
    pub(super) w2w_latency_s: f64,
    pub(super) healthy: Vec<bool>,
    /// Directed link `device * 4 + dir` works (dir: 0 east, 1 west, 2 south, 3 north).
    pub(super) link_ok: Vec<bool>,
    /// Whether any die or link is faulty (routes then check their links).
    pub(super) faulty: bool,
    /// Shortest detours of the pairs whose dimension-ordered routes cross a fault.
    pub(super) detours: Detours,
}

pub(super) const DIRS: [(i64, i64); 4] = [(0, 1), (0, -1), (1, 0), (-1, 0)];

impl Mesh {
    /// Rows of one wafer (the mesh stacks `rows / wafer_rows` wafers).
    pub fn wafer_rows(&self) -> u32 {
        self.wafer_rows
    }

    /// Wafers the mesh spans (stacked along rows).
    pub fn wafers(&self) -> u32 {
        self.rows / self.wafer_rows.max(1)
    }

    pub(super) fn n(&self) -> u32 {
        self.rows * self.cols
    }

    pub(super) fn neighbour(&self, id: DeviceId, dir: u32) -> Option<DeviceId> {
        let (r, c) = ((id / self.cols) as i64, (id % self.cols) as i64);
        let (dr, dc) = DIRS[dir as usize];
        let (nr, nc) = (r + dr, c + dc);
        (nr >= 0 && nc >= 0 && nr < self.rows as i64 && nc < self.cols as i64)
            .then(|| (nr as u32) * self.cols + nc as u32)
    }

    /// The wafer boundary a directed link crosses, as `(boundary below wafer w, southward)`.
    fn crossing(&self, link: u32) -> Option<(u32, bool)> {
        let (id, dir) = (link / 4, link % 4);
        let r = id / self.cols;
        match dir {
            2 if (r + 1) % self.wafer_rows == 0 => Some((r / self.wafer_rows, true)),
            3 if r % self.wafer_rows == 0 && r > 0 => Some((r / self.wafer_rows - 1, false)),
            _ => None,
        }
    }

    /// What a directed link's traffic shares: its own D2D link, or the wafer-to-wafer link of the
    /// boundary it crosses (one per boundary and direction, shared by every flow crossing there:
    /// the wafer-to-wafer links are a layer of their own, not extra mesh links).
    pub(super) fn resource(&self, link: u32) -> u32 {
        match self.crossing(link) {
            Some((b, south)) => self.n() * 4 + 2 * b + u32::from(!south),
            None => link,
        }
    }

    /// Resources links are charged to: every D2D link, then two per wafer boundary.
    pub(super) fn resources(&self) -> usize {
        (self.n() * 4 + 2 * (self.rows / self.wafer_rows).saturating_sub(1)) as usize
    }

    pub(super) fn resource_bw(&self, resource: u32) -> f64 {
        if resource >= self.n() * 4 {
            self.w2w_bw
        } else {
            self.d2d_bw
        }
    }

    pub(super) fn link_latency(&self, link: u32) -> f64 {
        if self.crossing(link).is_some() {
            self.w2w_latency_s
        } else {
            self.hop_latency_s
        }
    }

    /// The route from `a` to `b` as directed link ids appended to `out`: dimension-ordered
    /// (column first) on a mesh without faults. With faults, the column-first route if all its
    /// links work, else the row-first one, else a shortest detour over working links (found once
    /// per pair and cached). Nothing is appended when `b` cannot be reached.
    pub(super) fn route(&self, a: DeviceId, b: DeviceId, out: &mut Vec<u32>) {
        let start = out.len();
        self.ordered_route(a, b, true, out);
        if !self.faulty || self.works(&out[start..]) {
            return;
        }
        out.truncate(start);
        self.ordered_route(a, b, false, out);
        if self.works(&out[start..]) {
            return;
        }
        out.truncate(start);
        self.detours.append(self, a, b, out);
    }

    fn works(&self, links: &[u32]) -> bool {
        links.iter().all(|l| self.link_ok[*l as usize])
    }

    /// Dimension-ordered route: along the row first (`columns_first`), or along the column first.
    fn ordered_route(&self, a: DeviceId, b: DeviceId, columns_first: bool, out: &mut Vec<u32>) {
        let (mut r, mut c) = (a / self.cols, a % self.cols);
        let (br, bc) = (b / self.cols, b % self.cols);
        for phase in [columns_first, !columns_first] {
            if phase {
                while c != bc {
                    let dir = if bc > c { 0 } else { 1 };
                    out.push((r * self.cols + c) * 4 + dir);
                    c = if bc > c { c + 1 } else { c - 1 };
                }
            } else {
                while r != br {
                    let dir = if br > r { 2 } else { 3 };
                    out.push((r * self.cols + c) * 4 + dir);
                    r = if br > r { r + 1 } else { r - 1 };
                }
            }
        }
    }

    /// Whether every healthy die reaches every other over working links (links work both ways
    /// or neither, so one search from one die settles it).
    pub(super) fn connected(&self) -> bool {
        let Some(first) = self.healthy.iter().position(|h| *h) else {
            return true;
        };
        let mut seen = vec![false; self.n() as usize];
        seen[first] = true;
        let mut stack = vec![first as u32];
        let mut reached = 1usize;
        while let Some(cur) = stack.pop() {
            for dir in 0..4 {
                if !self.link_ok[(cur * 4 + dir) as usize] {
                    continue;
                }
                if let Some(nb) = self.neighbour(cur, dir) {
                    if !seen[nb as usize] {
                        seen[nb as usize] = true;
                        reached += 1;
                        stack.push(nb);
                    }
                }
            }
        }
        reached == self.healthy.iter().filter(|h| **h).count()
    }

    /// Directed link `link` works.
    pub(super) fn link_works(&self, link: u32) -> bool {
        self.link_ok.get(link as usize).copied().unwrap_or(false)
    }

    /// Counts the edges' routes on their links (`step` +1), or takes them off again (-1).
    pub(super) fn load_by(
        &self,
        edges: &[(DeviceId, DeviceId)],
        loads: &mut [u32],
        scratch: &mut Vec<u32>,
        step: i32,
    ) {
        for (a, b) in edges {
            scratch.clear();
            self.route(*a, *b, scratch);
            for l in scratch.iter() {
                let v = &mut loads[self.resource(*l) as usize];
                *v = v.saturating_add_signed(step);
            }
        }
    }

    pub(super) fn load(
        &self,
        edges: &[(DeviceId, DeviceId)],
        loads: &mut [u32],
        scratch: &mut Vec<u32>,
    ) {
        self.load_by(edges, loads, scratch, 1);
    }

    /// Each edge's share: the slowest link of its route divided among the edges using it.
    pub(super) fn edge_cost(
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
            let r = self.resource(*l);
            bw = bw.min(self.resource_bw(r) / loads[r as usize].max(1) as f64);
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
    pub(super) fn rings(&self, groups: &[&[DeviceId]]) -> Vec<PathCost> {
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
        let mut loads = vec![0u32; self.resources()];
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
                // Try the other choice with this group's own links swapped, in place; swap back
                // unless it is faster.
                let now = cost(g, bi[i], &loads, &mut scratch).bw_bytes_per_s;
                let (mine, other_edges) = (edges(g, bi[i]), edges(g, !bi[i]));
                self.load_by(&mine, &mut loads, &mut scratch, -1);
                self.load(&other_edges, &mut loads, &mut scratch);
                let other = cost(g, !bi[i], &loads, &mut scratch).bw_bytes_per_s;
                if other > now * (1.0 + 1e-12) {
                    bi[i] = !bi[i];
                    changed = true;
                } else {
                    self.load_by(&other_edges, &mut loads, &mut scratch, -1);
                    self.load(&mine, &mut loads, &mut scratch);
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

    pub(super) fn flows(&self, pairs: &[(DeviceId, DeviceId)]) -> Vec<PathCost> {
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
                users.entry(self.resource(*l)).or_default().push(f);
            }
        }
        let mut loads = vec![0u32; self.resources()];
        pairs
            .iter()
            .enumerate()
            .map(|(f, (a, b))| {
                for l in &routes[f] {
                    let r = self.resource(*l);
                    let others = users[&r]
                        .iter()
                        .filter(|g| pairs[**g].0 != *a && pairs[**g].1 != *b)
                        .count();
                    loads[r as usize] = 1 + others as u32;
                }
                self.edge_cost(*a, *b, &loads, &mut scratch)
            })
            .collect()
    }
}
