//! Where work goes on the fabric: which devices run each (replica, stage) tensor-parallel group,
//! the default layouts, the order of a ring, and the moves local search makes.

mod layout;
mod search;

use crate::error::{ensure, FieldError};
use crate::hardware::{DeviceId, Fabric};

pub use layout::{
    align_ranks, candidates, chopped, embed_ring, embed_rings, packed, ranked, snake, turns, Axis,
    AXIS_ORDERS,
};
pub use search::{moves, optimize, Budget, Move, Score, SplitMix64};

/// Devices of every (replica, stage) tensor-parallel group, each group in ring order.
///
/// ```
/// let inst = watos::Instance::load(concat!(env!("CARGO_MANIFEST_DIR"), "/instances/gpt3-175b-wafer.toml")).unwrap();
/// let plan = watos::Plan::uniform(96, 1, 8, 7, 1, watos::plan::Recompute::Full);
/// let g = plan.placement(inst.fabric()).unwrap();
/// assert_eq!((g.replicas(), g.stages(), g.group(0, 3).len()), (1, 7, 8));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// `groups[replica][stage]`.
    groups: Vec<Vec<Vec<DeviceId>>>,
}

/// The order in which default placements give devices to (replica, stage) slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Replica by replica, stage by stage: on a mesh, consecutive stages become neighbours.
    ReplicaMajor,
    /// Megatron-LM's rank order (tensor-parallel ranks fastest, then data-parallel, then
    /// pipeline): small data-parallel groups share a node.
    MegatronRanks,
}

impl Layout {
    /// The default layout of a fabric.
    pub fn default_for(fabric: &Fabric) -> Self {
        match fabric {
            Fabric::Mesh(_) => Layout::ReplicaMajor,
            Fabric::Cluster(_) => Layout::MegatronRanks,
        }
    }
}

impl Placement {
    /// `dp` replicas of `pinned.len()` stages of `tp` devices: each stage's devices as given
    /// (`[row, col]` or `[node, gpu]`, replica by replica, each in ring order), and every stage
    /// given none filled by the default layout (groups of `tp` along [`fill_order`], each turned
    /// into a ring). Errors name the stage's `dies` field.
    pub fn new(
        dp: u32,
        tp: u32,
        pinned: &[Option<&[[u32; 2]]>],
        fabric: &Fabric,
    ) -> Result<Placement, FieldError> {
        Self::with_ep(dp, 1, tp, pinned, fabric)
    }

    /// [`Placement::new`] for a plan with expert parallelism `ep`: on a mesh the default layout
    /// gives the `ep` replicas of one expert-parallel group their groups of a stage one after
    /// another (then the next stage), so that the token all-to-all runs between neighbours.
    ///
    /// ```
    /// let inst = watos::Instance::load(concat!(env!("CARGO_MANIFEST_DIR"), "/instances/gshard-137b-wafer.toml")).unwrap();
    /// let g = watos::placement::Placement::with_ep(2, 2, 1, &[None, None], inst.fabric()).unwrap();
    /// // Replicas 0 and 1 of stage 0 are neighbours.
    /// assert_eq!(inst.fabric().hops(g.group(0, 0)[0], g.group(1, 0)[0]), 1);
    /// ```
    pub fn with_ep(
        dp: u32,
        ep: u32,
        tp: u32,
        pinned: &[Option<&[[u32; 2]]>],
        fabric: &Fabric,
    ) -> Result<Placement, FieldError> {
        let (d, p, t) = (dp as usize, pinned.len(), tp as usize);
        let e = (ep as usize).clamp(1, d.max(1));
        let order = fill_order(fabric, tp);
        let mut used = std::collections::HashSet::new();
        let mut groups = vec![vec![Vec::new(); p]; d];
        for (j, dies) in pinned.iter().enumerate() {
            let Some(dies) = dies else { continue };
            ensure(dies.len() == d * t, || {
                FieldError::new(
                    format!("stage[{j}].dies"),
                    format!("{} devices listed, dp x tp = {}", dies.len(), d * t),
                    "list dp x tp devices, replica by replica",
                )
            })?;
            for (i, c) in dies.iter().enumerate() {
                let id = fabric
                    .id_of(*c)
                    .filter(|id| fabric.is_healthy(*id))
                    .ok_or_else(|| {
                        FieldError::new(
                            format!("stage[{j}].dies[{i}]"),
                            format!("[{}, {}] is not a healthy device", c[0], c[1]),
                            "a [row, col] inside the mesh and not listed as faulty",
                        )
                    })?;
                ensure(used.insert(id), || {
                    FieldError::new(
                        format!("stage[{j}].dies[{i}]"),
                        format!("[{}, {}] is used twice", c[0], c[1]),
                        "every device runs one group",
                    )
                })?;
                groups[i / t][j].push(id);
            }
        }
        let slots: Vec<(usize, usize)> = match Layout::default_for(fabric) {
            Layout::MegatronRanks => (0..p).flat_map(|j| (0..d).map(move |r| (r, j))).collect(),
            Layout::ReplicaMajor => (0..d.div_ceil(e))
                .flat_map(|block| (0..p).map(move |j| (block, j)))
                .flat_map(|(block, j)| (block * e..((block + 1) * e).min(d)).map(move |r| (r, j)))
                .collect(),
        };
        let mut next = 0usize;
        for (r, j) in slots {
            let group = &mut groups[r][j];
            if !group.is_empty() {
                continue;
            }
            while group.len() < t {
                let id = *order.get(next).ok_or_else(|| {
                    FieldError::new(
                        format!("stage[{j}].dies"),
                        format!("no free device left for replica {r}"),
                        "free devices or list them explicitly",
                    )
                })?;
                next += 1;
                if used.insert(id) {
                    group.push(id);
                }
            }
            ring_order(fabric, group);
        }
        Ok(Placement { groups })
    }

    /// Groups as given, `groups[replica][stage]` each in ring order; `None` unless every group
    /// has the same number of devices, every replica the same number of stages, and every device
    /// is healthy and used once.
    pub fn from_groups(groups: Vec<Vec<Vec<DeviceId>>>, fabric: &Fabric) -> Option<Placement> {
        let p = groups.first()?.len();
        let t = groups.first()?.first()?.len();
        let mut used = std::collections::HashSet::new();
        let ok = groups.iter().all(|rep| {
            rep.len() == p
                && rep.iter().all(|g| {
                    g.len() == t
                        && g.iter()
                            .all(|id| fabric.is_healthy(*id) && used.insert(*id))
                })
        });
        ok.then_some(Placement { groups })
    }

    /// Devices per group (tensor-parallel degree).
    pub fn tp(&self) -> usize {
        self.groups
            .first()
            .and_then(|r| r.first())
            .map_or(0, |g| g.len())
    }

    /// Every device as `(replica, stage, tensor rank, device)`.
    pub fn devices(&self) -> impl Iterator<Item = (usize, usize, usize, DeviceId)> + '_ {
        self.groups.iter().enumerate().flat_map(|(r, rep)| {
            rep.iter()
                .enumerate()
                .flat_map(move |(j, g)| g.iter().enumerate().map(move |(k, id)| (r, j, k, *id)))
        })
    }

    /// Where a device works: `(replica, stage, tensor rank)`.
    pub fn position(&self, id: DeviceId) -> Option<(usize, usize, usize)> {
        self.devices()
            .find(|(_, _, _, d)| *d == id)
            .map(|(r, j, k, _)| (r, j, k))
    }

    /// Mean hops of a pipeline send: every rank of every stage but the last to the same rank of
    /// the next stage, in every replica (0 without pipeline parallelism).
    pub fn mean_pipeline_hops(&self, fabric: &Fabric) -> f64 {
        let (mut hops, mut sends) = (0u64, 0u64);
        for rep in &self.groups {
            for pair in rep.windows(2) {
                for (a, b) in pair[0].iter().zip(&pair[1]) {
                    hops += u64::from(fabric.hops(*a, *b));
                    sends += 1;
                }
            }
        }
        if sends == 0 {
            0.0
        } else {
            hops as f64 / sends as f64
        }
    }

    /// Data-parallel replicas.
    pub fn replicas(&self) -> usize {
        self.groups.len()
    }

    /// Pipeline stages.
    pub fn stages(&self) -> usize {
        self.groups.first().map_or(0, |r| r.len())
    }

    /// The tensor-parallel group of `stage` in `replica`, in ring order.
    pub fn group(&self, replica: usize, stage: usize) -> &[DeviceId] {
        &self.groups[replica][stage]
    }

    /// Every group, replica by replica, stage by stage.
    pub fn groups(&self) -> impl Iterator<Item = &[DeviceId]> {
        self.groups.iter().flatten().map(|g| g.as_slice())
    }

    /// The groups of one replica, stage by stage.
    pub fn replica(&self, replica: usize) -> &[Vec<DeviceId>] {
        &self.groups[replica]
    }

    /// The devices of `stage` as coordinates, replica by replica (a plan's `dies`).
    pub fn coords(&self, stage: usize, fabric: &Fabric) -> Vec<[u32; 2]> {
        self.groups
            .iter()
            .flat_map(|rep| rep[stage].iter().map(|id| fabric.coord(*id)))
            .collect()
    }

    /// The same placement with the devices of stages `a` and `b` exchanged (all replicas at
    /// once): a move of local search.
    pub fn swapped(&self, a: usize, b: usize) -> Placement {
        let mut g = self.clone();
        for rep in &mut g.groups {
            rep.swap(a, b);
        }
        g
    }

    /// Every [`Placement::swapped`] of two stages, in order.
    pub fn stage_swaps(&self) -> impl Iterator<Item = Placement> + '_ {
        let p = self.stages();
        (0..p).flat_map(move |a| (a + 1..p).map(move |b| self.swapped(a, b)))
    }
}

/// Healthy devices in the order default placements fill them. On a mesh: bands of two rows walked
/// column by column, bands in alternating directions, so that any `2k` consecutive dies form a
/// 2 x k block and consecutive blocks touch; single rows (odd `t`) use a plain snake. On a cluster:
/// rank order.
pub fn fill_order(fabric: &Fabric, tp: u32) -> Vec<DeviceId> {
    match fabric {
        Fabric::Mesh(m) => {
            let band = if tp % 2 == 0 { 2 } else { 1 };
            let mut order = Vec::with_capacity((m.rows * m.cols) as usize);
            let mut top = 0;
            let mut forward = true;
            while top < m.rows {
                let height = band.min(m.rows - top);
                let cols: Vec<u32> = if forward {
                    (0..m.cols).collect()
                } else {
                    (0..m.cols).rev().collect()
                };
                for c in cols {
                    for r in top..top + height {
                        let id = r * m.cols + c;
                        if fabric.is_healthy(id) {
                            order.push(id);
                        }
                    }
                }
                top += height;
                forward = !forward;
            }
            order
        }
        Fabric::Cluster(_) => (0..fabric.device_count()).collect(),
    }
}

/// Reorders a group so that walking it is a short cycle: on a mesh, a group lying in two adjacent
/// rows becomes the top row left to right, then the bottom row right to left.
pub fn ring_order(fabric: &Fabric, group: &mut [DeviceId]) {
    let Fabric::Mesh(m) = fabric else { return };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::fabric::test_wafer as wafer;

    #[test]
    fn band_snake_makes_two_by_k_blocks() {
        let f = wafer(4, 3, "");
        assert_eq!(
            fill_order(&f, 2),
            vec![0, 3, 1, 4, 2, 5, 8, 11, 7, 10, 6, 9]
        );
        let mut g = vec![0, 3, 1, 4];
        ring_order(&f, &mut g);
        assert_eq!(g, vec![0, 1, 4, 3]);
    }

    #[test]
    fn faulty_dies_are_skipped() {
        let f = wafer(3, 3, "faulty_dies=[[1,1]]");
        assert!(!fill_order(&f, 1).contains(&4));
    }
}
