//! All-to-all exchanges: every member of a group sends an equal share of its buffer to every other
//! member, all messages at once. The fabric says what each group's busiest link (or port) leaves
//! one member, as a bandwidth over the member's whole buffer; `cost::comm::all_to_all_s` turns that
//! into time. Placement-free bounds for the search are here too.

use super::all_to_all_bound::{injection_bound, least_busiest_load};
use super::cluster::ClusterTopo;
use super::mesh::Mesh;
use super::{DeviceId, Fabric, PathCost};

impl Fabric {
    /// All-to-alls run at the same time, one per group: for each, the bandwidth at which one member's
    /// outgoing buffer (the bytes it sends to all the others together) drains at the busiest link
    /// or port its messages use, and the latency of its longest route. Groups of one get an
    /// infinite bandwidth (nothing to send).
    ///
    /// ```
    /// let text = "name='w'\n[device]\npeak_tflops=1\nsram_mb=1\ndram_gb=1\ndram_bw_tb_per_s=1\n[software]\nattention='flash'\nexecution='dataflow'\n[wafer]\nrows=1\ncols=4\nd2d_bw_tb_per_s=1\nd2d_latency_ns=100";
    /// let hw: watos::Hardware = toml::from_str(text).unwrap();
    /// // Four dies in a line: the middle link carries 4 of the 12 messages each way; a member's
    /// // 3 messages drain at 3/4 of a link.
    /// let a2a = hw.fabric().unwrap().all_to_all(&[&[0, 1, 2, 3]]);
    /// assert_eq!(a2a[0].bw_bytes_per_s, 0.75e12);
    /// assert_eq!(a2a[0].hops, 3);
    /// ```
    pub fn all_to_all(&self, groups: &[&[DeviceId]]) -> Vec<PathCost> {
        match self {
            Fabric::Mesh(m) => mesh_all_to_all(m, groups),
            Fabric::Cluster(c) => groups.iter().map(|g| cluster_all_to_all(c, g)).collect(),
        }
    }

    /// The best an all-to-all among `n` devices can get under any placement: a lower bound on its
    /// time. On a mesh some link carries at least [`least_busiest_load`] of the `n (n - 1)`
    /// messages (with faulty dies or links, whose detours leave column-first order, at least
    /// [`injection_bound`]: a member's messages leave by four links at most), at best at the
    /// fastest link's speed. On a cluster a member with `g` of the group in
    /// its node (itself included) sends `(g - 1) / (n - 1)` of its buffer over NVLink and the rest
    /// over its network port at once: the best `g` is taken.
    ///
    /// ```
    /// let hw = watos::Hardware::load(concat!(env!("CARGO_MANIFEST_DIR"), "/hardware/wafer-config3.toml")).unwrap();
    /// let f = hw.fabric().unwrap();
    /// // Two dies: one link, 4 TB/s; four: two of the 12 messages on every link at best, so
    /// // a member's 3 drain at 1.5 links.
    /// assert_eq!(f.ideal_all_to_all(2).bw_bytes_per_s, 4e12);
    /// assert_eq!(f.ideal_all_to_all(4).bw_bytes_per_s, 6e12);
    /// ```
    pub fn ideal_all_to_all(&self, n: u32) -> PathCost {
        if n < 2 {
            return PathCost {
                bw_bytes_per_s: f64::INFINITY,
                latency_s: 0.0,
                hops: 0,
            };
        }
        match self {
            Fabric::Mesh(m) => {
                let (link, latency) = if m.rows > m.wafer_rows {
                    (m.d2d_bw.max(m.w2w_bw), m.hop_latency_s.min(m.w2w_latency_s))
                } else {
                    (m.d2d_bw, m.hop_latency_s)
                };
                let fault_free = m.link_ok.iter().all(|ok| *ok);
                let busiest = if fault_free {
                    least_busiest_load(n, m.rows, m.cols)
                } else {
                    injection_bound(n)
                };
                PathCost {
                    bw_bytes_per_s: (n - 1) as f64 / busiest.max(1) as f64 * link,
                    latency_s: latency,
                    hops: 1,
                }
            }
            Fabric::Cluster(c) => {
                let most = n.min(c.gpus_per_node);
                let best = (1..=most)
                    .map(|g| node_share_bw(c, n, g))
                    .fold(0.0, f64::max);
                let latency = if n > c.gpus_per_node {
                    c.inter_latency_s
                } else {
                    c.intra_latency_s.min(c.inter_latency_s)
                };
                PathCost {
                    bw_bytes_per_s: best,
                    latency_s: latency,
                    hops: 1,
                }
            }
        }
    }
}

/// Every member of every group sends one message to every other member of its group, all at once
/// on their dimension-ordered routes; a link (or a wafer boundary) carrying `k` messages gives each
/// `1 / k` of its bandwidth. A member's buffer is `n - 1` messages, so it drains at `n - 1` times
/// the smallest share on the group's routes.
fn mesh_all_to_all(m: &Mesh, groups: &[&[DeviceId]]) -> Vec<PathCost> {
    let mut loads = vec![0u32; m.resources()];
    let mut route = Vec::new();
    for g in groups {
        for a in g.iter() {
            for b in g.iter().filter(|b| *b != a) {
                route.clear();
                m.route(*a, *b, &mut route);
                for l in &route {
                    let v = &mut loads[m.resource(*l) as usize];
                    *v = v.saturating_add(1);
                }
            }
        }
    }
    groups
        .iter()
        .map(|g| {
            if g.len() < 2 {
                return PathCost {
                    bw_bytes_per_s: f64::INFINITY,
                    latency_s: 0.0,
                    hops: 0,
                };
            }
            let (mut share, mut latency, mut hops) = (f64::INFINITY, 0.0f64, 0u32);
            for a in g.iter() {
                for b in g.iter().filter(|b| *b != a) {
                    route.clear();
                    m.route(*a, *b, &mut route);
                    // An unreachable peer (a cut mesh) gets nothing through.
                    if route.is_empty() {
                        share = 0.0;
                    }
                    let mut here = 0.0;
                    for l in &route {
                        let r = m.resource(*l);
                        share = share.min(m.resource_bw(r) / loads[r as usize].max(1) as f64);
                        here += m.link_latency(*l);
                    }
                    latency = latency.max(here);
                    hops = hops.max(route.len() as u32);
                }
            }
            PathCost {
                bw_bytes_per_s: (g.len() - 1) as f64 * share,
                latency_s: latency,
                hops,
            }
        })
        .collect()
}

/// A group on a cluster: each GPU has its own NVLink and network ports, and a full-bisection
/// switch behind each, so groups do not slow each other; the member with the fewest of the group
/// in its node sends the most over the network and finishes last.
fn cluster_all_to_all(c: &ClusterTopo, group: &[DeviceId]) -> PathCost {
    let n = group.len() as u32;
    if n < 2 {
        return PathCost {
            bw_bytes_per_s: f64::INFINITY,
            latency_s: 0.0,
            hops: 0,
        };
    }
    let per_node = c.members_per_node(group);
    let fewest = per_node.iter().map(|(_, k)| *k).min().unwrap_or(n);
    PathCost {
        bw_bytes_per_s: node_share_bw(c, n, fewest),
        latency_s: if per_node.len() > 1 {
            c.inter_latency_s
        } else {
            c.intra_latency_s
        },
        hops: 1,
    }
}

/// The bandwidth at which a member with `g` of the `n` members in its node (itself included)
/// sends its buffer: `(g - 1) / (n - 1)` of it over NVLink while the rest goes over its network
/// port, whichever takes longer.
fn node_share_bw(c: &ClusterTopo, n: u32, g: u32) -> f64 {
    let messages = (n - 1) as f64;
    let inside = (g.saturating_sub(1)) as f64 / messages;
    let outside = (n - g) as f64 / messages;
    let time_per_byte = f64::max(inside / c.intra_bw, outside / c.inter_bw);
    1.0 / time_per_byte
}

#[cfg(test)]
mod tests {
    use crate::hardware::fabric::test_wafer as wafer;
    use crate::hardware::Hardware;

    fn cluster(gpus: u32, nodes: u32) -> crate::hardware::Fabric {
        let text = format!("name='c'\n[device]\npeak_tflops=1\nsram_mb=1\ndram_gb=1\ndram_bw_tb_per_s=1\n[software]\nattention='flash'\nexecution='kernels'\n[cluster]\ngpus_per_node={gpus}\nnodes={nodes}\nintra_bw_gb_per_s=200\nintra_latency_us=3\ninter_bw_gb_per_s=50\ninter_latency_us=5\n");
        let hw: Hardware = toml::from_str(&text).unwrap();
        hw.fabric().unwrap()
    }

    #[test]
    fn a_two_by_two_block_shares_its_links_two_ways() {
        // Column-first routes: (0,0) -> (1,1) goes east then south, sharing (0,0)'s east link with
        // (0,0) -> (0,1). Every link carries 2 of the 12 messages: a member's 3 drain at 3/2 links.
        let f = wafer(2, 2, "");
        let r = f.all_to_all(&[&[0, 1, 2, 3]]);
        assert_eq!(r[0].bw_bytes_per_s, 1.5e12);
        assert_eq!(r[0].hops, 2);
        assert!((r[0].latency_s - 200e-9).abs() < 1e-15);
        // Never above the bound any placement allows (3 messages over 3 links).
        assert!(r[0].bw_bytes_per_s <= f.ideal_all_to_all(4).bw_bytes_per_s);
    }

    #[test]
    fn concurrent_groups_share_links() {
        // 1 x 4: {0, 2} and {1, 3} both cross link 1 -> 2 (and 2 -> 1): half of it each.
        let f = wafer(1, 4, "");
        let r = f.all_to_all(&[&[0, 2], &[1, 3]]);
        assert_eq!(r[0].bw_bytes_per_s, 0.5e12);
        assert_eq!(r[1].bw_bytes_per_s, 0.5e12);
        // Side by side they do not: {0, 1} and {2, 3} each get a whole link.
        let r = f.all_to_all(&[&[0, 1], &[2, 3]]);
        assert_eq!(r[0].bw_bytes_per_s, 1e12);
    }

    #[test]
    fn a_wafer_boundary_is_one_shared_link() {
        // Two 1 x 2 wafers, 0.25 TB/s across: {0, 2} and {1, 3} both cross the boundary, two
        // messages each way: 0.125 TB/s each.
        let f = wafer(1, 2, "wafers = 2\nw2w_bw_tb_per_s = 0.25");
        let r = f.all_to_all(&[&[0, 2], &[1, 3]]);
        assert_eq!(r[0].bw_bytes_per_s, 0.125e12);
        assert!(r[0].bw_bytes_per_s <= f.ideal_all_to_all(2).bw_bytes_per_s);
    }

    #[test]
    fn cluster_groups_use_nvlink_inside_and_the_network_across() {
        let f = cluster(4, 2);
        // Inside one node: NVLink, 200 GB/s.
        assert_eq!(f.all_to_all(&[&[0, 1, 2, 3]])[0].bw_bytes_per_s, 200e9);
        // Two per node over two nodes: each member sends 1/3 over NVLink (1/600 s per GB) and
        // 2/3 over the network (1/75 s per GB): the network sets 75 GB/s.
        let r = f.all_to_all(&[&[0, 1, 4, 5]]);
        assert!((r[0].bw_bytes_per_s - 75e9).abs() < 1e-3);
        assert!((r[0].latency_s - 5e-6).abs() < 1e-15);
        // The best any placement of 8 allows: 4 per node, 3/7 inside and 4/7 across: 87.5 GB/s.
        assert!((f.ideal_all_to_all(8).bw_bytes_per_s - 87.5e9).abs() < 1e-3);
        assert_eq!(f.ideal_all_to_all(4).bw_bytes_per_s, 200e9);
    }
}
