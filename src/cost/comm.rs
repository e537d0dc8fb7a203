//! Communication: the time of collectives and point-to-point transfers over paths the fabric
//! prices, and what one configuration's communication costs per stage on a placement or at the
//! best any placement allows.

use crate::hardware::fabric::PathCost;
use crate::hardware::fabric::Units;
use crate::hardware::{DeviceId, Fabric};
use crate::instance::Instance;
use crate::placement::Placement;

use super::config::ConfigCosts;
use super::stage::StageComm;

/// Ring all-reduce of `bytes` over `n` devices: `2 (n-1)/n * S / B + 2 (n-1) * alpha`
/// (Patarasuk and Yuan, JPDC 2009; Thakur et al., IJHPCA 2005). `B` is the path's bandwidth times the link efficiency.
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
    if bytes <= 0.0 {
        return 0.0;
    }
    let (per_byte, fixed) = ring_half_affine(n, path, link_eff);
    per_byte * bytes + fixed
}

/// [`ring_half_s`] of a non-empty buffer as `(seconds per byte, seconds)`: `(n-1)/n / B` and
/// `(n-1) alpha`; both 0 for fewer than two devices.
pub fn ring_half_affine(n: u32, path: PathCost, link_eff: f64) -> (f64, f64) {
    if n < 2 {
        return (0.0, 0.0);
    }
    let n = n as f64;
    (
        (n - 1.0) / n / (path.bw_bytes_per_s * link_eff),
        (n - 1.0) * path.latency_s,
    )
}

/// One message of `bytes` over a path, cut-through: `alpha * hops + S / B` (the fabric already
/// summed the per-hop latencies into `path.latency_s`).
pub fn p2p_s(bytes: f64, path: PathCost, link_eff: f64) -> f64 {
    if bytes <= 0.0 {
        return 0.0;
    }
    path.latency_s + bytes / (path.bw_bytes_per_s * link_eff)
}

/// All-to-all in which each device sends `bytes` in all (an equal share to every other member, all
/// messages posted at once, as NCCL's grouped sends and Megatron-core's token dispatcher do):
/// `alpha + S / B`, the congestion plus dilation of packet routing (Leighton, Maggs and Rao,
/// Combinatorica 14(2), 1994): `B` is what the busiest link or port on the member's routes leaves
/// its buffer and `alpha` the longest route's latency, both from
/// [`Fabric::all_to_all`](crate::hardware::Fabric::all_to_all).
///
/// ```
/// use watos::hardware::fabric::PathCost;
/// // Four dies in a line, 1 TB/s links, 100 ns hops: the middle link carries 4 messages of
/// // 1 GB, so a 3 GB buffer drains at 0.75 TB/s: 4 ms, plus three hops.
/// let path = PathCost { bw_bytes_per_s: 0.75e12, latency_s: 300e-9, hops: 3 };
/// let t = watos::cost::comm::all_to_all_s(3e9, path, 1.0);
/// assert!((t - (4e-3 + 300e-9)).abs() < 1e-15);
/// ```
pub fn all_to_all_s(bytes: f64, path: PathCost, link_eff: f64) -> f64 {
    if bytes <= 0.0 {
        return 0.0;
    }
    path.latency_s + bytes / (path.bw_bytes_per_s * link_eff)
}

/// Communication of one configuration, per stage: on a concrete placement (what the evaluator
/// charges) or at the best any placement allows (what the bounding MIP charges).
#[derive(Debug, Clone)]
pub struct CommCosts {
    /// One tensor-parallel all-reduce on the stage's groups (slowest replica).
    pub tp_allreduce_s: Vec<f64>,
    /// Pipeline sends of one micro-batch out of the stage, forward and backward.
    pub p2p_s: Vec<f64>,
    /// One token all-to-all on the stage's expert-parallel groups (slowest group; 0 without
    /// expert parallelism).
    pub all_to_all_s: Vec<f64>,
    /// Paths of the stage's data-parallel rings (one per tensor-parallel rank; empty without
    /// data parallelism).
    pub dp_paths: Vec<Vec<PathCost>>,
    /// With expert parallelism, the rings reducing the routed experts' gradients over the
    /// replicas holding the same experts: an equal run of them for each data-parallel ring (the
    /// `ep` rings of its tensor-parallel rank), else empty.
    pub expert_dp_paths: Vec<Vec<PathCost>>,
    /// Tied-embedding gradient all-reduce between the first and last stage.
    pub tied_s: f64,
}

impl CommCosts {
    /// Communication on a placement: rings and transfers of every group at once, sharing links.
    pub fn of_placement(inst: &Instance, c: &ConfigCosts, g: &Placement) -> Self {
        let fabric = inst.fabric();
        let (p, t) = (c.config.pp as usize, c.config.tp as usize);
        let eff = c.link_eff;
        let tp_groups: Vec<&[DeviceId]> = g.groups().collect();
        let mut tp_allreduce_s = vec![0.0; p];
        for (i, path) in fabric.rings(&tp_groups).iter().enumerate() {
            let j = i % p;
            tp_allreduce_s[j] = f64::max(
                tp_allreduce_s[j],
                ring_allreduce_s(c.config.tp, c.tp_bytes, *path, eff),
            );
        }
        // Every rank sends its shard to the same rank of the next stage. In 1F1B the forward sends
        // of all stages overlap each other, and so do the backward sends, but a stage never sends
        // both ways at once: two phases.
        let mut send_fwd = vec![0.0f64; p];
        let mut send_bwd = vec![0.0f64; p];
        for forward in [true, false] {
            let mut pairs = Vec::new();
            let mut senders = Vec::new();
            for r in 0..g.replicas() {
                let rep = g.replica(r);
                for j in 0..p.saturating_sub(1) {
                    for (a, b) in rep[j].iter().zip(&rep[j + 1]) {
                        pairs.push(if forward { (*a, *b) } else { (*b, *a) });
                        senders.push(if forward { j } else { j + 1 });
                    }
                }
            }
            let slots = if forward {
                &mut send_fwd
            } else {
                &mut send_bwd
            };
            for (j, path) in senders.iter().zip(&fabric.flows(&pairs)) {
                slots[*j] = slots[*j].max(p2p_s(c.p2p_bytes, *path, eff));
            }
        }
        // With interleaving the wrap-around transfer (last device to first) costs about a forward send.
        let wrap = send_fwd.iter().copied().fold(0.0, f64::max);
        let p2p_s = (0..p)
            .map(|j| {
                let (nf, nb) = c.p2p_sends(j as u32);
                nf * if j + 1 < p { send_fwd[j] } else { wrap }
                    + nb * if j > 0 { send_bwd[j] } else { wrap }
            })
            .collect();
        let mut dp_paths = vec![Vec::new(); p];
        if c.config.dp > 1 {
            let rings: Vec<Vec<DeviceId>> = (0..p)
                .flat_map(|j| (0..t).map(move |k| (j, k)))
                .map(|(j, k)| (0..g.replicas()).map(|r| g.group(r, j)[k]).collect())
                .collect();
            let refs: Vec<&[DeviceId]> = rings.iter().map(|r| r.as_slice()).collect();
            for (i, path) in fabric.rings(&refs).into_iter().enumerate() {
                dp_paths[i / t].push(path);
            }
        }
        let (all_to_all_s, expert_dp_paths) = expert_comm(inst, c, g);
        let mut tied_s = 0.0;
        if c.tied_sync_bytes > 0.0 {
            let pairs: Vec<[DeviceId; 2]> = (0..g.replicas())
                .flat_map(|r| (0..t).map(move |k| [g.group(r, 0)[k], g.group(r, p - 1)[k]]))
                .collect();
            let refs: Vec<&[DeviceId]> = pairs.iter().map(|x| x.as_slice()).collect();
            tied_s = fabric
                .rings(&refs)
                .iter()
                .map(|path| c.tied_sync_s(*path))
                .fold(0.0, f64::max);
        }
        CommCosts {
            tp_allreduce_s,
            p2p_s,
            all_to_all_s,
            dp_paths,
            expert_dp_paths,
            tied_s,
        }
    }

    /// Communication at the best any placement allows: a lower bound on [`CommCosts::of_placement`]
    /// for every placement.
    pub fn ideal(inst: &Instance, c: &ConfigCosts) -> Self {
        let ideal = IdealComm::of(c, inst.fabric());
        let p = c.config.pp as usize;
        CommCosts {
            tp_allreduce_s: vec![ideal.tp_allreduce_s; p],
            p2p_s: (0..p as u32)
                .map(|j| {
                    let (nf, nb) = c.p2p_sends(j);
                    (nf + nb) * ideal.p2p_s
                })
                .collect(),
            all_to_all_s: vec![ideal.all_to_all_s; p],
            dp_paths: vec![
                if c.config.dp > 1 {
                    vec![ideal.dp_path]
                } else {
                    Vec::new()
                };
                p
            ],
            expert_dp_paths: vec![
                if c.config.ep > 1 {
                    vec![ideal.expert_dp_path]
                } else {
                    Vec::new()
                };
                p
            ],
            tied_s: c.tied_sync_s(ideal.tied_path),
        }
    }

    /// The communication of stage `j` in the stage model's terms.
    pub fn stage<'a>(&'a self, c: &ConfigCosts, j: u32, dp_overlap: bool) -> StageComm<'a> {
        let ju = j as usize;
        let end = j == 0 || j + 1 == c.config.pp;
        StageComm {
            tp_allreduce_s: self.tp_allreduce_s[ju],
            p2p_s: self.p2p_s[ju],
            all_to_all_s: self.all_to_all_s[ju],
            dp_paths: &self.dp_paths[ju],
            expert_dp_paths: &self.expert_dp_paths[ju],
            tied_s: if end { self.tied_s } else { 0.0 },
            dp_overlap,
        }
    }
}

/// Communication at the best any placement allows.
#[derive(Debug, Clone, Copy)]
pub struct IdealComm {
    pub tp_allreduce_s: f64,
    pub p2p_s: f64,
    /// Bandwidth of a parking transfer: the slower of DRAM and one uncontended link.
    pub park_bw: f64,
    pub dp_path: PathCost,
    /// One token all-to-all on an expert-parallel group at the best any placement allows.
    pub all_to_all_s: f64,
    /// The ring of replicas holding the same experts.
    pub expert_dp_path: PathCost,
    pub tied_path: PathCost,
}

impl IdealComm {
    /// Ideal (placement-free) communication of a configuration: the lower bounds the MIP uses.
    pub fn of(c: &ConfigCosts, fabric: &Fabric) -> Self {
        let cfg = c.config;
        let flow = fabric.ideal_flow();
        IdealComm {
            tp_allreduce_s: ring_allreduce_s(
                cfg.tp,
                c.tp_bytes,
                fabric.ideal_ring(cfg.tp),
                c.link_eff,
            ),
            p2p_s: p2p_s(c.p2p_bytes, flow, c.link_eff),
            park_bw: c.dram_bw_eff.min(flow.bw_bytes_per_s * c.link_eff),
            dp_path: fabric.ideal_ring(cfg.dp),
            all_to_all_s: all_to_all_s(c.a2a_bytes, fabric.ideal_all_to_all(cfg.ep), c.link_eff),
            expert_dp_path: fabric.ideal_ring(cfg.expert_dp()),
            tied_path: fabric.ideal_ring(2),
        }
    }
}

/// Expert-parallel communication on a placement, per stage: one token all-to-all (the slowest of
/// the stage's groups, every group of every stage exchanging at once, as the tensor-parallel rings
/// are charged) and the rings reducing the experts' gradients, `ep` per tensor-parallel rank, all
/// at once. Replicas `e ep .. (e + 1) ep` form expert-parallel group `e`, and
/// replicas `i, i + ep, i + 2 ep, ..` hold the same experts (Megatron-core's rank order: expert
/// parallelism inside data parallelism).
fn expert_comm(inst: &Instance, c: &ConfigCosts, g: &Placement) -> (Vec<f64>, Vec<Vec<PathCost>>) {
    let fabric = inst.fabric();
    let (p, t) = (g.stages(), c.config.tp as usize);
    let (d, ep) = (g.replicas(), c.config.ep.max(1) as usize);
    if ep < 2 {
        return (vec![0.0; p], vec![Vec::new(); p]);
    }
    // (stage, rank) of each group, in order.
    let slots: Vec<(usize, usize)> = (0..p).flat_map(|j| (0..t).map(move |k| (j, k))).collect();
    let groups: Vec<Vec<DeviceId>> = slots
        .iter()
        .flat_map(|(j, k)| {
            (0..d / ep).map(move |e| (e * ep..(e + 1) * ep).map(|r| g.group(r, *j)[*k]).collect())
        })
        .collect();
    let refs: Vec<&[DeviceId]> = groups.iter().map(|x| x.as_slice()).collect();
    let mut a2a = vec![0.0f64; p];
    for (i, path) in fabric.all_to_all(&refs).into_iter().enumerate() {
        let j = slots[i / (d / ep)].0;
        a2a[j] = a2a[j].max(all_to_all_s(c.a2a_bytes, path, c.link_eff));
    }
    let rings: Vec<Vec<DeviceId>> = slots
        .iter()
        .flat_map(|(j, k)| {
            (0..ep).map(move |i| (i..d).step_by(ep).map(|r| g.group(r, *j)[*k]).collect())
        })
        .collect();
    let refs: Vec<&[DeviceId]> = rings.iter().map(|x| x.as_slice()).collect();
    let mut paths: Vec<Vec<PathCost>> = vec![Vec::with_capacity(t * ep); p];
    for (i, path) in fabric.rings(&refs).into_iter().enumerate() {
        paths[slots[i / ep].0].push(path);
    }
    (a2a, paths)
}

/// One configuration's communication per placement class on a fabric of units (GPU nodes,
/// wafers): a stage's tensor-parallel groups all inside units ("aligned") or some straddling them,
/// a pipeline send inside a unit or across. Each figure is the best any placement of that class
/// allows, so a MIP that chooses the classes (with the rules below) bounds every placement.
#[derive(Debug, Clone)]
pub struct UnitComm {
    pub units: Units,
    /// One tensor-parallel all-reduce on aligned groups, and on a group that straddles units (at
    /// most half of it in one unit).
    pub tp_inside_s: f64,
    pub tp_across_s: f64,
    /// One pipeline send (one direction, one micro-batch) inside a unit and across units.
    pub send_inside_s: f64,
    pub send_across_s: f64,
    /// The data-parallel ring of an aligned stage: at most `size / t` members in one unit, all
    /// `t` ranks' rings crossing the same boundaries.
    pub dp_aligned: PathCost,
    /// The same ring when `i` of the stage's pipeline neighbours share units with it (sends that
    /// do not cross): each of its groups then brings a neighbour's group along, so at most
    /// `size / (t (1 + i))` members per unit; `None` when no unit can hold that many groups.
    pub dp_packed: [Option<PathCost>; 3],
    /// No group fits in a unit (`t > size`): every stage straddles.
    pub must_straddle: bool,
    /// Stages that straddle in every placement: the `d p` groups beyond those the units can hold
    /// whole ([`Fabric::groups_inside_units`]) straddle, at most `d` of them per stage.
    pub min_straddling: u32,
    /// Two aligned groups cannot share a unit (`2t > size`): a send out of or into an aligned
    /// stage crosses units.
    pub aligned_sends_cross: bool,
    /// Units one replica's pipeline spans at least: `ceil(p t / size)`.
    pub min_units: u32,
    /// Units one straddling group touches at most, less one.
    pub straddle_weight: u32,
    /// The tied-embedding reduction between the first and last stage's groups when they are in
    /// different units.
    pub tied_across_s: f64,
    /// Bytes/s of a parking transfer between two stages' groups inside one unit, and across.
    pub park_inside_bw: f64,
    pub park_across_bw: f64,
    /// The placements this covers.
    pub class: UnitClass,
}

/// Which placements of a configuration a bound covers on a fabric of units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UnitClass {
    /// Every placement.
    Any,
    /// Placements whose tensor-parallel groups each sit inside one unit.
    Aligned,
    /// Placements where some group straddles units.
    Straddled,
}

impl UnitComm {
    /// The same costs, covering only the placements of `class`.
    pub fn covering(mut self, class: UnitClass) -> Self {
        self.class = class;
        self
    }

    /// The classes' costs of configuration `c`, or `None` on a fabric of one unit.
    pub fn of(c: &ConfigCosts, fabric: &Fabric) -> Option<Self> {
        let units = fabric.units()?;
        let cfg = c.config;
        let (t, eff) = (cfg.tp, c.link_eff);
        let size = units.size.max(1);
        let half = (t / 2).clamp(1, size);
        let ring_with = |per_unit: u32| {
            if cfg.dp <= per_unit {
                fabric.ideal_ring_inside(cfg.dp)
            } else {
                fabric.ideal_ring_across(cfg.dp, per_unit.max(1), t)
            }
        };
        let dp_aligned = ring_with(size / t);
        let dp_packed = [1, 2, 3].map(|groups| {
            let per_unit = size / (t * groups);
            (per_unit >= 1).then(|| ring_with(per_unit))
        });
        let devices = u64::from(cfg.pp) * u64::from(t);
        Some(UnitComm {
            units,
            tp_inside_s: ring_allreduce_s(t, c.tp_bytes, fabric.ideal_ring_inside(t), eff),
            tp_across_s: ring_allreduce_s(t, c.tp_bytes, fabric.ideal_ring_across(t, half, 1), eff),
            send_inside_s: p2p_s(c.p2p_bytes, fabric.ideal_flow_inside(), eff),
            send_across_s: p2p_s(c.p2p_bytes, fabric.ideal_flow_across(1), eff),
            dp_aligned,
            dp_packed,
            must_straddle: t > size,
            min_straddling: {
                let groups = u64::from(cfg.dp) * u64::from(cfg.pp);
                let need = groups.saturating_sub(fabric.groups_inside_units(t));
                need.div_ceil(u64::from(cfg.dp.max(1)))
                    .min(u64::from(cfg.pp)) as u32
            },
            aligned_sends_cross: 2 * t > size,
            min_units: devices.div_ceil(u64::from(size)).min(u64::from(u32::MAX)) as u32,
            straddle_weight: t.min(units.count).saturating_sub(1),
            tied_across_s: c.tied_sync_s(fabric.ideal_ring_across(2, 1, 1)),
            park_inside_bw: c
                .dram_bw_eff
                .min(fabric.ideal_flow_inside().bw_bytes_per_s * eff),
            park_across_bw: c
                .dram_bw_eff
                .min(fabric.ideal_flow_across(1).bw_bytes_per_s * eff),
            class: UnitClass::Any,
        })
    }
}

/// The placement classes of a concrete placement: which stages have a group straddling units, and
/// which pipeline sends (stage `j` to `j + 1`) cross units, in any replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classes {
    pub straddles: Vec<bool>,
    pub crosses: Vec<bool>,
    /// The send from the last stage back to the first (interleaving) crosses units.
    pub wraps: bool,
}

impl Classes {
    /// The classes of placement `g` on `fabric`.
    pub fn of(fabric: &Fabric, g: &Placement) -> Self {
        let p = g.stages();
        let unit = |id: &DeviceId| fabric.unit_of(*id);
        let mut straddles = vec![false; p];
        let mut crosses = vec![false; p.saturating_sub(1)];
        let mut wraps = false;
        for r in 0..g.replicas() {
            for j in 0..p {
                let group = g.group(r, j);
                if group.iter().any(|d| unit(d) != unit(&group[0])) {
                    straddles[j] = true;
                }
                let next = g.group(r, (j + 1) % p);
                if group.iter().zip(next).any(|(a, b)| unit(a) != unit(b)) {
                    if j + 1 < p {
                        crosses[j] = true;
                    } else {
                        wraps = true;
                    }
                }
            }
        }
        Classes {
            straddles,
            crosses,
            wraps,
        }
    }
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
