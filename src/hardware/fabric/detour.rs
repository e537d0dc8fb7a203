//! Routes around faults: a shortest path over working links, searched only for the pairs whose
//! dimension-ordered routes cross a fault, and remembered. Nothing is tabulated for every pair, so
//! the size of a faulted mesh is not limited by memory for routes.

use std::collections::{BinaryHeap, HashMap};
use std::sync::RwLock;

use super::mesh::Mesh;
use super::DeviceId;

/// Pairs remembered at most: past this, detours are searched again each time they are asked for
/// (a search costs about the detour's length times the dies around the fault it avoids).
const MAX_REMEMBERED: usize = 1 << 20;

/// Directed link ids of a detour, by `(from, to)`.
type Routes = HashMap<(DeviceId, DeviceId), Box<[u32]>>;

/// Detours found so far. A copy of a mesh starts with none (they are only a cache).
#[derive(Default)]
pub struct Detours(RwLock<Routes>);

impl Clone for Detours {
    fn clone(&self) -> Self {
        Detours::default()
    }
}

impl std::fmt::Debug for Detours {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.read().map_or(0, |m| m.len());
        write!(f, "Detours({n} remembered)")
    }
}

impl Detours {
    /// Appends the links of a shortest working path from `a` to `b` to `out` (nothing if there is
    /// none).
    pub(super) fn append(&self, mesh: &Mesh, a: DeviceId, b: DeviceId, out: &mut Vec<u32>) {
        if let Ok(known) = self.0.read() {
            if let Some(links) = known.get(&(a, b)) {
                out.extend_from_slice(links);
                return;
            }
        }
        let links = shortest(mesh, a, b);
        out.extend_from_slice(&links);
        if let Ok(mut known) = self.0.write() {
            if known.len() < MAX_REMEMBERED {
                known.insert((a, b), links.into_boxed_slice());
            }
        }
    }
}

/// A* over working links with the Manhattan distance (exact on a mesh without faults, so the
/// search stays near the straight route and only widens around faults). Ties go to the die
/// nearer the goal, then to the smaller id: the same path every time.
fn shortest(mesh: &Mesh, a: DeviceId, b: DeviceId) -> Vec<u32> {
    let cols = mesh.cols;
    let h = |id: DeviceId| (id / cols).abs_diff(b / cols) + (id % cols).abs_diff(b % cols);
    let mut best: HashMap<DeviceId, u32> = HashMap::from([(a, 0)]);
    // The link each die was first reached by on its best path.
    let mut via: HashMap<DeviceId, u32> = HashMap::new();
    let mut open = BinaryHeap::from([std::cmp::Reverse((h(a), h(a), a))]);
    while let Some(std::cmp::Reverse((_, _, cur))) = open.pop() {
        if cur == b {
            let mut links = Vec::new();
            let mut at = b;
            while at != a {
                let Some(&link) = via.get(&at) else { break };
                links.push(link);
                at = link / 4;
            }
            links.reverse();
            return links;
        }
        let g = best.get(&cur).copied().unwrap_or(u32::MAX);
        for dir in 0..4 {
            let link = cur * 4 + dir;
            if !mesh.link_works(link) {
                continue;
            }
            let Some(nb) = mesh.neighbour(cur, dir) else {
                continue;
            };
            let g_nb = g + 1;
            if best.get(&nb).is_none_or(|old| g_nb < *old) {
                best.insert(nb, g_nb);
                via.insert(nb, link);
                open.push(std::cmp::Reverse((g_nb + h(nb), h(nb), nb)));
            }
        }
    }
    Vec::new()
}
