//! Which designs a report needs, from the designs solved so far and each design's upper bound on
//! its score. One set of rules serves the sweep (what to solve, what to skip) and the report
//! (what to show), so the two cannot disagree.
//!
//! A report shows, for the mix (objective 0): the best `top` designs, the Pareto front of score
//! against memory area, and the best design of each bucket (each value of each range, and each
//! step of the compute/memory split); for each model of a mix (objectives 1..): its best design.
//! A design is needed by a rule unless designs already solved beat its bound **strictly**: `top`
//! solved scores above it, a solved design with no more memory area above it, a solved design of
//! the same bucket above it. A design skipped by every rule can then be in no answer whatever else
//! is solved later, and a design a rule still needs once the sweep is over is needed in every
//! order of the sweep and every slicing of it (a skipped design is beaten by a solved one, which
//! is itself solved or beaten by a solved one, and so on): the report depends on the space and the
//! models only.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::budget::Budget;
use super::space::Design;

/// A range of the space, as a report groups designs by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dim {
    Technology,
    Mesh,
    PeakTflops,
    DramGb,
    DramTbPerS,
    D2d,
    /// DRAM's share of a site's compute and memory area, in steps of [`SPLIT_STEP`].
    Split,
}

impl Dim {
    pub const ALL: [Dim; 7] = [
        Dim::Technology,
        Dim::Mesh,
        Dim::PeakTflops,
        Dim::DramGb,
        Dim::DramTbPerS,
        Dim::D2d,
        Dim::Split,
    ];

    /// Its name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Dim::Technology => "technology",
            Dim::Mesh => "mesh",
            Dim::PeakTflops => "compute per die",
            Dim::DramGb => "DRAM per die",
            Dim::DramTbPerS => "DRAM bandwidth per die",
            Dim::D2d => "D2D bandwidth",
            Dim::Split => "memory share of die area",
        }
    }
}

/// Width of one step of the compute/memory split.
pub const SPLIT_STEP: f64 = 0.05;

/// One value of one range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Bucket {
    pub dim: Dim,
    /// The value, exactly: thousandths of the unit, or a code (mesh: wafers, rows, cols).
    pub key: i64,
}

/// What the rules read of a design: its memory area and its buckets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Keys {
    /// Memory area per wafer in thousandths of mm^2 (exact comparisons).
    pub memory: u64,
    pub buckets: Vec<Bucket>,
}

impl Keys {
    /// The keys of a design.
    pub fn of(d: &Design, b: &Budget) -> Self {
        let milli = |x: f64| (x * 1000.0).round() as i64;
        let bucket = |dim, key| Bucket { dim, key };
        Keys {
            memory: (b.memory_mm2 * 1000.0).round().max(0.0) as u64,
            buckets: vec![
                bucket(Dim::Technology, d.technology as i64),
                bucket(
                    Dim::Mesh,
                    (i64::from(d.wafers) << 40) | (i64::from(d.rows) << 20) | i64::from(d.cols),
                ),
                bucket(Dim::PeakTflops, milli(d.peak_tflops)),
                bucket(Dim::DramGb, milli(d.dram_gb())),
                bucket(Dim::DramTbPerS, milli(d.dram_tb_per_s())),
                bucket(Dim::D2d, milli(d.d2d_tb_per_s)),
                bucket(Dim::Split, (b.memory_share / SPLIT_STEP).floor() as i64),
            ],
        }
    }
}

/// Which rules need a design, per objective.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Need {
    /// Among the best `top` (per objective).
    pub top: Vec<bool>,
    /// On the Pareto front (objective 0).
    pub front: bool,
    /// The best of each of its buckets (objective 0), in the order of [`Keys::buckets`].
    pub buckets: Vec<bool>,
}

impl Need {
    /// Whether objective `j` needs the design.
    pub fn objective(&self, j: usize) -> bool {
        self.top.get(j).copied().unwrap_or(false)
            || (j == 0 && (self.front || self.buckets.iter().any(|b| *b)))
    }

    /// Whether any objective needs it.
    pub fn any(&self) -> bool {
        (0..self.top.len()).any(|j| self.objective(j))
    }
}

/// The solved designs' scores, as the rules read them.
#[derive(Debug, Clone)]
pub struct State {
    /// Per objective, the best solved scores, highest first, at most `keep[j]` of them.
    tops: Vec<Vec<f64>>,
    keep: Vec<usize>,
    /// The Pareto staircase of objective 0: memory -> best score with at most that memory,
    /// scores rising with memory.
    front: BTreeMap<u64, f64>,
    buckets: HashMap<Bucket, f64>,
    /// A design is needed only if its bound could beat the solved ones by more than this share.
    tol: f64,
}

impl State {
    /// No design solved; `objectives` scores per design, the first with `top` designs to show;
    /// `tol`: the pruning tolerance (0: a design is skipped only when strictly beaten).
    pub fn new(objectives: usize, top: usize, tol: f64) -> Self {
        State {
            tops: vec![Vec::new(); objectives],
            keep: (0..objectives)
                .map(|j| if j == 0 { top.max(1) } else { 1 })
                .collect(),
            front: BTreeMap::new(),
            buckets: HashMap::new(),
            tol,
        }
    }

    /// Adds a solved design: its score per objective, `None` for objectives it was not solved for.
    pub fn add(&mut self, keys: &Keys, scores: &[Option<f64>]) {
        for ((top, keep), s) in self.tops.iter_mut().zip(&self.keep).zip(scores) {
            if let Some(s) = *s {
                let at = top.partition_point(|x| *x >= s);
                top.insert(at, s);
                top.truncate(*keep);
            }
        }
        let Some(Some(s)) = scores.first().copied() else {
            return;
        };
        if self.front_best(keys.memory) < s {
            self.front.insert(keys.memory, s);
            let above: Vec<u64> = self
                .front
                .range(keys.memory + 1..)
                .take_while(|(_, v)| **v <= s)
                .map(|(k, _)| *k)
                .collect();
            for k in above {
                self.front.remove(&k);
            }
        }
        for b in &keys.buckets {
            let best = self.buckets.entry(*b).or_insert(0.0);
            *best = best.max(s);
        }
    }

    /// The best solved score of objective 0 with at most `memory`.
    fn front_best(&self, memory: u64) -> f64 {
        self.front
            .range(..=memory)
            .next_back()
            .map_or(0.0, |(_, s)| *s)
    }

    /// The lowest score a design must reach to be among objective `j`'s best (0 until enough
    /// designs are solved).
    pub fn threshold(&self, j: usize) -> f64 {
        match self.tops.get(j) {
            Some(t) if t.len() >= self.keep[j] => t[t.len() - 1],
            _ => 0.0,
        }
    }

    /// Which rules need a design with upper bounds `ub` per objective (a design that cannot fit
    /// has bound 0 and is needed by none).
    pub fn needs(&self, keys: &Keys, ub: &[f64]) -> Need {
        let keep = 1.0 - self.tol;
        let ub0 = ub.first().copied().unwrap_or(0.0) * keep;
        Need {
            top: ub
                .iter()
                .enumerate()
                .map(|(j, u)| *u > 0.0 && self.threshold(j) <= *u * keep)
                .collect(),
            front: ub0 > 0.0 && self.front_best(keys.memory) <= ub0,
            buckets: keys
                .buckets
                .iter()
                .map(|b| ub0 > 0.0 && self.buckets.get(b).copied().unwrap_or(0.0) <= ub0)
                .collect(),
        }
    }
}

impl State {
    /// Which answers a solved design's own scores put it in (ties included): the designs a
    /// report shows beside those a bound cannot rule out.
    pub fn achieved(&self, keys: &Keys, scores: &[Option<f64>]) -> Need {
        let s0 = scores.first().copied().flatten().unwrap_or(0.0);
        Need {
            top: scores
                .iter()
                .enumerate()
                .map(|(j, s)| s.is_some_and(|s| s > 0.0 && s >= self.threshold(j)))
                .collect(),
            front: s0 > 0.0 && s0 >= self.front_best(keys.memory),
            buckets: keys
                .buckets
                .iter()
                .map(|b| s0 > 0.0 && s0 >= self.buckets.get(b).copied().unwrap_or(0.0))
                .collect(),
        }
    }
}

impl Need {
    /// Needed by either.
    pub fn or(mut self, other: &Need) -> Need {
        for (a, b) in self.top.iter_mut().zip(&other.top) {
            *a |= *b;
        }
        self.front |= other.front;
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a |= *b;
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(memory: u64, bucket: i64) -> Keys {
        Keys {
            memory,
            buckets: vec![Bucket {
                dim: Dim::D2d,
                key: bucket,
            }],
        }
    }

    #[test]
    fn a_design_is_skipped_only_when_beaten_for_every_answer() {
        let mut s = State::new(1, 1, 0.0);
        // Nothing solved: everything that fits is needed; what cannot fit never is.
        assert!(s.needs(&keys(5, 0), &[1.0]).any());
        assert!(!s.needs(&keys(5, 0), &[0.0]).any());
        s.add(&keys(5, 0), &[Some(10.0)]);
        // Beaten on top and front and bucket: skipped.
        assert!(!s.needs(&keys(6, 0), &[9.0]).any());
        // Less memory than any solved design: the front still needs it.
        let n = s.needs(&keys(4, 0), &[9.0]);
        assert!(n.front && !n.top[0] && n.any());
        // A bucket with nothing solved: needed.
        assert!(s.needs(&keys(6, 1), &[9.0]).buckets[0]);
        // A tie is not a strict win: still needed.
        assert!(s.needs(&keys(6, 0), &[10.0]).top[0]);
    }

    #[test]
    fn a_tolerance_skips_what_cannot_win_by_more_than_it() {
        let mut s = State::new(1, 1, 0.05);
        s.add(&keys(5, 0), &[Some(10.0)]);
        // 10.4 * 0.95 = 9.88 < 10: skipped; 10.6 * 0.95 = 10.07: needed.
        assert!(!s.needs(&keys(6, 0), &[10.4]).any());
        assert!(s.needs(&keys(6, 0), &[10.6]).top[0]);
        // The solved design itself is in the answers it achieved.
        assert!(s.achieved(&keys(5, 0), &[Some(10.0)]).top[0]);
    }

    #[test]
    fn the_front_keeps_only_rising_scores() {
        let mut s = State::new(1, 3, 0.0);
        s.add(&keys(10, 0), &[Some(5.0)]);
        s.add(&keys(20, 0), &[Some(4.0)]);
        s.add(&keys(30, 0), &[Some(8.0)]);
        s.add(&keys(5, 0), &[Some(6.0)]);
        let front: Vec<_> = s.front.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(front, vec![(5, 6.0), (30, 8.0)]);
        assert_eq!(s.threshold(0), 5.0);
    }
}
