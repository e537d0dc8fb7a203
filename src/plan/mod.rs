//! A training plan: parallel degrees, layers and recomputation per stage, where memory lives, and
//! which devices run what. Plans are data: the evaluator scores them, strategies produce them.

mod check;
mod config;

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, FieldError};
use crate::hardware::Fabric;
use crate::input::SourceFile;
use crate::instance::Instance;
use crate::placement::Placement;

pub use config::Config;

/// Recomputation mode of a layer (Korthikanti et al., arXiv 2205.05198).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Recompute {
    /// Keep every activation the backward pass needs.
    None,
    /// Recompute the attention core (scores, softmax, dropout, weighted sum).
    Selective,
    /// Keep only the layer input; recompute the whole forward pass.
    Full,
}

impl Recompute {
    /// All modes, cheapest memory last.
    pub const ALL: [Recompute; 3] = [Recompute::None, Recompute::Selective, Recompute::Full];

    /// Position in [`Recompute::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// How many layers of a run of consecutive layers go in each recomputation mode.
///
/// ```
/// use watos::plan::{Recompute, RecomputeCounts};
/// let c = RecomputeCounts::all(Recompute::Full, 4);
/// assert_eq!((c.get(Recompute::Full), c.total()), (4, 4));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecomputeCounts {
    #[serde(default)]
    pub none: u32,
    #[serde(default)]
    pub selective: u32,
    #[serde(default)]
    pub full: u32,
}

impl RecomputeCounts {
    /// All `layers` in one mode.
    pub fn all(mode: Recompute, layers: u32) -> Self {
        let mut c = RecomputeCounts::default();
        *c.get_mut(mode) = layers;
        c
    }
    /// Layers in `mode`.
    pub fn get(&self, mode: Recompute) -> u32 {
        match mode {
            Recompute::None => self.none,
            Recompute::Selective => self.selective,
            Recompute::Full => self.full,
        }
    }
    /// Mutable count of `mode`.
    pub fn get_mut(&mut self, mode: Recompute) -> &mut u32 {
        match mode {
            Recompute::None => &mut self.none,
            Recompute::Selective => &mut self.selective,
            Recompute::Full => &mut self.full,
        }
    }
    /// All layers, summed without overflow.
    pub fn total(&self) -> u64 {
        u64::from(self.none) + u64::from(self.selective) + u64::from(self.full)
    }
}

/// Where a stage's weights are read from during its passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightSource {
    /// The device's own DRAM, streamed every pass.
    #[default]
    Dram,
    /// Resident in on-die SRAM (only where they fit beside the streaming buffers).
    Sram,
}

impl WeightSource {
    /// Every source, in index order.
    pub const ALL: [WeightSource; 2] = [WeightSource::Dram, WeightSource::Sram];
    /// How many sources there are.
    pub const COUNT: usize = 2;

    /// Position in [`WeightSource::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What a stage parks in another stage's DRAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParkKind {
    /// Activation checkpoints: written and read back once per micro-batch.
    Activations,
    /// Master weights and optimizer moments: read and written once per step.
    Optimizer,
}

impl ParkKind {
    /// Both kinds.
    pub const ALL: [ParkKind; 2] = [ParkKind::Activations, ParkKind::Optimizer];
}

/// Bytes each device of one stage keeps in the DRAM of the matching device (same replica, same
/// tensor-parallel rank) of another stage: the paper's sender/helper sharing.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Park {
    /// Helper stage index.
    pub to: u32,
    pub what: ParkKind,
    /// Bytes per device.
    pub bytes: u64,
}

/// One pipeline stage.
///
/// `recompute` lists the stage's layers in order as runs of counts: one table for a stage whose
/// layers are all of one kind, one table per kind (in layer order) for a stage that spans several.
/// In a plan file a mode for all the stage's layers (`recompute = "full"`), one table
/// (`recompute = { none = 2, full = 5 }`) or a list of tables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "StageFile")]
pub struct Stage {
    pub layers: u32,
    #[serde(serialize_with = "write_recompute")]
    pub recompute: Vec<RecomputeCounts>,
    #[serde(default)]
    pub weights: WeightSource,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub park: Vec<Park>,
    /// Devices as `[row, col]` (wafer) or `[node, gpu]` (cluster): `dp x tp` of them, replica by
    /// replica, each replica's in ring order. Omitted: the default placement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dies: Option<Vec<[u32; 2]>>,
}

impl Stage {
    /// A stage of `layers` layers, all in `mode`, weights in DRAM, default placement.
    pub fn new(layers: u32, mode: Recompute) -> Self {
        Stage {
            layers,
            recompute: vec![RecomputeCounts::all(mode, layers)],
            weights: WeightSource::Dram,
            park: Vec::new(),
            dies: None,
        }
    }

    /// Layers in each mode, summed over the stage's runs.
    pub fn mode_totals(&self) -> RecomputeCounts {
        let mut t = RecomputeCounts::default();
        for run in &self.recompute {
            for r in Recompute::ALL {
                *t.get_mut(r) = t.get(r).saturating_add(run.get(r));
            }
        }
        t
    }

    /// The mode of each of the stage's layers in order: each run's layers in the order none,
    /// selective, full.
    pub fn modes_in_order(&self) -> impl Iterator<Item = Recompute> + '_ {
        self.recompute.iter().flat_map(|run| {
            Recompute::ALL
                .into_iter()
                .flat_map(move |r| std::iter::repeat_n(r, run.get(r) as usize))
        })
    }
}

/// How a plan file gives a stage's recomputation.
enum RecomputeSpec {
    Mode(Recompute),
    Counts(RecomputeCounts),
    Runs(Vec<RecomputeCounts>),
}

impl<'de> Deserialize<'de> for RecomputeSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Mode(Recompute),
            Counts(RecomputeCounts),
            Runs(Vec<RecomputeCounts>),
        }
        Ok(match Either::deserialize(d).map_err(|e| {
            // serde reports a missing key through this deserializer too: keep that as it is.
            if e.to_string().starts_with("missing field") {
                return e;
            }
            serde::de::Error::custom("expected \"none\", \"selective\", \"full\", a table { none = N, selective = N, full = N }, or a list of such tables (one per run of layers, in layer order)")
        })? {
            Either::Mode(m) => RecomputeSpec::Mode(m),
            Either::Counts(c) => RecomputeSpec::Counts(c),
            Either::Runs(v) => RecomputeSpec::Runs(v),
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StageFile {
    layers: u32,
    recompute: RecomputeSpec,
    #[serde(default)]
    weights: WeightSource,
    #[serde(default)]
    park: Vec<Park>,
    #[serde(default, deserialize_with = "crate::input::optional_pairs")]
    dies: Option<Vec<[u32; 2]>>,
}

impl From<StageFile> for Stage {
    fn from(f: StageFile) -> Stage {
        Stage {
            layers: f.layers,
            recompute: match f.recompute {
                RecomputeSpec::Mode(m) => vec![RecomputeCounts::all(m, f.layers)],
                RecomputeSpec::Counts(c) => vec![c],
                RecomputeSpec::Runs(v) => v,
            },
            weights: f.weights,
            park: f.park,
            dies: f.dies,
        }
    }
}

fn write_recompute<S: serde::Serializer>(
    runs: &[RecomputeCounts],
    s: S,
) -> Result<S::Ok, S::Error> {
    match runs {
        [one] => one.serialize(s),
        many => many.serialize(s),
    }
}

/// A training plan.
///
/// ```
/// use watos::{Plan, plan::Recompute};
/// let p = Plan::uniform(96, 1, 8, 7, 1, Recompute::Full);
/// assert_eq!(p.stages.iter().map(|s| s.layers).collect::<Vec<_>>(), vec![13, 14, 14, 14, 14, 14, 13]);
/// assert_eq!(p.to_string(), "D1 T8 P7  micro-batch 1");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub dp: u32,
    /// Expert parallelism: the routed experts of each MoE layer are split over groups of `ep`
    /// data-parallel replicas (Megatron-core's layout: expert-parallel ranks are drawn from the
    /// data-parallel ones, and the `dp / ep` replicas holding the same experts reduce their
    /// gradients together). Divides `dp` and the routed experts; 1 for dense models.
    #[serde(default = "one")]
    pub ep: u32,
    pub tp: u32,
    pub pp: u32,
    pub micro_batch: u32,
    #[serde(default)]
    pub sequence_parallel: bool,
    /// Model chunks per device (interleaved 1F1B); 1 is plain 1F1B.
    #[serde(default = "one")]
    pub interleave: u32,
    /// Shard optimizer state over data-parallel replicas (ZeRO stage 1).
    #[serde(default)]
    pub zero1: bool,
    /// Reduce gradients bucket by bucket during the last micro-batch's backward pass (PyTorch
    /// DDP) instead of after it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dp_overlap: bool,
    /// Weight streaming (Cerebras; see [`crate::cost::streaming`]): one stage on every healthy
    /// die of the wafer, each layer's work split evenly over all of them whatever the heads,
    /// weights read from the dies' DRAM every pass. `tp` counts the dies; the rule that it divide
    /// the heads is lifted and the rules of [`crate::cost::streaming::check`] apply instead.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub weight_streaming: bool,
    #[serde(rename = "stage")]
    pub stages: Vec<Stage>,
}

fn one() -> u32 {
    1
}

impl std::fmt::Display for Plan {
    /// One line describing the plan's configuration.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "D{}", self.dp)?;
        if self.ep > 1 {
            write!(f, " E{}", self.ep)?;
        }
        write!(
            f,
            " T{} P{}  micro-batch {}",
            self.tp, self.pp, self.micro_batch
        )?;
        if self.sequence_parallel {
            f.write_str("  sequence-parallel")?;
        }
        if self.interleave > 1 {
            write!(f, "  interleave {}", self.interleave)?;
        }
        if self.zero1 {
            f.write_str("  ZeRO-1")?;
        }
        if self.dp_overlap {
            f.write_str("  DP overlap")?;
        }
        if self.weight_streaming {
            f.write_str("  weight streaming")?;
        }
        Ok(())
    }
}

impl Plan {
    /// `layers` split over `pp` stages as evenly as possible (extra layers go to the middle
    /// stages, since the first holds the most activations and the last the output head), all in
    /// one recomputation mode, default placement.
    pub fn uniform(
        layers: u32,
        dp: u32,
        tp: u32,
        pp: u32,
        micro_batch: u32,
        mode: Recompute,
    ) -> Plan {
        let stages = even_split(layers, pp)
            .into_iter()
            .map(|n| Stage::new(n, mode))
            .collect();
        Plan {
            dp,
            ep: 1,
            tp,
            pp,
            micro_batch,
            sequence_parallel: false,
            interleave: 1,
            zero1: false,
            dp_overlap: false,
            weight_streaming: false,
            stages,
        }
    }

    /// Reads a plan file and checks it against the instance; errors name the line.
    pub fn load(path: impl AsRef<Path>, inst: &Instance) -> Result<Plan, Error> {
        let src = SourceFile::read(path.as_ref())?;
        let plan: Plan = src.parse_toml()?;
        plan.check(inst).map_err(|e| src.field_error(e))?;
        Ok(plan)
    }

    /// Writes the plan as TOML (the form `watos evaluate --plan` reads back exactly).
    pub fn to_toml(&self) -> Result<String, Error> {
        toml::to_string(self).map_err(|e| Error::invalid("plan", e.to_string(), ""))
    }

    /// Devices the plan uses.
    pub fn devices(&self) -> u64 {
        u64::from(self.dp) * u64::from(self.tp) * u64::from(self.pp)
    }

    /// Structural checks against an instance: anything that makes the plan meaningless (as
    /// opposed to merely not fitting, which the evaluator reports as a violation).
    pub fn check(&self, inst: &Instance) -> Result<(), FieldError> {
        check::check(self, inst)
    }

    /// Devices of every (replica, stage) group: the stages' own `dies`, the default layout for
    /// the others.
    pub fn placement(&self, fabric: &Fabric) -> Result<Placement, FieldError> {
        let pinned: Vec<Option<&[[u32; 2]]>> =
            self.stages.iter().map(|s| s.dies.as_deref()).collect();
        Placement::with_ep(self.dp, self.ep, self.tp, &pinned, fabric)
    }

    /// Writes `g` into every stage's `dies`.
    pub fn pin(&mut self, g: &Placement, fabric: &Fabric) {
        for (j, stage) in self.stages.iter_mut().enumerate() {
            stage.dies = Some(g.coords(j, fabric));
        }
    }

    /// Resolves the plan's placement and writes it into its stages' `dies`.
    pub fn pin_placement(&mut self, fabric: &Fabric) -> Result<(), FieldError> {
        let g = self.placement(fabric)?;
        self.pin(&g, fabric);
        Ok(())
    }
}

/// `layers` over `pp` parts as evenly as possible, the extra layers on the parts nearest the middle.
///
/// ```
/// assert_eq!(watos::plan::even_split(10, 4), vec![2, 3, 3, 2]);
/// ```
pub fn even_split(layers: u32, pp: u32) -> Vec<u32> {
    let pp = pp.max(1);
    let base = layers / pp;
    let extra = layers % pp;
    // Parts ordered by distance from the middle get the extra layers first.
    let mut order: Vec<u32> = (0..pp).collect();
    let mid = (pp - 1) as f64 / 2.0;
    order.sort_by(|a, b| {
        (*a as f64 - mid)
            .abs()
            .total_cmp(&(*b as f64 - mid).abs())
            .then(a.cmp(b))
    });
    let mut rank = vec![0usize; pp as usize];
    for (i, j) in order.iter().enumerate() {
        rank[*j as usize] = i;
    }
    (0..pp as usize)
        .map(|j| base + u32::from(rank[j] < extra as usize))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_split_puts_extras_in_the_middle() {
        let p = Plan::uniform(10, 1, 1, 4, 1, Recompute::None);
        assert_eq!(
            p.stages.iter().map(|s| s.layers).collect::<Vec<_>>(),
            vec![2, 3, 3, 2]
        );
    }

    #[test]
    fn recompute_accepts_a_mode_counts_or_runs() {
        let p: Plan = toml::from_str(
            "dp=1\ntp=1\npp=3\nmicro_batch=1\n[[stage]]\nlayers=3\nrecompute='full'\n[[stage]]\nlayers=3\nrecompute={none=1,selective=2}\n[[stage]]\nlayers=3\nrecompute=[{full=1},{none=2}]\n",
        )
        .unwrap();
        assert_eq!(
            p.stages[0].recompute,
            vec![RecomputeCounts::all(Recompute::Full, 3)]
        );
        assert_eq!(
            p.stages[1].recompute,
            vec![RecomputeCounts {
                none: 1,
                selective: 2,
                full: 0
            }]
        );
        assert_eq!(
            p.stages[2].modes_in_order().collect::<Vec<_>>(),
            vec![Recompute::Full, Recompute::None, Recompute::None]
        );
    }

    #[test]
    fn toml_round_trip_is_exact() {
        let mut p = Plan::uniform(7, 2, 2, 3, 4, Recompute::Selective);
        p.stages[0].park.push(Park {
            to: 2,
            what: ParkKind::Activations,
            bytes: 123_456_789_012,
        });
        p.stages[1].recompute = vec![
            RecomputeCounts::all(Recompute::Full, 1),
            RecomputeCounts::all(Recompute::None, 1),
        ];
        let back: Plan = toml::from_str(&p.to_toml().unwrap()).unwrap();
        assert_eq!(back, p);
    }
}
