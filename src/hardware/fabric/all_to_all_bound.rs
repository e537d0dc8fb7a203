//! The fewest messages the busiest link can carry when `n` dies of a `rows x cols` mesh exchange
//! all-to-all (one message from every member to every other) on column-first dimension-ordered
//! routes, over every choice of the `n` dies: the bound that lets the search price an all-to-all
//! before it knows the placement.
//!
//! Four facts about column-first routes hold for any placement (`a` members left of a vertical
//! line, `b` above a horizontal one, `h` rows and `m` columns in use):
//! - a message moves along its source's row first, so the `a (n - a)` messages crossing a vertical
//!   line eastward use only the crossing links of rows holding left members: one carries at least
//!   `(n - a) ceil(a / h)`; westward `a ceil((n - a) / h)`;
//! - it then moves along its destination's column, so across a horizontal line one link carries at
//!   least `(n - b) ceil(b / m)` northward and `b ceil((n - b) / m)` southward;
//! - in a column of `k` members the link below its `floor(k / 2)`-th carries the
//!   `floor(k / 2) ceil(k / 2)` messages between its halves, and likewise in a row.
//!
//! The columns' member counts, read left to right, are at most `h` each, at most `m` of them, and
//! every partial sum is an `a` above; the rows' likewise. So the bound is the least `L` for which
//! some `h <= rows`, `m <= cols` with `h m >= n` admit both a column sequence and a row sequence
//! meeting every inequality above: a dynamic programme over partial sums. Each inequality is a
//! cut or a single path, the cut-based lower bounds of multicommodity routing (Leighton and Rao,
//! J. ACM 46(6), 1999).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// Groups above this size get the simpler bound ([`injection_bound`]): the programme's cost grows
/// with `n^2`.
const MAX_PROGRAMMED: u32 = 1024;

/// Remembered bounds by `(n, rows, cols)`.
type Loads = HashMap<(u32, u32, u32), u32>;

/// Whatever the routes: a member's `n - 1` messages leave it by at most four links.
///
/// ```
/// assert_eq!(watos::hardware::fabric::injection_bound(9), 2);
/// ```
pub fn injection_bound(n: u32) -> u32 {
    n.saturating_sub(1).div_ceil(4)
}

/// The least busiest-link load of an all-to-all among `n` dies of a `rows x cols` mesh with
/// column-first routes (module documentation), remembered per shape.
///
/// ```
/// use watos::hardware::fabric::least_busiest_load;
/// // Two neighbours: one message each way. A 2 x 2 block: two per link, and nothing beats it.
/// assert_eq!((least_busiest_load(2, 7, 8), least_busiest_load(4, 7, 8)), (1, 2));
/// ```
pub fn least_busiest_load(n: u32, rows: u32, cols: u32) -> u32 {
    if n < 2 {
        return 0;
    }
    if n > MAX_PROGRAMMED || u64::from(rows) * u64::from(cols) < u64::from(n) {
        return injection_bound(n);
    }
    static CACHE: OnceLock<Mutex<Loads>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(l) = cache
        .lock()
        .ok()
        .and_then(|c| c.get(&(n, rows, cols)).copied())
    {
        return l;
    }
    let (rows, cols) = (rows.min(n), cols.min(n));
    let (mut lo, mut hi) = (injection_bound(n), (n / 2) * n.div_ceil(2));
    // `hi` is always feasible: one column (or row) of `n`, or any placement, carries at most that.
    while !feasible(n, rows, cols, hi) {
        hi = hi.saturating_mul(2);
    }
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if feasible(n, rows, cols, mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    if let Ok(mut c) = cache.lock() {
        c.insert((n, rows, cols), lo);
    }
    lo
}

/// Whether some placement shape could keep every link at `load` messages or fewer: `h` rows and
/// `m` columns in use, the columns' counts an `m`-part sequence for `h` lines across, the rows'
/// an `h`-part sequence for `m`.
fn feasible(n: u32, rows: u32, cols: u32, load: u32) -> bool {
    let columns: Vec<Vec<bool>> = (0..=rows).map(|h| parts(n, h, load, cols)).collect();
    let lines: Vec<Vec<bool>> = (0..=cols).map(|m| parts(n, m, load, rows)).collect();
    (1..=rows).any(|h| {
        (1..=cols).any(|m| {
            u64::from(h) * u64::from(m) >= u64::from(n)
                && columns[h as usize][m as usize]
                && lines[m as usize][h as usize]
        })
    })
}

/// Which numbers of parts (columns, say: `out[k]` for `k` parts, up to `most`) `n` members can
/// split into, each part at most `across` (the rows in use) and within `load` by its internal
/// halves, every partial sum `a` within `load` by the cut bound for `across` lines
/// ([`cut_load`]).
fn parts(n: u32, across: u32, load: u32, most: u32) -> Vec<bool> {
    let mut out = vec![false; most as usize + 1];
    if across == 0 {
        return out;
    }
    let halves = |k: u32| u64::from(k / 2) * u64::from(k.div_ceil(2));
    let mut widest = 0usize;
    while (widest as u32) < across && halves(widest as u32 + 1) <= u64::from(load) {
        widest += 1;
    }
    let n_us = n as usize;
    let open: Vec<bool> = (0..=n)
        .map(|a| a == n || cut_load(n, a, across) <= u64::from(load))
        .collect();
    // reach[a]: `a` members placed in exactly `k` parts, for the current `k`.
    let mut reach = vec![false; n_us + 1];
    reach[0] = true;
    for slot in out.iter_mut().skip(1) {
        // before[x]: how many of reach[0..x] hold, for window counts.
        let mut before = vec![0u32; n_us + 2];
        for a in 0..=n_us {
            before[a + 1] = before[a] + u32::from(reach[a]);
        }
        let next: Vec<bool> = (0..=n_us)
            .map(|a| a > 0 && open[a] && before[a] > before[a.saturating_sub(widest)])
            .collect();
        reach = next;
        *slot = reach[n_us];
    }
    out
}

/// The busier direction across a line with `a` of the `n` members on one side, their messages
/// crossing on at most `across` links: `max((n - a) ceil(a / across), a ceil((n - a) / across))`.
fn cut_load(n: u32, a: u32, across: u32) -> u64 {
    let (a, b, x) = (u64::from(a), u64::from(n - a), u64::from(across));
    (b * a.div_ceil(x)).max(a * b.div_ceil(x))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::fabric::test_wafer as wafer;

    #[test]
    fn eight_dies_cannot_beat_six_messages_a_link() {
        // 3 x 3 less a corner: cuts after 3 and 6 members each way carry max(5 x 1, 3 x 2) = 6.
        // A 2 x 4 block carries 8 across its middle, a 4 x 2 block 8 down its middle.
        assert_eq!(least_busiest_load(8, 7, 8), 6);
        // On one row of dies the middle link carries 4 x 4 = 16.
        assert_eq!(least_busiest_load(8, 1, 8), 16);
    }

    #[test]
    fn the_bound_holds_for_the_shapes_a_placement_would_take() {
        // Every compact block of every size on a 4 x 4 mesh: the real busiest link is never below
        // the bound.
        let f = wafer(4, 4, "");
        for rows in 1..=4u32 {
            for cols in 1..=4u32 {
                let group: Vec<u32> = (0..rows)
                    .flat_map(|r| (0..cols).map(move |c| r * 4 + c))
                    .collect();
                let n = group.len() as u32;
                if n < 2 {
                    continue;
                }
                let a2a = f.all_to_all(&[&group]);
                let real = (n - 1) as f64 * 1e12 / a2a[0].bw_bytes_per_s;
                let bound = least_busiest_load(n, 4, 4) as f64;
                assert!(bound <= real + 1e-9, "{rows} x {cols}: {bound} > {real}");
            }
        }
    }

    /// The least busiest-link load over every placement of `n` dies on a `rows x cols` mesh.
    fn least_real(rows: u32, cols: u32, n: u32) -> u32 {
        let f = wafer(rows, cols, "");
        let dies = rows * cols;
        (0u32..(1 << dies))
            .filter(|mask| mask.count_ones() == n)
            .map(|mask| {
                let group: Vec<u32> = (0..dies).filter(|i| mask & (1 << i) != 0).collect();
                let a2a = f.all_to_all(&[&group]);
                ((n - 1) as f64 * 1e12 / a2a[0].bw_bytes_per_s).round() as u32
            })
            .min()
            .unwrap_or(0)
    }

    #[test]
    fn exhaustively_on_small_meshes() {
        // Every placement of 2 to 12 dies on a 3 x 4 mesh, and of 2 to 12 on a 4 x 4: the bound
        // never exceeds the least real busiest link; it is exact on the 3 x 4 mesh, and on the
        // 4 x 4 up to 10 dies (11 and 12 dies reach 12 messages, the bound says 8 and 9).
        for n in 2..=12u32 {
            let (bound, least) = (least_busiest_load(n, 3, 4), least_real(3, 4, n));
            assert_eq!(bound, least, "3 x 4, n {n}");
            let (bound, least) = (least_busiest_load(n, 4, 4), least_real(4, 4, n));
            assert!(bound <= least, "4 x 4, n {n}: bound {bound} above {least}");
            if n <= 10 {
                assert_eq!(bound, least, "4 x 4, n {n}");
            }
        }
    }

    #[test]
    fn huge_groups_fall_back_to_the_ports() {
        assert_eq!(least_busiest_load(2000, 100, 100), injection_bound(2000));
    }
}
