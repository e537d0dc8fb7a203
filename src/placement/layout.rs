//! Placements built from scratch: the regions of healthy dies a mesh offers (bands walked as
//! snakes in both orientations, at several band widths), the rank orders a cluster offers (every
//! order of the tensor, data and pipeline axes), each group's ring laid on neighbour links, and
//! each group's ranks turned to face its pipeline neighbours.

use crate::hardware::{DeviceId, Fabric};

use super::Placement;

/// Healthy dies of a mesh in snake order: bands `band` rows high (columns wide when
/// `transposed`) walked across, one cross-section of the band at a time, bands in alternating
/// directions. Any `band x k` consecutive healthy dies of a band form a `band x k` block, and
/// consecutive blocks touch. Empty on a cluster.
///
/// ```
/// let text = "name='w'\n[device]\npeak_tflops=1\nsram_mb=1\ndram_gb=1\ndram_bw_tb_per_s=1\n[software]\nattention='flash'\nexecution='dataflow'\n[wafer]\nrows=2\ncols=3\nd2d_bw_tb_per_s=1\nd2d_latency_ns=100";
/// let hw: watos::Hardware = toml::from_str(text).unwrap();
/// let f = hw.fabric().unwrap();
/// assert_eq!(watos::placement::snake(&f, 2, false), vec![0, 3, 1, 4, 2, 5]);
/// assert_eq!(watos::placement::snake(&f, 1, true), vec![0, 3, 4, 1, 2, 5]);
/// ```
pub fn snake(fabric: &Fabric, band: u32, transposed: bool) -> Vec<DeviceId> {
    let Fabric::Mesh(m) = fabric else {
        return Vec::new();
    };
    // Walk a `rows x cols` grid, then map back through the transposition.
    let (rows, cols) = if transposed {
        (m.cols, m.rows)
    } else {
        (m.rows, m.cols)
    };
    let id = |r: u32, c: u32| {
        if transposed {
            c * m.cols + r
        } else {
            r * m.cols + c
        }
    };
    let band = band.clamp(1, rows);
    let mut order = Vec::with_capacity((rows * cols) as usize);
    let (mut top, mut forward) = (0, true);
    while top < rows {
        let height = band.min(rows - top);
        for step in 0..cols {
            let c = if forward { step } else { cols - 1 - step };
            for r in top..top + height {
                if fabric.is_healthy(id(r, c)) {
                    order.push(id(r, c));
                }
            }
        }
        top += height;
        forward = !forward;
    }
    order
}

/// The axes of a cluster's rank order, fastest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    Tensor,
    Data,
    Pipeline,
}

/// Every order of the three axes; Megatron-LM's (tensor, data, pipeline) first.
pub const AXIS_ORDERS: [[Axis; 3]; 6] = {
    use Axis::*;
    [
        [Tensor, Data, Pipeline],
        [Tensor, Pipeline, Data],
        [Data, Tensor, Pipeline],
        [Pipeline, Tensor, Data],
        [Data, Pipeline, Tensor],
        [Pipeline, Data, Tensor],
    ]
};

/// `dp` replicas of `pp` stages of `tp` devices, rank `r` on device `r`, ranks counted with the
/// axes of `order` fastest first.
pub fn ranked(dp: u32, tp: u32, pp: u32, order: [Axis; 3]) -> Placement {
    let (d, t, p) = (dp as usize, tp as usize, pp as usize);
    let size = |a: Axis| match a {
        Axis::Tensor => t,
        Axis::Data => d,
        Axis::Pipeline => p,
    };
    let mut groups = vec![vec![vec![0; t]; p]; d];
    for (r, rep) in groups.iter_mut().enumerate() {
        for (j, group) in rep.iter_mut().enumerate() {
            for (k, dev) in group.iter_mut().enumerate() {
                let at = |a: Axis| match a {
                    Axis::Tensor => k,
                    Axis::Data => r,
                    Axis::Pipeline => j,
                };
                let mut rank = 0;
                let mut stride = 1;
                for a in order {
                    rank += at(a) * stride;
                    stride *= size(a);
                }
                *dev = rank as DeviceId;
            }
        }
    }
    Placement { groups }
}

/// `dp x pp` groups of `tp` consecutive devices of `order`, given to (replica, stage) slots
/// replica by replica (`replica_major`: pipeline neighbours side by side) or stage by stage
/// (replicas of a stage side by side); `None` when `order` is too short.
pub fn chopped(
    order: &[DeviceId],
    dp: u32,
    tp: u32,
    pp: u32,
    replica_major: bool,
) -> Option<Placement> {
    let (d, t, p) = (dp as usize, tp as usize, pp as usize);
    if order.len() < d * t * p {
        return None;
    }
    let mut groups = vec![vec![Vec::new(); p]; d];
    for (i, chunk) in order.chunks(t).take(d * p).enumerate() {
        let (r, j) = if replica_major {
            (i / p, i % p)
        } else {
            (i % d, i / d)
        };
        groups[r][j] = chunk.to_vec();
    }
    Some(Placement { groups })
}

/// Every placement built from scratch for `dp x tp x pp` on `fabric`: on a mesh, rectangles
/// packed group by group ([`packed`]), and snakes of bands 1, 2, `tp / 2` and `tp` wide in both
/// orientations cut into groups, replica by replica and stage by stage, each group's ring embedded
/// and its ranks aligned ([`embed_rings`], [`align_ranks`]); on a cluster, every rank order.
/// Duplicates removed, in a fixed order.
pub fn candidates(fabric: &Fabric, dp: u32, tp: u32, pp: u32) -> Vec<Placement> {
    let mut out: Vec<Placement> = Vec::new();
    let push = |g: Placement, out: &mut Vec<Placement>| {
        if !out.contains(&g) {
            out.push(g);
        }
    };
    match fabric {
        Fabric::Cluster(_) => {
            for order in AXIS_ORDERS {
                push(ranked(dp, tp, pp, order), &mut out);
            }
        }
        Fabric::Mesh(_) => {
            let mut bands = vec![1, 2, tp / 2, tp];
            bands.retain(|b| *b >= 1);
            bands.sort_unstable();
            bands.dedup();
            for replica_major in [true, false] {
                if let Some(g) = packed(fabric, dp, tp, pp, replica_major) {
                    push(g, &mut out);
                }
            }
            for transposed in [false, true] {
                for band in &bands {
                    let order = snake(fabric, *band, transposed);
                    for replica_major in [true, false] {
                        if let Some(mut g) = chopped(&order, dp, tp, pp, replica_major) {
                            embed_rings(fabric, &mut g);
                            align_ranks(fabric, &mut g);
                            push(g, &mut out);
                        }
                    }
                }
            }
        }
    }
    out
}

/// Most dies [`packed`] works on (it looks at every rectangle for every group).
const PACKED_DIES: u32 = 4096;

/// Groups as rectangles of healthy free dies, each near the group before it (slots replica by
/// replica when `replica_major`, else stage by stage): shapes two dies thick first (their rings
/// are cycles of neighbour links), lines last, a shape's rank weighing three hops; where no
/// rectangle is free, the free dies nearest the previous group. `None` on a cluster, on a mesh of
/// more than 4,096 dies, or when too few dies are healthy.
///
/// ```
/// let inst = watos::Instance::load(concat!(env!("CARGO_MANIFEST_DIR"), "/instances/gpt3-175b-wafer.toml")).unwrap();
/// let f = inst.fabric();
/// let g = watos::placement::packed(f, 1, 8, 7, true).unwrap();
/// assert_eq!((g.replicas(), g.stages(), g.tp()), (1, 7, 8));
/// // The first group is a 2 x 4 block: two rows, four columns.
/// let rows: std::collections::BTreeSet<u32> = g.group(0, 0).iter().map(|id| f.coord(*id)[0]).collect();
/// let cols: std::collections::BTreeSet<u32> = g.group(0, 0).iter().map(|id| f.coord(*id)[1]).collect();
/// assert_eq!((rows.len(), cols.len()), (2, 4));
/// ```
pub fn packed(
    fabric: &Fabric,
    dp: u32,
    tp: u32,
    pp: u32,
    replica_major: bool,
) -> Option<Placement> {
    let Fabric::Mesh(m) = fabric else {
        return None;
    };
    let n = m.rows * m.cols;
    let (d, t, p) = (dp as usize, tp as usize, pp as usize);
    if n > PACKED_DIES || (fabric.healthy_count() as usize) < d * t * p {
        return None;
    }
    let shapes: Vec<(u32, u32, u32)> = (1..=tp)
        .filter(|a| tp % a == 0 && *a <= m.rows && tp / a <= m.cols)
        .map(|a| {
            let thin = a.min(tp / a);
            let rank = match thin {
                2 => 0,
                1 if tp > 2 => 2,
                _ => 1,
            };
            (a, tp / a, rank)
        })
        .collect();
    let mut free: Vec<bool> = (0..n).map(|id| fabric.is_healthy(id)).collect();
    let centre = |dies: &[DeviceId]| {
        let k = dies.len().max(1) as f64;
        let (mut y, mut x) = (0.0, 0.0);
        for id in dies {
            y += f64::from(id / m.cols);
            x += f64::from(id % m.cols);
        }
        (y / k, x / k)
    };
    let mut groups = vec![vec![Vec::new(); p]; d];
    let mut prev = (0.0, 0.0);
    for i in 0..d * p {
        let (r, j) = if replica_major {
            (i / p, i % p)
        } else {
            (i % d, i / d)
        };
        let mut best: Option<(f64, Vec<DeviceId>)> = None;
        for &(a, b, rank) in &shapes {
            for r0 in 0..=m.rows - a {
                for c0 in 0..=m.cols - b {
                    let dies: Vec<DeviceId> = (r0..r0 + a)
                        .flat_map(|rr| (c0..c0 + b).map(move |cc| rr * m.cols + cc))
                        .collect();
                    if !dies.iter().all(|id| free[*id as usize]) {
                        continue;
                    }
                    let (y, x) = centre(&dies);
                    let cost = (y - prev.0).abs() + (x - prev.1).abs() + 3.0 * f64::from(rank);
                    if best.as_ref().is_none_or(|(c, _)| cost < *c - 1e-9) {
                        best = Some((cost, dies));
                    }
                }
            }
        }
        let dies = match best {
            Some((_, dies)) => dies,
            None => {
                let mut left: Vec<DeviceId> = (0..n).filter(|id| free[*id as usize]).collect();
                left.sort_by(|a, b| {
                    let da = (f64::from(a / m.cols) - prev.0).abs()
                        + (f64::from(a % m.cols) - prev.1).abs();
                    let db = (f64::from(b / m.cols) - prev.0).abs()
                        + (f64::from(b % m.cols) - prev.1).abs();
                    da.total_cmp(&db).then(a.cmp(b))
                });
                left.truncate(t);
                left
            }
        };
        for id in &dies {
            free[*id as usize] = false;
        }
        prev = centre(&dies);
        groups[r][j] = dies;
    }
    let mut g = Placement { groups };
    embed_rings(fabric, &mut g);
    align_ranks(fabric, &mut g);
    Some(g)
}

/// Lays every group's ring on the mesh ([`embed_ring`]).
pub fn embed_rings(fabric: &Fabric, g: &mut Placement) {
    for group in g.groups.iter_mut().flatten() {
        embed_ring(fabric, group);
    }
}

/// Orders a group so that walking it (and back to the start) takes short hops: a cycle of
/// neighbour links when the group has one (found by depth-first search, a bounded number of
/// steps), else a tour improved by 2-opt on the squared hop counts (which keeps any one step
/// short as well as the sum). Nothing changes on a cluster, where a ring's cost does not depend
/// on its order.
pub fn embed_ring(fabric: &Fabric, group: &mut [DeviceId]) {
    if !matches!(fabric, Fabric::Mesh(_)) || group.len() < 3 {
        return;
    }
    if let Some(cycle) = neighbour_cycle(fabric, group) {
        group.copy_from_slice(&cycle);
        return;
    }
    two_opt(fabric, group);
}

/// Steps the depth-first search for a cycle of neighbour links may take.
const CYCLE_STEPS: usize = 20_000;

/// A Hamiltonian cycle of the group over working neighbour links, if one is found in
/// [`CYCLE_STEPS`] steps; it starts at the group's smallest id. Dies with fewer choices go first
/// (Warnsdorff's rule), ties by id.
fn neighbour_cycle(fabric: &Fabric, group: &[DeviceId]) -> Option<Vec<DeviceId>> {
    let n = group.len();
    let index = |id: DeviceId| group.iter().position(|x| *x == id);
    let adj: Vec<Vec<usize>> = group
        .iter()
        .map(|a| {
            let mut v: Vec<usize> = group
                .iter()
                .enumerate()
                .filter(|(_, b)| fabric.link_works(*a, **b))
                .map(|(i, _)| i)
                .collect();
            v.sort_by_key(|i| group[*i]);
            v
        })
        .collect();
    if adj.iter().any(|v| v.len() < 2) {
        return None;
    }
    let start = index(*group.iter().min()?)?;
    let mut path = vec![start];
    let mut used = vec![false; n];
    used[start] = true;
    let mut steps = 0;
    if extend(&adj, &mut path, &mut used, &mut steps) {
        Some(path.iter().map(|i| group[*i]).collect())
    } else {
        None
    }
}

fn extend(adj: &[Vec<usize>], path: &mut Vec<usize>, used: &mut [bool], steps: &mut usize) -> bool {
    *steps += 1;
    if *steps > CYCLE_STEPS {
        return false;
    }
    let last = path[path.len() - 1];
    if path.len() == adj.len() {
        return adj[last].contains(&path[0]);
    }
    let free = |i: usize, used: &[bool]| adj[i].iter().filter(|x| !used[**x]).count();
    let mut next: Vec<usize> = adj[last].iter().copied().filter(|x| !used[*x]).collect();
    next.sort_by_key(|x| free(*x, used));
    for x in next {
        used[x] = true;
        path.push(x);
        if extend(adj, path, used, steps) {
            return true;
        }
        path.pop();
        used[x] = false;
    }
    false
}

/// A tour of the group: nearest neighbour from the smallest id, then 2-opt on squared hops.
fn two_opt(fabric: &Fabric, group: &mut [DeviceId]) {
    let n = group.len();
    let cost = |a: DeviceId, b: DeviceId| {
        let h = u64::from(fabric.hops(a, b));
        h * h
    };
    let mut rest: Vec<DeviceId> = group.to_vec();
    rest.sort_unstable();
    let mut tour = vec![rest.remove(0)];
    while !rest.is_empty() {
        let last = tour[tour.len() - 1];
        let (i, _) = rest
            .iter()
            .enumerate()
            .min_by_key(|(_, b)| (cost(last, **b), **b))
            .unwrap_or((0, &last));
        tour.push(rest.remove(i));
    }
    let mut improved = true;
    let mut rounds = 0;
    while improved && rounds < 4 * n {
        improved = false;
        rounds += 1;
        for i in 0..n - 1 {
            for k in i + 2..n {
                let (a, b) = (tour[i], tour[i + 1]);
                let (c, d) = (tour[k], tour[(k + 1) % n]);
                if d == a {
                    continue;
                }
                if cost(a, c) + cost(b, d) < cost(a, b) + cost(c, d) {
                    tour[i + 1..=k].reverse();
                    improved = true;
                }
            }
        }
    }
    group.copy_from_slice(&tour);
}

/// Turns each group's ring (rotation and direction: the ring itself is unchanged) so that its
/// ranks sit few hops from the same ranks of the groups placed before it: the previous stage of
/// its replica (pipeline sends) and the same stage of the previous replica (data-parallel
/// rings). Groups are visited replica by replica, stage by stage; the first keeps its order.
pub fn align_ranks(fabric: &Fabric, g: &mut Placement) {
    let (d, p) = (g.replicas(), g.stages());
    for r in 0..d {
        for j in 0..p {
            let mut partners: Vec<Vec<DeviceId>> = Vec::new();
            if j > 0 {
                partners.push(g.groups[r][j - 1].clone());
            }
            if r > 0 {
                partners.push(g.groups[r - 1][j].clone());
            }
            if partners.is_empty() {
                continue;
            }
            let group = &g.groups[r][j];
            let best = turns(group)
                .min_by_key(|turned| {
                    partners
                        .iter()
                        .flat_map(|other| {
                            other.iter().zip(turned).map(|(a, b)| fabric.hops(*a, *b))
                        })
                        .map(u64::from)
                        .sum::<u64>()
                })
                .unwrap_or_else(|| group.clone());
            g.groups[r][j] = best;
        }
    }
}

/// The group's ring in every rotation and both directions, the order as it is first.
pub fn turns(group: &[DeviceId]) -> impl Iterator<Item = Vec<DeviceId>> + '_ {
    let n = group.len();
    (0..2 * n.max(1)).map(move |v| {
        let (shift, back) = (v % n.max(1), v >= n);
        (0..n)
            .map(|k| {
                let i = if back {
                    (shift + n - k) % n
                } else {
                    (shift + k) % n
                };
                group[i]
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::fabric::test_wafer as wafer;

    #[test]
    fn a_two_by_four_block_gets_a_cycle_of_neighbours() {
        let f = wafer(2, 4, "");
        let mut g = vec![0, 1, 2, 3, 4, 5, 6, 7];
        embed_ring(&f, &mut g);
        let hops: Vec<u32> = (0..8).map(|i| f.hops(g[i], g[(i + 1) % 8])).collect();
        assert_eq!(hops, vec![1; 8], "{g:?}");
    }

    #[test]
    fn a_line_zigzags_instead_of_wrapping_around() {
        let f = wafer(1, 8, "");
        let mut g: Vec<u32> = (0..8).collect();
        embed_ring(&f, &mut g);
        let longest = (0..8).map(|i| f.hops(g[i], g[(i + 1) % 8])).max();
        assert_eq!(longest, Some(2), "{g:?}");
    }

    #[test]
    fn megatron_and_replica_major_rank_orders() {
        use Axis::*;
        // D2 T2 P2: Megatron puts the two replicas of a stage next to each other.
        let g = ranked(2, 2, 2, [Tensor, Data, Pipeline]);
        assert_eq!((g.group(1, 0), g.group(0, 1)), (&[2, 3][..], &[4, 5][..]));
        let g = ranked(2, 2, 2, [Tensor, Pipeline, Data]);
        assert_eq!((g.group(1, 0), g.group(0, 1)), (&[4, 5][..], &[2, 3][..]));
    }

    #[test]
    fn turns_keep_the_ring() {
        let all: Vec<Vec<u32>> = turns(&[1, 2, 3]).collect();
        assert_eq!(all.len(), 6);
        assert_eq!(all[0], vec![1, 2, 3]);
        assert_eq!(all[4], vec![2, 1, 3]);
    }
}
