//! A training plan: parallel degrees, layers and recomputation per stage, where memory lives, and
//! which devices run what.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::cost::memory::Recompute;
use crate::error::{ensure, Error, FieldError};
use crate::hardware::{DeviceId, Fabric};
use crate::input::SourceFile;
use crate::instance::Instance;

/// How many of a stage's layers run in each recomputation mode.
///
/// In a plan file either a mode for all the stage's layers (`recompute = "full"`) or counts
/// (`recompute = { none = 2, full = 5 }`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
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
    /// All layers.
    pub fn total(&self) -> u32 {
        self.none + self.selective + self.full
    }
}

impl<'de> Deserialize<'de> for RecomputeCounts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Counts {
            #[serde(default)]
            none: u32,
            #[serde(default)]
            selective: u32,
            #[serde(default)]
            full: u32,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Mode(Recompute),
            Counts(Counts),
        }
        match Either::deserialize(d).map_err(|_| {
            serde::de::Error::custom("expected \"none\", \"selective\", \"full\" or a table { none = N, selective = N, full = N }")
        })? {
            // Layer count unknown here: the stage's `layers` fills it in (see Stage::resolve).
            Either::Mode(m) => Ok(RecomputeCounts::all(m, u32::MAX)),
            Either::Counts(c) => Ok(RecomputeCounts { none: c.none, selective: c.selective, full: c.full }),
        }
    }
}

/// Memory tier for a stage's weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Resident in on-die SRAM (only where they fit beside the streaming buffers).
    Sram,
    /// In the device's own DRAM, streamed every pass.
    #[default]
    Dram,
}

/// What a stage parks in another stage's DRAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParkKind {
    /// Activation checkpoints: written and read back once per micro-batch.
    Activations,
    /// Master weights and optimizer moments: read and written once per step.
    Optimizer,
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    pub layers: u32,
    pub recompute: RecomputeCounts,
    #[serde(default)]
    pub weights: Tier,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub park: Vec<Park>,
    /// Devices as `[row, col]` (wafer) or `[node, gpu]` (cluster): `dp x tp` of them, replica by
    /// replica, each replica's in ring order. Omitted: the default placement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dies: Option<Vec<[u32; 2]>>,
}

/// A training plan.
///
/// ```
/// use watos::{Plan, cost::memory::Recompute};
/// let p = Plan::uniform(96, 1, 8, 7, 1, Recompute::Full);
/// assert_eq!(p.stages.iter().map(|s| s.layers).collect::<Vec<_>>(), vec![13, 14, 14, 14, 14, 14, 13]);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub dp: u32,
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
    /// DDP) instead of after it. Evaluated, not searched: `watos solve` plans reduce after.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dp_overlap: bool,
    #[serde(rename = "stage")]
    pub stages: Vec<Stage>,
}

fn one() -> u32 {
    1
}

/// Devices of one plan: `groups[replica][stage]` is the stage's tensor-parallel group, in ring order.
pub type Placement = Vec<Vec<Vec<DeviceId>>>;

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
        let pp = pp.max(1);
        let base = layers / pp;
        let extra = layers % pp;
        // Stages ordered by distance from the middle get the extra layers first.
        let mut order: Vec<u32> = (0..pp).collect();
        let mid = (pp - 1) as f64 / 2.0;
        order.sort_by(|a, b| {
            (*a as f64 - mid)
                .abs()
                .total_cmp(&(*b as f64 - mid).abs())
                .then(a.cmp(b))
        });
        let stages = (0..pp)
            .map(|j| {
                let n = base
                    + u32::from(order.iter().position(|x| *x == j).unwrap_or(0) < extra as usize);
                Stage {
                    layers: n,
                    recompute: RecomputeCounts::all(mode, n),
                    weights: Tier::Dram,
                    park: Vec::new(),
                    dies: None,
                }
            })
            .collect();
        Plan {
            dp,
            tp,
            pp,
            micro_batch,
            sequence_parallel: false,
            interleave: 1,
            zero1: false,
            dp_overlap: false,
            stages,
        }
    }

    /// Reads a plan file and checks it against the instance; errors name the line.
    pub fn load(path: impl AsRef<Path>, inst: &Instance) -> Result<Plan, Error> {
        let src = SourceFile::read(path.as_ref())?;
        let mut plan: Plan = src.parse_toml()?;
        plan.resolve_modes();
        plan.check(inst).map_err(|e| src.field_error(e))?;
        Ok(plan)
    }

    /// A stage given as `recompute = "full"` gets all its layers in that mode.
    pub fn resolve_modes(&mut self) {
        for s in &mut self.stages {
            for mode in Recompute::ALL {
                if s.recompute.get(mode) == u32::MAX {
                    s.recompute = RecomputeCounts::all(mode, s.layers);
                }
            }
        }
    }

    /// Writes the plan as TOML (the form `watos evaluate --plan` reads back exactly).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# plan could not be written: {e}\n"))
    }

    /// Micro-batches per step: `B / (d b)`.
    pub fn micro_batches(&self, global_batch: u32) -> u32 {
        global_batch / (self.dp * self.micro_batch).max(1)
    }

    /// Devices the plan uses.
    pub fn devices(&self) -> u32 {
        self.dp * self.tp * self.pp
    }

    /// Structural checks against an instance: anything that makes the plan meaningless (as
    /// opposed to merely not fitting, which the evaluator reports as a violation).
    pub fn check(&self, inst: &Instance) -> Result<(), FieldError> {
        let m = &inst.model;
        for (field, v) in [
            ("dp", self.dp),
            ("tp", self.tp),
            ("pp", self.pp),
            ("micro_batch", self.micro_batch),
            ("interleave", self.interleave),
        ] {
            ensure(v >= 1, || {
                FieldError::new(field, "must be at least 1", "a positive integer")
            })?;
        }
        let list = |n: u32| {
            crate::workload::divisors(n)
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        ensure(m.heads % self.tp == 0, || {
            FieldError::new(
                "tp",
                format!(
                    "tensor parallelism {} does not divide the {} attention heads of {}",
                    self.tp, m.heads, m.name
                ),
                format!("valid: {}", list(m.heads)),
            )
        })?;
        let kv = m.kv_heads();
        ensure(kv % self.tp == 0 || self.tp % kv == 0, || {
            FieldError::new("tp", format!("tensor parallelism {} neither divides nor is a multiple of the {kv} key/value heads", self.tp), format!("valid: {}", list(m.heads).split(", ").filter(|t| t.parse::<u32>().map(|t| kv % t == 0 || t % kv == 0).unwrap_or(false)).collect::<Vec<_>>().join(", ")))
        })?;
        // Products and sums in u64: the factors come from files and flags, and a product that
        // wraps would pass (or fail) a check for the wrong reason.
        let gb = inst.training.global_batch;
        ensure(
            u64::from(gb) % (u64::from(self.dp) * u64::from(self.micro_batch)) == 0,
            || {
                FieldError::new(
                    "micro_batch",
                    format!(
                        "dp {} x micro-batch {} does not divide the global batch {gb}",
                        self.dp, self.micro_batch
                    ),
                    format!("dp x micro_batch must divide {gb}"),
                )
            },
        )?;
        let healthy = inst.fabric().healthy_count();
        let devices = u64::from(self.dp) * u64::from(self.tp) * u64::from(self.pp);
        ensure(devices <= u64::from(healthy), || {
            FieldError::new(
                "dp",
                format!(
                    "dp {} x tp {} x pp {} = {devices} devices, but {} has {healthy} healthy",
                    self.dp, self.tp, self.pp, inst.hardware.name
                ),
                format!("use at most {healthy} devices"),
            )
        })?;
        ensure(self.stages.len() as u32 == self.pp, || {
            FieldError::new(
                "stage",
                format!(
                    "{} [[stage]] tables for pp = {}",
                    self.stages.len(),
                    self.pp
                ),
                "one [[stage]] per pipeline stage",
            )
        })?;
        ensure(self.pp <= m.layers, || {
            FieldError::new(
                "pp",
                format!("{} stages for {} layers", self.pp, m.layers),
                format!("at most {}", m.layers),
            )
        })?;
        let mut total = 0u64;
        for (j, s) in self.stages.iter().enumerate() {
            let f = |name: &str| format!("stage[{j}].{name}");
            ensure(s.layers >= 1, || {
                FieldError::new(f("layers"), "a stage needs at least one layer", "1 or more")
            })?;
            let r = &s.recompute;
            let counted = u64::from(r.none) + u64::from(r.selective) + u64::from(r.full);
            ensure(counted == u64::from(s.layers), || {
                FieldError::new(
                    f("recompute"),
                    format!(
                        "counts sum to {counted} but the stage has {} layers",
                        s.layers
                    ),
                    "none + selective + full = layers",
                )
            })?;
            ensure(s.layers % self.interleave == 0, || {
                FieldError::new(
                    f("layers"),
                    format!(
                        "{} layers do not split into {} interleaved chunks",
                        s.layers, self.interleave
                    ),
                    "layers per stage must be a multiple of interleave",
                )
            })?;
            for (i, park) in s.park.iter().enumerate() {
                ensure(park.to < self.pp && park.to != j as u32, || {
                    FieldError::new(
                        format!("stage[{j}].park[{i}].to"),
                        format!("stage {} is not another stage of this plan", park.to),
                        format!("0..{} except {j}", self.pp),
                    )
                })?;
            }
            total += u64::from(s.layers);
        }
        ensure(total == u64::from(m.layers), || {
            FieldError::new(
                "stage",
                format!("stages hold {total} layers, the model has {}", m.layers),
                format!("layers must sum to {}", m.layers),
            )
        })?;
        self.placement(inst.fabric()).map(|_| ())
    }

    /// Devices of every (replica, stage) group: the plan's own `dies`, or the default placement
    /// (groups of `tp` filled along the fabric's placement order, replica by replica, stage by
    /// stage, each group turned into a ring).
    pub fn placement(&self, fabric: &Fabric) -> Result<Placement, FieldError> {
        let (d, p, t) = (self.dp as usize, self.pp as usize, self.tp as usize);
        let order = fabric.placement_order(self.tp);
        let mut used = std::collections::HashSet::new();
        let mut groups = vec![vec![Vec::new(); p]; d];
        let mut next = 0usize;
        for (j, stage) in self.stages.iter().enumerate() {
            if let Some(dies) = &stage.dies {
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
        }
        // A mesh fills replica by replica so that consecutive stages are neighbours; a cluster
        // follows Megatron-LM's rank order (tensor-parallel ranks fastest, then data-parallel,
        // then pipeline), so small data-parallel groups share a node.
        let slots: Vec<(usize, usize)> = if matches!(fabric, Fabric::Cluster(_)) {
            (0..p).flat_map(|j| (0..d).map(move |r| (r, j))).collect()
        } else {
            (0..d).flat_map(|r| (0..p).map(move |j| (r, j))).collect()
        };
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
            fabric.ring_order(group);
        }
        Ok(groups)
    }

    /// Writes the resolved placement into every stage's `dies`.
    pub fn pin_placement(&mut self, fabric: &Fabric) -> Result<(), FieldError> {
        let groups = self.placement(fabric)?;
        for (j, stage) in self.stages.iter_mut().enumerate() {
            stage.dies = Some(
                groups
                    .iter()
                    .flat_map(|rep| rep[j].iter().map(|id| fabric.coord(*id)))
                    .collect(),
            );
        }
        Ok(())
    }
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
    fn recompute_accepts_a_mode_or_counts() {
        let mut p: Plan = toml::from_str(
            "dp=1\ntp=1\npp=2\nmicro_batch=1\n[[stage]]\nlayers=3\nrecompute='full'\n[[stage]]\nlayers=3\nrecompute={none=1,selective=2}\n",
        )
        .unwrap();
        p.resolve_modes();
        assert_eq!(
            p.stages[0].recompute,
            RecomputeCounts {
                none: 0,
                selective: 0,
                full: 3
            }
        );
        assert_eq!(
            p.stages[1].recompute,
            RecomputeCounts {
                none: 1,
                selective: 2,
                full: 0
            }
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
        let mut back: Plan = toml::from_str(&p.to_toml()).unwrap();
        back.resolve_modes();
        assert_eq!(back, p);
    }
}
