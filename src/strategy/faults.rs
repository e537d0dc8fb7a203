//! The fault sweep: random faulty dies or links at several rates, each faulted wafer solved by
//! watos (fault-aware) and by a planner that knows how many dies work but not which
//! (fault-unaware), both scored by the evaluator on the faulted wafer.
//!
//! The fault-unaware plan is watos's plan for a wafer with as many healthy dies whose faults all
//! sit at the end of the band snake (so it is laid out as if no die in its way were faulty), moved
//! to the faulted wafer die by die: the `i`-th die of the snake goes to the `i`-th healthy die of
//! the faulted wafer's snake, skipping faulty dies in order. With faulty links only, that is the
//! fault-free plan as it stands, its transfers detouring around the broken links.

use serde::Serialize;

use crate::cost::{evaluate_with, ConfigCosts};
use crate::error::Error;
use crate::hardware::{DeviceId, Fabric, Hardware};
use crate::instance::Instance;
use crate::placement::{snake, Placement, SplitMix64};
use crate::plan::{Config, Plan};

use super::SearchOptions;

/// What breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultKind {
    /// A fraction of the dies.
    Dies,
    /// A fraction of the links between neighbouring dies.
    Links,
}

impl FaultKind {
    /// Both kinds, dies first.
    pub const ALL: [FaultKind; 2] = [FaultKind::Dies, FaultKind::Links];
}

/// Draws at most this many times for a fault pattern that leaves the healthy dies connected.
const DRAWS: usize = 200;

/// `round(rate x count)` dies or links of `hw`'s wafer made faulty, drawn uniformly with a
/// generator seeded by `(seed, kind, rate)`, redrawn until the healthy dies stay connected.
/// `None` on a cluster, or when no draw in [`DRAWS`] keeps the wafer in one piece.
///
/// ```
/// use watos::strategy::faults::{draw, FaultKind};
/// let hw = watos::Hardware::load(concat!(env!("CARGO_MANIFEST_DIR"), "/hardware/wafer-config3.toml")).unwrap();
/// let a = draw(&hw, FaultKind::Dies, 0.1, 7).unwrap();
/// assert_eq!(a.wafer.as_ref().unwrap().faulty_dies.len(), 6);
/// assert_eq!(a, draw(&hw, FaultKind::Dies, 0.1, 7).unwrap());
/// ```
pub fn draw(hw: &Hardware, kind: FaultKind, rate: f64, seed: u64) -> Option<Hardware> {
    let w = hw.wafer.as_ref()?;
    let (rows, cols) = (w.rows * w.wafers, w.cols);
    let dies: Vec<[u32; 2]> = (0..rows)
        .flat_map(|r| (0..cols).map(move |c| [r, c]))
        .collect();
    let links: Vec<[[u32; 2]; 2]> = dies
        .iter()
        .flat_map(|&[r, c]| {
            let east = (c + 1 < cols).then_some([[r, c], [r, c + 1]]);
            let south = (r + 1 < rows).then_some([[r, c], [r + 1, c]]);
            east.into_iter().chain(south)
        })
        .collect();
    let count = |n: usize| ((rate.clamp(0.0, 1.0) * n as f64).round() as usize).min(n);
    let mut rng =
        SplitMix64(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ rate.to_bits() ^ (kind as u64) << 62);
    for _ in 0..DRAWS {
        let mut out = hw.clone();
        let wafer = out.wafer.as_mut()?;
        match kind {
            FaultKind::Dies => {
                let mut pick = dies.clone();
                rng.shuffle(&mut pick);
                pick.truncate(count(dies.len()).min(dies.len().saturating_sub(1)));
                pick.sort_unstable();
                wafer.faulty_dies = pick;
            }
            FaultKind::Links => {
                let mut pick = links.clone();
                rng.shuffle(&mut pick);
                pick.truncate(count(links.len()));
                pick.sort_unstable();
                wafer.faulty_links = pick;
            }
        }
        if out.fabric().is_ok_and(|f| f.is_connected()) {
            return Some(out);
        }
    }
    None
}

/// One plan of the sweep as the evaluator scores it on the faulted wafer.
#[derive(Debug, Clone, Serialize)]
pub struct Scored {
    pub plan: String,
    pub step_time_s: f64,
    pub tokens_per_s: f64,
    pub mean_pipeline_hops: f64,
}

/// One faulted wafer: its faults and both planners' results (`None`: no plan fits, or the time
/// limit ran out before one was found).
#[derive(Debug, Clone, Serialize)]
pub struct Trial {
    pub seed: u64,
    pub healthy_dies: u32,
    pub faulty_dies: Vec<[u32; 2]>,
    pub faulty_links: Vec<[[u32; 2]; 2]>,
    pub aware: Option<Scored>,
    pub unaware: Option<Scored>,
}

/// Instance `base` with the hardware `hw`.
fn with_hardware(base: &Instance, hw: Hardware) -> Result<Instance, Error> {
    let mut inst = Instance::new(
        base.name.clone(),
        base.model.clone(),
        hw,
        base.training.clone(),
    )?;
    inst.limits = base.limits.clone();
    Ok(inst)
}

/// watos's plan for `inst`, or `None` when no plan fits or a limit stopped the search first.
fn solve(inst: &Instance, opts: &SearchOptions) -> Result<Option<(Plan, Placement)>, Error> {
    match super::solve(inst, opts) {
        Ok(sol) => {
            let g = sol
                .plan
                .placement(inst.fabric())
                .map_err(crate::cost::plan_error)?;
            Ok(Some((sol.plan, g)))
        }
        Err(Error::Infeasible(_) | Error::Limit(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

fn scored(inst: &Instance, plan: &Plan, g: &Placement) -> Option<Scored> {
    let costs = ConfigCosts::new(inst, Config::of(plan));
    let e = evaluate_with(inst, plan, &costs, g);
    e.feasible.then(|| Scored {
        plan: plan.to_string(),
        step_time_s: e.step_time_s,
        tokens_per_s: e.tokens_per_s,
        mean_pipeline_hops: g.mean_pipeline_hops(inst.fabric()),
    })
}

/// The fault-unaware planner's plans, by the number of healthy dies it planned for.
#[derive(Default)]
pub struct Unaware(std::collections::HashMap<u32, Option<(Plan, Placement)>>);

impl Unaware {
    /// Its plan for `healthy` dies of `base`'s wafer: solved on the wafer whose last dies in
    /// snake order are missing.
    fn plan(
        &mut self,
        base: &Instance,
        healthy: u32,
        opts: &SearchOptions,
    ) -> Result<Option<(Plan, Placement)>, Error> {
        if let Some(known) = self.0.get(&healthy) {
            return Ok(known.clone());
        }
        let mut hw = base.hardware.clone();
        let order = snake(base.fabric(), 2, false);
        if let Some(w) = hw.wafer.as_mut() {
            w.faulty_dies = order[healthy as usize..]
                .iter()
                .map(|id| base.fabric().coord(*id))
                .collect();
            w.faulty_links.clear();
        }
        let blind = with_hardware(base, hw)?;
        let found = solve(&blind, opts)?;
        self.0.insert(healthy, found.clone());
        Ok(found)
    }
}

/// One trial: `faulted` (a wafer with faults drawn from `base`'s) solved both ways.
pub fn trial(
    base: &Instance,
    faulted: Hardware,
    seed: u64,
    opts: &SearchOptions,
    unaware: &mut Unaware,
) -> Result<Trial, Error> {
    let Some(w) = faulted.wafer.clone() else {
        return Err(Error::invalid(
            "faults",
            format!("{} is a cluster", faulted.name),
            "the fault sweep breaks dies and links of a wafer",
        ));
    };
    let inst = with_hardware(base, faulted)?;
    let healthy = inst.fabric().healthy_count();
    let aware = solve(&inst, opts)?.and_then(|(plan, g)| scored(&inst, &plan, &g));
    let blind = unaware.plan(base, healthy, opts)?;
    let unaware = blind.and_then(|(plan, g)| {
        let moved = skip_faulty(base.fabric(), inst.fabric(), &g)?;
        let mut plan = plan;
        plan.pin(&moved, inst.fabric());
        scored(&inst, &plan, &moved)
    });
    Ok(Trial {
        seed,
        healthy_dies: healthy,
        faulty_dies: w.faulty_dies,
        faulty_links: w.faulty_links,
        aware,
        unaware,
    })
}

/// `g` moved from the fault-free wafer to the faulted one: the `i`-th die of the band snake to
/// the `i`-th healthy die of the faulted wafer's snake.
pub fn skip_faulty(clean: &Fabric, faulted: &Fabric, g: &Placement) -> Option<Placement> {
    let from = snake(clean, 2, false);
    let to = snake(faulted, 2, false);
    let index: std::collections::HashMap<DeviceId, usize> =
        from.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let groups = (0..g.replicas())
        .map(|r| {
            (0..g.stages())
                .map(|j| {
                    g.group(r, j)
                        .iter()
                        .map(|id| index.get(id).and_then(|i| to.get(*i)).copied())
                        .collect::<Option<Vec<DeviceId>>>()
                })
                .collect::<Option<Vec<Vec<DeviceId>>>>()
        })
        .collect::<Option<Vec<Vec<Vec<DeviceId>>>>>()?;
    Placement::from_groups(groups, faulted)
}

/// One rate of one kind of fault, over every seed.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub kind: FaultKind,
    pub rate: f64,
    pub trials: Vec<Trial>,
    /// Mean tokens/s over the trials, a trial without a plan counting as 0.
    pub mean_aware_tokens_per_s: f64,
    pub mean_unaware_tokens_per_s: f64,
    /// `aware / unaware - 1` of the means; `None` when the fault-unaware planner ran nothing.
    pub gain: Option<f64>,
}

/// A whole sweep.
#[derive(Debug, Clone, Serialize)]
pub struct Sweep {
    pub instance: String,
    pub dies: u32,
    pub links: u32,
    pub seeds: u64,
    /// The plan on the wafer without faults (what 100% is).
    pub fault_free: Option<Scored>,
    pub rows: Vec<Row>,
}

/// Solves `base`'s wafer (its own listed faults cleared) with faults of each kind at each rate,
/// `seeds` patterns each (seeds `0..seeds`). `progress` is told after each trial.
pub fn sweep(
    base: &Instance,
    kinds: &[FaultKind],
    rates: &[f64],
    seeds: u64,
    opts: &SearchOptions,
    progress: &dyn Fn(),
) -> Result<Sweep, Error> {
    let mut hw = base.hardware.clone();
    let Some(w) = hw.wafer.as_mut() else {
        return Err(Error::invalid(
            "--hardware",
            format!("{} is a cluster", base.hardware.name),
            "the fault sweep breaks dies and links of a wafer: give wafer hardware",
        ));
    };
    w.faulty_dies.clear();
    w.faulty_links.clear();
    let (rows, cols) = (w.rows * w.wafers, w.cols);
    let clean = with_hardware(base, hw.clone())?;
    let fault_free = solve(&clean, opts)?.and_then(|(plan, g)| scored(&clean, &plan, &g));
    let mut unaware = Unaware::default();
    let mut out = Vec::new();
    for kind in kinds {
        for rate in rates {
            let mut trials = Vec::new();
            for seed in 0..seeds {
                let Some(faulted) = draw(&hw, *kind, *rate, seed) else {
                    progress();
                    continue;
                };
                trials.push(trial(&clean, faulted, seed, opts, &mut unaware)?);
                progress();
            }
            let mean = |f: &dyn Fn(&Trial) -> Option<f64>| {
                trials.iter().map(|t| f(t).unwrap_or(0.0)).sum::<f64>() / trials.len().max(1) as f64
            };
            let a = mean(&|t| t.aware.as_ref().map(|s| s.tokens_per_s));
            let u = mean(&|t| t.unaware.as_ref().map(|s| s.tokens_per_s));
            out.push(Row {
                kind: *kind,
                rate: *rate,
                trials,
                mean_aware_tokens_per_s: a,
                mean_unaware_tokens_per_s: u,
                gain: (u > 0.0).then(|| a / u - 1.0),
            });
        }
    }
    Ok(Sweep {
        instance: base.name.clone(),
        dies: rows * cols,
        links: rows * (cols - 1) + (rows - 1) * cols,
        seeds,
        fault_free,
        rows: out,
    })
}
